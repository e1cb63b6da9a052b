-- Label attribution: which impression each click and purchase belongs to.
--
-- A label (click or purchase) belongs to one impression of its item:
--   * with a request_id: the impression of that request (the label join, 06_labels.sql, checks
--     the attribution window);
--   * without one (the event contract allows it for click, add_to_cart and purchase): the same
--     user's latest impression of that item at or before the label, if that impression is at
--     most the attribution window (click or purchase window) older than the label.
-- The user window (03_user_features.sql) answers both: it keeps the user's impressed items of the
-- longest window and gives each label the impression it belongs to (`attributed_request_id`,
-- `attributed_query`; null when none is in the window).

-- Every click and purchase with an item, once: `request_id` is its own, or else the one it is
-- attributed to (null: no impression in the window); `query` is that of the impression it is
-- attributed to within the window (null: none), which the item window counts it for.
CREATE TEMPORARY VIEW attributed_labels_resolved AS
SELECT type, event_id, user_id, ts, price, item_id, rowtime,
  COALESCE(request_id, attributed_request_id) AS request_id,
  attributed_query AS query
FROM user_features
WHERE type IN ('click', 'purchase') AND item_id IS NOT NULL;

-- `nth` numbers the clicks (and the purchases) of one (request, item) in event-time order, so the
-- label join takes the first only: a double click, or one click with and one without request_id,
-- labels its impression once. Every click still counts for the item and (query, item) counters.
-- An unbounded ROWS window: append-only, one counter per key (the state TTL drops it).
CREATE TEMPORARY VIEW attributed_labels_computed AS
SELECT *,
  COUNT(*) OVER (PARTITION BY type, request_id, item_id ORDER BY rowtime
    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS nth
FROM attributed_labels_resolved;
