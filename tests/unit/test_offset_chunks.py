"""Cutting the examples topic into chunks by offset."""
from __future__ import annotations

import pytest

from flink_jobs.offset_chunks import OffsetChunks, offset_runs


def records(offsets, partition=0):
    return [(partition, o, {"o": o}) for o in offsets]


def test_offset_runs_merge_consecutive_offsets():
    assert offset_runs([5, 3, 4, 9, 10, 12]) == [[3, 5], [9, 10], [12, 12]]
    assert offset_runs([]) == []


def test_chunks_are_fixed_size_in_offset_order_whatever_the_batches():
    chunks = OffsetChunks(size=4)
    chunks.add(records([2, 0, 1]), now_ms=0)
    assert chunks.full_chunks(now_ms=0) == []
    chunks.add(records([3, 5, 6]), now_ms=1)
    (chunk,) = chunks.full_chunks(now_ms=1)
    assert [o for _, o, _ in chunk] == [0, 1, 2, 3]
    assert [o for _, o, _ in chunks.pending] == [5, 6] and chunks.pending_since_ms == 1


def test_records_below_the_taken_offset_are_ignored():
    chunks = OffsetChunks(size=10)
    assert chunks.add(records(range(5)), now_ms=0) == 5
    assert chunks.add(records(range(3, 8)), now_ms=0) == 3
    assert chunks.ignored == 2 and chunks.next_offsets == {0: 8}
    assert chunks.add(records([0], partition=1), now_ms=0) == 1  # partitions are separate


def test_state_changes_write_only_what_still_waits():
    chunks = OffsetChunks(size=3)
    chunks.add(records([0, 1]), now_ms=0)
    assert set(chunks.drain_changes()) == {"0:0", "0:1"}
    chunks.add(records([2, 3]), now_ms=0)
    chunks.full_chunks(now_ms=0)
    assert chunks.drain_changes() == {"0:0": None, "0:1": None, "0:3": b'{"o": 3}'}
    assert chunks.drain_changes() == {}


def test_restore_brings_back_pending_offsets_and_linger():
    chunks = OffsetChunks(size=3, linger_ms=500)
    chunks.add(records([7, 8]), now_ms=100)
    state = chunks.drain_changes()
    restored = OffsetChunks(size=3, linger_ms=500)
    restored.restore(state, chunks.side())
    assert restored.pending == chunks.pending and restored.next_offsets == {0: 9}
    assert restored.linger_deadline() == 600 and restored.drain_changes() == {}


def test_no_linger_means_partial_chunks_wait():
    chunks = OffsetChunks(size=3, linger_ms=0)
    chunks.add(records([1]), now_ms=0)
    assert not chunks.linger_due(10**12) and chunks.linger_deadline() is None


def test_chunk_size_must_be_positive():
    with pytest.raises(ValueError, match="chunk size"):
        OffsetChunks(size=0)
