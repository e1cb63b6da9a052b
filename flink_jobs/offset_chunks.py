"""Cuts the examples topic into training chunks by Kafka offset, without any Flink import.

A chunk is `size` consecutive examples in offset order. What a chunk holds therefore depends on
the topic alone, never on when records arrived, how the micro-batch windows fell or where the job
was restarted: a replay trains exactly the same chunks, and in deterministic mode reaches
bit-identical weights. Examples still waiting for the rest of their chunk are written to Flink
state (one entry each), so a restore neither loses nor repeats them.

The only exception is the linger: a partial chunk that waited `linger_ms` of processing time is
trained as it is, so a quiet stream still learns. That choice depends on time; set the linger to
0 where replays must be exact.
"""
from __future__ import annotations

import json
from typing import Iterable

Record = tuple[int, int, dict]  # (partition, offset, example)


def offset_runs(offsets: Iterable[int]) -> list[list[int]]:
    """Sorted offsets as [first, last] runs of consecutive values (a transactional topic has
    gaps where its commit markers sit)."""
    runs: list[list[int]] = []
    for offset in sorted(offsets):
        if runs and offset == runs[-1][1] + 1:
            runs[-1][1] = offset
        else:
            runs.append([offset, offset])
    return runs


def _state_key(partition: int, offset: int) -> str:
    return f"{partition}:{offset}"


class OffsetChunks:
    def __init__(self, size: int, linger_ms: int = 0):
        if size < 1:
            raise ValueError(f"chunk size must be >= 1, got {size}")
        self.size = size
        self.linger_ms = linger_ms
        self.pending: list[Record] = []
        self.next_offsets: dict[int, int] = {}  # per partition: the first offset not yet taken in
        self.pending_since_ms: int | None = None  # processing time the oldest pending example arrived
        self.ignored = 0  # records at or below an offset already taken (a replay overlap)
        self._in_state: set[str] = set()

    def add(self, records: Iterable[Record], now_ms: int) -> int:
        """Take in one micro-batch; returns how many records were new."""
        added = 0
        for partition, offset, example in sorted(records, key=lambda r: (r[0], r[1])):
            if offset < self.next_offsets.get(partition, 0):
                self.ignored += 1
                continue
            self.pending.append((partition, offset, example))
            self.next_offsets[partition] = offset + 1
            added += 1
        if self.pending and self.pending_since_ms is None:
            self.pending_since_ms = now_ms
        return added

    def full_chunks(self, now_ms: int) -> list[list[Record]]:
        """Every complete chunk, oldest first; the remainder keeps waiting."""
        count = len(self.pending) // self.size
        if count == 0:
            return []
        cut = count * self.size
        chunks = [self.pending[i:i + self.size] for i in range(0, cut, self.size)]
        self.pending = self.pending[cut:]
        # The remainder arrived with the batch that completed the last chunk (or later).
        self.pending_since_ms = now_ms if self.pending else None
        return chunks

    def linger_due(self, now_ms: int) -> bool:
        return (self.linger_ms > 0 and self.pending_since_ms is not None
                and now_ms - self.pending_since_ms >= self.linger_ms)

    def linger_deadline(self) -> int | None:
        if self.linger_ms <= 0 or self.pending_since_ms is None:
            return None
        return self.pending_since_ms + self.linger_ms

    def take_partial(self) -> list[Record]:
        chunk, self.pending, self.pending_since_ms = self.pending, [], None
        return chunk

    # ------------------------------------------------------------------ state
    def drain_changes(self) -> dict[str, bytes | None]:
        """Pending entries to put (new) and to remove (trained) since the last call."""
        current = {_state_key(p, o): example for p, o, example in self.pending}
        changes: dict[str, bytes | None] = {key: None for key in self._in_state - current.keys()}
        changes.update((key, json.dumps(example).encode()) for key, example in current.items()
                       if key not in self._in_state)
        self._in_state = set(current)
        return changes

    def side(self) -> dict:
        return {"next_offsets": {str(p): o for p, o in self.next_offsets.items()},
                "pending_since_ms": self.pending_since_ms}

    def restore(self, entries: dict[str, bytes], side: dict) -> None:
        records = []
        for key, blob in entries.items():
            partition, offset = key.split(":")
            records.append((int(partition), int(offset), json.loads(blob)))
        self.pending = sorted(records, key=lambda r: (r[0], r[1]))
        self.next_offsets = {int(p): int(o) for p, o in side.get("next_offsets", {}).items()}
        self.pending_since_ms = side.get("pending_since_ms")
        self._in_state = set(entries)

    def pending_count(self) -> int:
        return len(self.pending)
