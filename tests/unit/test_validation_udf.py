"""The vectorised validation function of the job, without a Flink cluster: what it returns for a
batch must be what `validate` says record by record (clean events as clean-topic records), in the
layout CHECKED_TYPE declares, and convertible by PyFlink's own pandas-to-Arrow step."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from flink_jobs.validation_udf import (
    CHECKED_COLUMNS,
    CHECKED_TYPE,
    ValidateEvents,
    check_batch,
    epoch_ms_column,
)
from freshrank.datagen import EventGenerator, GeneratorConfig
from udfs.clean_record import from_clean_record
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


def check(values, watermarks, config=DEFAULT_CONFIG, vouched=None):
    """check_batch on records that all came from partition 3; rows as dicts."""
    rows, rejected = check_batch(values, vouched, watermarks, NOW, config, positions(len(values)))
    assert all(len(row) == len(CHECKED_COLUMNS) for row in rows)
    return [dict(zip(CHECKED_COLUMNS, row)) for row in rows], rejected


def test_rows_follow_checked_type_and_match_validate():
    values = [encode(IMPRESSION), encode(LATE_CLICK), b"{not json", None]
    (impression, click, not_json, empty), rejected = check(values, [WATERMARK] * 4)

    event = validate(values[0], now_ms=NOW, watermark_ms=WATERMARK).event
    assert impression["ok"]
    assert impression["event_time"] == event["ts"]
    clean = from_clean_record(impression["record"])
    assert clean == {**event, "event_time": event["ts"]} and clean["query"] == "red shoes"
    # The record's own layout: an impression's items are five arrays, in display order.
    assert json.loads(impression["record"])["items"] == {
        "item_id": ["i-1", "i-2"], "position": [1, 2], "price": [10.0, None], "category": ["shoes", None],
        "brand": ["acme", None]}

    assert click["ok"] and click["event_time"] == WATERMARK
    clean_click = from_clean_record(click["record"])
    assert clean_click["ts"] == LATE_CLICK["ts"] and clean_click["event_time"] == WATERMARK
    assert clean_click["price"] == 12.5 and clean_click["items"] is None

    assert not not_json["ok"] and not empty["ok"]
    record = json.loads(not_json["record"])
    assert record["reason"] == "NOT_JSON" and record["payload"] == "{not json"
    assert (record["source_topic"], record["source_partition"], record["source_offset"]) == ("freshrank.events", 3, 1002)
    assert record["ingest_ms"] == NOW
    assert json.loads(empty["record"])["reason"] == "EMPTY"
    assert not_json["event_time"] is None
    assert rejected == {"NOT_JSON": 1, "EMPTY": 1}


def test_first_row_of_a_batch_carries_its_watermark():
    rows, _ = check([encode(IMPRESSION), b"{", encode(LATE_CLICK)], [WATERMARK, WATERMARK + 1, WATERMARK + 2])
    assert [row["batch_watermark"] for row in rows] == [WATERMARK, None, None]
    rows, _ = check([b"{", encode(LATE_CLICK)], [WATERMARK, WATERMARK])  # a dead letter carries it too
    assert [row["batch_watermark"] for row in rows] == [WATERMARK, None]
    rows, _ = check([encode(IMPRESSION)], [None])  # no watermark yet: nothing to carry
    assert rows[0]["batch_watermark"] is None
    rows, _ = check_batch([encode(IMPRESSION)], None, [WATERMARK], NOW, DEFAULT_CONFIG, positions(1), mark_batch=False)
    assert rows[0][CHECKED_COLUMNS.index("batch_watermark")] is None


def test_records_vouch_event_wrote_are_only_counted_and_marked():
    values = [None, encode(LATE_CLICK), None, b"{"]
    rows, rejected = check(values, [WATERMARK] * 4, vouched=[True, False, True, False])
    # ok, with no record of its own (vouch_event's goes to the clean topic), and the batch's marker
    assert rows[0] == {"ok": True, "event_time": None, "record": None, "batch_watermark": WATERMARK}
    assert rows[2] == {"ok": True, "event_time": None, "record": None, "batch_watermark": None}
    assert rows[1]["ok"] and rows[1]["event_time"] == WATERMARK and not rows[3]["ok"]
    assert rejected == {"NOT_JSON": 1}


def test_no_watermark_yet_keeps_ts_as_event_time():
    (row,), _ = check([encode(LATE_CLICK)], [None])
    assert row["ok"] and row["event_time"] == from_clean_record(row["record"])["ts"] == LATE_CLICK["ts"]


def test_config_limits_apply():
    (row,), rejected = check([encode(IMPRESSION)], [WATERMARK], ValidationConfig(max_items=1))
    assert not row["ok"] and rejected == {"TOO_MANY_ITEMS": 1}


def test_generated_stream_is_classified_exactly_as_validate_does():
    """The batch path and the per-record path agree on every record, malformed ones included."""
    generator = EventGenerator(GeneratorConfig(seed=11, malformed_share=0.2, missing_optional_share=0.2,
                                               start_ms=NOW - 3_600_000))
    values = [value for _, value in generator.events(3_000)]
    rows, rejected = check(values, [None] * len(values))
    expected_rejected = {}
    for value, row in zip(values, rows):
        verdict = validate(value, now_ms=NOW, config=DEFAULT_CONFIG)
        assert row["ok"] == verdict.ok
        if verdict.ok:
            assert from_clean_record(row["record"]) == {**verdict.event, "event_time": verdict.event["ts"]}
        else:
            record = json.loads(row["record"])
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


def series(values, watermark_ms, vouched=None):
    n = len(values)
    stamps = pd.to_datetime([watermark_ms] * n, unit="ms", utc=True)
    flags = False if vouched is None else pd.Series(vouched, dtype=bool)  # a constant comes as a scalar
    return (pd.Series(values, dtype=object), flags, pd.Series(["freshrank.events"] * n),
            pd.Series([0] * n, dtype="int32"), pd.Series(range(n), dtype="int64"),
            pd.Series(stamps).astype("datetime64[ms, UTC]"))


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
    assert checked[0]["event_time"] == now - 60_000  # an exact integer, not via float
    assert from_clean_record(checked[0]["record"])["items"][1] == {
        "item_id": "i-2", "position": 2, "price": None, "category": None, "brand": None}
    assert checked[2]["event_time"] is None
    assert json.loads(checked[3]["record"])["reason"] == "NOT_UTF8"

    counters = {name: c.count for name, c in metrics.counters.items()}
    assert counters == {"events_in": 4, "events_valid": 2, "events_dead_lettered": 2}
    by_reason = {name: c.count for name, c in metrics.groups["dlq_reason"].counters.items()}
    assert set(by_reason) == set(REASON_CODES)
    assert {k: v for k, v in by_reason.items() if v} == {"MISSING_FIELD": 1, "NOT_UTF8": 1}


def test_eval_counts_the_records_vouch_event_wrote_as_valid(function):
    udf, metrics = function
    frame = udf.eval(*series([None, None, b"{"], 0, vouched=[True, True, False]))
    assert list(frame["ok"]) == [True, True, False] and list(frame["record"])[:2] == [None, None]
    counters = {name: c.count for name, c in metrics.counters.items()}
    assert counters == {"events_in": 3, "events_valid": 2, "events_dead_lettered": 1}


def test_eval_of_an_empty_batch(function):
    udf, _ = function
    frame = udf.eval(*series([], 0))
    assert len(frame) == 0 and list(frame.columns) == list(CHECKED_COLUMNS)
