-- One row per impressed item, carrying the user's features as of the impression. The validator
-- ships an impression's items as parallel arrays (item k is element k of each; arrays are 1-based).
CREATE TEMPORARY VIEW impression_items AS
SELECT u.event_id, u.rowtime, u.ts, u.user_id, u.request_id,
  COALESCE(u.query, '') AS query, COALESCE(u.device, '') AS device, COALESCE(u.platform, '') AS platform,
  it.item_id, u.item_positions[it.k] AS `position`, u.item_prices[it.k] AS price,
  COALESCE(u.item_categories[it.k], '') AS category, COALESCE(u.item_brands[it.k], '') AS brand,
  u.u_click_5m, u.u_click_1h, u.u_click_24h, u.u_cart_5m, u.u_cart_1h, u.u_cart_24h,
  u.u_purchase_5m, u.u_purchase_1h, u.u_purchase_24h, u.u_last_category,
  0 AS item_kind  -- sliding_counts' kinds: 0 impression, 1 click
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
  1
FROM attributed_labels WHERE type = 'click';

-- sliding_counts (udfs/jvm/, see 03_user_features.sql) counts impressions (kind 0) and clicks
-- (kind 1) strictly before the row's millisecond: c[1], c[2] in the window, c[3], c[4] at t.
-- One window per item gives both the item's counts over 1 h and, with sliding_counts_by, those of
-- each (query, item) pair over 24 h: the pairs are entries of a state-backed map inside the item's
-- window (one per query), not keys of a window of their own, where nearly every impressed pair was
-- a new key with its own buffer, timer and cleanup time, and every row a shuffle of its own.
-- A row with a null query (a click attributed to no impression) counts for its item only.
-- Smoothed CTR: (clicks + a) / (impressions + a + b), a Beta(a, b) prior with mean a/(a+b).
CREATE TEMPORARY VIEW item_features_computed AS
SELECT event_id, rowtime, ts, user_id, request_id, query, device, platform, item_id, `position`, price,
  category, brand, u_click_5m, u_click_1h, u_click_24h, u_cart_5m, u_cart_1h, u_cart_24h,
  u_purchase_5m, u_purchase_1h, u_purchase_24h, u_last_category, item_kind,
  qi_impr_24h, qi_click_24h, qi_impr_at_t, qi_click_at_t,
  (qi_click_24h + {ctr_prior_clicks}) / (qi_impr_24h + {ctr_prior_impressions}) AS qi_ctr_24h,
  i_impr_1h, i_click_1h, i_impr_at_t, i_click_at_t,
  (i_click_1h + {ctr_prior_clicks}) / (i_impr_1h + {ctr_prior_impressions}) AS i_ctr_1h
FROM (
  SELECT *, qi[1] AS qi_impr_24h, qi[2] AS qi_click_24h, qi[3] AS qi_impr_at_t, qi[4] AS qi_click_at_t,
    i[1] AS i_impr_1h, i[2] AS i_click_1h, i[3] AS i_impr_at_t, i[4] AS i_click_at_t
  FROM (
    SELECT *, by_query[query] AS qi
    FROM (
      SELECT *, sliding_counts(item_kind, rowtime, 2, {w1h_ms}) OVER w AS i,
        sliding_counts_by(query, item_kind, rowtime, 2, {w24h_ms}) OVER w AS by_query
      FROM item_events
      WINDOW w AS (PARTITION BY item_id ORDER BY rowtime
        RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW))));
