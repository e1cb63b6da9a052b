"""The validator's fast path (udfs.fast_path) against the exact path: it may only accept, and only
what the exact path accepts, with the same clean event.

The property tests (test_validation_properties.py) compare the two paths on every generated
record; these tests pin the cases where a typed JSON parser could plausibly differ from the
exact path, and check that the fast path really takes the stream's common records.
"""
from __future__ import annotations

import dataclasses
import json
from functools import partial

import pytest

import udfs.validation as validation
from freshrank.datagen import EventGenerator, GeneratorConfig
from tests.unit import sample_events
from tests.unit.sample_events import encode
from udfs.config import DEFAULT_CONFIG
from udfs.fast_path import vouch

NOW = 1_700_000_000_000
WATERMARK = NOW - 60_000


def exact(raw: bytes, config=DEFAULT_CONFIG):
    saved, validation._vouch = validation._vouch, None
    try:
        return validation.validate_columnar(raw, now_ms=NOW, watermark_ms=WATERMARK, config=config)
    finally:
        validation._vouch = saved


def fast(raw: bytes, config=DEFAULT_CONFIG, labels=None):
    clean = {None, "shoes", "acme", "ios", "app"} if labels is None else labels
    return vouch(raw, NOW, WATERMARK, config, clean)


def columns_as_lists(event: dict) -> dict:
    """ItemColumns may be tuples (column check) or lists (item by item): compare the values."""
    items = event["items"]
    return {**event, "items": None if items is None else [list(column) for column in items]}


def assert_same_as_exact(raw: bytes, config=DEFAULT_CONFIG) -> dict | None:
    event = fast(raw, config)
    if event is not None:
        verdict = exact(raw, config)
        assert verdict.ok, (raw, verdict)
        assert columns_as_lists(event) == columns_as_lists(verdict.event)
        assert list(event) == list(verdict.event)
    return event


impression = partial(sample_events.impression, NOW)
click = partial(sample_events.click, NOW)


def test_clean_events_take_the_fast_path_with_the_exact_paths_result():
    for document in (impression(), click(), click(type="purchase", quantity=2, request_id="r-1"),
                     {"event_id": "e-3", "type": "search", "ts": NOW, "user_id": "u-2", "request_id": "r-2", "query": ""}):
        event = assert_same_as_exact(encode(document))
        assert event is not None, document
    assert fast(encode(impression()))["query"] == "red shoes"


@pytest.mark.parametrize("raw", [
    # repairs the exact path makes: the fast path hands them over
    encode(click(user_id=" u-1")),  # trimmed
    encode(click(user_id=42)),  # integer id written in decimal
    encode(click(price="10.5")),  # numeric string
    encode(click(request_id="")),  # empty optional id -> absent
    encode(click(category="  Shoes ")),  # label cleaned
    encode(impression(items=[{"item_id": "i-1", "price": 1.0}])),  # position imputed
    encode(click(category="sandals")),  # a label not yet known to be clean
    # records the exact path rejects
    encode(click(ts=NOW + 3_600_000)),  # future
    encode(click(ts=WATERMARK - DEFAULT_CONFIG.allowed_lateness_ms - 1)),  # late
    encode(click(price=-1)),
    encode(click(quantity=0)),
    encode(click(type="wishlist_add")),
    encode(impression(items=[])),
    encode(impression(query=None)),
    encode(click(item_id=None)),
    encode(impression(items=[{"item_id": "i-1", "position": 1, "price": 1.0}] * 2)),  # repeated position
    encode(click(ts=True)),
    encode(click(ts=1.7e12)),
    b'{"event_id":"e","type":"click","ts":1699999999000,"user_id":"u","item_id":"i","price":NaN}',
    b'{"event_id":"e","type":"click","ts":1699999999000,"user_id":"u","item_id":"i","price":1e400}',
    b"\xef\xbb\xbf" + encode(click()),  # byte-order mark
    encode(click())[:-1],  # truncated
    encode(click()) + b"{}",  # trailing data
    encode(click(user_id="u\u00a0x")),  # a non-ASCII space inside an id
    encode(click(user_id="a b")),  # an inner space: valid, left to the exact path
    encode(click(extra={"deep": [[[[1]]]]})),  # an unknown key
    encode([click()]),
])
def test_the_fast_path_declines_what_needs_a_repair_or_a_verdict(raw):
    assert fast(raw) is None


def test_repeated_keys_keep_the_last_value_on_both_paths():
    raw = b'{"event_id":"e","type":"search","type":"click","ts":1699999999000,"user_id":"u","item_id":"i"}'
    event = assert_same_as_exact(raw)
    assert event is not None and event["type"] == "click"


def test_numbers_read_as_the_exact_path_reads_them():
    for price in (0, 12, -0.0, 123456789012345678901234567890, 1e-7, 2.5e300):
        event = assert_same_as_exact(encode(click(price=price)))
        assert event is not None and type(event["price"]) is float, price
    huge = json.dumps(click()).replace('"price": 10.5', '"price": ' + "9" * 400).encode()
    assert fast(huge) is None and not exact(huge).ok  # overflows a double: NOT_FINITE


def test_escaped_and_non_ascii_text():
    for user_id in ("\\u00e9l\\u00e8ve", "\\ud83d\\ude00", "\\u65e5\\u672c"):
        raw = encode(click()).replace(b'"user_id": "u-1"', b'"user_id": "' + user_id.encode() + b'"')
        event = assert_same_as_exact(raw)
        assert event is not None and event["user_id"] == json.loads(raw)["user_id"]
    lone = encode(click()).replace(b'"user_id": "u-1"', b'"user_id": "\\ud800"')
    assert fast(lone) is None


def test_the_limits_come_from_the_config():
    tight = dataclasses.replace(DEFAULT_CONFIG, max_id_len=3, max_items=1, max_position=1, max_query_len=4)
    assert fast(encode(click(user_id="u-12")), tight) is None
    assert fast(encode(impression()), tight) is None  # two items
    single = [{"item_id": "i-1", "position": 1, "price": 1.0}]
    assert assert_same_as_exact(encode(impression(items=single, query="abcd", session_id=None)), tight) is not None
    assert fast(encode(impression(items=single, query="abcde", session_id=None)), tight) is None
    assert fast(encode(click()), DEFAULT_CONFIG) is not None  # the default config again, after another


def test_the_fast_path_takes_nearly_every_valid_record_of_a_realistic_stream():
    generator = EventGenerator(GeneratorConfig(seed=11, malformed_share=0.05, start_ms=NOW - 600_000))
    records = [value for _, value in generator.events(3_000)]
    for raw in records:  # the exact path learns the stream's clean labels, as in the job
        validation.validate_columnar(raw, now_ms=NOW + 3_600_000, config=DEFAULT_CONFIG)
    labels = validation._CLEAN_LABELS[DEFAULT_CONFIG.max_string_len]
    accepted = valid = 0
    for raw in records:
        verdict = exact(raw)
        event = vouch(raw, NOW, WATERMARK, DEFAULT_CONFIG, labels)
        if event is not None:
            assert verdict.ok and columns_as_lists(event) == columns_as_lists(verdict.event)
            accepted += 1
        valid += verdict.ok
    assert valid > 2_000 and accepted >= 0.9 * valid, (accepted, valid)
