"""Limits and time rules of the event validator (event contract v1).

Every limit lives here so the contract document, the JSON Schema and the
validator read the same numbers. All lengths count Unicode code points of the
raw string as received (the same unit JSON Schema's ``maxLength`` uses).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

# 2000-01-01T00:00:00Z. Anything earlier is almost certainly a timestamp sent in
# seconds instead of milliseconds, which would otherwise poison event-time windows.
_Y2K_MS = 946_684_800_000


@dataclass(frozen=True)
class ValidationConfig:
    """Validator limits. Defaults are the v1 contract; override per deployment.

    Attributes:
        max_record_bytes: largest accepted Kafka record value, in bytes (64 KiB).
        max_depth: deepest accepted JSON nesting; the root object is depth 1 and an
            impression item is depth 3, so this must be at least 3.
        max_id_len: longest id (event_id, user_id, session_id, request_id, item_id).
        max_query_len: longest raw query text.
        max_string_len: longest label (category, brand, device, platform).
        max_items: most result items in one impression.
        max_position: highest accepted 1-based position on a result page.
        max_future_skew_ms: how far ``ts`` may lie ahead of the wall clock (5 min).
        allowed_lateness_ms: how far ``ts`` may lie behind the watermark (1 h).
        min_ts_ms: earliest plausible ``ts`` (2000-01-01 UTC); catches seconds-not-ms.
        dlq_payload_max_bytes: raw bytes kept in a dead-letter record (8 KiB).
        dlq_detail_max_chars: longest human-readable detail in a dead-letter record.
    """

    max_record_bytes: int = 65_536
    max_depth: int = 32
    max_id_len: int = 128
    max_query_len: int = 512
    max_string_len: int = 256
    max_items: int = 200
    max_position: int = 10_000
    max_future_skew_ms: int = 5 * 60 * 1000
    allowed_lateness_ms: int = 60 * 60 * 1000
    min_ts_ms: int = _Y2K_MS
    dlq_payload_max_bytes: int = 8_192
    dlq_detail_max_chars: int = 512

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            # bool is an int subclass; True as a limit is always a mistake.
            if type(value) is not int:
                raise ValueError(f"{field.name} must be an int, got {value!r}")
        _require(self.max_record_bytes >= 2, "max_record_bytes must be >= 2 (the smallest JSON object)")
        # Above ~500 levels the JSON parser's recursion limit would fire before our check.
        _require(3 <= self.max_depth <= 500, "max_depth must be in [3, 500]")
        for name in ("max_id_len", "max_query_len", "max_string_len", "max_items",
                     "max_position", "dlq_detail_max_chars"):
            _require(getattr(self, name) >= 1, f"{name} must be >= 1")
        for name in ("max_future_skew_ms", "allowed_lateness_ms", "min_ts_ms",
                     "dlq_payload_max_bytes"):
            _require(getattr(self, name) >= 0, f"{name} must be >= 0")
        _require(self.max_position >= self.max_items,
                 "max_position must be >= max_items (a full page needs distinct positions)")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


DEFAULT_CONFIG = ValidationConfig()
