-- Training examples as JSON objects (the contract in docs/contracts.md).
CREATE TEMPORARY VIEW example_json AS
SELECT '{model_name}' AS model,
  JSON_OBJECT(
    'example_id' VALUE event_id || ':' || CAST(`position` AS STRING) || CASE WHEN kind = 'impression' THEN '' ELSE ':' || kind END,
    'model' VALUE '{model_name}', 'kind' VALUE kind, 'ts' VALUE ts,
    'user_id' VALUE user_id, 'item_id' VALUE item_id, 'query' VALUE query,
    'category' VALUE category, 'brand' VALUE brand, 'device' VALUE device, 'platform' VALUE platform,
    'position' VALUE `position`, 'price' VALUE price,
    'hour' VALUE EXTRACT(HOUR FROM rowtime),
    'u_click_5m' VALUE u_click_5m, 'u_click_1h' VALUE u_click_1h, 'u_click_24h' VALUE u_click_24h,
    'u_cart_5m' VALUE u_cart_5m, 'u_cart_1h' VALUE u_cart_1h, 'u_cart_24h' VALUE u_cart_24h,
    'u_purchase_5m' VALUE u_purchase_5m, 'u_purchase_1h' VALUE u_purchase_1h, 'u_purchase_24h' VALUE u_purchase_24h,
    'u_last_category' VALUE u_last_category,
    'i_impr_1h' VALUE i_impr_1h, 'i_click_1h' VALUE i_click_1h, 'i_ctr_1h' VALUE i_ctr_1h,
    'qi_ctr_24h' VALUE qi_ctr_24h,
    'click' VALUE click, 'purchase' VALUE purchase
    NULL ON NULL) AS example
FROM training_examples;
