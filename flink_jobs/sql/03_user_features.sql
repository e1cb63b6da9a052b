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
  CAST(CASE WHEN e.type = 'purchase' THEN 1 ELSE 0 END AS DOUBLE) AS is_purchase
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

CREATE TEMPORARY VIEW user_features_computed AS
SELECT *,
  SUM(is_click) OVER w - is_click AS u_click_24h,
  SUM(is_cart) OVER w - is_cart AS u_cart_24h,
  SUM(is_purchase) OVER w - is_purchase AS u_purchase_24h
FROM user_w1h
WINDOW w AS (PARTITION BY user_id ORDER BY rowtime
  RANGE BETWEEN INTERVAL '{w24h}' DAY TO SECOND(3) PRECEDING AND CURRENT ROW);
