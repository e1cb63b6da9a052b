-- Point-in-time features with event-time OVER windows. An OVER window ordered by rowtime sees
-- exactly the rows at or before the current row's time, after the watermark has sorted them, so
-- a later event can never leak into an earlier row.
-- The counts come from sliding_counts (udfs/jvm/, a JVM aggregate function) over one unbounded
-- window per user: per kind and window, the events in [t - window, t), strictly before the row's
-- own millisecond, and the events at t itself (the online record adds them). Its accumulator
-- holds (time, kind) of the user's clicks, add-to-carts and purchases of the last 24 h and
-- nothing else; a bounded RANGE window per length kept every event row and walked them all on
-- each new timestamp (docs/design.md).

CREATE TEMPORARY VIEW user_events AS
SELECT e.*,
  CASE e.type WHEN 'click' THEN 0 WHEN 'add_to_cart' THEN 1 WHEN 'purchase' THEN 2 END AS interaction_kind,
  CASE WHEN e.type IN ('click', 'add_to_cart', 'purchase') THEN e.category END AS interaction_category,
  CASE WHEN e.type IN ('click', 'add_to_cart', 'purchase') AND e.category IS NOT NULL
    THEN e.event_time END AS interaction_time
FROM events e;

-- One unbounded window per user gives every event, as of its millisecond:
--   * the counts (sliding_counts): window i (0: 5 min, 1: 1 h, 2: 24 h) and kind k (0: click,
--     1: add-to-cart, 2: purchase) at c[3i + k + 1], the kinds at t at c[10..12];
--   * the recent category: that of the latest click, add-to-cart or purchase (with a category) in
--     the 24 h up to the event, '' if none. LAST_VALUE skips nulls (one accumulator, no rows);
--     the category's own time says when it leaves the 24 h (serving applies the same rule to
--     the online record, docs/contracts.md);
--   * for a click or purchase, the impression it belongs to (attribute_labels, 04_attribution.sql).
-- Times are rowtimes: an event that arrived behind the watermark counts where the job placed it.
-- Only the columns read downstream go on: this view crosses a DataStream hop
-- (online_training._materialize), which the planner cannot prune.
CREATE TEMPORARY VIEW user_features_computed AS
SELECT event_id, type, ts, event_time, rowtime, user_id, request_id, query, device, platform,
  item_ids, item_positions, item_prices, item_categories, item_brands, item_id, price,
  CASE WHEN type IN ('click', 'purchase') AND item_id IS NOT NULL
    THEN attribution[type || CHR(9) || COALESCE(request_id, '') || CHR(9) || item_id] END AS attributed_to,
  c[1] AS u_click_5m, c[2] AS u_cart_5m, c[3] AS u_purchase_5m,
  c[4] AS u_click_1h, c[5] AS u_cart_1h, c[6] AS u_purchase_1h,
  c[7] AS u_click_24h, c[8] AS u_cart_24h, c[9] AS u_purchase_24h,
  c[10] AS u_click_at_t, c[11] AS u_cart_at_t, c[12] AS u_purchase_at_t,
  CASE WHEN event_time - last_category_time <= {w24h_ms} THEN last_category ELSE '' END AS u_last_category,
  CASE WHEN event_time - last_category_time <= {w24h_ms} THEN last_category_time END AS u_last_category_ts
FROM (
  SELECT *,
    sliding_counts(interaction_kind, rowtime, 3, {w5m_ms}, {w1h_ms}, {w24h_ms}) OVER w AS c,
    attribute_labels(type, item_ids, item_id, request_id, COALESCE(query, ''), rowtime,
      {click_window_ms}, {purchase_window_ms}) OVER w AS attribution,
    LAST_VALUE(interaction_category) OVER w AS last_category,
    LAST_VALUE(interaction_time) OVER w AS last_category_time
  FROM user_events
  WINDOW w AS (PARTITION BY user_id ORDER BY rowtime
    RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW));
