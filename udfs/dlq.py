"""Dead-letter records for ``freshrank.events.dlq``.

A dead-letter record must let someone find, understand and replay the bad input:
the reason code, a human detail, the raw payload (as text when it is UTF-8, else
base64; truncated, with its original length) and its Kafka position.
"""

from __future__ import annotations

import base64
from typing import Any

from udfs.config import DEFAULT_CONFIG, ValidationConfig
from udfs.reasons import Reason

DLQ_TOPIC = "freshrank.events.dlq"
DLQ_RECORD_VERSION = 1


def to_dlq_record(
    raw: bytes | bytearray | memoryview | str | None,
    reason: Reason | str,
    detail: str,
    *,
    source_topic: str,
    partition: int,
    offset: int,
    ingest_ms: int,
    config: ValidationConfig = DEFAULT_CONFIG,
) -> dict[str, Any]:
    """Build the dead-letter record (a JSON-serialisable dict) for one rejected raw record.

    ``reason`` must be a ``Reason`` or its code; an unknown code raises ValueError,
    since that is a programming error, not bad input.
    """
    payload = _as_bytes(raw)
    limit = config.dlq_payload_max_bytes
    kept = payload[:limit]
    if _is_utf8(payload):
        # "ignore" can only drop the one character that the truncation cut in half.
        text, encoding = kept.decode("utf-8", "ignore"), "utf-8"
    else:
        text, encoding = base64.b64encode(kept).decode("ascii"), "base64"
    max_detail = config.dlq_detail_max_chars
    return {
        "dlq_version": DLQ_RECORD_VERSION,
        "reason": Reason(reason).value,
        "detail": detail if len(detail) <= max_detail else detail[: max_detail - 3] + "...",
        "payload": text,
        "payload_encoding": encoding,
        "payload_length": len(payload),
        "payload_truncated": len(payload) > limit,
        "source_topic": source_topic,
        "source_partition": partition,
        "source_offset": offset,
        "ingest_ms": ingest_ms,
    }


def decode_dlq_payload(record: dict[str, Any]) -> bytes:
    """The (possibly truncated) raw bytes kept in a dead-letter record, for replay tools."""
    if record["payload_encoding"] == "base64":
        return base64.b64decode(record["payload"])
    return record["payload"].encode("utf-8")


def _as_bytes(raw: object) -> bytes:
    if raw is None:
        return b""
    if type(raw) is str:
        # surrogatepass keeps lone surrogates (possible in a str, never in bytes) byte-exact;
        # the result is then not valid UTF-8 and travels as base64.
        return raw.encode("utf-8", "surrogatepass")
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return bytes(raw)
    return repr(raw).encode("utf-8", "backslashreplace")


def _is_utf8(payload: bytes) -> bool:
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
