-- Training examples as JSON objects (the contract in docs/contracts.md), written by json_record
-- (udfs/jvm/): Flink's JSON_OBJECT builds a Jackson tree per row and was a third of the label
-- joins' thread. They are written after the joins: the joins keep the impression rows in state
-- (the purchase join for 24 h), and a binary row is smaller than its JSON text with the names.
CREATE TEMPORARY VIEW example_json AS
SELECT '{model_name}' AS model,
  json_record(
    'example_id', event_id || ':' || CAST(`position` AS STRING) || CASE WHEN kind = 'impression' THEN '' ELSE ':' || kind END,
    'model', '{model_name}', 'kind', kind, 'ts', ts,
    'user_id', user_id, 'item_id', item_id, 'query', query,
    'category', category, 'brand', brand, 'device', device, 'platform', platform,
    'position', `position`, 'price', price,
    'hour', EXTRACT(HOUR FROM rowtime),
    'u_click_5m', u_click_5m, 'u_click_1h', u_click_1h, 'u_click_24h', u_click_24h,
    'u_cart_5m', u_cart_5m, 'u_cart_1h', u_cart_1h, 'u_cart_24h', u_cart_24h,
    'u_purchase_5m', u_purchase_5m, 'u_purchase_1h', u_purchase_1h, 'u_purchase_24h', u_purchase_24h,
    'u_last_category', u_last_category,
    'i_impr_1h', i_impr_1h, 'i_click_1h', i_click_1h, 'i_ctr_1h', i_ctr_1h,
    'qi_ctr_24h', qi_ctr_24h,
    'click', click, 'purchase', purchase) AS example
FROM training_examples;
