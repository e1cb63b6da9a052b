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
