-- Label join: each impressed item with its click, attributed by (request_id, item_id) within the
-- click window; a click without request_id comes with the request of the impression it was
-- attributed to (04_attribution.sql). An interval LEFT JOIN emits the positive as soon as the click
-- arrives (the model learns within seconds) and the negative only when the watermark passes the
-- window's end. Features are those of the impression row, so a label never brings later
-- information along.

CREATE TEMPORARY VIEW impression_features AS
SELECT * FROM item_features WHERE item_kind = 0;

-- The first click and the first purchase of each (request, item) (04_attribution.sql).
CREATE TEMPORARY VIEW clicks AS
SELECT request_id, item_id, rowtime FROM attributed_labels
WHERE type = 'click' AND request_id IS NOT NULL AND nth = 1;

CREATE TEMPORARY VIEW purchases AS
SELECT request_id, item_id, rowtime FROM attributed_labels
WHERE type = 'purchase' AND request_id IS NOT NULL AND nth = 1;

-- Computed once for the examples and the purchase corrections (07_examples.sql): without the
-- DataStream hop in between (online_training._materialize), the planner turns the LEFT JOIN under
-- the corrections' `click = 1` into a second, inner click join that keeps every impressed item too.
-- Only the columns the examples read go on: a DataStream hop cannot be pruned.
-- The join is keyed by the request alone: the item's equality is written as a range (>= and <=,
-- for strings the same test as =), which the planner keeps out of the join key, where a plain =
-- would go. One key per impression then holds all its impressed items under one map entry and
-- one cleanup timer, instead of a key, a map and a timer per item: half the join's CPU and a
-- quarter less state (docs/benchmarks.md). test_label_join_plan.py checks the key.
CREATE TEMPORARY VIEW labelled_impressions_computed AS
SELECT f.event_id, f.rowtime, f.ts, f.user_id, f.request_id, f.query, f.device, f.platform, f.item_id,
  f.`position`, f.price, f.category, f.brand, f.u_click_5m, f.u_click_1h, f.u_click_24h, f.u_cart_5m,
  f.u_cart_1h, f.u_cart_24h, f.u_purchase_5m, f.u_purchase_1h, f.u_purchase_24h, f.u_last_category,
  f.qi_ctr_24h, f.i_impr_1h, f.i_click_1h, f.i_ctr_1h,
  CASE WHEN c.request_id IS NULL THEN 0 ELSE 1 END AS click
FROM impression_features f
LEFT JOIN clicks c
  ON f.request_id = c.request_id AND f.item_id >= c.item_id AND f.item_id <= c.item_id
  AND c.rowtime BETWEEN f.rowtime AND f.rowtime + INTERVAL '{click_window}' DAY TO SECOND(3);
