"""The validator as a Table API Python scalar function, with its metrics.

The function returns one ROW per raw record: the clean event's columns when `ok`, otherwise the
dead-letter record as JSON in `dlq`. It is applied with Table.map, so it runs exactly once per
record (a SQL projection of a ROW-valued UDF could be expanded into one call per field).
"""
from __future__ import annotations

import json
import time
from datetime import timezone

from pyflink.common import Row
from pyflink.table import DataTypes
from pyflink.table.udf import ScalarFunction, udf

from udfs.config import ValidationConfig
from udfs.dlq import to_dlq_record
from udfs.reasons import REASON_CODES
from udfs.validation import validate

ITEM_TYPE = DataTypes.ROW([
    DataTypes.FIELD("item_id", DataTypes.STRING()),
    DataTypes.FIELD("position", DataTypes.INT()),
    DataTypes.FIELD("price", DataTypes.DOUBLE()),
    DataTypes.FIELD("category", DataTypes.STRING()),
    DataTypes.FIELD("brand", DataTypes.STRING()),
])

CHECKED_TYPE = DataTypes.ROW([
    DataTypes.FIELD("ok", DataTypes.BOOLEAN()),
    DataTypes.FIELD("dlq", DataTypes.STRING()),
    DataTypes.FIELD("event_id", DataTypes.STRING()),
    DataTypes.FIELD("type", DataTypes.STRING()),
    DataTypes.FIELD("ts", DataTypes.BIGINT()),
    # ts, or the watermark the event arrived behind: what the event-time pipeline uses.
    DataTypes.FIELD("event_time", DataTypes.BIGINT()),
    DataTypes.FIELD("user_id", DataTypes.STRING()),
    DataTypes.FIELD("session_id", DataTypes.STRING()),
    DataTypes.FIELD("request_id", DataTypes.STRING()),
    DataTypes.FIELD("query", DataTypes.STRING()),
    DataTypes.FIELD("items", DataTypes.ARRAY(ITEM_TYPE)),
    DataTypes.FIELD("item_id", DataTypes.STRING()),
    DataTypes.FIELD("price", DataTypes.DOUBLE()),
    DataTypes.FIELD("quantity", DataTypes.DOUBLE()),
    DataTypes.FIELD("category", DataTypes.STRING()),
    DataTypes.FIELD("brand", DataTypes.STRING()),
    DataTypes.FIELD("device", DataTypes.STRING()),
    DataTypes.FIELD("platform", DataTypes.STRING()),
])
_HEAD_COLUMNS = ("event_id", "type", "ts")
_EVENT_COLUMNS = ("user_id", "session_id", "request_id", "query")
_TAIL_COLUMNS = ("item_id", "price", "quantity", "category", "brand", "device", "platform")
# items is an empty array, never NULL: thread mode (pemja) cannot convert a NULL array.
_NO_EVENT = (None,) * (len(_HEAD_COLUMNS) + 1 + len(_EVENT_COLUMNS)) + ([],) + (None,) * len(_TAIL_COLUMNS)


def _float(value):
    return None if value is None else float(value)


def _epoch_ms(moment) -> int | None:
    """CURRENT_WATERMARK arrives as a datetime (None before the first watermark)."""
    if moment is None:
        return None
    if moment.tzinfo is None:  # TIMESTAMP_LTZ is rendered in the session zone, which the job sets to UTC
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


class ValidateEvent(ScalarFunction):
    """raw bytes + Kafka position + current watermark -> checked row."""

    def __init__(self, config: ValidationConfig):
        self.config = config

    def open(self, function_context):
        group = function_context.get_metric_group().add_group("freshrank")
        self.events_in = group.counter("events_in")
        self.events_valid = group.counter("events_valid")
        self.events_dead_lettered = group.counter("events_dead_lettered")
        # One counter per reason code, created up front so every code shows in the web UI at 0.
        reasons = group.add_group("dlq_reason")
        self.by_reason = {code: reasons.counter(code) for code in REASON_CODES}

    def eval(self, value, topic, partition, offset, watermark):
        self.events_in.inc()
        now_ms = int(time.time() * 1000)
        watermark_ms = _epoch_ms(watermark)
        verdict = validate(value, now_ms=now_ms, watermark_ms=watermark_ms, config=self.config)
        if verdict.event is None:
            self.events_dead_lettered.inc()
            self.by_reason[verdict.reason.value].inc()
            record = to_dlq_record(value, verdict.reason, verdict.detail, source_topic=topic,
                                   partition=partition, offset=offset, ingest_ms=now_ms, config=self.config)
            return Row(False, json.dumps(record, ensure_ascii=False), *_NO_EVENT)
        self.events_valid.inc()
        event = verdict.event
        items = [Row(i["item_id"], i["position"], _float(i.get("price")), i.get("category"), i.get("brand"))
                 for i in event.get("items") or ()]
        # An event behind the watermark but within the allowed lateness enters event time at the
        # watermark: windows downstream would otherwise drop it silently as late.
        event_time = event["ts"] if watermark_ms is None else max(event["ts"], watermark_ms)
        return Row(True, None, *(event.get(c) for c in _HEAD_COLUMNS), event_time,
                   *(event.get(c) for c in _EVENT_COLUMNS), items,
                   event.get("item_id"), _float(event.get("price")), _float(event.get("quantity")),
                   *(event.get(c) for c in _TAIL_COLUMNS[3:]))


def validate_event_udf(config: ValidationConfig):
    return udf(ValidateEvent(config), result_type=CHECKED_TYPE)


class CountDuplicate(ScalarFunction):
    """Counts the copies deduplication removed (only they reach this function)."""

    def open(self, function_context):
        self.events_duplicate = function_context.get_metric_group().add_group("freshrank").counter("events_duplicate")

    def eval(self, event_id):
        self.events_duplicate.inc()
        return event_id


def count_duplicate_udf():
    return udf(CountDuplicate(), result_type=DataTypes.STRING())
