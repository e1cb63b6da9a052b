"""The JSON Schema in schemas/event.v1.json and the validator agree on what a valid raw event is.

The schema documents the contract for producers; the validator enforces it. Checks
that JSON Schema cannot express (size, depth, event-time window, unique positions,
overflowing numeric strings) are left out of these examples on purpose; they are
listed in docs/event-contract.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

jsonschema = pytest.importorskip("jsonschema")

from udfs.config import DEFAULT_CONFIG  # noqa: E402
from udfs.validation import EVENT_TYPES, validate  # noqa: E402

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "event.v1.json"
NOW = 1_700_000_000_000


@pytest.fixture(scope="module")
def schema_validator():
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def click(**overrides) -> dict:
    event = {"event_id": "e-1", "type": "click", "ts": NOW, "user_id": "u-1", "item_id": "i-1"}
    event.update(overrides)
    return event


def impression(**overrides) -> dict:
    event = {"event_id": "e-2", "type": "impression", "ts": NOW, "user_id": 7, "request_id": "r-1",
             "query": "Red Shoes", "items": [{"item_id": "i-1", "position": 1, "price": 9.5}, {"item_id": 12}]}
    event.update(overrides)
    return event


EXAMPLES = {
    # valid
    "click": click(),
    "click with extras and optional nulls": click(session_id=None, price="12.5", quantity=2, brand=None, extra=[1]),
    "search": {"event_id": "e-3", "type": "search", "ts": str(NOW), "user_id": "u", "request_id": "r", "query": ""},
    "impression": impression(),
    "impression, integral float ts and position string": impression(
        ts=float(NOW), items=[{"item_id": "a", "position": "3", "category": 5}]),
    "purchase with integer ids and trimmed id": click(type="purchase", user_id=-3, item_id=" i-9 ", quantity=0.5),
    "optional blank session id": click(session_id="   "),
    # invalid
    "not an object": ["click"],
    "missing user_id": {k: v for k, v in click().items() if k != "user_id"},
    "unknown type": click(type="view"),
    "ts fractional": click(ts=NOW + 0.5),
    "ts seconds": click(ts=NOW // 1000),
    "ts signed string": click(ts="-5"),
    "boolean event_id": click(event_id=True),
    "blank user_id": click(user_id="  "),
    "id with control char": click(user_id="u\u0007x"),
    "id too long": click(event_id="e" * (DEFAULT_CONFIG.max_id_len + 1)),
    "id beyond int64": click(user_id=2**63),
    "negative price": click(price=-1),
    "price text": click(price="cheap"),
    "zero quantity": click(quantity=0),
    "click without item_id": {k: v for k, v in click().items() if k != "item_id"},
    "search without query": {"event_id": "e", "type": "search", "ts": NOW, "user_id": "u", "request_id": "r"},
    "impression without request_id": {k: v for k, v in impression().items() if k != "request_id"},
    "impression with empty items": impression(items=[]),
    "impression with 201 items": impression(items=[{"item_id": str(n)} for n in range(201)]),
    "item position 0": impression(items=[{"item_id": "a", "position": 0}]),
    "item without item_id": impression(items=[{"position": 1}]),
    "item not an object": impression(items=["a"]),
    "query too long": impression(query="q" * (DEFAULT_CONFIG.max_query_len + 1)),
    "query number": impression(query=5),
    "label too long": click(brand="b" * (DEFAULT_CONFIG.max_string_len + 1)),
    "label array": click(category=["a"]),
}


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_schema_and_validator_agree(name, schema_validator):
    document = EXAMPLES[name]
    schema_says_valid = schema_validator.is_valid(document)
    verdict = validate(json.dumps(document).encode(), now_ms=NOW, watermark_ms=NOW)
    assert schema_says_valid == verdict.ok, (name, verdict.reason, verdict.detail)


def test_examples_cover_both_verdicts(schema_validator):
    verdicts = [schema_validator.is_valid(document) for document in EXAMPLES.values()]
    assert verdicts.count(True) >= 7 and verdicts.count(False) >= 20


def test_schema_limits_match_the_config():
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    defs = schema["$defs"]
    assert set(schema["properties"]["type"]["enum"]) == EVENT_TYPES
    assert defs["required_id"]["anyOf"][0]["maxLength"] == DEFAULT_CONFIG.max_id_len
    assert schema["properties"]["query"]["maxLength"] == DEFAULT_CONFIG.max_query_len
    assert defs["label"]["anyOf"][0]["maxLength"] == DEFAULT_CONFIG.max_string_len
    assert defs["timestamp"]["anyOf"][0]["minimum"] == DEFAULT_CONFIG.min_ts_ms
    items = schema["allOf"][1]["then"]["properties"]["items"]
    assert items["maxItems"] == DEFAULT_CONFIG.max_items
    assert defs["item"]["properties"]["position"]["anyOf"][0]["maximum"] == DEFAULT_CONFIG.max_position


def test_schema_accepts_generated_valid_events(schema_validator):
    from hypothesis import HealthCheck, given, settings

    from tests.unit.test_validation_properties import NOW_MS, WATERMARK_MS, valid_raw_events

    @settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(valid_raw_events())
    def check(document):
        assert validate(json.dumps(document).encode(), now_ms=NOW_MS, watermark_ms=WATERMARK_MS).ok
        errors = [error.message[:200] for error in schema_validator.iter_errors(document)]
        assert not errors, errors

    check()
