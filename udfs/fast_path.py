"""The validator's fast path: one typed parse that vouches for an already-clean event.

Nearly every record in a live stream is a well-formed v1 event whose values need no repair. For
such a record, msgspec parses the JSON straight into typed structs in C, checking types, enum
values, lengths and ranges on the way (no intermediate dicts), and a few Python checks confirm
the rest: every value is one the exact validator (``udfs.validation``) would return unchanged.
Anything else (a repair, a defect, an unknown key, a value msgspec refuses) returns None, and the
exact path alone decides the verdict and its details. So the fast path can only accept, and only
what the exact path accepts, with the same clean event: tests compare the two on generated
records of every kind.

Why these checks suffice where the exact path runs more: unknown keys are refused, so the
document nests at most root > items > item (within any ``max_depth``, which is at least 3);
msgspec refuses invalid UTF-8, NaN/Infinity, numbers out of double range, bools for numbers and
trailing data; a float field takes a JSON integer as the same float ``read_number`` makes of it;
a repeated key keeps its last value, as the exact path's JSON parsers do; lengths count code
points, as the exact path does.
"""
from __future__ import annotations

from functools import lru_cache
from operator import attrgetter
from typing import Annotated, Any, Literal

from udfs.config import ValidationConfig
from udfs.contract import CLEAN_ITEM_FIELDS, EVENT_TYPES, LABEL_TYPES, PAGE_TYPES
from udfs.text import normalize_query

try:  # msgspec is pinned (pyproject.toml); without it every record takes the exact path.
    import msgspec
except ImportError:  # pragma: no cover
    msgspec = None

_ITEM_VALUES = attrgetter(*CLEAN_ITEM_FIELDS)


def vouch(raw: bytes, now_ms: int, watermark_ms: int | None, config: ValidationConfig,
          labels: set[str | None]) -> dict[str, Any] | None:
    """The clean event (items as ItemColumns) when ``raw`` is a v1 event that needs no repair,
    else None. ``labels`` holds labels known to be clean (and None). Never raises."""
    try:
        # The last config's decoder, by identity: hashing the config for the cache costs more than
        # this check, and one job uses one config.
        decoder = _last_decoder[1] if _last_decoder[0] is config else _remember_decoder(config)
        return _clean_as_is(decoder.decode(raw), now_ms, watermark_ms, config, labels)
    except Exception:  # a parse error, a refused value: the exact path will say which
        return None


_last_decoder: list = [None, None]


def _remember_decoder(config: ValidationConfig):
    _last_decoder[:] = config, _decoder(config)
    return _last_decoder[1]


@lru_cache(maxsize=8)
def _decoder(config: ValidationConfig):
    """A decoder whose structs carry the config's limits (what msgspec can check in C)."""
    Meta = msgspec.Meta
    # An id as read_id keeps it: a string, within the limit (printability is checked after).
    Id = Annotated[str, Meta(min_length=1, max_length=config.max_id_len)]
    # A number read_price / read_quantity keep: finite (parsing guarantees it) and in range.
    Price = Annotated[float, Meta(ge=0.0)]
    Quantity = Annotated[float, Meta(gt=0.0)]
    Label = Annotated[str, Meta(max_length=config.max_string_len)]

    # defstruct, not class bodies: the limits are local values, and this module's annotations
    # are strings (from __future__ import annotations) that could not see them.
    options = {"forbid_unknown_fields": True, "gc": False}
    item = msgspec.defstruct("Item", [
        ("item_id", Id),
        ("position", Annotated[int, Meta(ge=1, le=config.max_position)]),
        ("price", Price),
        ("category", Label | None, None),
        ("brand", Label | None, None),
    ], **options)
    event = msgspec.defstruct("Event", [
        ("event_id", Id),
        ("type", Literal[tuple(sorted(EVENT_TYPES))]),
        ("ts", Annotated[int, Meta(ge=config.min_ts_ms)]),
        ("user_id", Id),
        ("session_id", Id | None, None),
        ("request_id", Id | None, None),
        ("query", Annotated[str, Meta(max_length=config.max_query_len)] | None, None),
        ("items", Annotated[list[item], Meta(min_length=1, max_length=config.max_items)] | None, None),
        ("item_id", Id | None, None),
        ("price", Price | None, None),
        ("quantity", Quantity | None, None),
        ("category", Label | None, None),
        ("brand", Label | None, None),
        ("device", Label | None, None),
        ("platform", Label | None, None),
    ], **options)
    return msgspec.json.Decoder(event)


def _clean_as_is(event, now_ms: int, watermark_ms: int | None, config: ValidationConfig,
                 labels: set[str | None]) -> dict[str, Any] | None:
    event_type = event.type
    ts = event.ts
    session_id, request_id, query, item_id = event.session_id, event.request_id, event.query, event.item_id
    # Ids: printable (which excludes all whitespace but the ASCII space) and, stricter than the
    # exact path, without any space, so nothing to trim. One check over all of them.
    ids = event.event_id + event.user_id + (session_id or "") + (request_id or "") + (item_id or "")
    if not (
        ts <= now_ms + config.max_future_skew_ms
        and (watermark_ms is None or ts >= watermark_ms - config.allowed_lateness_ms)
        and ids.isprintable() and " " not in ids
        # A page event needs its request and query, a label its item.
        and ((request_id is not None and query is not None) or event_type not in PAGE_TYPES)
        and (item_id is not None or event_type not in LABEL_TYPES)
        # Labels known to be clean (read_label would return them as they are).
        and labels.issuperset((event.category, event.brand, event.device, event.platform))
    ):
        return None
    if event_type == "impression":
        if event.items is None:
            return None
        items = item_ids, positions, _, categories, brands = tuple(zip(*map(_ITEM_VALUES, event.items)))
        joined = "".join(item_ids)
        if not (joined.isprintable() and " " not in joined and len(set(positions)) == len(positions)
                and labels.issuperset(categories) and labels.issuperset(brands)):
            return None
    else:
        items = None  # the exact path ignores items on other events
    return {
        "event_id": event.event_id,
        "type": event_type,
        "ts": ts,
        "user_id": event.user_id,
        "session_id": session_id,
        "request_id": request_id,
        "query": None if query is None else normalize_query(query, config.max_query_len),
        "items": items,
        "item_id": item_id,
        "price": event.price,
        "quantity": event.quantity,
        "category": event.category,
        "brand": event.brand,
        "device": event.device,
        "platform": event.platform,
    }


if msgspec is None:  # pragma: no cover - no fast path: udfs.validation takes the exact path for every record
    vouch = None  # noqa: F811
