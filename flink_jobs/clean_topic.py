"""How the clean topic keeps the raw topic's event time: partitions mirrored, watermark markers.

The feature stage reads `freshrank.events.clean` with a watermark per partition, as the validator
read the raw topic, and its event-time windows drop what arrives behind that watermark. Two things make
the clean watermark mean what the raw one meant:

* Clean partition i holds exactly raw partition i's events, in their order: merging two raw
  partitions into one would let the faster one's event time make the slower one's events late.
  Flink's Kafka SQL sink cannot name a partition per record, but with a key it uses Kafka's
  default partitioner, murmur2(key) mod the partition count; so the job keys each clean record
  with a key that hashes to its raw partition number, found here by trying candidates.
* Markers. The clean topic fills in bursts, as the validator's batches come out: a partition
  whose events are simply not written yet looks idle to the clean source, which would then run
  the watermark on without it (at start-up above all). So at the start of each batch the job
  writes the raw watermark of the batch's first record to every clean partition
  (``{"event_time": W}``, no event_id). Every event validated after it has an event time >= W (the
  validator moves late events up to the raw watermark), so a marker never makes one late; it
  keeps every partition active, and a raw partition the raw source declared idle is followed at
  the raw watermark. With job.parallelism > 1 a subtask's watermark covers only its own raw
  partitions, so markers are off and the clean source's idle timeout alone decides.
"""
from __future__ import annotations

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as a signed 32-bit int."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    tail = length % 4
    if tail == 3:
        h ^= data[whole + 2] << 16
    if tail >= 2:
        h ^= data[whole + 1] << 8
    if tail >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def kafka_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a keyed record."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def partition_keys(partitions: int) -> list[str]:
    """Key i (ASCII) lands on partition i of a topic with `partitions` partitions."""
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    keys = []
    for partition in range(partitions):
        attempt = 0
        while kafka_partition(f"p{partition}-{attempt}".encode(), partitions) != partition:
            attempt += 1
        keys.append(f"p{partition}-{attempt}")
    return keys


def key_sql(key: str) -> str:
    """A key as a SQL STRING literal: a bare one is a CHAR(n), whose length would then differ from
    key to key (tests/integration/test_clean_topic_sql.py checks the keys arrive byte for byte)."""
    return f"CAST('{key}' AS STRING)"


def key_lookup_sql(partitions: int, partition_column: str) -> str:
    """A SQL expression: the key for raw partition `partition_column` (raw partitions beyond the
    clean topic's count wrap around; they then share a clean partition)."""
    literal = ", ".join(key_sql(key) for key in partition_keys(partitions))
    return f"ARRAY[{literal}][MOD({partition_column}, {partitions}) + 1]"
