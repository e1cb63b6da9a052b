-- Every sink is transactional: records become visible to read_committed consumers when the
-- checkpoint that covers them completes, so a crash neither loses nor repeats an output. The
-- sinks written once per event or impressed item batch their records ({{batched_producer}}:
-- flink_jobs/sql_files.py BATCHED_PRODUCER).
CREATE TABLE dlq_sink (
  `value` STRING
) WITH (
  'connector' = 'kafka',
  'topic' = '{topic_dlq}',
  'properties.bootstrap.servers' = '{bootstrap}',
  'properties.transaction.timeout.ms' = '{transaction_timeout_ms}',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = '{txn_prefix}-dlq',
  'format' = 'raw'
);

-- Clean events (udfs/clean_record.py), keyed so that each lands on its raw partition's number
-- (flink_jobs/clean_topic.py); the record timestamp is the event time. At-least-once, not
-- transactional: the feature stage sees an event as soon as it is validated instead of at the
-- next checkpoint, and what a restart writes twice has the same event_id, so the deduplication
-- after this topic removes (and counts) it.
CREATE TABLE clean_events_sink (
  k STRING,
  event_time TIMESTAMP_LTZ(3) METADATA FROM 'timestamp',
  `value` STRING
) WITH (
  'connector' = 'kafka',
  'topic' = '{topic_events_clean}',
  'properties.bootstrap.servers' = '{bootstrap}',
  'sink.delivery-guarantee' = 'at-least-once',
  {batched_producer}
  'key.format' = 'raw',
  'key.fields' = 'k',
  'value.format' = 'raw',
  'value.fields-include' = 'EXCEPT_KEY'
);

-- Removed duplicates are only counted (metric events_duplicate); nothing is kept.
CREATE TABLE duplicates_sink (
  event_id STRING
) WITH ('connector' = 'blackhole');

-- The online feature records (08_online_features.sql) come written as JSON by json_record (udfs/jvm/),
-- like the examples; the sinks add the key.
CREATE TABLE user_features_sink (
  user_id STRING,
  `value` STRING
) WITH (
  'connector' = 'kafka',
  'topic' = '{topic_features_user}',
  'properties.bootstrap.servers' = '{bootstrap}',
  'properties.transaction.timeout.ms' = '{transaction_timeout_ms}',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = '{txn_prefix}-fu',
  {batched_producer}
  'key.format' = 'raw',
  'key.fields' = 'user_id',
  'value.format' = 'raw',
  'value.fields-include' = 'EXCEPT_KEY'
);

CREATE TABLE item_features_sink (
  item_id STRING,
  `value` STRING
) WITH (
  'connector' = 'kafka',
  'topic' = '{topic_features_item}',
  'properties.bootstrap.servers' = '{bootstrap}',
  'properties.transaction.timeout.ms' = '{transaction_timeout_ms}',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = '{txn_prefix}-fi',
  {batched_producer}
  'key.format' = 'raw',
  'key.fields' = 'item_id',
  'value.format' = 'raw',
  'value.fields-include' = 'EXCEPT_KEY'
);

-- Key: the cleaned query, a tab, the item id (a cleaned query holds no tab: whitespace is
-- collapsed to single spaces), so serving can split it even for a tombstone.
CREATE TABLE query_item_features_sink (
  qi_key STRING,
  `value` STRING
) WITH (
  'connector' = 'kafka',
  'topic' = '{topic_features_query_item}',
  'properties.bootstrap.servers' = '{bootstrap}',
  'properties.transaction.timeout.ms' = '{transaction_timeout_ms}',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = '{txn_prefix}-fqi',
  {batched_producer}
  'key.format' = 'raw',
  'key.fields' = 'qi_key',
  'value.format' = 'raw',
  'value.fields-include' = 'EXCEPT_KEY'
);

-- One record per accepted model version (a pointer to the ONNX file in the model store).
CREATE TABLE model_versions_sink (
  `value` STRING
) WITH (
  'connector' = 'kafka',
  'topic' = '{topic_model_versions}',
  'properties.bootstrap.servers' = '{bootstrap}',
  'properties.transaction.timeout.ms' = '{transaction_timeout_ms}',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = '{txn_prefix}-versions',
  'format' = 'raw'
);

-- Embedding rows changed since the previous version; compacted, key = model/table/row key.
CREATE TABLE model_deltas_sink (
  k STRING,
  `value` STRING
) WITH (
  'connector' = 'kafka',
  'topic' = '{topic_model_deltas}',
  'properties.bootstrap.servers' = '{bootstrap}',
  'properties.transaction.timeout.ms' = '{transaction_timeout_ms}',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = '{txn_prefix}-deltas',
  'key.format' = 'raw',
  'key.fields' = 'k',
  'value.format' = 'raw',
  'value.fields-include' = 'EXCEPT_KEY'
);

-- Labelled training examples (docs/contracts.md), one JSON object per record, key = model. The
-- trainer reads them back (09_training_input.sql): the join and the trainer stay decoupled, examples can
-- be replayed, and "trained exactly once" is checkable by Kafka offset.
CREATE TABLE training_examples_sink (
  model STRING,
  example STRING
) WITH (
  'connector' = 'kafka',
  'topic' = '{topic_training_examples}',
  'properties.bootstrap.servers' = '{bootstrap}',
  'properties.transaction.timeout.ms' = '{transaction_timeout_ms}',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = '{txn_prefix}-examples',
  {batched_producer}
  'key.format' = 'raw',
  'key.fields' = 'model',
  'value.format' = 'raw',
  'value.fields-include' = 'EXCEPT_KEY'
);

-- The training ledger: one record per trained chunk (its offsets, hold-out share, loss), key =
-- model. Committed with the checkpoint that holds the model it produced, so the ledger is the
-- proof of exactly-once training: every offset of the examples topic appears in one chunk.
CREATE TABLE training_ledger_sink (
  model STRING,
  entry STRING
) WITH (
  'connector' = 'kafka',
  'topic' = '{topic_training_ledger}',
  'properties.bootstrap.servers' = '{bootstrap}',
  'properties.transaction.timeout.ms' = '{transaction_timeout_ms}',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = '{txn_prefix}-ledger',
  'key.format' = 'raw',
  'key.fields' = 'model',
  'value.format' = 'raw',
  'value.fields-include' = 'EXCEPT_KEY'
);
