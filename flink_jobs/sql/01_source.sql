-- Raw behaviour events, read as bytes so that a record that is not even UTF-8 reaches the
-- validator (and the dead-letter topic) instead of failing the source.
-- The watermark follows the Kafka record timestamp (producers set it to the event time); the
-- validator compares each event's own ts with it to dead-letter events later than allowed.
CREATE TABLE raw_events (
  `value`     BYTES,
  `topic`     STRING METADATA VIRTUAL,
  `partition` INT METADATA VIRTUAL,
  `offset`    BIGINT METADATA VIRTUAL,
  kafka_ts    TIMESTAMP_LTZ(3) METADATA FROM 'timestamp',
  WATERMARK FOR kafka_ts AS kafka_ts - INTERVAL '{watermark_delay}' DAY TO SECOND(3)
) WITH (
  'connector' = 'kafka',
  'topic' = '{topic_events}',
  'properties.bootstrap.servers' = '{bootstrap}',
  'properties.group.id' = '{group_id}',
  'properties.isolation.level' = 'read_committed',
  'scan.startup.mode' = 'group-offsets',
  'properties.auto.offset.reset' = 'earliest',
  'scan.watermark.idle-timeout' = '{idle_timeout_ms} ms',
  'format' = 'raw'
);

-- Clean events, as the validator wrote them (udfs/clean_record.py; partition i holds the events of
-- raw partition i, in their order), and watermark markers (flink_jobs/clean_topic.py). The
-- watermark is the raw source's rule applied to the same partitions: event_time (ts, or the raw
-- watermark a late event was moved to) minus the delay; a marker (no event_id) raises its
-- partition's watermark to the raw watermark it carries.
CREATE TABLE clean_events (
  event_id   STRING,
  type       STRING,
  ts         BIGINT,
  event_time BIGINT,
  user_id    STRING,
  session_id STRING,
  request_id STRING,
  query      STRING,
  items      ROW<item_id ARRAY<STRING>, `position` ARRAY<INT>, price ARRAY<DOUBLE>,
                 category ARRAY<STRING>, brand ARRAY<STRING>>,
  item_id    STRING,
  price      DOUBLE,
  quantity   DOUBLE,
  category   STRING,
  brand      STRING,
  device     STRING,
  platform   STRING,
  pt AS PROCTIME(),
  clean_time AS TO_TIMESTAMP_LTZ(event_time, 3),
  WATERMARK FOR clean_time AS CASE WHEN event_id IS NULL THEN clean_time
                                   ELSE clean_time - INTERVAL '{watermark_delay}' DAY TO SECOND(3) END
) WITH (
  'connector' = 'kafka',
  'topic' = '{topic_events_clean}',
  'properties.bootstrap.servers' = '{bootstrap}',
  'properties.group.id' = '{group_id}-clean',
  'scan.startup.mode' = 'group-offsets',
  'properties.auto.offset.reset' = 'earliest',
  'scan.watermark.idle-timeout' = '{clean_idle_timeout_ms} ms',
  'format' = 'json',
  'json.fail-on-missing-field' = 'false',
  'json.ignore-parse-errors' = 'false'
);
