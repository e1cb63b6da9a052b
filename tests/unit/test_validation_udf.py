"""The vectorised validation function of the job, without a Flink cluster: what it returns for a
batch must be what `validate` says record by record, in the layout CHECKED_TYPE declares, and
convertible by PyFlink's own pandas-to-Arrow step."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from flink_jobs.validation_udf import (
    CHECKED_COLUMNS,
    CHECKED_TYPE,
    ITEM_COLUMNS,
    ValidateEvents,
    check_batch,
    epoch_ms_column,
)
from freshrank.datagen import EventGenerator, GeneratorConfig
from udfs.config import DEFAULT_CONFIG, ValidationConfig
from udfs.reasons import REASON_CODES
from udfs.validation import CLEAN_ITEM_FIELDS, validate, validate_columnar

NOW = 1_700_000_000_000
WATERMARK = NOW - 60_000


def encode(document) -> bytes:
    return json.dumps(document).encode()


IMPRESSION = {"event_id": "e-1", "type": "impression", "ts": NOW - 1_000, "user_id": "u-1",
              "request_id": "r-1", "query": " Red  SHOES ", "device": "ios",
              "items": [{"item_id": "i-1", "position": 1, "price": 10.0, "category": "shoes", "brand": "acme"},
                        {"item_id": "i-2", "position": 2}]}
# Behind the watermark but within the allowed lateness: enters event time at the watermark.
LATE_CLICK = {"event_id": "e-2", "type": "click", "ts": WATERMARK - 5_000, "user_id": "u-1", "item_id": "i-2",
              "price": "12.5"}


def positions(n: int):
    return lambda index: ("freshrank.events", 3, 1_000 + index)


def test_rows_follow_checked_type_and_match_validate():
    values = [encode(IMPRESSION), encode(LATE_CLICK), b"{not json", None]
    rows, rejected = check_batch(values, [WATERMARK] * 4, NOW, DEFAULT_CONFIG, positions(4))
    assert all(len(row) == len(CHECKED_COLUMNS) for row in rows)
    impression, click, not_json, empty = (dict(zip(CHECKED_COLUMNS, row)) for row in rows)

    event = validate(values[0], now_ms=NOW, watermark_ms=WATERMARK).event
    assert impression["ok"] and impression["dlq"] is None
    assert impression["event_time"] == impression["ts"] == event["ts"]
    for field in ("event_id", "type", "user_id", "session_id", "request_id", "query", "item_id", "price",
                  "quantity", "category", "brand", "device", "platform"):
        assert impression[field] == event[field], field
    assert impression["query"] == "red shoes"
    for column, field in zip(ITEM_COLUMNS, CLEAN_ITEM_FIELDS):
        assert list(impression[column]) == [item[field] for item in event["items"]], column

    assert click["ok"] and click["ts"] == LATE_CLICK["ts"] and click["event_time"] == WATERMARK
    assert click["price"] == 12.5 and all(list(click[c]) == [] for c in ITEM_COLUMNS)

    assert not not_json["ok"] and not empty["ok"]
    record = json.loads(not_json["dlq"])
    assert record["reason"] == "NOT_JSON" and record["payload"] == "{not json"
    assert (record["source_topic"], record["source_partition"], record["source_offset"]) == ("freshrank.events", 3, 1002)
    assert record["ingest_ms"] == NOW
    assert json.loads(empty["dlq"])["reason"] == "EMPTY"
    assert all(not_json[c] is None for c in ("event_id", "type", "ts", "event_time", "user_id"))
    assert rejected == {"NOT_JSON": 1, "EMPTY": 1}


def test_no_watermark_yet_keeps_ts_as_event_time():
    rows, _ = check_batch([encode(LATE_CLICK)], [None], NOW, DEFAULT_CONFIG, positions(1))
    row = dict(zip(CHECKED_COLUMNS, rows[0]))
    assert row["ok"] and row["event_time"] == row["ts"] == LATE_CLICK["ts"]


def test_config_limits_apply():
    config = ValidationConfig(max_items=1)
    rows, rejected = check_batch([encode(IMPRESSION)], [WATERMARK], NOW, config, positions(1))
    assert not rows[0][0] and rejected == {"TOO_MANY_ITEMS": 1}


def test_generated_stream_is_classified_exactly_as_validate_does():
    """The batch path and the per-record path agree on every record, malformed ones included."""
    generator = EventGenerator(GeneratorConfig(seed=11, malformed_share=0.2, missing_optional_share=0.2,
                                               start_ms=NOW - 3_600_000))
    values = [value for _, value in generator.events(3_000)]
    rows, rejected = check_batch(values, [None] * len(values), NOW, DEFAULT_CONFIG, positions(len(values)))
    expected_rejected = {}
    for value, row in zip(values, rows):
        verdict = validate(value, now_ms=NOW, config=DEFAULT_CONFIG)
        row = dict(zip(CHECKED_COLUMNS, row))
        assert row["ok"] == verdict.ok
        if verdict.ok:
            event = verdict.event
            assert [row[f] for f in ("event_id", "type", "ts", "user_id", "query", "price", "brand")] == \
                [event[f] for f in ("event_id", "type", "ts", "user_id", "query", "price", "brand")]
            items = [dict(zip(CLEAN_ITEM_FIELDS, item)) for item in zip(*(row[c] for c in ITEM_COLUMNS))]
            assert items == (event["items"] or [])
        else:
            record = json.loads(row["dlq"])
            assert (record["reason"], record["detail"]) == (verdict.reason.value, verdict.detail)
            expected_rejected[verdict.reason.value] = expected_rejected.get(verdict.reason.value, 0) + 1
    assert rejected == expected_rejected and len(rejected) > 3


def test_columnar_verdicts_equal_per_record_verdicts():
    generator = EventGenerator(GeneratorConfig(seed=12, malformed_share=0.3, start_ms=NOW - 3_600_000))
    for _, value in generator.events(2_000):
        columnar = validate_columnar(value, now_ms=NOW, watermark_ms=WATERMARK)
        verdict = validate(value, now_ms=NOW, watermark_ms=WATERMARK)
        assert (columnar.reason, columnar.detail) == (verdict.reason, verdict.detail)
        if verdict.ok and verdict.event["items"] is not None:
            assert [dict(zip(CLEAN_ITEM_FIELDS, item)) for item in zip(*columnar.event["items"])] == verdict.event["items"]


def test_watermark_column_to_epoch_ms():
    stamps = pd.Series(pd.to_datetime([None, WATERMARK, NOW], unit="ms", utc=True)).astype("datetime64[ms, UTC]")
    assert epoch_ms_column(stamps) == [None, WATERMARK, NOW]
    assert epoch_ms_column(stamps.dropna()) == [WATERMARK, NOW]
    micro = pd.Series(pd.to_datetime([WATERMARK], unit="ms", utc=True)).astype("datetime64[us, UTC]")
    assert epoch_ms_column(micro) == [WATERMARK]


class _Counter:
    def __init__(self):
        self.count = 0

    def inc(self, n: int = 1):
        self.count += n


class _Group:
    def __init__(self):
        self.counters: dict[str, _Counter] = {}
        self.groups: dict[str, _Group] = {}

    def add_group(self, name):
        return self.groups.setdefault(name, _Group())

    def counter(self, name):
        return self.counters.setdefault(name, _Counter())


class _Context:
    def __init__(self):
        self.root = _Group()

    def get_metric_group(self):
        return self.root


@pytest.fixture
def function():
    function = ValidateEvents(DEFAULT_CONFIG)
    context = _Context()
    function.open(context)
    return function, context.root.groups["freshrank"]


def series(values, watermark_ms):
    n = len(values)
    stamps = pd.to_datetime([watermark_ms] * n, unit="ms", utc=True)
    return (pd.Series(values, dtype=object), pd.Series(["freshrank.events"] * n), pd.Series([0] * n, dtype="int32"),
            pd.Series(range(n), dtype="int64"), pd.Series(stamps).astype("datetime64[ms, UTC]"))


def test_eval_returns_a_frame_pyflink_can_convert_and_counts(function):
    from pyflink.table.types import create_arrow_schema
    from pyflink.table.utils import pandas_to_arrow

    udf, metrics = function
    # eval reads the wall clock: events from a minute ago, a watermark an hour before that.
    import time
    now = int(time.time() * 1000)
    events = [dict(IMPRESSION, ts=now - 60_000), dict(LATE_CLICK, ts=now - 60_000), {"type": "search"}]
    frame = udf.eval(*series([encode(e) for e in events] + [b"\xff"], now - 3_600_000))
    assert list(frame.columns) == list(CHECKED_COLUMNS) and list(frame["ok"]) == [True, True, False, False]
    batch = pandas_to_arrow(create_arrow_schema(["checked"], [CHECKED_TYPE]), "UTC", [CHECKED_TYPE], [frame])
    checked = batch.column(0).to_pylist()
    assert checked[0]["item_ids"] == ["i-1", "i-2"] and checked[0]["item_prices"] == [10.0, None]
    assert checked[0]["ts"] == checked[0]["event_time"] == now - 60_000  # exact integers, not via float
    assert checked[1]["item_ids"] == [] and checked[2]["ts"] is None
    assert json.loads(checked[3]["dlq"])["reason"] == "NOT_UTF8"

    counters = {name: c.count for name, c in metrics.counters.items()}
    assert counters == {"events_in": 4, "events_valid": 2, "events_dead_lettered": 2}
    by_reason = {name: c.count for name, c in metrics.groups["dlq_reason"].counters.items()}
    assert set(by_reason) == set(REASON_CODES)
    assert {k: v for k, v in by_reason.items() if v} == {"MISSING_FIELD": 1, "NOT_UTF8": 1}


def test_eval_of_an_empty_batch(function):
    udf, _ = function
    frame = udf.eval(*series([], 0))
    assert len(frame) == 0 and list(frame.columns) == list(CHECKED_COLUMNS)
