"""Validate and clean one raw Kafka record into a canonical event (event contract v1).

``validate`` never raises: every input ends as either a clean event or a
rejection with a ``Reason``. It runs inside a PyFlink scalar UDF at ~10^5
records/s, so the happy path is one JSON parse (orjson when installed, else
the stdlib), dict lookups and cheap type checks; errors travel as exceptions
because they are the rare path.

Checks run in a fixed order and the first failure wins: payload (empty, size,
UTF-8, JSON, NaN/Infinity, depth, object), then the fields in contract order
(event_id, type, ts, user_id, session_id, request_id, query, items, item_id,
price, quantity, category, brand, device, platform).
"""

from __future__ import annotations

import json
import sys
from typing import Any, NamedTuple

try:  # orjson comes with PyFlink (via apache-beam); it parses ~3x faster than json.
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - the stdlib path alone gives the same verdicts
    _fast_loads = None

from udfs.config import DEFAULT_CONFIG, ValidationConfig
from udfs.dlq import to_dlq_record
from udfs.fields import (
    FieldError,
    json_type,
    preview,
    read_id,
    read_integer,
    read_label,
    read_price,
    read_quantity,
    read_query,
)
from udfs.reasons import Reason

__all__ = [
    "CLEAN_EVENT_FIELDS",
    "CLEAN_ITEM_FIELDS",
    "EVENT_TYPES",
    "Verdict",
    "to_dlq_record",
    "to_json",
    "validate",
]

EVENT_TYPES = frozenset({"search", "impression", "click", "add_to_cart", "purchase"})
# Events that carry a request_id and a query because they describe a result page.
_PAGE_TYPES = frozenset({"search", "impression"})
# Events that are labels for an item; request_id is optional for them (a label
# without one is attributed to the user's latest impression of that item).
_LABEL_TYPES = frozenset({"click", "add_to_cart", "purchase"})

# Keys of a clean event and of a clean impression item, in serialisation order.
CLEAN_EVENT_FIELDS = (
    "event_id", "type", "ts", "user_id", "session_id", "request_id", "query", "items",
    "item_id", "price", "quantity", "category", "brand", "device", "platform",
)
CLEAN_ITEM_FIELDS = ("item_id", "position", "price", "category", "brand")


class Verdict(NamedTuple):
    """Outcome of ``validate``: exactly one of ``event`` and ``reason`` is set.

    event:  the clean event (keys ``CLEAN_EVENT_FIELDS``) when accepted, else None.
    reason: why it was rejected, else None.
    detail: a human-readable explanation of the rejection, '' when accepted.
    """

    event: dict[str, Any] | None
    reason: Reason | None
    detail: str

    @property
    def ok(self) -> bool:
        return self.reason is None


def _reject_constant(name: str) -> None:
    raise FieldError(Reason.NOT_FINITE, f"{name} is not a JSON number")


# One decoder for all records: json.loads(s, **kwargs) would build a new one each call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def validate(
    raw: bytes | bytearray | memoryview | str | None,
    *,
    now_ms: int,
    watermark_ms: int | None = None,
    config: ValidationConfig = DEFAULT_CONFIG,
) -> Verdict:
    """Classify one raw record value. Never raises.

    Args:
        raw: the Kafka record value (bytes; str is accepted for convenience).
        now_ms: wall-clock time in epoch ms, for the future-skew check.
        watermark_ms: the current event-time watermark, or None to skip the lateness check.
        config: limits; the v1 defaults when omitted.
    """
    try:
        document = _decode(raw, config)
        return Verdict(_clean_event(document, now_ms, watermark_ms, config), None, "")
    except FieldError as error:
        return Verdict(None, error.reason, _cap(error.detail, config))
    except RecursionError:
        return Verdict(None, Reason.TOO_DEEP, "nesting too deep for the JSON parser")
    except Exception as error:  # a bug in this module must dead-letter one record, not kill the job
        return Verdict(None, Reason.INTERNAL_ERROR, _cap(f"{type(error).__name__}: {error}", config))


def to_json(event: dict[str, Any]) -> str:
    """Canonical compact JSON of a clean event (UTF-8 text, key order as built)."""
    return _ENCODER.encode(event)


def _cap(detail: str, config: ValidationConfig) -> str:
    """Bound the detail and make it safe to publish: a lone surrogate from an exception
    message would make the dead-letter record unencodable."""
    limit = config.dlq_detail_max_chars
    if len(detail) > limit:
        detail = detail[: limit - 3] + "..."
    return detail.encode("utf-8", "backslashreplace").decode("utf-8")


_MAX_FLOAT = sys.float_info.max


def _decode(raw: object, config: ValidationConfig) -> Any:
    """Parse the payload into a JSON value, or raise the payload-level reason.

    Fast path: orjson, which is strict (valid UTF-8, no NaN/Infinity, no lone
    surrogate escapes, no BOM), so whatever it accepts the stdlib path accepts with
    the same value. Anything it refuses goes through ``_decode_precisely``, which
    alone decides the verdict; verdicts therefore never depend on orjson's presence
    (a test checks this). orjson reads integers beyond 64 bits as floats, which no
    check can tell apart: such an id or label is out of range, such a number
    converts to the same float.
    """
    limit = config.max_record_bytes
    # A str counts characters, not bytes: only one that cannot exceed the limit in UTF-8 qualifies.
    if _fast_loads is not None and (
        (type(raw) is bytes and 0 < len(raw) <= limit) or (type(raw) is str and 0 < len(raw) * 4 <= limit)
    ):
        try:
            document = _fast_loads(raw)
        except Exception:
            return _decode_precisely(raw, config)
        _check_depth(raw, document, config)
        return document
    return _decode_precisely(raw, config)


def _decode_precisely(raw: object, config: ValidationConfig) -> Any:
    """Payload checks, cheapest and most memory-safe first: size before decoding anything."""
    limit = config.max_record_bytes
    if raw is None:
        raise FieldError(Reason.EMPTY, "record value is null")
    if type(raw) is str:
        # A character takes 1 to 4 UTF-8 bytes: encode only when the bounds cannot decide.
        if len(raw) > limit or (len(raw) * 4 > limit and len(raw.encode("utf-8", "surrogatepass")) > limit):
            raise FieldError(Reason.TOO_LARGE, f"record is over the {limit}-byte limit")
        text = raw
    elif isinstance(raw, (bytes, bytearray, memoryview)):
        if type(raw) is memoryview:
            raw = raw.tobytes()
        if len(raw) > limit:
            raise FieldError(Reason.TOO_LARGE, f"record is {len(raw)} bytes, limit {limit}")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise FieldError(Reason.NOT_UTF8, f"invalid UTF-8 at byte {error.start}: {error.reason}") from None
    else:
        raise FieldError(Reason.NOT_JSON, f"record value is a {type(raw).__name__}, not bytes")
    if not text:
        raise FieldError(Reason.EMPTY, "record value is empty")
    if text[0] == "\ufeff":  # a UTF-8 byte-order mark: RFC 8259 lets parsers ignore it
        text = text[1:]
    try:
        document = _DECODER.decode(text)
    except json.JSONDecodeError as error:
        raise FieldError(Reason.NOT_JSON, f"{error.msg} at line {error.lineno} column {error.colno}") from None
    except ValueError as error:  # e.g. an integer literal with more than 4300 digits
        raise FieldError(Reason.NOT_JSON, str(error)) from None
    _check_depth(text, document, config)
    return document


def _check_depth(text: str | bytes, document: Any, config: ValidationConfig) -> None:
    # Every nesting level needs a bracket, so a document with few brackets cannot be
    # too deep; only documents with many (large impressions) pay for the walk.
    brackets = (text.count("{") + text.count("[")) if type(text) is str else (text.count(b"{") + text.count(b"["))
    if brackets > config.max_depth and _nesting_exceeds(document, config.max_depth):
        raise FieldError(Reason.TOO_DEEP, f"nesting is deeper than {config.max_depth} levels")


def _nesting_exceeds(root: Any, limit: int) -> bool:
    """True when containers nest more than ``limit`` levels (the root container is level 1)."""
    if type(root) is not dict and type(root) is not list:
        return False
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in node.values() if type(node) is dict else node:
            if type(child) is dict or type(child) is list:
                stack.append((child, depth + 1))
    return False


def _clean_event(doc: Any, now_ms: int, watermark_ms: int | None, config: ValidationConfig) -> dict[str, Any]:
    if type(doc) is not dict:
        raise FieldError(Reason.NOT_OBJECT, f"document is a JSON {json_type(doc)}, not an object")
    get = doc.get
    max_id = config.max_id_len
    max_label = config.max_string_len

    event_id = read_id(get("event_id"), "event_id", max_id, required=True)
    event_type = _read_type(get("type"))
    ts = _read_ts(get("ts"), now_ms, watermark_ms, config)
    user_id = read_id(get("user_id"), "user_id", max_id, required=True)
    session_id = read_id(get("session_id"), "session_id", max_id, required=False)
    is_page = event_type in _PAGE_TYPES
    request_id = read_id(get("request_id"), "request_id", max_id, required=is_page)
    query = read_query(get("query"), "query", config.max_query_len, required=is_page)
    items = _read_items(get("items"), config) if event_type == "impression" else None
    item_id = read_id(get("item_id"), "item_id", max_id, required=event_type in _LABEL_TYPES)
    return {
        "event_id": event_id,
        "type": event_type,
        "ts": ts,
        "user_id": user_id,
        "session_id": session_id,
        "request_id": request_id,
        "query": query,
        "items": items,
        "item_id": item_id,
        "price": read_price(get("price"), "price"),
        "quantity": read_quantity(get("quantity"), "quantity"),
        "category": read_label(get("category"), "category", max_label),
        "brand": read_label(get("brand"), "brand", max_label),
        "device": read_label(get("device"), "device", max_label),
        "platform": read_label(get("platform"), "platform", max_label),
    }


def _read_type(value: object) -> str:
    if type(value) is str:
        if value in EVENT_TYPES:
            return value
        raise FieldError(Reason.BAD_ENUM, f"type {preview(value)} is not one of {', '.join(sorted(EVENT_TYPES))}")
    if value is None:
        raise FieldError(Reason.MISSING_FIELD, "type is required and is missing or null")
    shown = "" if type(value) is dict or type(value) is list else f" {preview(value)}"
    raise FieldError(Reason.WRONG_TYPE, f"type must be a string, got {json_type(value)}{shown}")


def _read_ts(value: object, now_ms: int, watermark_ms: int | None, config: ValidationConfig) -> int:
    if value is None:
        raise FieldError(Reason.MISSING_FIELD, "ts is required and is missing or null")
    ts = read_integer(value, "ts")
    if ts < config.min_ts_ms:
        raise FieldError(Reason.BAD_TS, f"ts {ts} is before {config.min_ts_ms} (seconds instead of ms?)")
    if ts > now_ms + config.max_future_skew_ms:
        raise FieldError(
            Reason.FUTURE_TS, f"ts {ts} is {ts - now_ms} ms ahead of now, limit {config.max_future_skew_ms}")
    if watermark_ms is not None and ts < watermark_ms - config.allowed_lateness_ms:
        raise FieldError(
            Reason.LATE_TS,
            f"ts {ts} is {watermark_ms - ts} ms behind the watermark, limit {config.allowed_lateness_ms}",
        )
    return ts


def _read_items(value: object, config: ValidationConfig) -> list[dict[str, Any]]:
    if value is None:
        raise FieldError(Reason.MISSING_FIELD, "items is required for an impression and is missing or null")
    if type(value) is not list:
        raise FieldError(Reason.WRONG_TYPE, f"items must be an array, got {json_type(value)}")
    if not value:
        raise FieldError(Reason.MISSING_FIELD, "items is empty; an impression shows at least one item")
    if len(value) > config.max_items:
        raise FieldError(Reason.TOO_MANY_ITEMS, f"items has {len(value)} entries, limit {config.max_items}")
    max_id = config.max_id_len
    max_label = config.max_string_len
    max_position = config.max_position
    items = []
    positions = set()
    # The hottest loop (an impression lists tens of items): plain in-range int positions
    # and finite non-negative float prices skip the reader call.
    for index, raw_item in enumerate(value):
        if type(raw_item) is not dict:
            raise FieldError(Reason.WRONG_TYPE, f"items[{index}] must be an object, got {json_type(raw_item)}")
        get = raw_item.get
        try:
            item_id = read_id(get("item_id"), "item_id", max_id, required=True)
            position = get("position")
            if type(position) is not int or not 1 <= position <= max_position:
                position = _read_position(position, index, config)
            price = get("price")
            if type(price) is not float or not 0.0 <= price <= _MAX_FLOAT:
                price = read_price(price, "price")
            item = {
                "item_id": item_id,
                "position": position,
                "price": price,
                "category": read_label(get("category"), "category", max_label),
                "brand": read_label(get("brand"), "brand", max_label),
            }
        except FieldError as error:
            # Item readers name the field only; the index is added here, off the happy path.
            raise FieldError(error.reason, f"items[{index}].{error.detail}") from None
        if item["position"] in positions:
            # <event_id>:<position> identifies a training example, so positions must be unique.
            raise FieldError(Reason.BAD_POSITION, f"items[{index}].position {item['position']} repeats an earlier item")
        positions.add(item["position"])
        items.append(item)
    return items


def _read_position(value: object, index: int, config: ValidationConfig) -> int:
    if value is None:
        return index + 1  # repair: the result list is in display order
    position = read_integer(value, "position")
    if not 1 <= position <= config.max_position:
        raise FieldError(Reason.BAD_POSITION, f"position is {position}, must be in [1, {config.max_position}]")
    return position
