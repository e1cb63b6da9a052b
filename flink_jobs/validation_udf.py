"""The validator as a vectorised (pandas) Table API function, with its metrics.

Flink hands the function a batch of raw records as pandas Series over Arrow (up to
`python.fn-execution.arrow.batch.size` rows) and takes back one pandas DataFrame: per record
the clean event's columns when `ok`, otherwise the dead-letter record as JSON in `dlq`. Per
record, only `udfs.validation.validate` runs in Python; the hop between the JVM and Python is
one Arrow batch each way instead of one pickled row each way, which cost more than the
validation itself. It is applied with Table.map, so it runs exactly once per record (a SQL
projection of a ROW-valued UDF could be expanded into one call per field).

Flink cuts the batches at `python.fn-execution.arrow.batch.size` rows, and a bundle ends a batch
early: the job raises both to ARROW_BATCH_SIZE (from PyFlink's 1,000; see `python_options`), since
part of the per-batch cost (one pandas Series and one Arrow array per column each way, one Beam
bundle with its metric report) does not grow with the rows.

PyFlink's Arrow conversion does not take an ARRAY of ROWs, so an impression's items travel as
five parallel arrays (`item_ids`, `item_positions`, ...; element k of each is item k); SQL
unnests them with `UNNEST(item_ids) WITH ORDINALITY` and indexes the others.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any, Sequence

from pyflink.table import DataTypes
from pyflink.table.udf import ScalarFunction, udf

from udfs.config import ValidationConfig
from udfs.dlq import to_dlq_record
from udfs.reasons import REASON_CODES
from udfs.validation import validate_columnar

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
    # An impression's items, one array per item field (empty for other events).
    DataTypes.FIELD("item_ids", DataTypes.ARRAY(DataTypes.STRING())),
    DataTypes.FIELD("item_positions", DataTypes.ARRAY(DataTypes.INT())),
    DataTypes.FIELD("item_prices", DataTypes.ARRAY(DataTypes.DOUBLE())),
    DataTypes.FIELD("item_categories", DataTypes.ARRAY(DataTypes.STRING())),
    DataTypes.FIELD("item_brands", DataTypes.ARRAY(DataTypes.STRING())),
    DataTypes.FIELD("item_id", DataTypes.STRING()),
    DataTypes.FIELD("price", DataTypes.DOUBLE()),
    DataTypes.FIELD("quantity", DataTypes.DOUBLE()),
    DataTypes.FIELD("category", DataTypes.STRING()),
    DataTypes.FIELD("brand", DataTypes.STRING()),
    DataTypes.FIELD("device", DataTypes.STRING()),
    DataTypes.FIELD("platform", DataTypes.STRING()),
])
CHECKED_COLUMNS: tuple[str, ...] = tuple(CHECKED_TYPE.field_names())
ITEM_COLUMNS = ("item_ids", "item_positions", "item_prices", "item_categories", "item_brands")

# Rows per Arrow batch and per Python bundle. A batch spans at most python.fn-execution.bundle.time
# (1 s by default) whatever its size, so latency stays bounded at low rates.
ARROW_BATCH_SIZE = 5_000


def python_options() -> dict[str, str]:
    """Flink options for the job's Python functions (they apply to every Python operator: the
    training operator's records are micro-batches, so its bundles end on bundle.time anyway)."""
    return {"python.fn-execution.arrow.batch.size": str(ARROW_BATCH_SIZE),
            "python.fn-execution.bundle.size": str(ARROW_BATCH_SIZE)}


_NO_ITEMS: tuple[list, ...] = ([],) * len(ITEM_COLUMNS)
_NO_EVENT_HEAD = (None,) * 8  # event_id .. query
_NO_EVENT_TAIL = (None,) * 7  # item_id .. platform


def check_batch(values: Sequence[Any], watermarks_ms: Sequence[int | None], now_ms: int,
                config: ValidationConfig, dlq_position) -> tuple[list[tuple], Counter]:
    """Validate a batch of raw records into rows of CHECKED_TYPE (tuples, in column order).

    ``dlq_position(i)`` gives record i's (topic, partition, offset), asked only for rejects.
    Returns the rows and the rejections counted by reason code. Flink-free, for tests.
    """
    rows: list[tuple] = []
    append = rows.append
    rejected: Counter = Counter()
    no_items = _NO_ITEMS
    for index, raw in enumerate(values):
        watermark_ms = watermarks_ms[index]
        event, reason, detail = validate_columnar(raw, now_ms=now_ms, watermark_ms=watermark_ms, config=config)
        if event is None:
            rejected[reason.value] += 1
            topic, partition, offset = dlq_position(index)
            record = to_dlq_record(raw, reason, detail, source_topic=topic, partition=partition,
                                   offset=offset, ingest_ms=now_ms, config=config)
            append((False, json.dumps(record, ensure_ascii=False), *_NO_EVENT_HEAD, *no_items,
                    *_NO_EVENT_TAIL))
            continue
        (event_id, event_type, ts, user_id, session_id, request_id, query, items,
         item_id, price, quantity, category, brand, device, platform) = event.values()
        # An event behind the watermark but within the allowed lateness enters event time at the
        # watermark: windows downstream would otherwise drop it silently as late.
        event_time = ts if watermark_ms is None or ts >= watermark_ms else watermark_ms
        append((True, None, event_id, event_type, ts, event_time, user_id, session_id, request_id, query,
                *(items or no_items), item_id, price, quantity, category, brand, device, platform))
    return rows, rejected


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
    """raw bytes + Kafka position + current watermark, as pandas Series -> checked rows, as a DataFrame."""

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
        import pandas as pd

        def dlq_position(index: int) -> tuple[str, int, int]:
            return topic.iat[index], int(partition.iat[index]), int(offset.iat[index])

        # The wall clock, for the future-skew check and the dead letters' ingest_ms, is read once
        # per batch: a batch spans at most python.fn-execution.bundle.time (1 s by default).
        now_ms = int(time.time() * 1000)
        rows, rejected = check_batch(value.tolist(), epoch_ms_column(watermark), now_ms, self.config, dlq_position)
        dead = sum(rejected.values())
        self.events_in.inc(len(rows))
        self.events_valid.inc(len(rows) - dead)
        if dead:
            self.events_dead_lettered.inc(dead)
            for code, count in rejected.items():
                self.by_reason[code].inc(count)
        # Object columns, no type inference: cheaper, and ts stays an exact integer where a
        # column with a null would be inferred as float.
        return pd.DataFrame(rows, columns=CHECKED_COLUMNS, dtype=object)


def validate_event_udf(config: ValidationConfig):
    return udf(ValidateEvents(config), result_type=CHECKED_TYPE, func_type="pandas")


class CountDuplicate(ScalarFunction):
    """Counts the copies deduplication removed (only they reach this function)."""

    def open(self, function_context):
        self.events_duplicate = function_context.get_metric_group().add_group("freshrank").counter("events_duplicate")

    def eval(self, event_id):
        self.events_duplicate.inc()
        return event_id


def count_duplicate_udf():
    return udf(CountDuplicate(), result_type=DataTypes.STRING())
