-- The trainer's input: committed examples read back, one record per model and processing-time
-- interval (a tumbling window). Their offsets and the open window are in the checkpoint.
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

-- This job's model only. Each element is [partition, offset, example]: the trainer cuts the stream into chunks by
-- offset, not by window, so a replay after a crash trains exactly the same chunks.
CREATE TEMPORARY VIEW micro_batches AS
SELECT model, window_end, COUNT(*) AS n,
  '[' || LISTAGG('[' || CAST(`partition` AS STRING) || ',' || CAST(`offset` AS STRING) || ',' || example || ']', ',') || ']' AS batch,
  MIN(`offset`) AS first_offset, MAX(`offset`) AS last_offset
FROM TABLE(TUMBLE(TABLE training_examples_source, DESCRIPTOR(pt), INTERVAL '{batch_interval}' DAY TO SECOND(3)))
WHERE model = '{model_name}'
GROUP BY model, window_start, window_end;
