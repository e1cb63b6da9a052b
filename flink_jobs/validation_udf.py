"""The validator as a vectorised (pandas) Table API function, with its metrics.

Flink hands the function a batch of raw records as pandas Series over Arrow (up to
`python.fn-execution.arrow.batch.size` rows) and takes back one pandas DataFrame: per record
`ok`, its event time and one JSON text, the clean-topic record (udfs.clean_record) when `ok`, else
the dead-letter record. Per record, only `udfs.validation.validate_columnar` and one JSON encoding
run in Python; the hop between the JVM and Python is one Arrow batch each way.

Most records never reach Python: vouch_event (udfs/jvm/, the validator's fast path in the JVM)
writes the clean-topic record of an event that needs no repair, and the function then gets only a
`vouched` flag for it (its value comes as null) and answers `ok` without a record. It still sees
every record, in order: it counts them all, and marks each batch's first row with the watermark.

It is called in a SQL projection, where Flink keeps the columns the function does not read (the
Kafka partition, vouch_event's record) on the JVM side and joins them back to its answers in order.
The row is narrow on purpose. A typed row with the event's 22 columns (five of them item arrays)
cost more than validation itself: Arrow conversion of the list columns in Python, and a copy of
the wide row at every chained JVM operator. The clean event travels as text to the clean topic,
where Flink's JSON format types it again in the JVM, once (docs/design.md).
"""
from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any, Sequence

from pyflink.table import DataTypes
from pyflink.table.udf import ScalarFunction, udf

from udfs.clean_record import to_clean_record
from udfs.config import ValidationConfig
from udfs.dlq import to_dlq_record
from udfs.reasons import REASON_CODES
from udfs.validation import use_fast_path, validate_columnar

CHECKED_TYPE = DataTypes.ROW([
    DataTypes.FIELD("ok", DataTypes.BOOLEAN()),
    # ts, or the watermark the event arrived behind: what the event-time pipeline uses. Null for
    # a dead letter, and for a record vouch_event wrote (it gives the event time itself).
    DataTypes.FIELD("event_time", DataTypes.BIGINT()),
    # The clean-topic record when ok, else the dead-letter record (both JSON); null for a record
    # vouch_event wrote.
    DataTypes.FIELD("record", DataTypes.STRING()),
    # On a batch's first row only: the watermark it arrived behind, which the job also writes to
    # every clean partition as a marker (flink_jobs/clean_topic.py). Null elsewhere.
    DataTypes.FIELD("batch_watermark", DataTypes.BIGINT()),
])
CHECKED_COLUMNS: tuple[str, ...] = tuple(CHECKED_TYPE.field_names())

# Rows per Arrow batch, and per Python bundle. Python works on batch k while the JVM fills batch
# k + 1, and the JVM waits for Python only at the end of a bundle: a bundle of many batches keeps
# both sides busy (one batch per bundle ran them in turn: 26k events/s against 41k). A bundle
# spans at most python.fn-execution.bundle.time (1 s by default) whatever its size, so latency
# stays bounded at low rates, and a checkpoint barrier ends it too.
ARROW_BATCH_SIZE = 2_500
BUNDLE_SIZE = 50_000


def python_options() -> dict[str, str]:
    """Flink options for the job's Python functions (they apply to every Python operator: the
    training operator's records are micro-batches, so its bundles end on bundle.time anyway)."""
    return {"python.fn-execution.arrow.batch.size": str(ARROW_BATCH_SIZE),
            "python.fn-execution.bundle.size": str(BUNDLE_SIZE)}


def check_batch(values: Sequence[Any], vouched: Sequence[bool] | None, watermarks_ms: Sequence[int | None],
                now_ms: int, config: ValidationConfig, dlq_position,
                mark_batch: bool = True) -> tuple[list[tuple], Counter]:
    """Validate a batch of raw records into rows of CHECKED_TYPE (tuples, in column order).

    ``vouched[i]`` says that vouch_event accepted record i and wrote its record (None: none
    did); ``dlq_position(i)`` gives its (topic, partition, offset), asked only for rejects. With
    ``mark_batch``, the first row carries the first record's watermark as ``batch_watermark``.
    Returns the rows and the rejections counted by reason code. Flink-free, for tests.
    """
    rows: list[tuple] = []
    append = rows.append
    rejected: Counter = Counter()
    for index, raw in enumerate(values):
        if vouched is not None and vouched[index]:
            append(_VOUCHED_ROW)
            continue
        watermark_ms = watermarks_ms[index]
        event, reason, detail = validate_columnar(raw, now_ms=now_ms, watermark_ms=watermark_ms, config=config)
        if event is None:
            rejected[reason.value] += 1
            topic, partition, offset = dlq_position(index)
            record = to_dlq_record(raw, reason, detail, source_topic=topic, partition=partition,
                                   offset=offset, ingest_ms=now_ms, config=config)
            append((False, None, json.dumps(record, ensure_ascii=False), None))
            continue
        ts = event["ts"]
        # An event behind the watermark but within the allowed lateness enters event time at the
        # watermark: windows downstream would otherwise drop it silently as late.
        event_time = ts if watermark_ms is None or ts >= watermark_ms else watermark_ms
        append((True, event_time, to_clean_record(event, event_time), None))
    if mark_batch and rows and watermarks_ms[0] is not None:
        rows[0] = (*rows[0][:-1], watermarks_ms[0])
    return rows, rejected


_VOUCHED_ROW = (True, None, None, None)


def epoch_ms_column(watermark) -> list[int | None]:
    """CURRENT_WATERMARK arrives as a tz-aware datetime Series, NaT before the first watermark."""
    import pandas as pd

    stamps = watermark if isinstance(watermark.dtype, pd.DatetimeTZDtype) else pd.to_datetime(watermark, utc=True)
    millis = stamps.dt.as_unit("ms").array.asi8.tolist()
    if stamps.hasnans:
        missing = stamps.isna().tolist()
        return [None if gap else ms for ms, gap in zip(millis, missing)]
    return millis


class ValidateEvents(ScalarFunction):
    """raw bytes (null where vouched) + vouched flag + Kafka position + current watermark, as
    pandas Series -> checked rows, as a DataFrame."""

    def __init__(self, config: ValidationConfig, mark_batches: bool = True, fast_path: bool = True):
        self.config = config
        self.mark_batches = mark_batches
        self.fast_path = fast_path  # False: the exact path alone (bench.validation's peer)

    def is_deterministic(self) -> bool:
        return False  # it reads the wall clock, and the planner must not call it twice for a row

    def open(self, function_context):
        use_fast_path(self.fast_path)
        group = function_context.get_metric_group().add_group("freshrank")
        self.events_in = group.counter("events_in")
        self.events_valid = group.counter("events_valid")
        self.events_dead_lettered = group.counter("events_dead_lettered")
        # One counter per reason code, created up front so every code shows in the web UI at 0.
        reasons = group.add_group("dlq_reason")
        self.by_reason = {code: reasons.counter(code) for code in REASON_CODES}

    def eval(self, value, vouched, topic, partition, offset, watermark):
        import pandas as pd

        def dlq_position(index: int) -> tuple[str, int, int]:
            return topic.iat[index], int(partition.iat[index]), int(offset.iat[index])

        # The wall clock, for the future-skew check and the dead letters' ingest_ms, is read once
        # per batch: a batch spans at most python.fn-execution.bundle.time (1 s by default).
        now_ms = int(time.time() * 1000)
        # Without vouch_event in the plan the flag is a constant false, which comes as a scalar.
        vouched = vouched.tolist() if not isinstance(vouched, bool) and vouched.any() else None
        rows, rejected = check_batch(value.tolist(), vouched, epoch_ms_column(watermark), now_ms,
                                     self.config, dlq_position, self.mark_batches)
        dead = sum(rejected.values())
        self.events_in.inc(len(rows))
        self.events_valid.inc(len(rows) - dead)
        if dead:
            self.events_dead_lettered.inc(dead)
            for code, count in rejected.items():
                self.by_reason[code].inc(count)
        # Object columns, no type inference: cheaper, and event_time stays an exact integer where
        # a column with a null would be inferred as float.
        return pd.DataFrame(rows, columns=CHECKED_COLUMNS, dtype=object)


def validate_event_udf(config: ValidationConfig, mark_batches: bool = True, fast_path: bool = True):
    return udf(ValidateEvents(config, mark_batches, fast_path), result_type=CHECKED_TYPE, func_type="pandas")


class CountDuplicate(ScalarFunction):
    """Counts the copies deduplication removed (only they reach this function)."""

    def open(self, function_context):
        self.events_duplicate = function_context.get_metric_group().add_group("freshrank").counter("events_duplicate")

    def eval(self, event_id):
        self.events_duplicate.inc()
        return event_id


def count_duplicate_udf():
    return udf(CountDuplicate(), result_type=DataTypes.STRING())
