-- One row per impressed item, carrying the user's features as of the impression. The validator
-- ships an impression's items as parallel arrays (item k is element k of each; arrays are 1-based).
CREATE TEMPORARY VIEW impression_items AS
SELECT u.event_id, u.rowtime, u.ts, u.user_id, u.request_id,
  COALESCE(u.query, '') AS query, COALESCE(u.device, '') AS device, COALESCE(u.platform, '') AS platform,
  it.item_id, u.item_positions[it.k] AS `position`, u.item_prices[it.k] AS price,
  COALESCE(u.item_categories[it.k], '') AS category, COALESCE(u.item_brands[it.k], '') AS brand,
  u.u_click_5m, u.u_click_1h, u.u_click_24h, u.u_cart_5m, u.u_cart_1h, u.u_cart_24h,
  u.u_purchase_5m, u.u_purchase_1h, u.u_purchase_24h, u.u_last_category,
  0 AS item_kind  -- the item window's kinds: 0 impression, 1 click
FROM user_features u
CROSS JOIN UNNEST(u.item_ids) WITH ORDINALITY AS it(item_id, k)
WHERE u.type = 'impression';

-- Impressions and clicks of each item in one stream, for the item window (05_item_features.sql),
-- which counts them per item and per (query, item). Every click counts for its item; for its
-- (query, item) pair only when it is attributed to an impression (04_attribution.sql): it then
-- carries that impression's query, at the click's own time. An unattributed click's null query
-- keeps it out of every real pair.
CREATE TEMPORARY VIEW item_events AS
SELECT * FROM impression_items
UNION ALL
SELECT event_id, rowtime, ts, user_id, request_id, query, '', '', item_id, 0, price, '', '',
  CAST(0 AS DOUBLE), CAST(0 AS DOUBLE), CAST(0 AS DOUBLE), CAST(0 AS DOUBLE), CAST(0 AS DOUBLE),
  CAST(0 AS DOUBLE), CAST(0 AS DOUBLE), CAST(0 AS DOUBLE), CAST(0 AS DOUBLE), '',
  1
FROM attributed_labels WHERE type = 'click';
