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

CREATE TEMPORARY VIEW click_examples AS
SELECT f.*, CASE WHEN c.request_id IS NULL THEN 0 ELSE 1 END AS click, 0 AS purchase, 'impression' AS kind
FROM impression_features f
LEFT JOIN clicks c
  ON f.request_id = c.request_id AND f.item_id = c.item_id
  AND c.rowtime BETWEEN f.rowtime AND f.rowtime + INTERVAL '{click_window}' DAY TO SECOND(3);

-- Delayed feedback (fake negative + positive correction, Ktena et al. 2019): the example above
-- carries purchase = 0; a purchase inside the purchase window emits a correction copy with
-- purchase = 1 at once, instead of holding every example for 24 h. The trainer weighs both.
CREATE TEMPORARY VIEW purchase_corrections AS
SELECT f.*, 1 AS click, 1 AS purchase, 'purchase_correction' AS kind
FROM impression_features f
JOIN purchases p
  ON f.request_id = p.request_id AND f.item_id = p.item_id
  AND p.rowtime BETWEEN f.rowtime AND f.rowtime + INTERVAL '{purchase_window}' DAY TO SECOND(3);

CREATE TEMPORARY VIEW training_examples AS
SELECT * FROM click_examples
UNION ALL
SELECT * FROM purchase_corrections;
