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
    'u_cart_1h' VALUE u_cart_1h, 'u_purchase_24h' VALUE u_purchase_24h,
    'i_impr_1h' VALUE i_impr_1h, 'i_click_1h' VALUE i_click_1h, 'i_ctr_1h' VALUE i_ctr_1h,
    'click' VALUE click, 'purchase' VALUE purchase
    NULL ON NULL) AS example
FROM training_examples;

-- The trainer's input: committed examples read back, one record per micro-batch and model from
-- a processing-time tumbling window. Their offsets and the open window are in the checkpoint.
CREATE TABLE training_examples_source (
  model STRING,
  example STRING,
  `partition` INT METADATA VIRTUAL,
  `offset` BIGINT METADATA VIRTUAL,
  pt AS PROCTIME()
) WITH (
  'connector' = 'kafka',
  'topic' = '{topic_training_examples}',
  'properties.bootstrap.servers' = '{bootstrap}',
  'properties.group.id' = '{group_id}-trainer',
  'properties.isolation.level' = 'read_committed',
  'scan.startup.mode' = 'group-offsets',
  'properties.auto.offset.reset' = 'earliest',
  'key.format' = 'raw',
  'key.fields' = 'model',
  'value.format' = 'raw',
  'value.fields-include' = 'EXCEPT_KEY'
);

CREATE TEMPORARY VIEW micro_batches AS
SELECT model, window_end, COUNT(*) AS n, '[' || LISTAGG(example, ',') || ']' AS batch,
  MIN(`offset`) AS first_offset, MAX(`offset`) AS last_offset
FROM TABLE(TUMBLE(TABLE training_examples_source, DESCRIPTOR(pt), INTERVAL '{batch_interval}' DAY TO SECOND(3)))
GROUP BY model, window_start, window_end;
