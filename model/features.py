"""Turning training-example dicts (docs/contracts.md) into model inputs.

`encode` is shared by the trainer and by serving, so it is pure (no state besides a memo of query
tokenisations), cheap and stable across processes (query tokens are hashed with zlib.crc32, never
with Python's salted `hash`).

Cheap means as little Python work per example as possible: one pass per field to read it, one to
deduplicate each id field and the query (a dict in first-seen order); everything else (string
keys of integer ids, query tokenisation, the ragged token array) is done once per distinct value
and spread back to the examples with numpy. The distinct keys go into the batch, so the trainer
looks each distinct id up once instead of once per example.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from itertools import chain
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

    sparse_distinct (optional, filled by `encode`): per sparse field, None or its distinct keys
    in first-seen order and each example's index among them, so that
    sparse_keys[f][i] == sparse_distinct[f][0][sparse_distinct[f][1][i]]. The trainer then looks
    each distinct key up once; without them (a field of nearly all distinct ids, or a batch
    built by hand) it looks the keys up example by example, with the same result.
    """

    sparse_keys: tuple[list[str], ...]
    token_buckets: np.ndarray  # int64 [T]
    token_offsets: np.ndarray  # int64 [B + 1]
    dense: np.ndarray  # float32 [B, N], raw values
    ts: np.ndarray  # int64 [B], event time in ms (0 when absent)
    click: np.ndarray | None  # float32 [B]
    purchase: np.ndarray | None  # float32 [B]
    sparse_distinct: tuple[tuple[list[str], np.ndarray] | None, ...] | None = field(
        default=None, repr=False, compare=False)

    @property
    def size(self) -> int:
        return int(self.dense.shape[0])

    @property
    def has_labels(self) -> bool:
        return self.click is not None and self.purchase is not None

    def distinct_keys(self, f: int) -> tuple[list[str], np.ndarray] | None:
        """Distinct keys of sparse field f (first-seen order) and int64 [B] indices into them,
        when `encode` found them worth computing."""
        return None if self.sparse_distinct is None else self.sparse_distinct[f]


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
    sparse = [_sparse_column(_column(examples, f, "")) for f in spec.sparse_fields]
    tokens, offsets = _query_tokens(_column(examples, spec.query_field, ""), spec.token_buckets)
    ts = np.array(_column(examples, "ts", 0), dtype=np.int64)
    dense, click, purchase = _numbers(examples, spec.dense_fields, with_labels)
    return EncodedBatch(tuple(keys for keys, _ in sparse), tokens, offsets, dense, ts, click,
                        purchase, tuple(distinct for _, distinct in sparse))


def _column(examples: Sequence[Mapping[str, Any]], field: str, default: Any) -> list:
    # A comprehension, not map(itemgetter(field), ...): on CPython 3.11 its specialised
    # dict subscript costs about half as much per example as a call to an itemgetter.
    try:
        return [e[field] for e in examples]
    except KeyError:  # some example lacks the field: the contract's default for it
        return [e.get(field, default) for e in examples]


# Positions as ready-made int objects: iterating them allocates nothing, unlike range().
_POSITIONS = list(range(8192))


def _dedupe(column: Sequence[Any]) -> tuple[list, np.ndarray]:
    """Distinct values of `column` in first-seen order, and each value's index among them."""
    n = len(column)
    first: dict = {}
    # One C-level pass: setdefault returns the position where the value was first seen.
    positions = _POSITIONS if n <= len(_POSITIONS) else range(n)
    seen_at = np.array(list(map(first.setdefault, column, positions)), dtype=np.int64)
    distinct = list(first)
    if len(distinct) == n:
        return distinct, seen_at  # all distinct: seen_at is 0..n-1
    position = np.empty(n, dtype=np.int64)
    position[np.fromiter(first.values(), dtype=np.int64, count=len(distinct))] = np.arange(
        len(distinct))
    return distinct, position[seen_at]


_INT_OR_STR = {str, int, type(None)}


# Deduplicating costs about what the trainer saves by looking each distinct id up once, so a
# field whose first examples are nearly all distinct (item ids) is left to per-example lookups.
_SAMPLE, _MOSTLY_DISTINCT = 512, 0.75


def _sparse_column(column: list) -> tuple[list[str], tuple[list[str], np.ndarray] | None]:
    """String keys of one sparse field (see `_as_str_keys`) and, unless nearly all distinct,
    its distinct keys."""
    try:
        sample = column[:_SAMPLE]
        if len(set(sample)) > _MOSTLY_DISTINCT * len(sample) and set(map(type, column)) <= {str}:
            return column, None
        values, inverse = _dedupe(column)
    except TypeError:  # an unhashable value (off-contract): its string is the key
        column = _as_str_keys(column)
        return column, _dedupe(column)
    types = set(map(type, values))
    if types <= {str}:
        # (A str subclass equal to an earlier plain str is not converted, unlike in
        # `_as_str_keys`: it hashes and compares alike, so no lookup changes.)
        return column, (values, inverse)
    # Ids normally arrive as str, position and hour as int: convert each distinct value once.
    # Only for exact str/int/None throughout: a bool or float equal to an int is merged with
    # it by the dict but prints differently, hence the check of the whole column.
    if types <= _INT_OR_STR and set(map(type, column)) <= _INT_OR_STR:
        keys = ["" if v is None else str(v) for v in values]
        if len(set(keys)) == len(keys):  # e.g. 3 and "3" would map to one key
            return [keys[i] for i in inverse.tolist()], (keys, inverse)
    column = _as_str_keys(column)
    return column, _dedupe(column)


def _as_str_keys(column: list) -> list[str]:
    # Table keys are strings; ids normally arrive as str, position and hour as int.
    if set(map(type, column)) <= {str}:
        return column
    if None in column:  # a null id is unknown, like ''
        return ["" if v is None else str(v) for v in column]
    return list(map(str, column))


def _query_tokens(queries: list, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """(token_buckets [T], token_offsets [B + 1]) of the queries, tokenised once per distinct
    query and spread back to the examples with numpy."""
    n = len(queries)
    distinct, inverse = _dedupe(queries)
    if None in distinct:
        distinct = [q or "" for q in distinct]
    tokens = [query_token_buckets(q, buckets) for q in distinct]
    distinct_lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    distinct_starts = np.zeros(len(tokens) + 1, dtype=np.int64)
    np.cumsum(distinct_lengths, out=distinct_starts[1:])
    distinct_flat = np.fromiter(chain.from_iterable(tokens), dtype=np.int64,
                                count=int(distinct_starts[-1]))
    lengths = distinct_lengths[inverse]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    # Token j of example i sits at distinct_starts[inverse[i]] + (j - offsets[i]).
    shift = np.repeat(distinct_starts[:-1][inverse] - offsets[:-1], lengths)
    return distinct_flat[np.arange(int(offsets[-1]), dtype=np.int64) + shift], offsets


def _numbers(examples: Sequence[Mapping[str, Any]], dense_fields: tuple[str, ...],
             with_labels: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Dense features (float32 [B, N], raw) and, `with_labels`, click and purchase (float32 [B])."""
    n, n_dense = len(examples), len(dense_fields)
    fields = dense_fields + (LABEL_FIELDS if with_labels else ())
    if n and n_dense and len(fields) > 1:
        try:
            # Example by example, so each one's values are read while its dict is in cache (on a
            # live stream the dicts and their values are scattered over the heap): about half the
            # time of a pass per field. Through float64, which rounds to float32 exactly as the
            # direct conversion does.
            values = np.fromiter(chain.from_iterable(map(itemgetter(*fields), examples)),
                                 dtype=np.float64, count=n * len(fields))
        except (KeyError, TypeError, ValueError):
            values = None  # a missing field or an odd value: field by field, with defaults
        # numpy reads a null as NaN: non-finite values take the slow way too, which tells a
        # null dense feature (0.0) from a real NaN and keeps a null label NaN.
        if values is not None and np.isfinite(values).all():
            matrix = values.reshape(n, len(fields)).astype(np.float32)
            if not with_labels:
                return matrix, None, None
            return (np.ascontiguousarray(matrix[:, :n_dense]),
                    np.ascontiguousarray(matrix[:, n_dense]),
                    np.ascontiguousarray(matrix[:, n_dense + 1]))
    dense = _float_matrix([_column(examples, f, 0.0) for f in dense_fields], n)
    if not with_labels:
        return dense, None, None
    return (dense, np.array(_column(examples, "click", 0), dtype=np.float32),
            np.array(_column(examples, "purchase", 0), dtype=np.float32))


def _float_matrix(columns: Sequence[Sequence[Any]], n_rows: int) -> np.ndarray:
    if not columns or n_rows == 0:
        return np.zeros((n_rows, len(columns)), dtype=np.float32)
    matrix = np.array(columns, dtype=np.float32).T
    if not np.isfinite(matrix).all():
        # numpy turns None into NaN; a null counts as missing (0.0), a real NaN stays NaN.
        matrix = np.array([[0.0 if v is None else v for v in col] for col in columns],
                          dtype=np.float32).T
    return np.ascontiguousarray(matrix)
