"""Stable, machine-readable reasons a raw record is dead-lettered.

The string values are part of the public contract: they appear in dead-letter
records and in Flink metric names, so never rename or reuse one; add new codes
at the end instead.
"""

from __future__ import annotations

from enum import Enum


class Reason(str, Enum):
    """Why a record was rejected. ``Reason.X.value == "X"``; ``.description`` explains it."""

    description: str

    def __new__(cls, code: str, description: str) -> "Reason":
        member = str.__new__(cls, code)
        member._value_ = code
        member.description = description
        return member

    def __str__(self) -> str:  # str-mixin enums print as "Reason.X" on 3.11+; we want the code
        return self.value

    EMPTY = ("EMPTY", "the record value is null or zero bytes long (e.g. a Kafka tombstone)")
    TOO_LARGE = ("TOO_LARGE", "the record value is larger than max_record_bytes")
    NOT_UTF8 = ("NOT_UTF8", "the record value is not valid UTF-8")
    NOT_JSON = ("NOT_JSON", "the record value is not one complete JSON document (e.g. truncated)")
    NOT_FINITE = ("NOT_FINITE", "NaN or Infinity in the document, or a numeric field that is not finite")
    TOO_DEEP = ("TOO_DEEP", "the JSON nesting is deeper than max_depth")
    NOT_OBJECT = ("NOT_OBJECT", "the JSON document is not an object")
    MISSING_FIELD = ("MISSING_FIELD", "a field required for this event type is absent, null or empty")
    WRONG_TYPE = ("WRONG_TYPE", "a field has a JSON type that cannot be repaired into the contract type")
    BAD_ENUM = ("BAD_ENUM", "type is not one of search, impression, click, add_to_cart, purchase")
    TOO_LONG = ("TOO_LONG", "a string is longer than its limit")
    TOO_MANY_ITEMS = ("TOO_MANY_ITEMS", "an impression lists more than max_items items")
    BAD_CHARS = ("BAD_CHARS", "an id contains non-printable characters (control, format, surrogate...)")
    NEGATIVE_PRICE = ("NEGATIVE_PRICE", "a price is below zero")
    BAD_QUANTITY = ("BAD_QUANTITY", "quantity is zero or negative")
    BAD_POSITION = ("BAD_POSITION", "a position is below 1, above max_position, or repeated on one page")
    BAD_TS = ("BAD_TS", "ts is before min_ts_ms (often seconds sent instead of milliseconds)")
    FUTURE_TS = ("FUTURE_TS", "ts is further ahead of the wall clock than max_future_skew_ms")
    LATE_TS = ("LATE_TS", "ts is further behind the watermark than allowed_lateness_ms")
    INTERNAL_ERROR = ("INTERNAL_ERROR", "the validator itself failed; a bug, caught so the job keeps running")


REASON_CODES: tuple[str, ...] = tuple(reason.value for reason in Reason)
