-- Label attribution: which impression each click and purchase belongs to. It reads narrow rows
-- straight from the events, so it never waits for the user windows.
--
-- A label (click or purchase) belongs to one impression of its item:
--   * with a request_id: the impression of that request (the label join, 06_labels.sql, checks
--     the attribution window);
--   * without one (the event contract allows it for click, add_to_cart and purchase): the same
--     user's latest impression of that item at or before the label, if that impression is at
--     most the attribution window (click or purchase window) older than the label.
-- One event-time OVER window answers both: each impressed item enters it twice, under its request
-- and under its user (the attribution key), and each label once, under its request, or its user
-- when it has none. LAST_VALUE skips the labels' nulls, so at a label it holds the key's latest
-- impression of the item at or before the label's time (RANGE: the same millisecond included).
-- An unbounded window keeps one accumulator per (key, item) and no rows; the job's state TTL
-- (a day at least) drops the keys that go quiet.

CREATE TEMPORARY VIEW attribution_rows AS
SELECT k.attribution_key, it.item_id, e.rowtime,
  CAST(NULL AS STRING) AS label_type, CAST(NULL AS STRING) AS event_id, CAST(NULL AS STRING) AS user_id,
  CAST(NULL AS BIGINT) AS ts, CAST(NULL AS BIGINT) AS label_time, CAST(NULL AS STRING) AS own_request_id,
  CAST(NULL AS DOUBLE) AS price,
  e.request_id AS impression_request_id, COALESCE(e.query, '') AS impression_query, e.event_time AS impression_time
FROM events e
CROSS JOIN UNNEST(e.item_ids) AS it(item_id)
CROSS JOIN UNNEST(ARRAY['r' || e.request_id, 'u' || e.user_id]) AS k(attribution_key)
WHERE e.type = 'impression' AND e.request_id IS NOT NULL
UNION ALL
SELECT CASE WHEN request_id IS NULL THEN 'u' || user_id ELSE 'r' || request_id END, item_id, rowtime,
  type, event_id, user_id, ts, event_time, request_id, price,
  CAST(NULL AS STRING), CAST(NULL AS STRING), CAST(NULL AS BIGINT)
FROM events
WHERE type IN ('click', 'purchase') AND item_id IS NOT NULL;

CREATE TEMPORARY VIEW attribution_window AS
SELECT label_type, event_id, user_id, ts, label_time, own_request_id, price, item_id, rowtime,
  LAST_VALUE(impression_request_id) OVER w AS impression_request_id,
  LAST_VALUE(impression_query) OVER w AS impression_query,
  LAST_VALUE(impression_time) OVER w AS impression_time
FROM attribution_rows
WINDOW w AS (PARTITION BY attribution_key, item_id ORDER BY rowtime
  RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);

-- Every click and purchase with an item, once: `request_id` is its own, or else the one it is
-- attributed to (null: no impression in the window); `query` is that of the impression it is
-- attributed to within the window (null: none), which the (query, item) window counts it for.
CREATE TEMPORARY VIEW attributed_labels_resolved AS
SELECT type, event_id, user_id, ts, price, item_id, rowtime,
  COALESCE(own_request_id, CASE WHEN in_window THEN impression_request_id END) AS request_id,
  CASE WHEN in_window THEN impression_query END AS query
FROM (
  SELECT label_type AS type, event_id, user_id, ts, price, item_id, rowtime, own_request_id,
    impression_request_id, impression_query,
    label_time - impression_time
      <= CASE WHEN label_type = 'click' THEN {click_window_ms} ELSE {purchase_window_ms} END AS in_window
  FROM attribution_window
  WHERE label_type IS NOT NULL);

-- `nth` numbers the clicks (and the purchases) of one (request, item) in event-time order, so the
-- label join takes the first only: a double click, or one click with and one without request_id,
-- labels its impression once. Every click still counts for the item and (query, item) counters.
-- An unbounded ROWS window: append-only, one counter per key (the state TTL drops it).
CREATE TEMPORARY VIEW attributed_labels_computed AS
SELECT *,
  COUNT(*) OVER (PARTITION BY type, request_id, item_id ORDER BY rowtime
    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS nth
FROM attributed_labels_resolved;
