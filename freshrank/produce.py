"""`freshrank produce`: generated behaviour events into the events topic, at a given rate."""
from __future__ import annotations

import json
import sys
import time

from freshrank.config import FreshrankConfig
from freshrank.datagen import EventGenerator, GeneratorConfig


class Progress:
    """A one-line progress display for a person; plain periodic lines when not on a terminal."""

    def __init__(self, total: int, label: str, stream=sys.stderr):
        self.total, self.label, self.stream = total, label, stream
        self.started = time.monotonic()
        self.last_draw = 0.0
        self.tty = stream.isatty()

    def update(self, done: int, extra: str = "", force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_draw < (0.2 if self.tty else 5.0):
            return
        self.last_draw = now
        rate = done / max(now - self.started, 1e-9)
        if self.total:
            width = 30
            filled = int(width * done / self.total)
            bar = "#" * filled + "-" * (width - filled)
            text = f"{self.label} [{bar}] {done:,}/{self.total:,} {rate:,.0f}/s {extra}"
        else:
            text = f"{self.label} {done:,} {rate:,.0f}/s {extra}"
        self.stream.write(("\r" + text) if self.tty else (text + "\n"))
        self.stream.flush()

    def close(self, done: int, extra: str = "") -> None:
        self.update(done, extra, force=True)
        if self.tty:
            self.stream.write("\n")


def _event_ts(value: bytes) -> int | None:
    """The record's event time, or None when the record has no usable one."""
    try:
        ts = json.loads(value).get("ts")
        return ts if isinstance(ts, int) and ts > 0 else None
    except (ValueError, AttributeError, UnicodeDecodeError):
        return None


class KafkaTimestamps:
    """Kafka record timestamps that follow event time, so source watermarks follow it too.

    A record without a plausible ts (malformed, or far in the future, which the broker rejects
    with INVALID_TIMESTAMP and takes its whole batch down with it) gets the last good one.
    """

    MAX_AHEAD_MS = 30 * 60_000  # below the broker's message.timestamp.after.max.ms (1 h)
    MIN_MS = 946_684_800_000  # 2000-01-01: smaller values are seconds, not milliseconds

    def __init__(self) -> None:
        self.last: int | None = None

    def for_record(self, value: bytes) -> int | None:
        ts = _event_ts(value)
        if ts is not None and self.MIN_MS <= ts <= time.time() * 1000 + self.MAX_AHEAD_MS:
            self.last = ts
        return self.last


def produce(cfg: FreshrankConfig, *, n: int, rate: float, seed: int, malformed_share: float,
            duplicate_share: float, realtime: bool = True, log_stream=sys.stderr) -> int:
    """Send n generated records (n=0: until interrupted); returns how many were sent."""
    from confluent_kafka import Producer
    gen_cfg = GeneratorConfig(
        seed=seed, malformed_share=malformed_share, duplicate_share=duplicate_share,
        # In real time the simulated clock runs at the send rate and starts now, so event time
        # and wall time agree and the job's watermarks and windows behave as in production.
        **({"start_ms": int(time.time() * 1000), "events_per_second": rate} if realtime and rate > 0 else {}),
    )
    producer = Producer({"bootstrap.servers": cfg.kafka.bootstrap, "linger.ms": 20,
                         "compression.type": "lz4", "enable.idempotence": True})
    topic = cfg.kafka.topics.events
    progress = Progress(n, f"producing to {topic}", log_stream)
    timestamps = KafkaTimestamps()
    failures: dict[str, int] = {}

    def on_delivery(err, _msg) -> None:
        if err is not None:
            failures[err.name()] = failures.get(err.name(), 0) + 1

    started = time.monotonic()
    sent = 0
    try:
        for key, value in EventGenerator(gen_cfg).events(n or None):
            ts = timestamps.for_record(value)
            while True:
                try:
                    producer.produce(topic, value, key=key, on_delivery=on_delivery,
                                     **({"timestamp": ts} if ts else {}))
                    break
                except BufferError:  # local queue full: let it drain
                    producer.poll(0.1)
            sent += 1
            producer.poll(0)
            if rate > 0:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0.005:
                    time.sleep(ahead)
            progress.update(sent)
    except KeyboardInterrupt:
        pass
    finally:
        producer.flush(30)
        progress.close(sent, "done" + (f", delivery failures: {failures}" if failures else ""))
    if failures:
        raise RuntimeError(f"{sum(failures.values())} of {sent} records were not delivered: {failures}")
    return sent
