-- Point-in-time user features, from the user window (user_windows: user_events through
-- udfs/jvm/.../UserWindow.java, keyed by user, wired in online_training._add_user_window). Each
-- event goes out once the watermark passes it, so a later event can never leak into an earlier
-- one, with, as of its millisecond:
--   * the counts: clicks, add-to-carts and purchases in [t - window, t) for 5 min, 1 h and 24 h,
--     strictly before the row's own millisecond, and apart those at t (the online record adds
--     them); the window holds (time, kind) of the user's interactions of the last 24 h and nothing
--     else (sliding_counts' window, udfs/jvm/);
--   * the recent category: that of the latest click, add-to-cart or purchase with a category, up
--     to and including the event's millisecond, '' when older than 24 h; its own time says when
--     it leaves the 24 h (serving applies the same rule to the online record, docs/contracts.md);
--   * for a click or purchase, the impression it belongs to (04_attribution.sql).
-- Times are rowtimes: an event that arrived behind the watermark counts where the job placed it.
CREATE TEMPORARY VIEW user_features AS
SELECT event_id, type, ts, event_time, rowtime, user_id, request_id, query, device, platform,
  item_ids, item_positions, item_prices, item_categories, item_brands, item_id, price,
  attributed_request_id, attributed_query,
  u_click_5m, u_cart_5m, u_purchase_5m, u_click_1h, u_cart_1h, u_purchase_1h,
  u_click_24h, u_cart_24h, u_purchase_24h, u_click_at_t, u_cart_at_t, u_purchase_at_t,
  CASE WHEN event_time - last_category_time <= {w24h_ms} THEN last_category ELSE '' END AS u_last_category,
  CASE WHEN event_time - last_category_time <= {w24h_ms} THEN last_category_time END AS u_last_category_ts
FROM user_windows;
