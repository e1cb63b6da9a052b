-- Online features for serving, from the same views as the training features. A row here is the
-- state *after* its event (the event's own contribution added back), which is what a request
-- arriving after that event should see.
INSERT INTO user_features_sink
SELECT user_id, ts,
  u_click_5m + is_click, u_click_1h + is_click, u_click_24h + is_click,
  u_cart_5m + is_cart, u_cart_1h + is_cart, u_cart_24h + is_cart,
  u_purchase_5m + is_purchase, u_purchase_1h + is_purchase, u_purchase_24h + is_purchase,
  u_last_category, u_last_category_ts
FROM user_features;

INSERT INTO item_features_sink
SELECT item_id, ts, i_impr_1h + is_impr, i_click_1h + is_item_click,
  (i_click_1h + is_item_click + {ctr_prior_clicks}) / (i_impr_1h + is_impr + {ctr_prior_impressions})
FROM item_features;

-- One record per impression of a (query, item) pair and per click attributed to one.
INSERT INTO query_item_features_sink
SELECT query || CHR(9) || item_id, query, item_id, ts, qi_impr_24h + is_impr, qi_click_24h + is_item_click,
  (qi_click_24h + is_item_click + {ctr_prior_clicks}) / (qi_impr_24h + is_impr + {ctr_prior_impressions})
FROM item_features WHERE query IS NOT NULL;
