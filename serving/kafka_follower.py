"""Background threads that read Kafka topics from the beginning and hand records to serving.

Every serving process reads every partition (`assign`, no consumer-group split, no committed
offsets): each one needs the whole model and all features, and a restarted process rebuilds its
state by replaying the topics. `isolation.level=read_committed` because the job's sinks are
transactional: a version a crash undid is never seen.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from typing import Any, Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from freshrank.config import FreshrankConfig
from serving.online_features import OnlineFeatures
from serving.registry import ModelRegistry

log = logging.getLogger("freshrank.serving.kafka")

_BATCH = 1000
_LAG_REFRESH_S = 1.0
_TOPIC_WAIT_S = 2.0


def consumer_config(cfg: FreshrankConfig) -> dict[str, Any]:
    return {
        "bootstrap.servers": cfg.kafka.bootstrap,
        "group.id": cfg.serving.group_id,  # required by the client; nothing is committed
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "enable.partition.eof": True,  # tells us when the replay has reached the end
    }


class TopicFollower(threading.Thread):
    """Reads `topics` from their first offset, forever, calling `on_record(message)` per record.

    After each polled batch `on_batch()` runs; `on_caught_up()` runs once, when every partition
    has been read up to its end for the first time.
    """

    def __init__(self, name: str, config: dict[str, Any], topics: list[str],
                 on_record: Callable[[Message], None], *,
                 on_batch: Callable[[], None] = lambda: None,
                 on_caught_up: Callable[[], None] = lambda: None,
                 poll_timeout_s: float = 0.5) -> None:
        super().__init__(name=name, daemon=True)
        self._config = config
        self.topics = list(topics)
        self._on_record = on_record
        self._on_batch = on_batch
        self._on_caught_up = on_caught_up
        self._poll_timeout_s = poll_timeout_s
        self._stop_requested = threading.Event()
        self.caught_up = False
        self.records = 0
        self.errors: Counter[str] = Counter()
        self.lag: dict[str, int | None] = {t: None for t in self.topics}

    def request_stop(self) -> None:
        """Ask the thread to end after its current poll (join() to wait for it)."""
        self._stop_requested.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        self.request_stop()
        if self.is_alive():
            self.join(timeout_s)

    def run(self) -> None:
        consumer = Consumer(self._config)
        try:
            partitions = self._wait_for_partitions(consumer)
            if partitions is None:
                return
            consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in partitions])
            self._follow(consumer, partitions)
        except Exception:  # keep the reason in the log: a dead follower freezes serving's state
            log.exception("%s stopped on an unexpected error", self.name)
            raise
        finally:
            consumer.close()

    def _wait_for_partitions(self, consumer: Consumer) -> list[tuple[str, int]] | None:
        while not self._stop_requested.is_set():
            try:
                metadata = consumer.list_topics(timeout=_TOPIC_WAIT_S)
            except Exception as exc:  # broker not reachable yet
                log.warning("%s: cannot list topics at %s: %s", self.name,
                            self._config["bootstrap.servers"], exc)
            else:
                missing = [t for t in self.topics
                           if t not in metadata.topics or not metadata.topics[t].partitions]
                if not missing:
                    return [(t, p) for t in self.topics for p in sorted(metadata.topics[t].partitions)]
                log.info("%s: waiting for topic(s) %s", self.name, ", ".join(missing))
            self._stop_requested.wait(_TOPIC_WAIT_S)
        return None

    def _follow(self, consumer: Consumer, partitions: list[tuple[str, int]]) -> None:
        not_at_end = set(partitions)
        next_lag_refresh = 0.0
        while not self._stop_requested.is_set():
            for message in consumer.consume(_BATCH, self._poll_timeout_s):
                error = message.error()
                if error is None:
                    self.records += 1
                    self._handle(message)
                elif error.code() == KafkaError._PARTITION_EOF:
                    not_at_end.discard((message.topic(), message.partition()))
                else:
                    self.errors[error.name()] += 1
                    log.warning("%s: %s", self.name, error)
            self._on_batch()
            if not self.caught_up and not not_at_end:
                self.caught_up = True
                log.info("%s: caught up with %s after %d records", self.name,
                         ", ".join(self.topics), self.records)
                self._on_caught_up()
            if time.monotonic() >= next_lag_refresh:
                self.lag = _lag(consumer, partitions)
                next_lag_refresh = time.monotonic() + _LAG_REFRESH_S

    def _handle(self, message: Message) -> None:
        try:
            self._on_record(message)
        except Exception as exc:  # one bad record must not stop serving from following
            self.errors["bad_record"] += 1
            log.warning("%s: cannot apply a record of %s at offset %d: %r", self.name,
                        message.topic(), message.offset(), exc)


def _lag(consumer: Consumer, partitions: list[tuple[str, int]]) -> dict[str, int | None]:
    """Records behind the end of each topic (None until the first fetch tells the end)."""
    lag: dict[str, int | None] = {}
    positions = consumer.position([TopicPartition(t, p) for t, p in partitions])
    for tp in positions:
        _, high = consumer.get_watermark_offsets(tp, cached=True) or (None, None)
        if high is None or high < 0 or tp.offset < 0:
            lag.setdefault(tp.topic, None)
            continue
        behind = max(0, high - tp.offset)
        lag[tp.topic] = (lag.get(tp.topic) or 0) + behind
    return lag


def _json_or_none(value: bytes | None) -> Any:
    return None if value is None else json.loads(value)


def _key_text(message: Message) -> str:
    key = message.key()
    if key is None:
        raise ValueError("record without a key")
    return key.decode("utf-8")


def model_follower(cfg: FreshrankConfig, registry: ModelRegistry) -> TopicFollower:
    """Versions and embedding deltas -> the registry; one promotion check per polled batch."""
    topics = cfg.kafka.topics

    def on_record(message: Message) -> None:
        if message.topic() == topics.model_versions:
            registry.apply_version_record(_json_or_none(message.value()))
        else:
            registry.apply_delta(_key_text(message), _json_or_none(message.value()))

    registry.begin_replay()
    return TopicFollower("model-follower", consumer_config(cfg),
                         [topics.model_versions, topics.model_deltas], on_record,
                         on_batch=registry.advance, on_caught_up=registry.end_replay,
                         poll_timeout_s=cfg.serving.poll_timeout_s)


def feature_follower(cfg: FreshrankConfig, features: OnlineFeatures) -> TopicFollower:
    """Latest user, item and (query, item) features -> the online feature cache."""
    topics = cfg.kafka.topics

    def on_record(message: Message) -> None:
        topic = message.topic()
        if topic == topics.features_user:
            features.apply_user(_key_text(message), _json_or_none(message.value()))
        elif topic == topics.features_query_item:
            features.apply_query_item(_key_text(message), _json_or_none(message.value()))
        else:
            features.apply_item(_key_text(message), _json_or_none(message.value()))

    return TopicFollower("feature-follower", consumer_config(cfg),
                         [topics.features_user, topics.features_item, topics.features_query_item], on_record,
                         poll_timeout_s=cfg.serving.poll_timeout_s)
