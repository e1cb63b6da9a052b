-- The (query, item) window: smoothed CTR of the pair over 24 h, point in time. Clicks carry no
-- query: a click counts for the query of the impression it is attributed to (05_attribution.sql),
-- at the click's own time, and only if it is attributed (the same rule that gives it a label).

-- Narrow rows: the window holds 24 h of them.
CREATE TEMPORARY VIEW query_item_events AS
SELECT event_id, `position`, ts, rowtime, query, item_id,
  CAST(1 AS DOUBLE) AS is_impr, CAST(0 AS DOUBLE) AS is_click
FROM impressed_items
UNION ALL
SELECT CAST(NULL AS STRING), CAST(NULL AS INT), ts, rowtime, query, item_id, CAST(0 AS DOUBLE), CAST(1 AS DOUBLE)
FROM attributed_by_request
UNION ALL
SELECT CAST(NULL AS STRING), CAST(NULL AS INT), ts, rowtime, query, item_id, CAST(0 AS DOUBLE), CAST(1 AS DOUBLE)
FROM attributed_by_user WHERE type = 'click';

-- As for the item: each row subtracts its own contribution (strictly before the impression).
CREATE TEMPORARY VIEW query_item_features_computed AS
SELECT *,
  SUM(is_impr) OVER w - is_impr AS qi_impr_24h,
  SUM(is_click) OVER w - is_click AS qi_click_24h,
  (SUM(is_click) OVER w - is_click + {ctr_prior_clicks})
    / (SUM(is_impr) OVER w - is_impr + {ctr_prior_impressions}) AS qi_ctr_24h
FROM query_item_events
WINDOW w AS (PARTITION BY query, item_id ORDER BY rowtime
  RANGE BETWEEN INTERVAL '{w24h}' DAY TO SECOND(3) PRECEDING AND CURRENT ROW);
