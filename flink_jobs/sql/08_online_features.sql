-- Online features for serving, from the same views as the training features. A row here is the
-- state *after* its event's millisecond (the events at t added back), which is what a request
-- arriving after that event should see. Written by json_record, as the examples are.
INSERT INTO user_features_sink
SELECT user_id, json_record('user_id', user_id, 'ts', ts,
  'u_click_5m', u_click_5m + u_click_at_t, 'u_click_1h', u_click_1h + u_click_at_t,
  'u_click_24h', u_click_24h + u_click_at_t,
  'u_cart_5m', u_cart_5m + u_cart_at_t, 'u_cart_1h', u_cart_1h + u_cart_at_t, 'u_cart_24h', u_cart_24h + u_cart_at_t,
  'u_purchase_5m', u_purchase_5m + u_purchase_at_t, 'u_purchase_1h', u_purchase_1h + u_purchase_at_t,
  'u_purchase_24h', u_purchase_24h + u_purchase_at_t,
  'u_last_category', u_last_category, 'u_last_category_ts', u_last_category_ts)
FROM user_features;

INSERT INTO item_features_sink
SELECT item_id, json_record('item_id', item_id, 'ts', ts,
  'i_impr_1h', i_impr_1h + i_impr_at_t, 'i_click_1h', i_click_1h + i_click_at_t,
  'i_ctr_1h', (i_click_1h + i_click_at_t + {ctr_prior_clicks}) / (i_impr_1h + i_impr_at_t + {ctr_prior_impressions}))
FROM item_features;

-- One record per impression of a (query, item) pair and per click attributed to one.
INSERT INTO query_item_features_sink
SELECT query || CHR(9) || item_id, json_record('query', query, 'item_id', item_id, 'ts', ts,
  'qi_impr_24h', qi_impr_24h + qi_impr_at_t, 'qi_click_24h', qi_click_24h + qi_click_at_t,
  'qi_ctr_24h', (qi_click_24h + qi_click_at_t + {ctr_prior_clicks}) / (qi_impr_24h + qi_impr_at_t + {ctr_prior_impressions}))
FROM item_features WHERE query IS NOT NULL;
