-- One row per impressed item, carrying the user's features as of the impression. The validator
-- ships an impression's items as parallel arrays (item k is element k of each; arrays are 1-based).
CREATE TEMPORARY VIEW impression_items AS
SELECT u.event_id, u.rowtime, u.ts, u.user_id, u.request_id,
  COALESCE(u.query, '') AS query, COALESCE(u.device, '') AS device, COALESCE(u.platform, '') AS platform,
  it.item_id, u.item_positions[it.k] AS `position`, u.item_prices[it.k] AS price,
  COALESCE(u.item_categories[it.k], '') AS category, COALESCE(u.item_brands[it.k], '') AS brand,
  u.u_click_5m, u.u_click_1h, u.u_click_24h, u.u_cart_5m, u.u_cart_1h, u.u_cart_24h,
  u.u_purchase_5m, u.u_purchase_1h, u.u_purchase_24h, u.u_last_category,
  CAST(1 AS DOUBLE) AS is_impr, CAST(0 AS DOUBLE) AS is_item_click
FROM user_features u
CROSS JOIN UNNEST(u.item_ids) WITH ORDINALITY AS it(item_id, k)
WHERE u.type = 'impression';

-- Impressions and clicks of each item in one time-ordered stream, for the item's counters and the
-- (query, item) counters. Every click counts for its item; for its (query, item) pair only when it
-- is attributed to an impression (04_attribution.sql): it then carries that impression's query, at
-- the click's own time. An unattributed click's null query keeps it out of every real pair.
CREATE TEMPORARY VIEW item_events AS
SELECT * FROM impression_items
UNION ALL
SELECT event_id, rowtime, ts, user_id, request_id, query, '', '', item_id, 0, price, '', '',
  CAST(0 AS DOUBLE), CAST(0 AS DOUBLE), CAST(0 AS DOUBLE), CAST(0 AS DOUBLE), CAST(0 AS DOUBLE),
  CAST(0 AS DOUBLE), CAST(0 AS DOUBLE), CAST(0 AS DOUBLE), CAST(0 AS DOUBLE), '',
  CAST(0 AS DOUBLE), CAST(1 AS DOUBLE)
FROM attributed_labels WHERE type = 'click';

-- Each row subtracts its own contribution, so an impression's counts are strictly before it.
-- The (query, item) window comes first in the cascade: one stream, no join back to the example row.
CREATE TEMPORARY VIEW query_item_window AS
SELECT *,
  SUM(is_impr) OVER w - is_impr AS qi_impr_24h,
  SUM(is_item_click) OVER w - is_item_click AS qi_click_24h
FROM item_events
WINDOW w AS (PARTITION BY query, item_id ORDER BY rowtime
  RANGE BETWEEN INTERVAL '{w24h}' DAY TO SECOND(3) PRECEDING AND CURRENT ROW);

-- Smoothed CTR: (clicks + a) / (impressions + a + b), a Beta(a, b) prior with mean a/(a+b).
CREATE TEMPORARY VIEW item_features_computed AS
SELECT *,
  (qi_click_24h + {ctr_prior_clicks}) / (qi_impr_24h + {ctr_prior_impressions}) AS qi_ctr_24h,
  SUM(is_impr) OVER w - is_impr AS i_impr_1h,
  SUM(is_item_click) OVER w - is_item_click AS i_click_1h,
  (SUM(is_item_click) OVER w - is_item_click + {ctr_prior_clicks})
    / (SUM(is_impr) OVER w - is_impr + {ctr_prior_impressions}) AS i_ctr_1h
FROM query_item_window
WINDOW w AS (PARTITION BY item_id ORDER BY rowtime
  RANGE BETWEEN INTERVAL '{w1h}' DAY TO SECOND(3) PRECEDING AND CURRENT ROW);
