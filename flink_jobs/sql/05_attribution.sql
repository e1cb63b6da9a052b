-- Label attribution: which impression each click and purchase belongs to. Everything here reads
-- narrow rows straight from the events, so none of it waits for the user and item windows.
--
-- A label (click or purchase) belongs to one impression of its item:
--   * with a request_id: the impression of that request (the label join, 07_labels.sql);
--   * without one (the event contract allows it for click, add_to_cart and purchase): the same
--     user's latest impression of that item at or before the label's time, if that impression is
--     at most the attribution window (click or purchase window) older than the label.
-- "Latest as of the label's time" is an event-time temporal join against a versioned view
-- (Flink's event-time deduplication keyed by user and item): the join emits a label once the
-- watermark has passed it, with the version valid at its rowtime, and keeps only the versions
-- the watermark still needs. Its output keeps the label's time attribute, so it feeds the
-- label join and the (query, item) window like any event (it is computed once for both:
-- attributed_by_user, see _materialize in flink_jobs/online_training.py).

-- Impressed items, narrow: one row per (impression, item).
CREATE TEMPORARY VIEW impressed_items AS
SELECT e.event_id, e.rowtime, e.ts, e.event_time, e.user_id, e.request_id,
  COALESCE(e.query, '') AS query, it.item_id, e.item_positions[it.k] AS `position`
FROM events e
CROSS JOIN UNNEST(e.item_ids) WITH ORDINALITY AS it(item_id, k)
WHERE e.type = 'impression';

-- The user's latest impression of each item (a versioned view: primary key user_id, item_id).
CREATE TEMPORARY VIEW latest_user_impression AS
SELECT user_id, item_id, request_id, query, event_time, rowtime
FROM (
  SELECT user_id, item_id, request_id, query, event_time, rowtime,
    ROW_NUMBER() OVER (PARTITION BY user_id, item_id ORDER BY rowtime DESC) AS rn
  FROM impressed_items)
WHERE rn = 1;

-- Clicks and purchases without request_id, attributed to the user's latest impression of the
-- item within the window. A label with a request_id never comes here: it cannot count twice.
CREATE TEMPORARY VIEW labels_without_request AS
SELECT event_id, type, ts, event_time, rowtime, user_id, item_id FROM events
WHERE type IN ('click', 'purchase') AND request_id IS NULL AND item_id IS NOT NULL;

CREATE TEMPORARY VIEW attributed_by_user_computed AS
SELECT l.type, l.ts, l.rowtime, v.request_id, l.item_id, v.query
FROM labels_without_request AS l
JOIN latest_user_impression FOR SYSTEM_TIME AS OF l.rowtime AS v
  ON l.user_id = v.user_id AND l.item_id = v.item_id
WHERE l.event_time - v.event_time <= CASE WHEN l.type = 'click' THEN {click_window_ms} ELSE {purchase_window_ms} END;

-- Clicks with a request_id take the query of their request's impression (the latest one of that
-- request as of the click, the item on its page, within the click window), for the (query, item)
-- window (06_query_item_features.sql). Their label is joined in 07_labels.sql, as before.
CREATE TEMPORARY VIEW latest_request_impression AS
SELECT request_id, query, item_ids, event_time, rowtime
FROM (
  SELECT request_id, COALESCE(query, '') AS query, item_ids, event_time, rowtime,
    ROW_NUMBER() OVER (PARTITION BY request_id ORDER BY rowtime DESC) AS rn
  FROM events WHERE type = 'impression')
WHERE rn = 1;

CREATE TEMPORARY VIEW clicks_with_request AS
SELECT ts, event_time, rowtime, request_id, item_id FROM events
WHERE type = 'click' AND request_id IS NOT NULL AND item_id IS NOT NULL;

CREATE TEMPORARY VIEW attributed_by_request AS
SELECT c.ts, c.rowtime, c.request_id, c.item_id, v.query
FROM clicks_with_request AS c
JOIN latest_request_impression FOR SYSTEM_TIME AS OF c.rowtime AS v
  ON c.request_id = v.request_id
WHERE ARRAY_CONTAINS(v.item_ids, c.item_id) AND c.event_time - v.event_time <= {click_window_ms};
