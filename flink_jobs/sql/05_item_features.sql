-- The item features, from the item window's counts (item_windows: item_events through
-- udfs/jvm/.../ItemWindow.java, a keyed operator of ours, keyed by item). For each row,
-- impressions (kind 0) and clicks (kind 1) strictly before its millisecond, and those at it: of
-- the item over 1 h, and of the row's (query, item) pair over 24 h (null for a click attributed to
-- no impression, which counts for its item only). The pairs are entries of a map in the item's
-- state, not keys of their own: nearly every impressed pair is new, and a key of its own would
-- cost a buffer, a timer and a cleanup of its own, and a shuffle per row.
-- Smoothed CTR: (clicks + a) / (impressions + a + b), a Beta(a, b) prior with mean a/(a+b).
CREATE TEMPORARY VIEW item_features AS
SELECT event_id, rowtime, ts, user_id, request_id, query, device, platform, item_id, `position`, price,
  category, brand, u_click_5m, u_click_1h, u_click_24h, u_cart_5m, u_cart_1h, u_cart_24h,
  u_purchase_5m, u_purchase_1h, u_purchase_24h, u_last_category, item_kind,
  qi_impr AS qi_impr_24h, qi_click AS qi_click_24h, qi_impr_at_t, qi_click_at_t,
  (qi_click + {ctr_prior_clicks}) / (qi_impr + {ctr_prior_impressions}) AS qi_ctr_24h,
  i_impr AS i_impr_1h, i_click AS i_click_1h, i_impr_at_t, i_click_at_t,
  (i_click + {ctr_prior_clicks}) / (i_impr + {ctr_prior_impressions}) AS i_ctr_1h
FROM item_windows;
