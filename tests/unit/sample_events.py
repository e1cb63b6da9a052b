"""Clean sample events for the validator's fast-path tests, to change field by field."""
from __future__ import annotations

import json


def impression(now_ms: int, **overrides) -> dict:
    event = {"event_id": "e-1", "type": "impression", "ts": now_ms - 1_000, "user_id": "u-1", "session_id": "s-1",
             "request_id": "r-1", "query": "Red  Shoes", "device": "ios", "platform": "app",
             "items": [{"item_id": "i-1", "position": 1, "price": 10.5, "category": "shoes", "brand": "acme"},
                       {"item_id": "i-2", "position": 2, "price": 3.0, "category": "shoes", "brand": None}]}
    event.update(overrides)
    return event


def click(now_ms: int, **overrides) -> dict:
    event = {"event_id": "e-2", "type": "click", "ts": now_ms - 500, "user_id": "u-1", "item_id": "i-1",
             "price": 10.5, "category": "shoes", "brand": "acme"}
    event.update(overrides)
    return event


def encode(document) -> bytes:
    return json.dumps(document).encode()
