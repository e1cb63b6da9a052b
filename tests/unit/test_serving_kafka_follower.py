"""The follower's record handling, driven by a scripted consumer (the real broker is covered by
the integration tests)."""

import json

from confluent_kafka import KafkaError, Message, TopicPartition

from freshrank.config import FreshrankConfig
from serving.kafka_follower import _lag, consumer_config, feature_follower, model_follower
from serving.online_features import OnlineFeatures
from serving.registry import ModelRegistry
from tests.unit.test_serving_support import history

CFG = FreshrankConfig()
TOPICS = CFG.kafka.topics


class ScriptedConsumer:
    """Returns one scripted batch per consume() call; stops the follower after the last one."""

    def __init__(self, batches, follower, ends=None):
        self.batches = list(batches)
        self.follower = follower
        self.offsets = {}
        self.ends = ends or {}

    def consume(self, num_messages, timeout):
        if len(self.batches) == 1:
            self.follower._stop_requested.set()
        batch = self.batches.pop(0) if self.batches else []
        for message in batch:
            if message.error() is None:
                self.offsets[(message.topic(), message.partition())] = message.offset() + 1
        return batch

    def position(self, partitions):
        return [TopicPartition(tp.topic, tp.partition, self.offsets.get((tp.topic, tp.partition), -1001))
                for tp in partitions]

    def get_watermark_offsets(self, tp, cached=False):
        return (0, self.ends.get((tp.topic, tp.partition), -1001))


def record(topic, key, value, offset):
    data = None if value is None else json.dumps(value).encode()
    return Message(topic=topic, partition=0, offset=offset, key=key and key.encode(), value=data)


def end_of(topic):
    return Message(topic=topic, partition=0, error=KafkaError(KafkaError._PARTITION_EOF))


def test_consumer_reads_committed_records_from_the_beginning():
    config = consumer_config(CFG)
    assert config["isolation.level"] == "read_committed"
    assert config["auto.offset.reset"] == "earliest" and config["enable.auto.commit"] is False
    assert config["bootstrap.servers"] == CFG.kafka.bootstrap


def test_model_records_are_replayed_then_the_newest_version_goes_live():
    v1, v2, _ = history()
    registry = ModelRegistry()
    follower = model_follower(CFG, registry)
    assert follower.topics == [TOPICS.model_versions, TOPICS.model_deltas]
    deltas = [record(TOPICS.model_deltas, key, value, offset)
              for offset, (key, value) in enumerate(v1.deltas + v2.deltas)]
    versions = [record(TOPICS.model_versions, None, p.record, p.version - 1) for p in (v1, v2)]
    batches = [deltas[:100], versions + deltas[100:],
               [end_of(TOPICS.model_versions)],
               [end_of(TOPICS.model_deltas)],  # caught up: the replay ends
               []]
    consumer = ScriptedConsumer(batches, follower)
    follower._follow(consumer, [(TOPICS.model_versions, 0), (TOPICS.model_deltas, 0)])
    assert follower.caught_up and follower.records == len(deltas) + 2
    assert registry.live.version == 2  # only the newest, once the replay has ended
    assert [e["event"] for e in registry.status()["history"]] == ["restored"]


def test_a_bad_record_is_counted_and_following_goes_on():
    features = OnlineFeatures()
    follower = feature_follower(CFG, features)
    batches = [[record(TOPICS.features_user, "u1", None, 0),
                Message(topic=TOPICS.features_user, partition=0, offset=1, key=b"u2", value=b"{oops"),
                record(TOPICS.features_item, "i1", {"ts": 5, "i_impr_1h": 3.0}, 0),
                record(TOPICS.features_user, "u3", {"ts": 5, "u_click_1h": 2.0}, 2),
                record(TOPICS.features_query_item, "red shoes\ti1", {"ts": 5, "qi_ctr_24h": 0.5}, 0)]]
    assert follower.topics == [TOPICS.features_user, TOPICS.features_item, TOPICS.features_query_item]
    follower._follow(ScriptedConsumer(batches, follower), [(TOPICS.features_user, 0),
                                                           (TOPICS.features_item, 0),
                                                           (TOPICS.features_query_item, 0)])
    assert follower.errors["bad_record"] == 1
    assert features.item_features("i1", 6)["i_impr_1h"] == 3.0
    assert features.query_item_features("red shoes", "i1", 6) == {"qi_ctr_24h": 0.5}
    assert features.user_features("u3", 6)["u_click_1h"] == 2.0
    assert not follower.caught_up


def test_lag_counts_records_behind_the_end_of_each_topic():
    consumer = ScriptedConsumer([], follower=None, ends={(TOPICS.model_versions, 0): 5,
                                                         (TOPICS.model_deltas, 0): 900})
    consumer.offsets = {(TOPICS.model_versions, 0): 3}
    assert _lag(consumer, [(TOPICS.model_versions, 0), (TOPICS.model_deltas, 0)]) == {
        TOPICS.model_versions: 2, TOPICS.model_deltas: None}  # None: nothing fetched yet
