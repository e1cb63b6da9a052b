-- The examples: one per impressed item (labelled_impressions, 06_labels.sql), and the purchase
-- corrections.
CREATE TEMPORARY VIEW click_examples AS
SELECT *, 0 AS purchase, 'impression' AS kind FROM labelled_impressions;

-- Delayed feedback (fake negative + positive correction, Ktena et al. 2019): the example above
-- carries purchase = 0; a purchase inside the purchase window emits a correction copy with
-- purchase = 1 at once, instead of holding every example for 24 h. The trainer weighs both.
-- A purchase is a post-click conversion: it corrects the example of the impression it belongs to
-- only when that example was clicked. So this join keeps the clicked examples for the purchase
-- window, not every impressed item: at steady state, by far the largest state of the job.
-- (The clicked rows reach it when their click arrives, behind the watermark by up to the click
-- window; the click join holds its output watermark back by as much, so none is late here.)
-- Keyed by the request alone, as the click join (06_labels.sql).
CREATE TEMPORARY VIEW purchase_corrections AS
SELECT f.*, 1 AS purchase, 'purchase_correction' AS kind
FROM labelled_impressions f
JOIN purchases p
  ON f.request_id = p.request_id AND f.item_id >= p.item_id AND f.item_id <= p.item_id
  AND p.rowtime BETWEEN f.rowtime AND f.rowtime + INTERVAL '{purchase_window}' DAY TO SECOND(3)
WHERE f.click = 1;

CREATE TEMPORARY VIEW training_examples AS
SELECT * FROM click_examples
UNION ALL
SELECT * FROM purchase_corrections;

-- Training examples as JSON objects (the contract in docs/contracts.md), written by json_record
-- (udfs/jvm/): Flink's JSON_OBJECT builds a Jackson tree per row and was a third of the label
-- joins' thread. They are written after the joins: the joins keep the impression rows in state
-- (the purchase join the clicked ones for 24 h), and a binary row is smaller than its JSON text
-- with the names.
CREATE TEMPORARY VIEW example_json AS
SELECT '{model_name}' AS model,
  json_record(
    'example_id', event_id || ':' || CAST(`position` AS STRING) || CASE WHEN kind = 'impression' THEN '' ELSE ':' || kind END,
    'model', '{model_name}', 'kind', kind, 'ts', ts,
    'user_id', user_id, 'item_id', item_id, 'query', query,
    'category', category, 'brand', brand, 'device', device, 'platform', platform,
    'position', `position`, 'price', price,
    'hour', EXTRACT(HOUR FROM rowtime),
    'u_click_5m', u_click_5m, 'u_click_1h', u_click_1h, 'u_click_24h', u_click_24h,
    'u_cart_5m', u_cart_5m, 'u_cart_1h', u_cart_1h, 'u_cart_24h', u_cart_24h,
    'u_purchase_5m', u_purchase_5m, 'u_purchase_1h', u_purchase_1h, 'u_purchase_24h', u_purchase_24h,
    'u_last_category', u_last_category,
    'i_impr_1h', i_impr_1h, 'i_click_1h', i_click_1h, 'i_ctr_1h', i_ctr_1h,
    'qi_ctr_24h', qi_ctr_24h,
    'click', click, 'purchase', purchase) AS example
FROM training_examples;
