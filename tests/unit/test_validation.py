"""Example-based tests of the validator: one or more per reason code, the repairs, the DLQ record."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest

import udfs.validation as validation
from udfs.config import DEFAULT_CONFIG, ValidationConfig
from udfs.dlq import DLQ_TOPIC, decode_dlq_payload, to_dlq_record
from udfs.reasons import REASON_CODES, Reason
from udfs.validation import CLEAN_EVENT_FIELDS, Verdict, to_json, validate

NOW = 1_700_000_000_000
WATERMARK = NOW - 60_000
CFG = DEFAULT_CONFIG


def raw_event(event_type: str = "click", **overrides) -> dict:
    """A valid raw event of the given type; overrides replace fields, ``None`` values delete them."""
    base = {"event_id": "e-1", "type": event_type, "ts": NOW - 1_000, "user_id": "u-1"}
    if event_type in ("search", "impression"):
        base.update(request_id="r-1", query="red shoes")
    if event_type == "impression":
        base["items"] = [{"item_id": "i-1", "position": 1, "price": 10.0}, {"item_id": "i-2", "position": 2}]
    if event_type in ("click", "add_to_cart", "purchase"):
        base["item_id"] = "i-1"
    for key, value in overrides.items():
        if value is _DELETE:
            base.pop(key, None)
        else:
            base[key] = value
    return base


_DELETE = object()


def check(document, *, watermark=WATERMARK, config=CFG) -> Verdict:
    data = document if isinstance(document, (bytes, str)) or document is None else json.dumps(document).encode()
    return validate(data, now_ms=NOW, watermark_ms=watermark, config=config)


def reason_of(document, **kwargs) -> Reason | None:
    return check(document, **kwargs).reason


# ------------------------------------------------------------------ accepted events and the clean shape

@pytest.mark.parametrize("event_type", ["search", "impression", "click", "add_to_cart", "purchase"])
def test_minimal_event_of_each_type_is_accepted_in_canonical_shape(event_type):
    verdict = check(raw_event(event_type))
    assert verdict.ok and verdict.reason is None and verdict.detail == ""
    assert tuple(verdict.event) == CLEAN_EVENT_FIELDS
    assert verdict.event["type"] == event_type
    assert verdict.event["session_id"] is None and verdict.event["platform"] is None


def test_clean_event_values_and_unknown_fields_dropped():
    event = check(raw_event(
        "impression", session_id="s-1", device="phone", platform="app", extra={"nested": [1, 2]},
        items=[{"item_id": "i-1", "position": 1, "price": 3, "category": "shoes", "brand": "Acme", "x": 1}],
    )).event
    assert event == {
        "event_id": "e-1", "type": "impression", "ts": NOW - 1_000, "user_id": "u-1", "session_id": "s-1",
        "request_id": "r-1", "query": "red shoes",
        "items": [{"item_id": "i-1", "position": 1, "price": 3.0, "category": "shoes", "brand": "Acme"}],
        "item_id": None, "price": None, "quantity": None, "category": None, "brand": None,
        "device": "phone", "platform": "app",
    }
    assert type(event["items"][0]["price"]) is float


def test_items_are_only_read_for_impressions():
    assert check(raw_event("click", items="not even a list")).event["items"] is None


def test_canonical_json_is_compact_utf8_and_revalidates_to_the_same_event():
    event = check(raw_event("search", query="Ｃafé  ÜBER\u200b")).event
    text = to_json(event)
    assert '"query":"café über"' in text and ", " not in text
    assert check(text.encode("utf-8")).event == event


# ------------------------------------------------------------------ repairs (documented in docs/event-contract.md)

@pytest.mark.parametrize("raw_ts", [NOW - 5, str(NOW - 5), float(NOW - 5)])
def test_ts_accepts_integer_digit_string_and_integral_float(raw_ts):
    assert check(raw_event(ts=raw_ts)).event["ts"] == NOW - 5


@pytest.mark.parametrize("raw_price, expected", [(12, 12.0), (12.5, 12.5), ("12.5", 12.5), ("0", 0.0), ("1e2", 100.0)])
def test_price_accepts_numbers_and_json_number_strings(raw_price, expected):
    assert check(raw_event(price=raw_price)).event["price"] == expected


@pytest.mark.parametrize("raw_id, expected", [
    (42, "42"), (-7, "-7"), (42.0, "42"), ("  u 1\t", "u 1"), ("ü-🙂", "ü-🙂"),
])
def test_ids_accept_integers_and_are_trimmed(raw_id, expected):
    assert check(raw_event(user_id=raw_id)).event["user_id"] == expected


def test_missing_positions_default_to_display_order():
    items = [{"item_id": "a"}, {"item_id": "b", "position": None}, {"item_id": "c"}]
    event = check(raw_event("impression", items=items)).event
    assert [item["position"] for item in event["items"]] == [1, 2, 3]


@pytest.mark.parametrize("raw_position", [3, "3", 3.0])
def test_position_accepts_integer_forms(raw_position):
    event = check(raw_event("impression", items=[{"item_id": "a", "position": raw_position}])).event
    assert event["items"][0]["position"] == 3


def test_optional_fields_null_or_empty_count_as_absent():
    event = check(raw_event(session_id="  ", price=None, category="", brand=" \t ", device=None, quantity=None)).event
    assert (event["session_id"], event["price"], event["category"], event["brand"], event["device"]) == (None,) * 5


def test_labels_are_cleaned_but_keep_case_and_integer_codes_become_text():
    event = check(raw_event(brand=" Ｎｉｋｅ\u200b  Air\x00 ", category=1234)).event
    assert event["brand"] == "Nike Air" and event["category"] == "1234"


def test_byte_order_mark_is_ignored():
    assert check(b"\xef\xbb\xbf" + json.dumps(raw_event()).encode()).ok


def test_str_payload_is_accepted_like_bytes():
    assert check(json.dumps(raw_event())).event == check(json.dumps(raw_event()).encode()).event


def test_query_may_be_empty_after_normalisation():
    assert check(raw_event("search", query=" \u200b\t")).event["query"] == ""


# ------------------------------------------------------------------ one case per reason code

REJECTIONS = [
    ("null payload", None, Reason.EMPTY),
    ("zero bytes", b"", Reason.EMPTY),
    ("over 64 KiB", raw_event(pad="x" * 70_000), Reason.TOO_LARGE),
    ("latin-1 bytes", b'{"event_id":"caf\xe9"}', Reason.NOT_UTF8),
    ("encoded surrogate", b'{"event_id":"\xed\xa0\x80"}', Reason.NOT_UTF8),
    ("truncated", b'{"event_id":"e-1","type":"cl', Reason.NOT_JSON),
    ("trailing data", json.dumps(raw_event()) + " {}", Reason.NOT_JSON),
    ("single quotes", "{'event_id': 'e-1'}", Reason.NOT_JSON),
    ("NaN literal", json.dumps(raw_event(price=float("nan"))), Reason.NOT_FINITE),
    ("Infinity in an unknown field", json.dumps(raw_event(extra=float("inf"))), Reason.NOT_FINITE),
    ("overflowing literal", json.dumps(raw_event(price=0)).replace('"price": 0', '"price": 1e999'), Reason.NOT_FINITE),
    ("overflowing string", raw_event(price="1e400"), Reason.NOT_FINITE),
    ("overflowing integer", raw_event(quantity=10**400), Reason.NOT_FINITE),
    ("deep unknown field", json.dumps(raw_event(deep="@")).replace('"@"', "[" * 40 + "]" * 40), Reason.TOO_DEEP),
    ("parser recursion", "[" * 50_000, Reason.TOO_DEEP),
    ("array", "[1, 2]", Reason.NOT_OBJECT),
    ("string", '"click"', Reason.NOT_OBJECT),
    ("null document", "null", Reason.NOT_OBJECT),
    ("no event_id", raw_event(event_id=_DELETE), Reason.MISSING_FIELD),
    ("blank user_id", raw_event(user_id="   "), Reason.MISSING_FIELD),
    ("null ts", raw_event(ts=None), Reason.MISSING_FIELD),
    ("no type", raw_event(type=_DELETE), Reason.MISSING_FIELD),
    ("search without request_id", raw_event("search", request_id=_DELETE), Reason.MISSING_FIELD),
    ("search without query", raw_event("search", query=_DELETE), Reason.MISSING_FIELD),
    ("impression without items", raw_event("impression", items=_DELETE), Reason.MISSING_FIELD),
    ("impression with no items", raw_event("impression", items=[]), Reason.MISSING_FIELD),
    ("item without item_id", raw_event("impression", items=[{"position": 1}]), Reason.MISSING_FIELD),
    ("purchase without item_id", raw_event("purchase", item_id=_DELETE), Reason.MISSING_FIELD),
    ("boolean id", raw_event(event_id=True), Reason.WRONG_TYPE),
    ("fractional ts", raw_event(ts=NOW + 0.5), Reason.WRONG_TYPE),
    ("ts with spaces", raw_event(ts=f" {NOW}"), Reason.WRONG_TYPE),
    ("price with comma", raw_event(price="12,50"), Reason.WRONG_TYPE),
    ("signed price string", raw_event(price="-1"), Reason.WRONG_TYPE),
    ("price 'nan' string", raw_event(price="nan"), Reason.WRONG_TYPE),
    ("query number", raw_event("search", query=12), Reason.WRONG_TYPE),
    ("items object", raw_event("impression", items={"item_id": "a"}), Reason.WRONG_TYPE),
    ("item not an object", raw_event("impression", items=["a"]), Reason.WRONG_TYPE),
    ("type number", raw_event(type=1), Reason.WRONG_TYPE),
    ("id beyond 64 bits", raw_event(user_id=2**64), Reason.WRONG_TYPE),
    ("label array", raw_event(brand=["a"]), Reason.WRONG_TYPE),
    ("unknown type", raw_event(type="view"), Reason.BAD_ENUM),
    ("type in capitals", raw_event(type="Click"), Reason.BAD_ENUM),
    ("long event_id", raw_event(event_id="e" * 129), Reason.TOO_LONG),
    ("long query", raw_event("search", query="q" * 513), Reason.TOO_LONG),
    ("long brand", raw_event(brand="b" * 257), Reason.TOO_LONG),
    ("201 items", raw_event("impression", items=[{"item_id": str(n)} for n in range(201)]), Reason.TOO_MANY_ITEMS),
    ("control char in id", raw_event(user_id="u\x001"), Reason.BAD_CHARS),
    ("zero-width space in id", raw_event(item_id="i\u200b1"), Reason.BAD_CHARS),
    ("escaped lone surrogate in id", raw_event(event_id="e\ud800"), Reason.BAD_CHARS),
    ("negative price", raw_event(price=-0.01), Reason.NEGATIVE_PRICE),
    ("negative item price", raw_event("impression", items=[{"item_id": "a", "price": -1}]), Reason.NEGATIVE_PRICE),
    ("zero quantity", raw_event("purchase", quantity=0), Reason.BAD_QUANTITY),
    ("negative quantity", raw_event("add_to_cart", quantity=-2), Reason.BAD_QUANTITY),
    ("position 0", raw_event("impression", items=[{"item_id": "a", "position": 0}]), Reason.BAD_POSITION),
    ("position too high", raw_event("impression", items=[{"item_id": "a", "position": 10_001}]), Reason.BAD_POSITION),
    ("repeated position",
     raw_event("impression", items=[{"item_id": "a", "position": 2}, {"item_id": "b", "position": 2}]),
     Reason.BAD_POSITION),
    ("implicit position collides",
     raw_event("impression", items=[{"item_id": "a", "position": 2}, {"item_id": "b"}]), Reason.BAD_POSITION),
    ("ts in seconds", raw_event(ts=NOW // 1000), Reason.BAD_TS),
    ("negative ts", raw_event(ts=-1), Reason.BAD_TS),
    ("ts too far ahead", raw_event(ts=NOW + CFG.max_future_skew_ms + 1), Reason.FUTURE_TS),
    ("ts far behind the watermark", raw_event(ts=WATERMARK - CFG.allowed_lateness_ms - 1), Reason.LATE_TS),
]


@pytest.mark.parametrize("document, expected", [case[1:] for case in REJECTIONS], ids=[case[0] for case in REJECTIONS])
def test_rejection_reason(document, expected):
    verdict = check(document)
    assert verdict.event is None
    assert verdict.reason is expected, verdict.detail
    assert verdict.detail


def test_every_reason_but_internal_error_has_an_example():
    assert {case[2] for case in REJECTIONS} == set(Reason) - {Reason.INTERNAL_ERROR}


def test_detail_names_the_item_and_field():
    verdict = check(raw_event("impression", items=[{"item_id": "a"}, {"item_id": "b", "price": "cheap"}]))
    assert verdict.detail.startswith("items[1].price must be a number")


def test_detail_is_short_even_for_huge_values():
    verdict = check(raw_event(type="x" * 60_000))
    assert verdict.reason is Reason.BAD_ENUM and len(verdict.detail) < 200


def test_first_failing_field_in_contract_order_wins():
    assert reason_of(raw_event(event_id=None, type="nope", price=-1)) is Reason.MISSING_FIELD
    assert reason_of(raw_event(type="nope", price=-1)) is Reason.BAD_ENUM
    assert reason_of(raw_event(ts=NOW * 10, price=-1)) is Reason.FUTURE_TS


def test_unexpected_failure_is_dead_lettered_not_raised(monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("bug")

    monkeypatch.setattr(validation, "read_price", broken)
    monkeypatch.setattr(validation, "_vouch", None)  # the exact path's safety net, not the fast path
    verdict = check(raw_event())
    assert verdict.reason is Reason.INTERNAL_ERROR and "KeyError" in verdict.detail


def test_a_failure_in_the_fast_path_leaves_the_verdict_to_the_exact_path(monkeypatch):
    import udfs.fast_path as fast_path

    def broken(*args, **kwargs):
        raise KeyError("bug")

    monkeypatch.setattr(fast_path, "_clean_as_is", broken)
    verdict = check(raw_event())
    assert verdict.ok and verdict.event["item_id"] == "i-1"


def test_internal_error_detail_is_always_publishable(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("bad \ud800 text")

    monkeypatch.setattr(validation, "read_price", broken)
    monkeypatch.setattr(validation, "_vouch", None)
    verdict = check(raw_event())
    assert verdict.reason is Reason.INTERNAL_ERROR
    verdict.detail.encode("utf-8")  # the lone surrogate was escaped


def test_unsupported_payload_type_is_classified():
    assert validate(12345, now_ms=NOW).reason is Reason.NOT_JSON  # type: ignore[arg-type]
    assert validate(memoryview(json.dumps(raw_event()).encode()), now_ms=NOW).ok


# ------------------------------------------------------------------ boundaries of the limits

def test_size_limit_is_inclusive_and_counts_utf8_bytes():
    document = raw_event(pad="")
    room = CFG.max_record_bytes - len(json.dumps(document).encode())
    assert check(raw_event(pad="x" * room)).ok
    assert reason_of(raw_event(pad="x" * (room + 1))) is Reason.TOO_LARGE
    # As str, two-byte characters count twice.
    assert reason_of(json.dumps(raw_event(pad="é" * (room // 2 + 1)), ensure_ascii=False)) is Reason.TOO_LARGE
    assert check(json.dumps(raw_event(pad="é" * (room // 2)), ensure_ascii=False)).ok


def test_depth_limit_is_inclusive():
    def nested(levels: int) -> str:  # the root object is level 1
        return json.dumps(raw_event(deep="@")).replace('"@"', "[" * (levels - 1) + "]" * (levels - 1))

    assert check(nested(CFG.max_depth)).ok
    assert reason_of(nested(CFG.max_depth + 1)) is Reason.TOO_DEEP


def test_string_limits_are_inclusive():
    assert check(raw_event(event_id="e" * 128, brand="b" * 256)).ok
    assert check(raw_event("search", query="q" * 512)).ok
    assert check(raw_event("impression", items=[{"item_id": str(n)} for n in range(200)])).ok


def test_time_window_edges():
    assert check(raw_event(ts=NOW + CFG.max_future_skew_ms)).ok
    assert check(raw_event(ts=WATERMARK - CFG.allowed_lateness_ms)).ok
    assert reason_of(raw_event(ts=CFG.min_ts_ms)) is Reason.LATE_TS
    assert check(raw_event(ts=CFG.min_ts_ms), watermark=None).ok  # no watermark yet: no lateness check
    assert reason_of(raw_event(ts=CFG.min_ts_ms - 1), watermark=None) is Reason.BAD_TS


def test_custom_config_limits_apply():
    tight = ValidationConfig(max_id_len=4, max_items=1, max_position=5, max_future_skew_ms=0, allowed_lateness_ms=0)
    assert reason_of(raw_event(user_id="abcde"), config=tight) is Reason.TOO_LONG
    assert reason_of(raw_event(ts=NOW + 1), config=tight) is Reason.FUTURE_TS
    assert reason_of(raw_event(ts=WATERMARK - 1), config=tight) is Reason.LATE_TS
    assert reason_of(raw_event("impression"), config=tight) is Reason.TOO_MANY_ITEMS
    off_page = raw_event("impression", items=[{"item_id": "a", "position": 6}])
    assert reason_of(off_page, config=tight) is Reason.BAD_POSITION


# ------------------------------------------------------------------ dead-letter records

def dlq(raw, reason=Reason.NOT_JSON, detail="why", config=CFG) -> dict:
    return to_dlq_record(raw, reason, detail, source_topic="freshrank.events", partition=2, offset=99,
                         ingest_ms=NOW, config=config)


def test_dlq_record_keeps_utf8_payload_as_text_with_its_kafka_position():
    record = dlq(b'{"event_id":"caf\xc3\xa9"', Reason.NOT_JSON, "Expecting ',' delimiter")
    assert record == {
        "dlq_version": 1, "reason": "NOT_JSON", "detail": "Expecting ',' delimiter",
        "payload": '{"event_id":"café"', "payload_encoding": "utf-8", "payload_length": 19,
        "payload_truncated": False, "source_topic": "freshrank.events", "source_partition": 2,
        "source_offset": 99, "ingest_ms": NOW,
    }
    json.dumps(record, allow_nan=False)


def test_dlq_record_base64_encodes_non_utf8_payload():
    record = dlq(b"\xff\xfe{bad", Reason.NOT_UTF8)
    assert record["payload_encoding"] == "base64"
    assert base64.b64decode(record["payload"]) == b"\xff\xfe{bad"
    assert decode_dlq_payload(record) == b"\xff\xfe{bad"


def test_dlq_record_truncates_without_splitting_a_character():
    raw = ("é" * 10).encode()  # 20 bytes
    record = dlq(raw, config=ValidationConfig(dlq_payload_max_bytes=5))
    assert record["payload"] == "éé" and record["payload_truncated"] is True and record["payload_length"] == 20
    binary = dlq(b"\xff" * 20, config=ValidationConfig(dlq_payload_max_bytes=5))
    assert decode_dlq_payload(binary) == b"\xff" * 5 and binary["payload_length"] == 20


def test_dlq_record_handles_null_and_str_payloads():
    assert dlq(None, Reason.EMPTY)["payload"] == "" and dlq(None, Reason.EMPTY)["payload_length"] == 0
    surrogate = dlq("{\ud800}")
    assert surrogate["payload_encoding"] == "base64"
    assert decode_dlq_payload(surrogate) == "{\ud800}".encode("utf-8", "surrogatepass")


def test_dlq_record_caps_detail_and_rejects_unknown_reason_codes():
    assert len(dlq(b"x", detail="d" * 10_000)["detail"]) == CFG.dlq_detail_max_chars
    assert dlq(b"x", reason="TOO_DEEP")["reason"] == "TOO_DEEP"
    with pytest.raises(ValueError):
        dlq(b"x", reason="NO_SUCH_CODE")
    assert DLQ_TOPIC == "freshrank.events.dlq"


# ------------------------------------------------------------------ reason codes and config

def test_reason_codes_are_stable():
    # Codes are a public contract (DLQ records, metric names): this list only ever grows at the end.
    assert REASON_CODES == (
        "EMPTY", "TOO_LARGE", "NOT_UTF8", "NOT_JSON", "NOT_FINITE", "TOO_DEEP", "NOT_OBJECT",
        "MISSING_FIELD", "WRONG_TYPE", "BAD_ENUM", "TOO_LONG", "TOO_MANY_ITEMS", "BAD_CHARS",
        "NEGATIVE_PRICE", "BAD_QUANTITY", "BAD_POSITION", "BAD_TS", "FUTURE_TS", "LATE_TS", "INTERNAL_ERROR",
    )
    for reason in Reason:
        assert str(reason) == reason.value == f"{reason}" and reason == reason.value
        assert reason.description and Reason(reason.value) is reason


def test_config_defaults_match_the_contract():
    assert (CFG.max_record_bytes, CFG.max_id_len, CFG.max_query_len, CFG.max_string_len, CFG.max_items) == (
        65_536, 128, 512, 256, 200)
    assert (CFG.max_future_skew_ms, CFG.allowed_lateness_ms, CFG.dlq_payload_max_bytes) == (300_000, 3_600_000, 8_192)
    with pytest.raises(dataclasses.FrozenInstanceError):
        CFG.max_items = 5  # type: ignore[misc]


@pytest.mark.parametrize("overrides", [
    {"max_record_bytes": 1}, {"max_depth": 2}, {"max_depth": 501}, {"max_id_len": 0}, {"max_items": -1},
    {"allowed_lateness_ms": -1}, {"max_future_skew_ms": True}, {"max_query_len": 1.5},
    {"max_position": 10, "max_items": 11},
])
def test_config_rejects_bad_values(overrides):
    with pytest.raises(ValueError):
        ValidationConfig(**overrides)


def test_contract_document_lists_every_reason_code():
    from pathlib import Path

    document = (Path(__file__).resolve().parents[2] / "docs" / "event-contract.md").read_text(encoding="utf-8")
    missing = [code for code in REASON_CODES if f"| `{code}` |" not in document]
    assert not missing, f"docs/event-contract.md lacks reason codes {missing}"
