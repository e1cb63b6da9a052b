"""Clean events as records of ``freshrank.events.clean``: what the validator hands the feature stage.

One compact JSON object per record: the clean event's fields (``CLEAN_EVENT_FIELDS``, cleaned
and imputed as the event contract says), plus ``event_time``: ``ts``, or the watermark the event
arrived behind when it was late within the allowed lateness (event time downstream). An
impression's ``items`` is an object of five arrays, element k of each describing item k in
display order, because that is the validator's own layout and Flink's JSON format reads it
straight into typed arrays; other events have ``"items": null``.
"""
from __future__ import annotations

import json
from typing import Any

from udfs.validation import CLEAN_EVENT_FIELDS, CLEAN_ITEM_FIELDS, to_json

try:  # orjson (pinned) is the fast path, as for parsing in udfs.validation; the text is the same JSON.
    from orjson import dumps as _orjson_dumps

    def _dumps(record: dict[str, Any]) -> str:
        return _orjson_dumps(record).decode()
except ImportError:  # pragma: no cover
    _dumps = to_json

CLEAN_RECORD_FIELDS = (*CLEAN_EVENT_FIELDS, "event_time")


def to_clean_record(event: dict[str, Any], event_time: int) -> str:
    """The clean-topic record of a clean event from ``validate_columnar`` (items as ItemColumns).

    Takes ownership of ``event`` (it is completed in place, not copied: once per record)."""
    items = event["items"]
    if items is not None:
        event["items"] = dict(zip(CLEAN_ITEM_FIELDS, items))
    event["event_time"] = event_time
    return _dumps(event)


def from_clean_record(text: str | bytes) -> dict[str, Any]:
    """A clean-topic record as the clean event ``validate`` returns (items as one dict per item),
    with its ``event_time``: for tools and tests that read the topic."""
    record = json.loads(text)
    items = record["items"]
    if items is not None:
        record["items"] = [dict(zip(CLEAN_ITEM_FIELDS, item)) for item in zip(*(items[f] for f in CLEAN_ITEM_FIELDS))]
    return record
