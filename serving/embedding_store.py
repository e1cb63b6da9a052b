"""Embedding rows for serving: a folded base plus one copy-on-write layer per model version.

The trainer publishes only the rows a version changed (docs/contracts.md), so the rows version V
needs are "everything published up to V". The store keeps exactly that, per version, without
copying the model:

    base                 rows of every version up to `base_version`, folded into one matrix
    layers[V]            the rows version V's deltas changed (a tombstone marks a removed id)
    view(V)              base + layers[v] for base_version < v <= V, newest layer first

A view is immutable and answers lookups for one version while later versions are still
arriving, so the live version, the previous one (rollback) and pending ones coexist. Folding
(`fold_through`) moves old layers into the base in place; the registry only folds what no
in-flight request can still see differently (see ModelRegistry._fold_retired).

Lookups reproduce `Trainer.sparse_embeddings` exactly: one row per sparse field, an id without a
row gets its table's `__default__` row, query token rows are mean-pooled into one field.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from model.features import EncodedBatch, FeatureSpec
from model.tables import DEFAULT_KEY

_INITIAL_ROWS = 1024


class VersionLayer:
    """The rows one version's deltas changed: table -> key -> vector, or None when removed."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.tables: dict[str, dict[str, np.ndarray | None]] = {}

    def set(self, table: str, key: str, vector: np.ndarray | None) -> None:
        self.tables.setdefault(table, {})[key] = vector

    @property
    def row_count(self) -> int:
        return sum(len(rows) for rows in self.tables.values())


class BaseTable:
    """Folded rows of one table: a growable float32 matrix and a key -> row index.

    Writers fill a row before publishing it in the index, and readers look rows up in the index
    before reading `matrix`, so a concurrent reader never sees an unwritten row.
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.matrix = np.zeros((_INITIAL_ROWS, dim), dtype=np.float32)
        self.index: dict[str, int] = {}
        self._free_rows: list[int] = []
        self._used = 0

    def __len__(self) -> int:
        return len(self.index)

    def put(self, key: str, vector: np.ndarray) -> None:
        row = self.index.get(key)
        if row is None:
            row = self._allocate()
        self.matrix[row] = vector
        self.index[key] = row

    def remove(self, key: str) -> None:
        row = self.index.pop(key, None)
        if row is not None:
            self._free_rows.append(row)

    def _allocate(self) -> int:
        if self._free_rows:
            return self._free_rows.pop()
        if self._used == len(self.matrix):
            grown = np.zeros((2 * len(self.matrix), self.dim), dtype=np.float32)
            grown[:self._used] = self.matrix[:self._used]
            self.matrix = grown  # one reference assignment: readers see the old or the new one
        self._used += 1
        return self._used - 1

    @property
    def nbytes(self) -> int:
        return int(self.matrix.nbytes)


class EmbeddingView:
    """The rows one version sees. Immutable; safe to use from any number of threads."""

    def __init__(self, version: int, base: Mapping[str, BaseTable],
                 layers: Sequence[VersionLayer]) -> None:
        self.version = version
        self._base = dict(base)
        newest_first = sorted(layers, key=lambda layer: layer.version, reverse=True)
        self._layers_of: dict[str, tuple[dict[str, np.ndarray | None], ...]] = {}
        for layer in newest_first:
            for table, rows in layer.tables.items():
                self._layers_of[table] = self._layers_of.get(table, ()) + (rows,)
        self._defaults: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ single rows
    def row(self, table: str, key: str) -> np.ndarray | None:
        """The vector of `key` as this version sees it; None when the id has no row of its own."""
        for rows in self._layers_of.get(table, ()):
            if key in rows:
                return rows[key]
        base = self._base.get(table)
        if base is not None:
            position = base.index.get(key)
            if position is not None:
                return base.matrix[position]
        return None

    def default_row(self, table: str) -> np.ndarray:
        default = self._defaults.get(table)
        if default is None:
            default = self.row(table, DEFAULT_KEY)
            if default is None:
                raise KeyError(f"table {table!r} has no {DEFAULT_KEY!r} row in version {self.version}")
            self._defaults[table] = default = np.array(default, dtype=np.float32)
        return default

    def tables_missing_default(self, tables: Iterable[str]) -> list[str]:
        return [t for t in tables if self.row(t, DEFAULT_KEY) is None]

    # ------------------------------------------------------------------ batches
    def vectors(self, table: str, keys: Sequence[str], dim: int) -> np.ndarray:
        """[len(keys), dim] float32; ids without a row get the table's default row."""
        out = np.empty((len(keys), dim), dtype=np.float32)
        layers = self._layers_of.get(table, ())
        base = self._base.get(table)
        base_index = base.index if base is not None else {}
        default = None
        from_base_at: list[int] = []
        from_base_rows: list[int] = []
        for i, key in enumerate(keys):
            for rows in layers:
                if key in rows:
                    vector = rows[key]
                    break
            else:
                position = base_index.get(key)
                if position is not None:
                    from_base_at.append(i)
                    from_base_rows.append(position)
                    continue
                vector = None
            if vector is None:  # never admitted, or removed by a tombstone
                if default is None:
                    default = self.default_row(table)
                vector = default
            out[i] = vector
        if from_base_at:
            # Read the matrix only after every index lookup (see BaseTable).
            out[from_base_at] = base.matrix[from_base_rows]
        return out

    def lookup(self, batch: EncodedBatch, spec: FeatureSpec) -> np.ndarray:
        """`sparse_emb` [B, F, D] for an encoded batch, as Trainer.sparse_embeddings builds it."""
        size, dim = batch.size, spec.embedding_dim
        out = np.empty((size, spec.num_fields, dim), dtype=np.float32)
        if size == 0:
            return out
        for field, (table, keys) in enumerate(zip(spec.sparse_fields, batch.sparse_keys)):
            distinct = list(dict.fromkeys(keys))
            position = dict(zip(distinct, range(len(distinct))))
            inverse = np.fromiter(map(position.__getitem__, keys), np.int64, len(keys))
            out[:, field] = self.vectors(table, distinct, dim)[inverse]
        out[:, -1] = self._pooled_query(batch, spec.query_field, dim)
        return out

    def _pooled_query(self, batch: EncodedBatch, table: str, dim: int) -> np.ndarray:
        buckets, inverse = np.unique(batch.token_buckets, return_inverse=True)
        token_rows = self.vectors(table, [str(b) for b in buckets.tolist()], dim)[inverse]
        starts = batch.token_offsets[:-1]
        counts = np.diff(batch.token_offsets).astype(np.float32)
        # encode() gives every example at least one token (bucket 0 for an empty query).
        return np.add.reduceat(token_rows, starts, axis=0) / counts[:, None]


class EmbeddingStore:
    """All rows of one model that any version still in play needs.

    Mutated by one thread (the registry's, under its lock); views are read by many.
    """

    def __init__(self) -> None:
        self._base: dict[str, BaseTable] = {}
        self._layers: dict[int, VersionLayer] = {}
        self.base_version = 0  # versions <= this live in the base
        self.dim: int | None = None

    def apply(self, version: int, table: str, key: str, vector: Sequence[float]) -> None:
        """Record that `version` set row `key` of `table` to `vector`."""
        row = np.asarray(vector, dtype=np.float32)
        if row.ndim != 1 or not np.isfinite(row).all():
            raise ValueError(f"row {table}/{key} of version {version}: not a finite vector")
        if self.dim is None:
            self.dim = len(row)
        elif len(row) != self.dim:
            raise ValueError(f"row {table}/{key} of version {version} has {len(row)} values, "
                             f"the model's rows have {self.dim}")
        self._layer(version).set(table, key, row)

    def remove(self, version: int, table: str, key: str) -> None:
        """Record that `version` removed id `key` (it falls back to the default row)."""
        self._layer(version).set(table, key, None)

    def _layer(self, version: int) -> VersionLayer:
        if version <= self.base_version:
            raise ValueError(f"version {version} is already folded into the base "
                             f"(base version {self.base_version})")
        layer = self._layers.get(version)
        if layer is None:
            layer = self._layers[version] = VersionLayer(version)
        return layer

    def view(self, version: int) -> EmbeddingView:
        """The rows `version` sees: the base and every layer up to and including `version`."""
        if version < self.base_version:
            raise ValueError(f"version {version} is older than the folded base "
                             f"(version {self.base_version}); its rows are gone")
        layers = [layer for v, layer in self._layers.items() if v <= version]
        return EmbeddingView(version, self._base, layers)

    def fold_through(self, version: int) -> int:
        """Merge the layers of versions <= `version` into the base; returns the rows moved.

        Only views of versions >= `version` keep their meaning afterwards (they either hold the
        folded layers themselves or read the same rows from the base); the caller must make sure
        no one still reads an older view.
        """
        moved = 0
        for v in sorted(v for v in self._layers if v <= version):
            layer = self._layers[v]
            for table, rows in layer.tables.items():
                base = self._base.get(table)
                for key, vector in rows.items():
                    if vector is None:
                        if base is not None:
                            base.remove(key)
                        continue
                    if base is None:
                        base = self._base[table] = BaseTable(len(vector))
                    base.put(key, vector)
                moved += len(rows)
            del self._layers[v]
        self.base_version = max(self.base_version, version)
        return moved

    def layer_versions(self) -> list[int]:
        return sorted(self._layers)

    def stats(self) -> dict:
        return {
            "base_version": self.base_version,
            "base_rows": {table: len(base) for table, base in self._base.items()},
            "base_bytes": sum(base.nbytes for base in self._base.values()),
            "layers": {v: layer.row_count for v, layer in sorted(self._layers.items())},
        }
