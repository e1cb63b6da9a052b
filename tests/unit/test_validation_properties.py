"""Property tests: the validator classifies every record, valid or malformed, and never raises.

The main test generates over 10,000 records (and asserts the count): each
generated valid event is checked as is and with each of ~20 defects injected,
one at a time, whose reason code must come back. Two more tests feed arbitrary
bytes and arbitrary JSON documents and check only that they are classified.
"""

from __future__ import annotations

import copy
import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.exact_path import exact_path_only
from udfs.config import DEFAULT_CONFIG
from udfs.dlq import decode_dlq_payload, to_dlq_record
from udfs.reasons import Reason
from udfs.text import clean_id, normalize_query
from udfs.validation import CLEAN_EVENT_FIELDS, CLEAN_ITEM_FIELDS, EVENT_TYPES, Verdict, to_json, validate

NOW_MS = 1_700_000_000_000
WATERMARK_MS = NOW_MS - 60_000
# Event times every check accepts: not before the lateness bound, not beyond the future skew.
TS_MIN = WATERMARK_MS - DEFAULT_CONFIG.allowed_lateness_ms
TS_MAX = NOW_MS + DEFAULT_CONFIG.max_future_skew_ms

KNOWN_FIELDS = frozenset(CLEAN_EVENT_FIELDS)
PAGE_TYPES = ("search", "impression")
LABEL_TYPES = ("click", "add_to_cart", "purchase")


def _settings(examples: int):
    # database=None: no .hypothesis/ directory in the repo, and every run is a fresh sample.
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


# ---------------------------------------------------------------- generators of valid raw events

printable_id_text = st.text(st.characters(categories=("L", "M", "N", "P", "S")), min_size=1, max_size=40)
ids = st.one_of(
    printable_id_text,
    st.builds(lambda text, pad: pad + text + pad, printable_id_text, st.sampled_from(["", " ", "\t", " \n"])),
    st.integers(-(2**63), 2**63 - 1),
)
# Any text at all, lone surrogates and control characters included: free text is cleaned, not rejected.
any_text = st.text(st.characters(exclude_categories=()), max_size=60)
labels = st.one_of(st.none(), any_text, st.integers(-1000, 10**9))
finite_prices = st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False)
prices = st.one_of(
    st.none(), finite_prices, st.integers(0, 10**6), finite_prices.map(lambda p: repr(abs(p)))
)
quantities = st.one_of(
    st.none(), st.integers(1, 100), st.floats(min_value=1e-3, max_value=1e6, allow_nan=False)
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)
unknown_fields = st.dictionaries(st.text(max_size=12).filter(lambda k: k not in KNOWN_FIELDS), json_values, max_size=3)
unknown_item_fields = st.dictionaries(
    st.text(max_size=12).filter(lambda k: k not in CLEAN_ITEM_FIELDS), json_values, max_size=2)


def _ts_forms(ts: int):
    """Accepted spellings of one event time: integer, decimal string, integral float."""
    return st.sampled_from([ts, str(ts), float(ts)])


@st.composite
def items_lists(draw):
    count = draw(st.integers(1, 8))
    explicit = draw(st.booleans())
    positions = draw(st.lists(st.integers(1, 10_000), min_size=count, max_size=count, unique=True))
    items = []
    for position in positions:
        item = {"item_id": draw(ids)}
        if explicit:
            item["position"] = draw(st.sampled_from([position, str(position), float(position)]))
        for key, values in (("price", prices), ("category", labels), ("brand", labels)):
            if draw(st.booleans()):
                item[key] = draw(values)
        item.update(draw(unknown_item_fields))
        items.append(item)
    return items


@st.composite
def valid_raw_events(draw, event_type=None):
    """A raw event dict (before serialisation) that the contract accepts."""
    event_type = event_type or draw(st.sampled_from(sorted(EVENT_TYPES)))
    event = {
        "event_id": draw(ids),
        "type": event_type,
        "ts": draw(st.integers(TS_MIN, TS_MAX).flatmap(_ts_forms)),
        "user_id": draw(ids),
    }
    if event_type in PAGE_TYPES or draw(st.booleans()):
        event["request_id"] = draw(ids)
    if event_type in PAGE_TYPES or draw(st.booleans()):
        event["query"] = draw(any_text)
    if event_type == "impression":
        event["items"] = draw(items_lists())
    if event_type in LABEL_TYPES or draw(st.booleans()):
        event["item_id"] = draw(ids)
    optional = {"session_id": st.one_of(st.none(), ids), "price": prices, "quantity": quantities,
                "category": labels, "brand": labels, "device": labels, "platform": labels}
    for key, values in optional.items():
        if draw(st.booleans()):
            event[key] = draw(values)
    event.update(draw(unknown_fields))
    return event


def encode(event: dict, ascii_only: bool = True) -> bytes:
    """Serialise a raw event as a producer would; escapes when the text has lone surrogates."""
    if not ascii_only:
        try:
            return json.dumps(event, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            pass
    return json.dumps(event).encode("utf-8")


def validate_with_stdlib_json_only(raw) -> Verdict:
    """The exact path alone: no msgspec fast path (udfs.fast_path), no orjson parse."""
    with exact_path_only():
        return validate(raw, now_ms=NOW_MS, watermark_ms=WATERMARK_MS)


def check_total(raw) -> Verdict:
    """The invariants every input must satisfy, whatever it is."""
    verdict = validate(raw, now_ms=NOW_MS, watermark_ms=WATERMARK_MS)
    assert isinstance(verdict, Verdict)
    # The fast paths (msgspec, orjson) are optimisations only: same verdict without them.
    reference = validate_with_stdlib_json_only(raw)
    assert (reference.event, reference.reason) == (verdict.event, verdict.reason), (reference, verdict)
    assert (verdict.event is None) != (verdict.reason is None), verdict
    if verdict.ok:
        event = verdict.event
        assert tuple(event) == CLEAN_EVENT_FIELDS
        assert event["type"] in EVENT_TYPES and type(event["ts"]) is int
        for item in event["items"] or ():
            assert tuple(item) == CLEAN_ITEM_FIELDS
        text = to_json(event)
        again = validate(text.encode("utf-8"), now_ms=NOW_MS, watermark_ms=WATERMARK_MS)
        assert again.ok and again.event == event, (event, again)
    else:
        assert isinstance(verdict.reason, Reason)
        assert verdict.reason is not Reason.INTERNAL_ERROR, verdict.detail
        assert 0 < len(verdict.detail) <= DEFAULT_CONFIG.dlq_detail_max_chars
        record = to_dlq_record(raw, verdict.reason, verdict.detail, source_topic="freshrank.events",
                               partition=3, offset=42, ingest_ms=NOW_MS)
        json.dumps(record, allow_nan=False).encode("utf-8")  # must be publishable as is
        raw_bytes = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else (raw or b"")
        assert record["payload_length"] == len(raw_bytes)
        kept = decode_dlq_payload(record)
        assert raw_bytes.startswith(kept) and len(raw_bytes) - len(kept) <= max(
            0, len(raw_bytes) - DEFAULT_CONFIG.dlq_payload_max_bytes) + 3
    return verdict


# ---------------------------------------------------------------- the defects, each with its reason

def _as_impression(draw, event: dict) -> dict:
    """Turn any valid raw event into a valid impression so item-level defects apply.

    The added items are plain on purpose: item variety is exercised by the valid
    impressions, and drawing rich items here would double the test's run time.
    """
    if event["type"] != "impression":
        count = draw(st.integers(1, 5))
        event.update(type="impression", request_id="r-1", query="q",
                     items=[{"item_id": f"i{n}", "position": n + 1, "price": 1.5} for n in range(count)])
    return event


def _drop_required(draw, event):
    required = ["event_id", "type", "ts", "user_id"]
    required += {"search": ["request_id", "query"], "impression": ["request_id", "query", "items"]}.get(
        event["type"], ["item_id"])
    field = draw(st.sampled_from(required))
    how = draw(st.sampled_from(["absent", "null", "empty"]))
    if how == "absent":
        del event[field]
    elif how == "null" or field in ("type", "ts", "query"):  # for these "" is a different defect
        event[field] = None
    else:
        event[field] = [] if field == "items" else draw(st.sampled_from(["", "   ", "\t\n"]))
    return encode(event), Reason.MISSING_FIELD


_WRONG_VALUES = {
    "id": [[], {}, True, False, 1.5, [1]],
    "ts": [True, [], {}, "12x", " 1700000000000", 1_700_000_000_000.5, -1.5],
    "number": [True, [], {}, "12,5", "abc", "-5", " 12", "1_000", "nan", "0x10"],
    "query": [5, 1.5, [], {}, True],
    "items": ["x", {}, 5, True],
    "label": [[], {}, True, 1.5],
    "type": [5, [], {}, True],
}
_WRONG_FIELDS = {
    "event_id": "id", "user_id": "id", "session_id": "id", "request_id": "id", "item_id": "id",
    "ts": "ts", "price": "number", "quantity": "number", "query": "query",
    "category": "label", "brand": "label", "device": "label", "platform": "label", "type": "type",
}


def _wrong_type(draw, event):
    item_fields = ["items", "items[].item_id", "items[].price", "items[].position"]
    field = draw(st.sampled_from(sorted(_WRONG_FIELDS) + item_fields))
    if field.startswith("items"):
        event = _as_impression(draw, event)
        if field == "items":
            event["items"] = draw(st.sampled_from(_WRONG_VALUES["items"]))
        else:
            item = draw(st.sampled_from(event["items"]))
            key = field.split(".")[1]
            kind = {"item_id": "id", "price": "number", "position": "ts"}[key]
            item[key] = draw(st.sampled_from(_WRONG_VALUES[kind]).filter(lambda v: v != -1.5))
    else:
        event[field] = draw(st.sampled_from(_WRONG_VALUES[_WRONG_FIELDS[field]]))
    return encode(event), Reason.WRONG_TYPE


def _bad_enum(draw, event):
    event["type"] = draw(st.one_of(st.sampled_from(["Click", "view", "", " search", "PURCHASE"]), st.text(max_size=20))
                         .filter(lambda t: t not in EVENT_TYPES))
    return encode(event), Reason.BAD_ENUM


def _too_long(draw, event):
    field, limit = draw(st.sampled_from([
        ("event_id", DEFAULT_CONFIG.max_id_len), ("user_id", DEFAULT_CONFIG.max_id_len),
        ("session_id", DEFAULT_CONFIG.max_id_len), ("item_id", DEFAULT_CONFIG.max_id_len),
        ("query", DEFAULT_CONFIG.max_query_len), ("category", DEFAULT_CONFIG.max_string_len),
        ("platform", DEFAULT_CONFIG.max_string_len),
    ]))
    # "Huge strings": up to 60,000 characters, still under the record size limit.
    length = draw(st.one_of(st.integers(limit + 1, limit + 50), st.integers(limit + 1, 60_000)))
    event[field] = draw(st.sampled_from(["x", "é", " ", "字"])) * length
    if len(encode(event)) > DEFAULT_CONFIG.max_record_bytes:
        return encode(event), Reason.TOO_LARGE  # multi-byte characters can push the record over
    return encode(event), Reason.TOO_LONG


def _bad_chars(draw, event):
    field = draw(st.sampled_from(["event_id", "user_id", "session_id", "item_id", "request_id"]))
    bad = draw(st.sampled_from(
        ["\x00", "\x07", "\x1b", "\t", "\u200b", "\ufeff", "\ud800", "\u2028", "\u00a0", "\x85"]))
    event[field] = draw(printable_id_text) + bad + draw(printable_id_text)
    return encode(event, ascii_only=draw(st.booleans())), Reason.BAD_CHARS


def _not_finite(draw, event):
    where = draw(st.sampled_from(["constant", "unknown_constant", "string", "overflow_literal", "huge_int"]))
    if where in ("constant", "unknown_constant"):
        event["price" if where == "constant" else "_extra"] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        return json.dumps(event, allow_nan=True).encode("utf-8"), Reason.NOT_FINITE
    if where == "string":
        event["price"] = draw(st.sampled_from(["1e999", "9e308"]))
        return encode(event), Reason.NOT_FINITE
    if where == "overflow_literal":
        event["quantity"] = "@@NUMBER@@"
        text = json.dumps(event).replace('"@@NUMBER@@"', draw(st.sampled_from(["1e999", "-1e400", "2e308"])))
        return text.encode("utf-8"), Reason.NOT_FINITE
    event["price"] = 10 ** draw(st.integers(309, 1000))
    return encode(event), Reason.NOT_FINITE


def _negative_price(draw, event):
    value = -draw(st.floats(min_value=1e-9, max_value=1e9))
    if draw(st.booleans()):
        event["price"] = value
    else:
        draw(st.sampled_from(_as_impression(draw, event)["items"]))["price"] = value
    return encode(event), Reason.NEGATIVE_PRICE


def _bad_quantity(draw, event):
    event["quantity"] = draw(st.sampled_from([0, 0.0, -1, -0.5, "0"]))
    return encode(event), Reason.BAD_QUANTITY


def _bad_position(draw, event):
    items = _as_impression(draw, event)["items"]
    if len(items) > 1 and draw(st.booleans()):
        for position, item in enumerate(items, start=1):
            item["position"] = position
        items[-1]["position"] = draw(st.integers(1, len(items) - 1))  # a repeat
    else:
        draw(st.sampled_from(items))["position"] = draw(st.sampled_from([0, -1, -100, 10_001, 10**12, "0"]))
    return encode(event), Reason.BAD_POSITION


def _too_many_items(draw, event):
    event = _as_impression(draw, event)
    count = draw(st.integers(DEFAULT_CONFIG.max_items + 1, DEFAULT_CONFIG.max_items + 100))
    event["items"] = [{"item_id": f"i{n}", "position": n + 1} for n in range(count)]
    return encode(event), Reason.TOO_MANY_ITEMS


def _bad_ts(draw, event):
    # Seconds instead of milliseconds, or plainly impossible.
    event["ts"] = draw(st.one_of(st.integers(0, DEFAULT_CONFIG.min_ts_ms - 1), st.integers(-(2**63), -1)))
    return encode(event), Reason.BAD_TS


def _future_ts(draw, event):
    event["ts"] = draw(st.integers(TS_MAX + 1, 2**63 - 1))
    return encode(event), Reason.FUTURE_TS


def _late_ts(draw, event):
    event["ts"] = draw(st.integers(DEFAULT_CONFIG.min_ts_ms, TS_MIN - 1))
    return encode(event), Reason.LATE_TS


def _too_large(draw, event):
    text = encode(event)
    pad = DEFAULT_CONFIG.max_record_bytes - len(text) + draw(st.integers(1, 200_000))
    event["_pad"] = "x" * pad
    return encode(event), Reason.TOO_LARGE


def _too_deep(draw, event):
    opening, closing = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    event["_deep"] = "@@DEEP@@"
    # Deep enough to fail, shallow enough to stay under the size limit (past ~1000 levels
    # the parser's own recursion limit fires; the reason must be the same).
    room = (DEFAULT_CONFIG.max_record_bytes - len(encode(event)) - 1) // (len(opening) + len(closing))
    deepest = max(DEFAULT_CONFIG.max_depth, room)
    middle = min(200, deepest)
    depth = draw(st.one_of(st.integers(DEFAULT_CONFIG.max_depth, middle), st.integers(middle, deepest)))
    nested = opening * depth + "1" + closing * depth
    return json.dumps(event).replace('"@@DEEP@@"', nested).encode("utf-8"), Reason.TOO_DEEP


def _truncated(draw, event):
    text = json.dumps(event)
    return text[: draw(st.integers(1, len(text) - 1))].encode("utf-8"), Reason.NOT_JSON


def _bad_syntax(draw, event):
    text = json.dumps(event)
    broken = draw(st.sampled_from([
        text + " x", text + text, text.replace('"', "'"), text[:-1] + ",}", "{" + text[1:].replace(":", "=", 1),
    ]))
    return broken.encode("utf-8"), Reason.NOT_JSON


def _invalid_utf8(draw, event):
    data = encode(event, ascii_only=False)
    at = draw(st.integers(0, len(data)))
    junk = draw(st.sampled_from([b"\xff", b"\xfe", b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]))
    return data[:at] + junk + data[at:], Reason.NOT_UTF8


def _not_object(draw, event):
    document = draw(st.sampled_from([[event], list(event.values()), "event", 42, 1.5, True, None]))
    return json.dumps(document).encode("utf-8"), Reason.NOT_OBJECT


DEFECTS = [
    _drop_required, _wrong_type, _bad_enum, _too_long, _bad_chars, _not_finite, _negative_price,
    _bad_quantity, _bad_position, _too_many_items, _bad_ts, _future_ts, _late_ts, _too_large,
    _too_deep, _truncated, _bad_syntax, _invalid_utf8, _not_object,
]


@st.composite
def records_with_every_defect(draw):
    """One valid raw event plus, for each defect, a copy of it with that defect injected.

    Drawing the (costly) base event once and deriving ~20 records from it is what
    keeps 10,000+ records within a few tens of seconds.
    Returns [(case name, raw bytes, expected reason or None for valid, raw event or None)].
    """
    event = draw(valid_raw_events())
    data = (b"\xef\xbb\xbf" if draw(st.booleans()) else b"") + encode(event, ascii_only=draw(st.booleans()))
    cases = [("valid", data, None, event)]
    for defect in DEFECTS:
        cases.append((defect.__name__, *defect(draw, copy.deepcopy(event)), None))
    return cases


def assert_cleaned_like(event: dict, raw_event: dict) -> None:
    """The clean event says what the raw one said, in canonical form."""
    assert event["type"] == raw_event["type"]
    assert event["ts"] == int(raw_event["ts"])
    raw_id = raw_event["event_id"]
    assert event["event_id"] == (clean_id(raw_id) if isinstance(raw_id, str) else str(raw_id))
    if isinstance(raw_event.get("query"), str):
        assert event["query"] == normalize_query(raw_event["query"], DEFAULT_CONFIG.max_query_len)
    if raw_event["type"] == "impression":
        assert len(event["items"]) == len(raw_event["items"])
        assert len({item["position"] for item in event["items"]}) == len(event["items"])
    else:
        assert event["items"] is None


# ---------------------------------------------------------------- the properties

RECORDS_PER_BASE_EVENT = 1 + len(DEFECTS)
BASE_EVENTS = 10_000 // RECORDS_PER_BASE_EVENT + 50
BYTES_EXAMPLES = 1_000
JSON_EXAMPLES = 300


def test_valid_and_defective_records_are_classified_with_the_injected_reason():
    counted = {"records": 0}
    reasons = set()

    @_settings(BASE_EVENTS)
    @given(records_with_every_defect())
    def check(cases):
        for name, data, expected, raw_event in cases:
            counted["records"] += 1
            verdict = check_total(data)
            if expected is None:
                assert verdict.ok, (verdict.reason, verdict.detail, raw_event)
                assert_cleaned_like(verdict.event, raw_event)
            else:
                assert verdict.reason is expected, (name, verdict.reason, verdict.detail)
                reasons.add(expected)

    check()
    assert counted["records"] >= 10_000
    # Every reason an input can cause was injected (EMPTY has its own example tests).
    assert reasons == set(Reason) - {Reason.EMPTY, Reason.INTERNAL_ERROR}


def test_arbitrary_bytes_are_classified():
    seen = []

    @_settings(BYTES_EXAMPLES)
    @given(st.one_of(
        st.binary(max_size=300),
        st.text(st.characters(exclude_categories=()), max_size=200),  # str payloads, surrogates and all
        st.text(max_size=300).map(lambda s: s.encode("utf-8")),
    ))
    def check(raw):
        seen.append(1)
        check_total(raw)

    check()
    assert len(seen) >= BYTES_EXAMPLES


def test_arbitrary_json_documents_are_classified():
    seen = []
    # Objects with contract field names but any JSON values: mostly WRONG_TYPE and MISSING_FIELD.
    event_like = st.fixed_dictionaries(
        {}, optional={key: json_values for key in ("event_id", "type", "ts", "user_id", "request_id", "query",
                                                   "items", "item_id", "price", "quantity", "category")})

    @_settings(JSON_EXAMPLES)
    @given(st.one_of(json_values, event_like))
    def check(document):
        seen.append(1)
        check_total(json.dumps(document).encode("utf-8"))

    check()
    assert len(seen) >= JSON_EXAMPLES
