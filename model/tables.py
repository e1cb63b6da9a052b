"""Dynamic, collisionless embedding tables with row-wise Adagrad.

A table maps string keys to rows of one weight tensor through a Python dict, so two ids never
share a row. Row 0 is the shared default row, used by every id that is not (yet) admitted.
Per-row bookkeeping lives in numpy arrays beside the tensor, so a batch touches it with a few
vectorised operations:

  last_seen     event time (ms) the row was last used       -> expiry, LRU eviction
  hits          how often the row was used                  -> LFU eviction
  updated_step  trainer step of the row's last change        -> changed rows, snapshot deltas
  slot_step     trainer step of its last Adagrad update      -> lazy accumulator decay / reset

Nothing here scans the table per batch: expiry sweeps and eviction searches are O(rows) but run
rarely (a sweep every expire_after_ms / 8 of event time, eviction in chunks).
"""

from __future__ import annotations

import heapq
import json
import struct
import sys
from collections import Counter, deque
from itertools import repeat
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch

DEFAULT_KEY = "__default__"
DEFAULT_ROW = 0
_MIN_ALLOC = 1024
# Per row in a snapshot delta: last_seen, hits, updated_step, slot_step, accumulator, key length.
_ROW_HEADER = struct.Struct("<qqqqfI")
_PENDING_VALUE = struct.Struct("<q")  # packed (last_seen << _COUNT_BITS | count)
_COUNT_BITS = 20
_COUNT_MASK = (1 << _COUNT_BITS) - 1
# Event times (ms) below this keep packed pending values inside int64 (until the year 2248).
_VECTOR_CLOCK_LIMIT = 1 << (63 - _COUNT_BITS)


def unique_rows(rows: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """np.unique(rows, return_inverse=True, return_counts=True) for rows in [0, bound).

    Small tables (most fields: device, hour, ...) take a counting pass instead of a sort.
    """
    if bound > 4 * len(rows):
        return np.unique(rows, return_inverse=True, return_counts=True)
    counts = np.bincount(rows, minlength=bound)
    unique = np.flatnonzero(counts)
    position = np.empty(bound, dtype=np.int64)
    position[unique] = np.arange(len(unique))
    return unique, position[rows], counts[unique]


def rowwise_adagrad(tables: Sequence["EmbeddingTable"], rows: Sequence[np.ndarray],
                    grad: torch.Tensor, weights: torch.Tensor | None, lr: float, step: int,
                    decay: float) -> None:
    """Row-wise Adagrad for the distinct rows of several tables at once.

    `grad` (and `weights`, the rows' current values if the caller has them) is a [R, D] block
    holding table 0's rows, then table 1's, ... Each row keeps one accumulator, the running sum
    of its mean squared gradient: w -= lr * g / sqrt(acc). Doing the arithmetic once on the
    block and only the gathers/scatters per table keeps the update to a few dozen tensor ops.
    """
    device = grad.device
    rows_t = [torch.from_numpy(r).to(device) for r in rows]
    accumulator = torch.cat([t.accumulator.index_select(0, r) for t, r in zip(tables, rows_t)])
    if weights is None:
        weights = torch.cat([t.weight.index_select(0, r) for t, r in zip(tables, rows_t)])
    due = [t.accumulator_decay(r, step, decay) for t, r in zip(tables, rows)]
    if any(d is not None for d in due):
        factor = np.concatenate([d[0] if d is not None else np.ones(len(r), np.float32)
                                 for d, r in zip(due, rows)])
        base = np.concatenate([d[1] if d is not None else np.zeros(len(r), np.float32)
                               for d, r in zip(due, rows)])
        accumulator = (accumulator * torch.from_numpy(factor).to(device)
                       + torch.from_numpy(base).to(device))
    accumulator = accumulator + grad.pow(2).mean(dim=1)
    updated = weights - lr * grad / (accumulator.sqrt() + 1e-10).unsqueeze(1)
    start = 0
    for table, r, r_t in zip(tables, rows, rows_t):
        end = start + len(r)
        table.weight.index_copy_(0, r_t, updated[start:end])
        table.accumulator.index_copy_(0, r_t, accumulator[start:end])
        table.slot_step[r] = step
        table.updated_step[r] = step
        start = end


class EmbeddingTable:
    """One dynamic embedding table: admission, expiry, eviction, row-wise Adagrad, dirty rows."""

    def __init__(
        self,
        name: str,
        dim: int,
        capacity: int,
        admit_after: int,
        expire_after_ms: int | None,
        eviction: str,
        eviction_batch_fraction: float,
        default_row: np.ndarray,
        initial_accumulator: float,
        keep_anchor: bool,
        device: torch.device,
    ) -> None:
        self.name = name
        self.dim = dim
        self.capacity = capacity
        self.admit_after = admit_after
        self.expire_after_ms = expire_after_ms
        self.eviction = eviction
        self.eviction_batch = max(1, int(capacity * eviction_batch_fraction))
        self.initial_accumulator = initial_accumulator
        self.device = device
        # Ids waiting for admission, bounded like the table itself. Each value packs
        # (last_seen_ms << _COUNT_BITS | count) into one int: ints are not tracked by Python's
        # garbage collector, where a list per pending id made every full collection crawl.
        self.max_pending = capacity
        self.pending: dict[str, int] = {}
        # Pending keys changed since the last snapshot delta; None until the first delta (which
        # carries every pending key), so a trainer never snapshotted does not accumulate them.
        self.pending_changed: set[str] | None = None
        # Expired/evicted key -> step it was removed, for tombstones; kept from the first
        # publication on (removing what was never published needs no tombstone).
        self.removed: dict[str, int] | None = None
        self.index: dict[str, int] = {}
        self.free_rows: list[int] = []  # a min-heap, so reuse order does not depend on history
        self.used = 1  # rows [0, used) have been handed out at least once
        self.admitted = self.expired = self.evicted = 0
        self.next_sweep_ms: int | None = None
        self.slot_reset_step = -1  # accumulators last updated at or before this step are reset

        alloc = min(capacity + 1, _MIN_ALLOC)
        self.weight = torch.zeros(alloc, dim, dtype=torch.float32, device=device)
        self.weight[DEFAULT_ROW] = torch.as_tensor(default_row, dtype=torch.float32)
        self.accumulator = torch.full((alloc,), initial_accumulator, dtype=torch.float32,
                                      device=device)
        self.anchor: torch.Tensor | None = self.weight.clone() if keep_anchor else None
        self.last_seen = np.zeros(alloc, dtype=np.int64)
        self.hits = np.zeros(alloc, dtype=np.int64)
        self.updated_step = np.zeros(alloc, dtype=np.int64)
        self.slot_step = np.zeros(alloc, dtype=np.int64)
        self.alive = np.zeros(alloc, dtype=bool)
        self.alive[DEFAULT_ROW] = True
        self.pinned = np.zeros(alloc, dtype=bool)
        self.row_keys: list[str | None] = [None] * alloc
        self.row_keys[DEFAULT_ROW] = DEFAULT_KEY

    # ------------------------------------------------------------------ lookups
    @property
    def live_rows(self) -> int:
        """Admitted ids (the default row not counted)."""
        return len(self.index)

    def lookup(self, keys: Iterable[str], count: int) -> np.ndarray:
        """Rows for `keys` without side effects; unknown keys get the default row."""
        return np.fromiter(map(self.index.get, keys, repeat(DEFAULT_ROW)), np.int64, count)

    def observe(self, keys: list[str], now_ms: int, step: int,
                counts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Training-time lookup of a batch's keys: with repeats, or distinct with `counts`.

        Counts sightings of not-yet-admitted ids and admits those that reach `admit_after`,
        then marks every used row as seen now. Returns the distinct rows used (sorted; row 0 for
        ids still on the default row) and, per key, its position among them. Used rows stay
        pinned (never evicted or expired) until `unpin_all`, i.e. until their update is applied.
        """
        rows = self.lookup(keys, len(keys))
        self.pinned[rows] = True  # before admitting: making room must not evict these
        missing = np.flatnonzero(rows == DEFAULT_ROW)
        missing_keys = list(map(keys.__getitem__, missing.tolist()))
        if "" in missing_keys:
            # A missing value ('') is not an id: it stays on the shared default row, never gets
            # a row of its own (whose delta key `<model>/<table>/` would have no row key).
            kept = [i for i, key in enumerate(missing_keys) if key]
            missing, missing_keys = missing[kept], [missing_keys[i] for i in kept]
        if len(missing):
            if counts is None:
                # Counter tallies repeated keys in C, in first-seen order.
                tally = Counter(missing_keys)
                distinct = list(tally)
                sightings = np.fromiter(tally.values(), np.int64, len(tally))
            else:
                distinct, sightings = missing_keys, counts[missing]
            ready = self._count_pending(distinct, sightings, now_ms)
            if len(ready):
                admitted = self._admit([distinct[i] for i in ready.tolist()], now_ms, step)
                if counts is None:
                    rows[missing] = self.lookup(missing_keys, len(missing_keys))
                elif admitted:  # the first len(admitted) ready ids got these rows
                    rows[missing[ready[:len(admitted)]]] = admitted
        unique, inverse, row_counts = unique_rows(rows, self.used)
        if counts is not None:
            row_counts = np.bincount(inverse, weights=counts,
                                     minlength=len(unique)).astype(np.int64)
        self.last_seen[unique] = now_ms
        self.hits[unique] += row_counts
        self.updated_step[unique] = step
        self.pinned[unique] = True
        return unique, inverse

    def _count_pending(self, keys: list[str], sightings: np.ndarray, now_ms: int) -> np.ndarray:
        """Add `sightings` (int64, one count per key) of the distinct, unadmitted ids `keys`;
        returns the positions (in `keys`) of those now admissible, in order."""
        pending = self.pending
        if not 0 <= now_ms < _VECTOR_CLOCK_LIMIT:  # packed values would not fit in int64
            return self._count_pending_loop(keys, sightings.tolist(), now_ms)
        # Vectorised: read the counts in C, add in numpy, write back with one dict.update (in
        # key order, so the pending map keeps the order the one-by-one loop gave it).
        before = np.fromiter(map(pending.get, keys, repeat(0)), np.int64, len(keys))
        counts = (before & _COUNT_MASK) + sightings
        np.minimum(counts, _COUNT_MASK, out=counts)  # only an id without a row counts this far
        pending.update(zip(keys, (counts | (now_ms << _COUNT_BITS)).tolist()))
        ready = np.flatnonzero(counts >= self.admit_after)
        self._note_pending(keys)
        if len(pending) > self.max_pending:
            self._prune_pending(keep=self.max_pending // 2,
                                protect=[keys[i] for i in ready.tolist()])
        return ready

    def _count_pending_loop(self, keys: list[str], sightings: list[int], now_ms: int
                            ) -> np.ndarray:
        """`_count_pending` one id at a time (any clock value; the reference for the tests)."""
        ready = []
        pending, admit_after, stamp = self.pending, self.admit_after, now_ms << _COUNT_BITS
        get = pending.get
        for i, (key, seen) in enumerate(zip(keys, sightings)):
            count = (get(key, 0) & _COUNT_MASK) + seen
            if count > _COUNT_MASK:  # only an id that could not get a row counts this far
                count = _COUNT_MASK
            pending[key] = stamp | count
            if count >= admit_after:
                ready.append(i)
        self._note_pending(keys)
        if len(pending) > self.max_pending:
            self._prune_pending(keep=self.max_pending // 2, protect=[keys[i] for i in ready])
        return np.array(ready, dtype=np.int64)

    def _prune_pending(self, keep: int, protect: Iterable[str] = ()) -> None:
        # Forget the ids seen longest ago; they start counting again if they come back.
        by_age = sorted(self.pending.items(), key=lambda kv: kv[1], reverse=True)
        kept = dict(by_age[:keep])
        kept.update((k, self.pending[k]) for k in protect if k in self.pending)
        self._note_pending([k for k in self.pending if k not in kept])
        self.pending = kept

    def _note_pending(self, keys: Iterable[str]) -> None:
        if self.pending_changed is not None:
            self.pending_changed.update(keys)

    def pending_count(self, key: str) -> int:
        """Sightings of a not-yet-admitted id (0 when unknown or admitted)."""
        return self.pending.get(key, 0) & _COUNT_MASK

    def _admit(self, keys: list[str], now_ms: int, step: int) -> list[int]:
        rows = self._allocate(len(keys), step)
        keys = keys[:len(rows)]  # when every row is pinned, the rest stay pending
        if not rows:
            return []
        # One C-level pass each instead of a Python loop over the new ids.
        self.index.update(zip(keys, rows))
        deque(map(self.row_keys.__setitem__, rows, keys), maxlen=0)
        deque(map(self.pending.pop, keys), maxlen=0)
        if self.removed:
            deque(map(self.removed.pop, keys, repeat(None)), maxlen=0)
        rows_np = np.asarray(rows, dtype=np.int64)
        rows_t = torch.from_numpy(rows_np).to(self.device)
        # A new row starts as the default row, so admission leaves predictions unchanged.
        default = self.weight[DEFAULT_ROW].expand(len(rows), -1).clone()
        self.weight.index_copy_(0, rows_t, default)
        self.accumulator.index_fill_(0, rows_t, self.initial_accumulator)
        if self.anchor is not None:
            self.anchor.index_copy_(0, rows_t, default)
        self.hits[rows_np] = 0  # LFU counts uses since admission
        self.slot_step[rows_np] = step
        self.alive[rows_np] = True
        self.admitted += len(rows)
        return rows

    def _allocate(self, n: int, step: int) -> list[int]:
        rows = self._pop_free(n)
        fresh = min(n - len(rows), self.capacity + 1 - self.used)
        if fresh > 0:
            self._ensure_allocated(self.used + fresh)
            rows.extend(range(self.used, self.used + fresh))
            self.used += fresh
        if len(rows) < n:
            self.evicted += self._evict(max(n - len(rows), self.eviction_batch), step)
            rows.extend(self._pop_free(n - len(rows)))
        return rows

    def _pop_free(self, n: int) -> list[int]:
        return [heapq.heappop(self.free_rows) for _ in range(min(n, len(self.free_rows)))]

    def _evict(self, n: int, step: int) -> int:
        candidates = np.flatnonzero(self.alive[:self.used] & ~self.pinned[:self.used])
        candidates = candidates[candidates != DEFAULT_ROW]
        if len(candidates) == 0:
            return 0
        score = self.last_seen if self.eviction == "lru" else self.hits
        n = min(n, len(candidates))
        victims = candidates[np.argpartition(score[candidates], n - 1)[:n]]
        self._free(np.sort(victims), step)
        return n

    def _ensure_allocated(self, rows_needed: int) -> None:
        alloc = self.weight.shape[0]
        if rows_needed <= alloc:
            return
        new_alloc = min(self.capacity + 1, max(rows_needed, 2 * alloc))
        extra = new_alloc - alloc

        def grow_tensor(t: torch.Tensor, fill: float) -> torch.Tensor:
            pad = torch.full((extra,) + tuple(t.shape[1:]), fill, dtype=t.dtype, device=t.device)
            return torch.cat([t, pad])

        self.weight = grow_tensor(self.weight, 0.0)
        self.accumulator = grow_tensor(self.accumulator, self.initial_accumulator)
        if self.anchor is not None:
            self.anchor = grow_tensor(self.anchor, 0.0)
        for name in ("last_seen", "hits", "updated_step", "slot_step", "alive", "pinned"):
            array = getattr(self, name)
            setattr(self, name, np.concatenate([array, np.zeros(extra, dtype=array.dtype)]))
        self.row_keys.extend([None] * extra)

    def _free(self, rows: np.ndarray, step: int) -> None:
        for row in rows.tolist():
            key = self.row_keys[row]
            del self.index[key]
            self.row_keys[row] = None
            if self.removed is not None:
                self.removed[key] = step
        self.alive[rows] = False
        self.updated_step[rows] = step
        for row in rows.tolist():
            heapq.heappush(self.free_rows, row)

    def unpin_all(self) -> None:
        self.pinned[:self.used] = False

    # ------------------------------------------------------------------ expiry
    def maybe_expire(self, now_ms: int, step: int) -> int:
        """Free rows unseen for expire_after_ms; runs at most every expire_after_ms / 8."""
        if self.expire_after_ms is None:
            return 0
        if self.next_sweep_ms is not None and now_ms < self.next_sweep_ms:
            return 0
        self.next_sweep_ms = now_ms + max(1, self.expire_after_ms // 8)
        horizon = now_ms - self.expire_after_ms
        stale = self.alive[:self.used] & ~self.pinned[:self.used] & (
            self.last_seen[:self.used] < horizon)
        stale[DEFAULT_ROW] = False
        rows = np.flatnonzero(stale)
        if len(rows):
            self._free(rows, step)
            self.expired += len(rows)
        oldest_kept = horizon << _COUNT_BITS
        old_pending = [k for k, packed in self.pending.items() if packed < oldest_kept]
        for key in old_pending:
            del self.pending[key]
        self._note_pending(old_pending)
        return len(rows)

    # ------------------------------------------------------------------ optimiser
    def adagrad_update(self, rows: np.ndarray, grad: torch.Tensor, lr: float, step: int,
                       decay: float) -> None:
        """Row-wise Adagrad on this table's distinct `rows` (see `rowwise_adagrad`)."""
        rowwise_adagrad([self], [rows], grad, None, lr, step, decay)

    def accumulator_decay(self, rows: np.ndarray, step: int, decay: float
                          ) -> tuple[np.ndarray, np.ndarray] | None:
        """(factor, base) to bring the accumulators of `rows` up to `step`: decay ** steps since
        their last update, or a reset to the initial value; None when nothing is due."""
        last = self.slot_step[rows]
        reset = last <= self.slot_reset_step
        if decay == 1.0 and not reset.any():
            return None
        factor = np.where(reset, 0.0, decay ** (step - last).astype(np.float64))
        base = np.where(reset, self.initial_accumulator, 0.0)
        return factor.astype(np.float32), base.astype(np.float32)

    def reset_slots(self, step: int) -> None:
        """Reset every accumulator, lazily: each is reset when its row is next updated."""
        self.slot_reset_step = step

    def set_anchor_to_current(self) -> None:
        if self.anchor is not None:
            self.anchor.copy_(self.weight)

    # ------------------------------------------------------------------ changes
    def changed_rows(self, since_step: int) -> np.ndarray:
        """Live rows (default row included) changed after `since_step`."""
        used = self.used
        return np.flatnonzero(self.alive[:used] & (self.updated_step[:used] > since_step))

    def removed_keys(self, since_step: int) -> list[str]:
        return [k for k, s in (self.removed or {}).items() if s > since_step]

    def forget_removed(self, up_to_step: int) -> None:
        """Called at each publication: start tracking removals, drop those older than needed."""
        self.removed = {k: s for k, s in (self.removed or {}).items() if s > up_to_step}

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        index = torch.from_numpy(rows).to(self.device)
        return self.weight.index_select(0, index).cpu().numpy()

    def key_of(self, row: int) -> str:
        return self.row_keys[row]

    # ------------------------------------------------------------------ persistence
    def delta_entries(self, since_step: int
                      ) -> tuple[dict[int, bytes | None], dict[str, bytes | None]]:
        """Rows and pending ids changed since `since_step`, packed; None marks a freed row or a
        pending id that is gone (admitted or forgotten). Clears the pending change set."""
        used = self.used
        rows = np.flatnonzero(self.updated_step[:used] > since_step)
        live = rows[self.alive[rows]]
        packed: dict[int, bytes | None] = {int(r): None for r in rows[~self.alive[rows]]}
        packed.update(self.pack_rows(live))
        changed = self.pending if self.pending_changed is None else self.pending_changed
        pending = {key: (_PENDING_VALUE.pack(self.pending[key]) if key in self.pending else None)
                   for key in changed}
        self.pending_changed = set()
        return packed, pending

    def pack_rows(self, rows: np.ndarray) -> dict[int, bytes]:
        if len(rows) == 0:
            return {}
        index = torch.from_numpy(rows).to(self.device)
        weights = self.weight.index_select(0, index).cpu().numpy()
        accumulators = self.accumulator.index_select(0, index).cpu().numpy()
        anchors = (self.anchor.index_select(0, index).cpu().numpy()
                   if self.anchor is not None else None)
        packed = {}
        for i, row in enumerate(rows.tolist()):
            key = self.row_keys[row].encode("utf-8")
            header = _ROW_HEADER.pack(int(self.last_seen[row]), int(self.hits[row]),
                                      int(self.updated_step[row]), int(self.slot_step[row]),
                                      float(accumulators[i]), len(key))
            body = weights[i].tobytes() + (anchors[i].tobytes() if anchors is not None else b"")
            packed[row] = header + key + body
        return packed

    def load_rows(self, packed: Mapping[int, bytes]) -> None:
        """Load packed rows into an empty table (restore), then rebuild index and free list."""
        if not packed:
            return
        self._ensure_allocated(max(packed) + 1)
        self.used = max(self.used, max(packed) + 1)
        rows = np.fromiter(packed, dtype=np.int64, count=len(packed))
        weights = np.empty((len(rows), self.dim), dtype=np.float32)
        anchors = np.empty_like(weights) if self.anchor is not None else None
        accumulators = np.empty(len(rows), dtype=np.float32)
        vector_bytes = 4 * self.dim
        for i, (row, blob) in enumerate(packed.items()):
            last_seen, hits, updated, slot, acc, key_len = _ROW_HEADER.unpack_from(blob)
            start = _ROW_HEADER.size
            key = blob[start:start + key_len].decode("utf-8")
            start += key_len
            weights[i] = np.frombuffer(blob, np.float32, self.dim, start)
            if anchors is not None:
                anchors[i] = np.frombuffer(blob, np.float32, self.dim, start + vector_bytes)
            accumulators[i] = acc
            self.last_seen[row], self.hits[row] = last_seen, hits
            self.updated_step[row], self.slot_step[row] = updated, slot
            self.alive[row] = True
            self.row_keys[row] = key
            if row != DEFAULT_ROW:
                self.index[key] = row
        index = torch.from_numpy(rows).to(self.device)
        self.weight.index_copy_(0, index, torch.from_numpy(weights).to(self.device))
        self.accumulator.index_copy_(0, index, torch.from_numpy(accumulators).to(self.device))
        if anchors is not None:
            self.anchor.index_copy_(0, index, torch.from_numpy(anchors).to(self.device))
        self.free_rows = np.flatnonzero(~self.alive[:self.used]).tolist()  # sorted: a valid heap

    def load_pending(self, packed: Mapping[str, bytes]) -> None:
        for key, blob in packed.items():
            self.pending[key] = _PENDING_VALUE.unpack(blob)[0]

    def state(self) -> dict:
        """Scalars and small collections (not per-row arrays) needed to restore the table."""
        return {
            "used": self.used, "admitted": self.admitted, "expired": self.expired,
            "evicted": self.evicted, "next_sweep_ms": self.next_sweep_ms,
            "slot_reset_step": self.slot_reset_step,
            "removed": None if self.removed is None else dict(self.removed),
            "pending_tracked": self.pending_changed is not None,
        }

    def load_state(self, state: Mapping) -> None:
        self._ensure_allocated(int(state["used"]))
        self.used = max(self.used, int(state["used"]))
        self.admitted, self.expired = int(state["admitted"]), int(state["expired"])
        self.evicted = int(state["evicted"])
        self.next_sweep_ms = state["next_sweep_ms"]
        self.slot_reset_step = int(state["slot_reset_step"])
        self.removed = None if state["removed"] is None else dict(state["removed"])
        if state["pending_tracked"] and self.pending_changed is None:
            self.pending_changed = set()  # restored from deltas: in step with the last one
        self.free_rows = np.flatnonzero(~self.alive[:self.used]).tolist()  # sorted: a valid heap

    def arrays(self) -> dict[str, np.ndarray | bytes]:
        """Every row of the table as numpy arrays (full snapshot)."""
        used = self.used
        out: dict[str, np.ndarray | bytes] = {
            "weight": self.weight[:used].cpu().numpy().copy(),
            "accumulator": self.accumulator[:used].cpu().numpy().copy(),
            "last_seen": self.last_seen[:used].copy(),
            "hits": self.hits[:used].copy(),
            "updated_step": self.updated_step[:used].copy(),
            "slot_step": self.slot_step[:used].copy(),
            "alive": self.alive[:used].copy(),
            "keys": json.dumps(self.row_keys[:used]).encode("utf-8"),
            "pending": json.dumps(self.pending).encode("utf-8"),
            "pending_changed": json.dumps(None if self.pending_changed is None
                                          else sorted(self.pending_changed)).encode("utf-8"),
        }
        if self.anchor is not None:
            out["anchor"] = self.anchor[:used].cpu().numpy().copy()
        return out

    def load_arrays(self, arrays: Mapping[str, np.ndarray | bytes]) -> None:
        used = len(arrays["alive"])
        self._ensure_allocated(used)
        self.used = used
        self.weight[:used] = torch.from_numpy(np.asarray(arrays["weight"])).to(self.device)
        self.accumulator[:used] = torch.from_numpy(
            np.asarray(arrays["accumulator"])).to(self.device)
        if self.anchor is not None and "anchor" in arrays:
            self.anchor[:used] = torch.from_numpy(np.asarray(arrays["anchor"])).to(self.device)
        for name in ("last_seen", "hits", "updated_step", "slot_step", "alive"):
            getattr(self, name)[:used] = arrays[name]
        self.row_keys[:used] = json.loads(arrays["keys"])
        self.index = {k: r for r, k in enumerate(self.row_keys[:used])
                      if k is not None and r != DEFAULT_ROW}
        self.pending = json.loads(arrays["pending"])
        changed = json.loads(arrays["pending_changed"])
        self.pending_changed = None if changed is None else set(changed)
        self.free_rows = np.flatnonzero(~self.alive[:used]).tolist()  # sorted: a valid heap

    # ------------------------------------------------------------------ memory
    def memory_bytes(self) -> dict[str, int]:
        """Bytes held: row tensors and bookkeeping arrays, and the Python key index."""
        tensors = self.weight.nbytes + self.accumulator.nbytes
        if self.anchor is not None:
            tensors += self.anchor.nbytes
        arrays = sum(getattr(self, n).nbytes for n in
                     ("last_seen", "hits", "updated_step", "slot_step", "alive", "pinned"))
        keys = sum(sys.getsizeof(k) for k in self.index)
        index = sys.getsizeof(self.index) + sys.getsizeof(self.row_keys) + keys
        return {"tensors": tensors, "arrays": arrays, "index": index,
                "allocated_rows": int(self.weight.shape[0]), "live_rows": self.live_rows}
