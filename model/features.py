"""Turning training-example dicts (docs/contracts.md) into model inputs.

`encode` is shared by the trainer and by serving, so it is pure (no state besides a memo of query
tokenisations), cheap (column-wise extraction, no per-field Python loops per example) and stable
across processes (query tokens are hashed with zlib.crc32, never with Python's salted `hash`).
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass
from functools import lru_cache
from itertools import chain, repeat
from operator import itemgetter
from typing import Any, Mapping, Sequence

import numpy as np

from model.config import ModelConfig

LABEL_FIELDS = ("click", "purchase")
# Bucket 0 stands for "no query", so an empty query still contributes one embedding.
EMPTY_QUERY_BUCKET = 0


@lru_cache(maxsize=1 << 16)
def query_token_buckets(query: str, buckets: int) -> tuple[int, ...]:
    """Whitespace tokens of `query`, each hashed into [1, buckets); (0,) for an empty query."""
    tokens = query.split()
    if not tokens:
        return (EMPTY_QUERY_BUCKET,)
    return tuple(1 + zlib.crc32(t.encode("utf-8")) % (buckets - 1) for t in tokens)


@dataclass(frozen=True)
class EncodedBatch:
    """A batch of examples, column-wise.

    sparse_keys[f][i] is the string key of sparse field f for example i. Query tokens are a
    ragged array: the tokens of example i are token_buckets[token_offsets[i]:token_offsets[i+1]].
    """

    sparse_keys: tuple[list[str], ...]
    token_buckets: np.ndarray  # int64 [T]
    token_offsets: np.ndarray  # int64 [B + 1]
    dense: np.ndarray  # float32 [B, N], raw values
    ts: np.ndarray  # int64 [B], event time in ms (0 when absent)
    click: np.ndarray | None  # float32 [B]
    purchase: np.ndarray | None  # float32 [B]

    @property
    def size(self) -> int:
        return int(self.dense.shape[0])

    @property
    def has_labels(self) -> bool:
        return self.click is not None and self.purchase is not None


@dataclass(frozen=True)
class FeatureSpec:
    """Which example fields feed the model, and how. Serving gets it from meta.json."""

    sparse_fields: tuple[str, ...]
    query_field: str
    dense_fields: tuple[str, ...]
    token_buckets: int
    embedding_dim: int

    @classmethod
    def from_config(cls, config: ModelConfig) -> "FeatureSpec":
        return cls(
            sparse_fields=tuple(config.sparse_fields),
            query_field=config.query_field,
            dense_fields=tuple(config.dense_fields),
            token_buckets=config.token_buckets,
            embedding_dim=config.embedding_dim,
        )

    @property
    def table_names(self) -> tuple[str, ...]:
        """Tables in the order of the field axis of `sparse_emb`: sparse fields, then the query."""
        return self.sparse_fields + (self.query_field,)

    @property
    def num_fields(self) -> int:
        return len(self.sparse_fields) + 1

    @property
    def num_dense(self) -> int:
        return len(self.dense_fields)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FeatureSpec":
        return cls(
            sparse_fields=tuple(data["sparse_fields"]),
            query_field=str(data["query_field"]),
            dense_fields=tuple(data["dense_fields"]),
            token_buckets=int(data["token_buckets"]),
            embedding_dim=int(data["embedding_dim"]),
        )

    def encode(self, examples: Sequence[Mapping[str, Any]]) -> EncodedBatch:
        return encode(examples, self)


def encode(examples: Sequence[Mapping[str, Any]], spec: FeatureSpec) -> EncodedBatch:
    """Encode examples column-wise; labels are read when the first example has them."""
    n = len(examples)
    with_labels = n > 0 and all(f in examples[0] for f in LABEL_FIELDS)
    sparse_keys = tuple(_as_str_keys(_column(examples, f, "")) for f in spec.sparse_fields)
    queries = _column(examples, spec.query_field, "")
    if None in queries:
        queries = [q or "" for q in queries]
    tokens = list(map(query_token_buckets, queries, repeat(spec.token_buckets, n)))
    lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat_tokens = np.fromiter(chain.from_iterable(tokens), dtype=np.int64, count=int(offsets[-1]))
    ts = np.array(_column(examples, "ts", 0), dtype=np.int64)
    dense = _float_matrix([_column(examples, f, 0.0) for f in spec.dense_fields], n)
    click = purchase = None
    if with_labels:
        click = np.array(_column(examples, "click", 0), dtype=np.float32)
        purchase = np.array(_column(examples, "purchase", 0), dtype=np.float32)
    return EncodedBatch(sparse_keys, flat_tokens, offsets, dense, ts, click, purchase)


def _column(examples: Sequence[Mapping[str, Any]], field: str, default: Any) -> list:
    try:
        return list(map(itemgetter(field), examples))
    except KeyError:  # some example lacks the field: the contract's default for it
        return [e.get(field, default) for e in examples]


def _as_str_keys(column: list) -> list[str]:
    # Table keys are strings; ids normally arrive as str, position and hour as int.
    if set(map(type, column)) <= {str}:
        return column
    if None in column:  # a null id is unknown, like ''
        return ["" if v is None else str(v) for v in column]
    return list(map(str, column))


def _float_matrix(columns: Sequence[Sequence[Any]], n_rows: int) -> np.ndarray:
    if not columns or n_rows == 0:
        return np.zeros((n_rows, len(columns)), dtype=np.float32)
    matrix = np.array(columns, dtype=np.float32).T
    if not np.isfinite(matrix).all():
        # numpy turns None into NaN; a null counts as missing (0.0), a real NaN stays NaN.
        matrix = np.array([[0.0 if v is None else v for v in col] for col in columns],
                          dtype=np.float32).T
    return np.ascontiguousarray(matrix)
