"""Routing clean events to their raw partition's number, and the clean-topic record itself."""
from __future__ import annotations

import json

import pytest

from flink_jobs.clean_topic import kafka_partition, murmur2, partition_keys
from udfs.clean_record import CLEAN_RECORD_FIELDS, from_clean_record, to_clean_record
from udfs.validation import validate, validate_columnar

NOW = 1_700_000_000_000


@pytest.mark.parametrize("data, expected", [
    # The vectors of Kafka's own UtilsTest.testMurmur2.
    (b"21", -973932308), (b"foobar", -790332482), (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829), (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
])
def test_murmur2_is_kafkas(data, expected):
    assert murmur2(data) == expected


@pytest.mark.parametrize("partitions", [1, 2, 3, 12, 64])
def test_key_i_lands_on_partition_i(partitions):
    keys = partition_keys(partitions)
    assert len(set(keys)) == partitions
    assert [kafka_partition(key.encode(), partitions) for key in keys] == list(range(partitions))


def test_partition_keys_need_at_least_one_partition():
    with pytest.raises(ValueError):
        partition_keys(0)


IMPRESSION = {"event_id": "e-1", "type": "impression", "ts": NOW - 1_000, "user_id": "u-1", "request_id": "r-1",
              "query": "Schuhe  GRÖSSE 42", "items": [{"item_id": "i-1", "position": 1, "price": 10.0},
                                                    {"item_id": "i-2", "position": 2, "brand": "acme"}]}
CLICK = {"event_id": "e-2", "type": "click", "ts": NOW - 500, "user_id": "u-1", "item_id": "i-2"}


@pytest.mark.parametrize("document", [IMPRESSION, CLICK])
def test_clean_record_round_trip(document):
    raw = json.dumps(document).encode()
    event = validate_columnar(raw, now_ms=NOW).event
    text = to_clean_record(event, NOW - 200)
    assert list(json.loads(text)) == list(CLEAN_RECORD_FIELDS)
    assert from_clean_record(text) == {**validate(raw, now_ms=NOW).event, "event_time": NOW - 200}
    assert ("grösse" in text) == ("query" in document)  # UTF-8 text, not \u escapes
