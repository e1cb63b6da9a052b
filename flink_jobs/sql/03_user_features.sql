-- Point-in-time features with event-time OVER windows. An OVER window ordered by rowtime sees
-- exactly the rows at or before the current row's time, after the watermark has sorted them, so
-- a later event can never leak into an earlier row. Flink allows one window frame per SELECT, so
-- each frame is one step of a cascade; every step keeps the rowtime attribute.
-- A row's own contribution is subtracted, so an impression's features count events strictly
-- before it (the impression itself is neither a click, a cart nor a purchase).

CREATE TEMPORARY VIEW user_events AS
SELECT e.*,
  CAST(CASE WHEN e.type = 'click' THEN 1 ELSE 0 END AS DOUBLE) AS is_click,
  CAST(CASE WHEN e.type = 'add_to_cart' THEN 1 ELSE 0 END AS DOUBLE) AS is_cart,
  CAST(CASE WHEN e.type = 'purchase' THEN 1 ELSE 0 END AS DOUBLE) AS is_purchase,
  CASE WHEN e.type IN ('click', 'add_to_cart', 'purchase') THEN e.category END AS interaction_category,
  CASE WHEN e.type IN ('click', 'add_to_cart', 'purchase') AND e.category IS NOT NULL
    THEN e.event_time END AS interaction_time
FROM events e;

CREATE TEMPORARY VIEW user_w5m AS
SELECT *,
  SUM(is_click) OVER w - is_click AS u_click_5m,
  SUM(is_cart) OVER w - is_cart AS u_cart_5m,
  SUM(is_purchase) OVER w - is_purchase AS u_purchase_5m
FROM user_events
WINDOW w AS (PARTITION BY user_id ORDER BY rowtime
  RANGE BETWEEN INTERVAL '{w5m}' DAY TO SECOND(3) PRECEDING AND CURRENT ROW);

CREATE TEMPORARY VIEW user_w1h AS
SELECT *,
  SUM(is_click) OVER w - is_click AS u_click_1h,
  SUM(is_cart) OVER w - is_cart AS u_cart_1h,
  SUM(is_purchase) OVER w - is_purchase AS u_purchase_1h
FROM user_w5m
WINDOW w AS (PARTITION BY user_id ORDER BY rowtime
  RANGE BETWEEN INTERVAL '{w1h}' DAY TO SECOND(3) PRECEDING AND CURRENT ROW);

CREATE TEMPORARY VIEW user_w24h AS
SELECT *,
  SUM(is_click) OVER w - is_click AS u_click_24h,
  SUM(is_cart) OVER w - is_cart AS u_cart_24h,
  SUM(is_purchase) OVER w - is_purchase AS u_purchase_24h
FROM user_w1h
WINDOW w AS (PARTITION BY user_id ORDER BY rowtime
  RANGE BETWEEN INTERVAL '{w24h}' DAY TO SECOND(3) PRECEDING AND CURRENT ROW);

-- The user's recent category: that of the latest click, add-to-cart or purchase (with a category)
-- in the 24 h up to the event, '' if none. LAST_VALUE skips nulls, so an unbounded window keeps
-- one accumulator per user and no rows; the category's own time says when it leaves the 24 h
-- (serving applies the same rule to the online record, docs/contracts.md).
CREATE TEMPORARY VIEW user_features_computed AS
SELECT *,
  CASE WHEN event_time - last_category_time <= {w24h_ms} THEN last_category ELSE '' END AS u_last_category,
  CASE WHEN event_time - last_category_time <= {w24h_ms} THEN last_category_time END AS u_last_category_ts
FROM (
  SELECT *,
    LAST_VALUE(interaction_category) OVER w AS last_category,
    LAST_VALUE(interaction_time) OVER w AS last_category_time
  FROM user_w24h
  WINDOW w AS (PARTITION BY user_id ORDER BY rowtime
    RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW));
