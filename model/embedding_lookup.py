"""Serving-side embedding rows: builds the `sparse_emb` input of the exported ONNX graph.

Serving receives rows as deltas (table, key, vector), with `__default__` as each table's shared
row for ids that have no row of their own. `EmbeddingLookup` keeps them as one float32 matrix per
table (slot 0 is the default row) plus a key -> slot dict, so a batch is a few dict lookups and
numpy gathers. It reproduces exactly what the trainer feeds its network.
"""

from __future__ import annotations

import heapq
from itertools import repeat
from typing import Iterable, Mapping

import numpy as np

from model.features import EncodedBatch, FeatureSpec
from model.tables import DEFAULT_KEY

_DEFAULT_SLOT = 0


class _RowStore:
    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.matrix = np.zeros((64, dim), dtype=np.float32)  # until a default arrives: zeros
        self.slots: dict[str, int] = {}
        self.free: list[int] = []
        self.used = 1

    def upsert(self, key: str, vector: np.ndarray) -> None:
        if key == DEFAULT_KEY:
            self.matrix[_DEFAULT_SLOT] = vector
            return
        slot = self.slots.get(key)
        if slot is None:
            slot = heapq.heappop(self.free) if self.free else self._new_slot()
            self.slots[key] = slot
        self.matrix[slot] = vector

    def remove(self, key: str) -> None:
        slot = self.slots.pop(key, None)
        if slot is not None:
            heapq.heappush(self.free, slot)

    def _new_slot(self) -> int:
        if self.used == len(self.matrix):
            self.matrix = np.concatenate([self.matrix, np.zeros_like(self.matrix)])
        self.used += 1
        return self.used - 1

    def gather(self, keys: list[str]) -> np.ndarray:
        slots = np.fromiter(map(self.slots.get, keys, repeat(_DEFAULT_SLOT)), np.int64, len(keys))
        return self.matrix[slots]


class EmbeddingLookup:
    """Embedding rows of every table of `spec`, updated by deltas."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self._stores = {name: _RowStore(spec.embedding_dim) for name in spec.table_names}

    @classmethod
    def from_rows(cls, spec: FeatureSpec,
                  rows: Mapping[str, Mapping[str, np.ndarray]]) -> "EmbeddingLookup":
        """From {table: {key: vector}}, default rows under key '__default__'."""
        lookup = cls(spec)
        for table, vectors in rows.items():
            for key, vector in vectors.items():
                lookup.upsert(table, key, vector)
        return lookup

    def upsert(self, table: str, key: str, vector: np.ndarray) -> None:
        store = self._stores[table]
        vector = np.asarray(vector, dtype=np.float32)
        if vector.shape != (store.dim,):
            raise ValueError(f"row {table}/{key} has shape {vector.shape}, expected ({store.dim},)")
        store.upsert(key, vector)

    def remove(self, table: str, key: str) -> None:
        """Drop an expired/evicted id: it falls back to the default row."""
        self._stores[table].remove(key)

    def apply(self, deltas: Iterable[tuple[str, str, np.ndarray | None]]) -> None:
        """Apply (table, key, vector) deltas; a None vector removes the key."""
        for table, key, vector in deltas:
            if vector is None:
                self.remove(table, key)
            else:
                self.upsert(table, key, vector)

    def rows(self, table: str) -> int:
        return len(self._stores[table].slots)

    def sparse_emb(self, batch: EncodedBatch) -> np.ndarray:
        """float32 [B, F, D]: one row per sparse field, the mean of the query-token rows last."""
        n, spec = batch.size, self.spec
        out = np.empty((n, spec.num_fields, spec.embedding_dim), dtype=np.float32)
        for f, (name, keys) in enumerate(zip(spec.sparse_fields, batch.sparse_keys)):
            out[:, f] = self._stores[name].gather(keys)
        token_keys = list(map(str, batch.token_buckets.tolist()))
        token_rows = self._stores[spec.query_field].gather(token_keys)
        lengths = np.diff(batch.token_offsets).astype(np.float32)
        sums = np.add.reduceat(token_rows, batch.token_offsets[:-1], axis=0) if n else token_rows
        out[:, -1] = sums / lengths[:, None]
        return out


def build_sparse_emb(batch: EncodedBatch, spec: FeatureSpec,
                     rows: Mapping[str, Mapping[str, np.ndarray]]) -> np.ndarray:
    """One-shot form of `EmbeddingLookup.from_rows(spec, rows).sparse_emb(batch)`."""
    return EmbeddingLookup.from_rows(spec, rows).sparse_emb(batch)
