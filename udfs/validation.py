"""Validate and clean one raw Kafka record into a canonical event (event contract v1).

``validate`` never raises: every input ends as either a clean event or a
rejection with a ``Reason``. It runs in the job for every raw record (through
``validate_columnar``, batch by batch), so the happy path is cheap twice over:

* ``udfs.fast_path`` first: one typed msgspec parse that vouches for an event
  needing no repair, or declines (it never rejects).
* Otherwise the exact path here, which alone gives verdicts and details: one JSON
  parse (orjson when installed, else the stdlib), then per field an inline check
  that takes an already-clean value as it is (the readers in ``udfs.fields`` run
  only for values that need a repair or a verdict), an impression's items checked
  a whole column at a time, and no depth walk for a document whose every key was
  read; errors travel as exceptions because they are the rare path.

Checks run in a fixed order and the first failure wins: payload (empty, size,
UTF-8, JSON, NaN/Infinity, depth, object), then the fields in contract order
(event_id, type, ts, user_id, session_id, request_id, query, items, item_id,
price, quantity, category, brand, device, platform).
"""

from __future__ import annotations

import json
import sys
from operator import itemgetter
from typing import Any, NamedTuple

try:  # orjson (pinned in pyproject.toml; apache-beam needs it too) parses ~3x faster than json.
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - the stdlib path alone gives the same verdicts
    _fast_loads = None

from udfs.config import DEFAULT_CONFIG, ValidationConfig
from udfs.contract import CLEAN_EVENT_FIELDS, CLEAN_ITEM_FIELDS, EVENT_TYPES
from udfs.contract import LABEL_TYPES as _LABEL_TYPES
from udfs.contract import PAGE_TYPES as _PAGE_TYPES
from udfs.dlq import to_dlq_record
from udfs.fast_path import vouch
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
from udfs.text import normalize_query

__all__ = [
    "CLEAN_EVENT_FIELDS",
    "CLEAN_ITEM_FIELDS",
    "EVENT_TYPES",
    "Verdict",
    "ItemColumns",
    "to_dlq_record",
    "to_json",
    "validate",
    "validate_columnar",
]


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


# Verdict(...) runs a Python-level __new__; the accepted path, once per record, skips it.
_new_verdict = tuple.__new__


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
    verdict = validate_columnar(raw, now_ms=now_ms, watermark_ms=watermark_ms, config=config)
    event = verdict.event
    if event is not None and event["items"] is not None:
        event["items"] = [
            {"item_id": item_id, "position": position, "price": price, "category": category, "brand": brand}
            for item_id, position, price, category, brand in zip(*event["items"])
        ]
    return verdict


ItemColumns = tuple  # (item_ids, positions, prices, categories, brands): five sequences, one entry per item


def validate_columnar(
    raw: bytes | bytearray | memoryview | str | None,
    *,
    now_ms: int,
    watermark_ms: int | None = None,
    config: ValidationConfig = DEFAULT_CONFIG,
) -> Verdict:
    """``validate``, but an impression's clean ``items`` are ``ItemColumns``: five sequences
    (item_id, position, price, category, brand values, in display order) instead of one
    dict per item. Same verdicts, same values; what a columnar consumer (the Flink UDF,
    which ships items as parallel arrays) wants without building the dicts."""
    if _vouch is not None and type(raw) is bytes and 0 < len(raw) <= config.max_record_bytes:
        event = _vouch(raw, now_ms, watermark_ms, config, _clean_labels(config.max_string_len))
        if event is not None:
            return _new_verdict(Verdict, (event, None, ""))
    try:
        document, depth_checked = _decode(raw, config)
        try:
            event, shallow = _clean_event(document, now_ms, watermark_ms, config)
        except Exception:
            # The depth check comes before the fields: a too-deep document is TOO_DEEP,
            # whatever its fields say.
            if not depth_checked:
                _check_depth(raw, document, config)
            raise
        if not (depth_checked or shallow):
            _check_depth(raw, document, config)
        return _new_verdict(Verdict, (event, None, ""))
    except FieldError as error:
        return Verdict(None, error.reason, _cap(error.detail, config))
    except RecursionError:
        return Verdict(None, Reason.TOO_DEEP, "nesting too deep for the JSON parser")
    except Exception as error:  # a bug in this module must dead-letter one record, not kill the job
        return Verdict(None, Reason.INTERNAL_ERROR, _cap(f"{type(error).__name__}: {error}", config))


# The fast path in use (None: every record takes the exact path). Module-wide, like the label cache.
_vouch = vouch


def use_fast_path(enabled: bool) -> None:
    """Turn the msgspec fast path on (the default) or off in this process. Verdicts are the same
    either way; off is the peer bench.validation measures the fast path against."""
    global _vouch
    _vouch = vouch if enabled else None


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


def _decode(raw: object, config: ValidationConfig) -> tuple[Any, bool]:
    """Parse the payload into a JSON value, or raise the payload-level reason; and say
    whether the depth check was done.

    The fast path leaves the depth check to the caller (``validate_columnar``): a clean
    event whose fields were all read needs none, since the validator saw every
    container in it.

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
            return _fast_loads(raw), False
        except Exception:
            return _decode_precisely(raw, config), True
    return _decode_precisely(raw, config), True


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


# Top-level keys the validator reads (and so type-checks) for an impression and for any
# other event: a document with no other key has no container but ``items``.
_EVENT_KEYS = frozenset(CLEAN_EVENT_FIELDS) - {"items"}
_IMPRESSION_KEYS = frozenset(CLEAN_EVENT_FIELDS)


def _clean_event(doc: Any, now_ms: int, watermark_ms: int | None,
                 config: ValidationConfig) -> tuple[dict[str, Any], bool]:
    """The clean event (items as ItemColumns), and whether its nesting is known to be within
    limits without a depth check.

    The fields in contract order, each with an inline fast path for the well-formed value.
    A fast path only ever accepts a value its reader would return unchanged; anything else
    (absent, wrong type, needs a repair, breaks a limit) goes to the reader, which repairs it
    or raises. So verdicts and details are the readers' and the first failing field still wins.
    """
    if type(doc) is not dict:
        raise FieldError(Reason.NOT_OBJECT, f"document is a JSON {json_type(doc)}, not an object")
    get = doc.get
    max_id = config.max_id_len
    max_label = config.max_string_len
    labels = _clean_labels(max_label)

    # Ids: a clean id is a non-empty printable string without surrounding spaces. `strip() is
    # value` holds only when nothing was stripped (CPython returns the same object); were it
    # ever a copy, the reader would take the value instead and return the same verdict.
    event_id = get("event_id")
    if type(event_id) is not str or not (
            0 < len(event_id) <= max_id and event_id.isprintable() and event_id.strip() is event_id):
        event_id = read_id(event_id, "event_id", max_id, required=True)
    event_type = get("type")
    if type(event_type) is not str or event_type not in EVENT_TYPES:
        event_type = _read_type(event_type)
    ts = get("ts")
    if type(ts) is not int or not config.min_ts_ms <= ts <= now_ms + config.max_future_skew_ms or (
            watermark_ms is not None and ts < watermark_ms - config.allowed_lateness_ms):
        ts = _read_ts(ts, now_ms, watermark_ms, config)
    user_id = get("user_id")
    if type(user_id) is not str or not (
            0 < len(user_id) <= max_id and user_id.isprintable() and user_id.strip() is user_id):
        user_id = read_id(user_id, "user_id", max_id, required=True)
    session_id = get("session_id")
    if session_id is not None and (type(session_id) is not str or not (
            0 < len(session_id) <= max_id and session_id.isprintable() and session_id.strip() is session_id)):
        session_id = read_id(session_id, "session_id", max_id, required=False)
    is_page = event_type in _PAGE_TYPES
    request_id = get("request_id")
    if type(request_id) is not str or not (
            0 < len(request_id) <= max_id and request_id.isprintable() and request_id.strip() is request_id):
        request_id = read_id(request_id, "request_id", max_id, required=is_page)
    query = get("query")
    if type(query) is str and len(query) <= config.max_query_len:
        query = normalize_query(query, config.max_query_len)
    else:
        query = read_query(query, "query", config.max_query_len, required=is_page)
    if event_type == "impression":
        items, shallow = _read_items(get("items"), config, labels)
        keys = _IMPRESSION_KEYS
    else:
        items, shallow, keys = None, True, _EVENT_KEYS
    item_id = get("item_id")
    if type(item_id) is not str or not (
            0 < len(item_id) <= max_id and item_id.isprintable() and item_id.strip() is item_id):
        item_id = read_id(item_id, "item_id", max_id, required=event_type in _LABEL_TYPES)
    price = read_price(get("price"), "price")
    quantity = get("quantity")
    if quantity is not None:
        quantity = read_quantity(quantity, "quantity")
    # Labels: known clean ones (see _CLEAN_LABELS) are kept as they are.
    category = get("category")
    if category is not None and not (type(category) is str and category in labels):
        category = _read_label(category, "category", max_label, labels)
    brand = get("brand")
    if brand is not None and not (type(brand) is str and brand in labels):
        brand = _read_label(brand, "brand", max_label, labels)
    device = get("device")
    if device is not None and not (type(device) is str and device in labels):
        device = _read_label(device, "device", max_label, labels)
    platform = get("platform")
    if platform is not None and not (type(platform) is str and platform in labels):
        platform = _read_label(platform, "platform", max_label, labels)
    event = {
        "event_id": event_id,
        "type": event_type,
        "ts": ts,
        "user_id": user_id,
        "session_id": session_id,
        "request_id": request_id,
        "query": query,
        "items": items,
        "item_id": item_id,
        "price": price,
        "quantity": quantity,
        "category": category,
        "brand": brand,
        "device": device,
        "platform": platform,
    }
    # Every field read above came back a scalar (or the items, checked themselves), so with
    # no other key at the top the document nests at most root > items > item: 3 <= max_depth.
    return event, shallow and doc.keys() <= keys


# Labels known to be clean (read_label returns them unchanged), one set per length limit, with
# None (an absent label is fine too): labels repeat heavily (a catalogue's categories and
# brands, a few devices), so one set lookup replaces a reader call, and for an impression one
# issuperset call vouches for a whole column. Bounded: a full set starts over.
_CLEAN_LABELS: dict[int, set[str | None]] = {}
_CLEAN_LABELS_MAX = 16_384


def _clean_labels(max_len: int) -> set[str | None]:
    # get first: setdefault would build a new set on every call just to discard it.
    return _CLEAN_LABELS.get(max_len) or _CLEAN_LABELS.setdefault(max_len, {None})


def _read_label(value: object, path: str, max_len: int, clean: set[str | None]) -> str | None:
    """``read_label``, remembering a string that is already clean for the fast path."""
    label = read_label(value, path, max_len)
    if label is not None and label == value and type(value) is str:
        if len(clean) >= _CLEAN_LABELS_MAX:
            clean.clear()
            clean.add(None)
        clean.add(value)
    return label


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


_INT_ONLY = {int}
_FLOAT_ONLY = {float}
# One C call reads the five fields of an item: KeyError if one is absent, TypeError if the
# item is not an object.
_ITEM_FIELDS = itemgetter(*CLEAN_ITEM_FIELDS)


def _read_items(value: object, config: ValidationConfig, labels: set[str | None]) -> tuple[ItemColumns, bool]:
    """An impression's items as ItemColumns, and whether the items contain no container.

    The hottest part of validation (an impression lists tens of items), so the common case,
    where every item has its five fields and is already clean, is checked a whole column at a
    time with C-level built-ins. Whatever that cannot vouch for goes item by item through the
    readers, which alone decide verdicts and details.
    """
    if value is None:
        raise FieldError(Reason.MISSING_FIELD, "items is required for an impression and is missing or null")
    if type(value) is not list:
        raise FieldError(Reason.WRONG_TYPE, f"items must be an array, got {json_type(value)}")
    if not value:
        raise FieldError(Reason.MISSING_FIELD, "items is empty; an impression shows at least one item")
    count = len(value)
    if count > config.max_items:
        raise FieldError(Reason.TOO_MANY_ITEMS, f"items has {count} entries, limit {config.max_items}")
    try:
        columns = item_ids, positions, prices, categories, brands = tuple(zip(*map(_ITEM_FIELDS, value)))
        # ids: strings (else join fails), non-empty, printable, no space at all (so none to
        # trim), within the limit (the total length bounds each one).
        joined = "".join(item_ids)
        if (
            joined.isprintable() and " " not in joined and "" not in item_ids
            and (len(joined) <= config.max_id_len or max(map(len, item_ids)) <= config.max_id_len)
            # positions: integers in range, no repeats
            and set(map(type, positions)) == _INT_ONLY
            and 1 <= min(positions) and max(positions) <= config.max_position
            and len(set(positions)) == count
            # prices: non-negative floats with a finite sum (so each is finite, and none is NaN)
            and set(map(type, prices)) == _FLOAT_ONLY
            and 0.0 <= min(prices) and sum(prices) <= _MAX_FLOAT
            # labels: known clean or null (TypeError if one is unhashable)
            and labels.issuperset(categories) and labels.issuperset(brands)
        ):
            # Shallow when no item has a key but the five (whose values are scalars, as checked).
            return columns, sum(map(len, value)) == 5 * count
    except (KeyError, TypeError):  # an item that is not an object or lacks a field, an id that is not a string...
        pass
    return _read_items_one_by_one(value, config, labels), False


def _read_items_one_by_one(value: list, config: ValidationConfig, labels: set[str | None]) -> ItemColumns:
    max_id = config.max_id_len
    max_label = config.max_string_len
    max_position = config.max_position
    item_ids: list[str] = []
    positions: list[int] = []
    prices: list[float | None] = []
    categories: list[str | None] = []
    brands: list[str | None] = []
    seen: set[int] = set()
    for index, raw_item in enumerate(value):
        if type(raw_item) is not dict:
            raise FieldError(Reason.WRONG_TYPE, f"items[{index}] must be an object, got {json_type(raw_item)}")
        get = raw_item.get
        try:
            item_id = get("item_id")
            if type(item_id) is not str or not (
                    0 < len(item_id) <= max_id and item_id.isprintable() and item_id.strip() is item_id):
                item_id = read_id(item_id, "item_id", max_id, required=True)
            position = get("position")
            if type(position) is not int or not 1 <= position <= max_position:
                position = _read_position(position, index, config)
            price = get("price")
            if type(price) is not float or not 0.0 <= price <= _MAX_FLOAT:
                price = read_price(price, "price")
            category = get("category")
            if category is not None and not (type(category) is str and category in labels):
                category = _read_label(category, "category", max_label, labels)
            brand = get("brand")
            if brand is not None and not (type(brand) is str and brand in labels):
                brand = _read_label(brand, "brand", max_label, labels)
        except FieldError as error:
            # Item readers name the field only; the index is added here, off the happy path.
            raise FieldError(error.reason, f"items[{index}].{error.detail}") from None
        if position in seen:
            # <event_id>:<position> identifies a training example, so positions must be unique.
            raise FieldError(Reason.BAD_POSITION, f"items[{index}].position {position} repeats an earlier item")
        seen.add(position)
        item_ids.append(item_id)
        positions.append(position)
        prices.append(price)
        categories.append(category)
        brands.append(brand)
    return item_ids, positions, prices, categories, brands


def _read_position(value: object, index: int, config: ValidationConfig) -> int:
    if value is None:
        return index + 1  # repair: the result list is in display order
    position = read_integer(value, "position")
    if not 1 <= position <= config.max_position:
        raise FieldError(Reason.BAD_POSITION, f"position is {position}, must be in [1, {config.max_position}]")
    return position
