"""Small Kafka helpers shared by the CLI, the demo, serving and the tests."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator

from freshrank.config import FreshrankConfig


def topic_sizes(cfg: FreshrankConfig) -> dict[str, int]:
    """Records per topic (high minus low watermark, summed over partitions)."""
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": cfg.kafka.bootstrap, "group.id": "freshrank-status",
                         "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(timeout=5)
        sizes = {}
        for topic in cfg.kafka.topics.all():
            if topic not in metadata.topics:
                continue
            total = 0
            for partition in metadata.topics[topic].partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)
                total += max(0, high - low)
            sizes[topic] = total
        return sizes
    finally:
        consumer.close()


def read_topic(bootstrap: str, topic: str, *, timeout_s: float = 10.0, until=None,
               committed_only: bool = True) -> Iterator[tuple[bytes | None, bytes]]:
    """Yield (key, value) from the start of `topic` until `until(count)` is true or the topic is quiet.

    committed_only reads with isolation.level=read_committed: the job's sinks are
    transactional, so only what a completed checkpoint committed is visible.
    """
    from confluent_kafka import Consumer
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"freshrank-reader-{time.monotonic_ns()}",
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
        "isolation.level": "read_committed" if committed_only else "read_uncommitted",
    })
    consumer.subscribe([topic])
    count = 0
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            count += 1
            yield msg.key(), msg.value()
            if until is not None and until(count):
                return
    finally:
        consumer.close()


def read_json(bootstrap: str, topic: str, **kwargs) -> list[dict]:
    return [json.loads(value) for _, value in read_topic(bootstrap, topic, **kwargs)]
