"""Configuration of the ranking model and of its incremental trainer.

Both dataclasses are frozen and validate themselves on construction, so a bad value fails where
it is written, with a message naming the field, instead of deep inside a training step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

SPARSE_FIELDS: tuple[str, ...] = (
    "user_id", "item_id", "category", "brand", "device", "platform", "position", "hour",
    "u_last_category",
)
QUERY_FIELD = "query"
DENSE_FIELDS: tuple[str, ...] = (
    "u_click_5m", "u_click_1h", "u_click_24h", "u_cart_5m", "u_cart_1h", "u_cart_24h",
    "u_purchase_5m", "u_purchase_1h", "u_purchase_24h",
    "i_impr_1h", "i_click_1h", "i_ctr_1h", "qi_ctr_24h", "price",
)
EVICTION_POLICIES = ("lru", "lfu")
SLOT_RESET_POLICIES = ("never", "every_n_steps", "on_publish")
DEVICES = ("auto", "cpu", "cuda")
DAY_MS = 86_400_000


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class ModelConfig:
    """What the model looks like: fields, embedding tables and the dense network.

    One embedding table per sparse field (named after the field) plus one table for hashed query
    tokens (named after the query field). Table keys are strings, mapped to rows without collisions.

    Table lifecycle, per table:
      * admission: an id gets its own row after it was seen ``admit_after`` times; until then it
        shares the table's default row (published under key ``__default__``).
      * expiry: a row not seen for ``expire_after_ms`` of **event time** (the ``ts`` of the
        examples, so a replay expires the same rows) is freed; ``None`` disables expiry.
      * capacity: at most ``capacity`` rows (``table_capacity`` overrides per table); when full, an
        admission evicts the least recently seen (``lru``) or least often seen (``lfu``) rows.
    """

    embedding_dim: int = 16
    sparse_fields: tuple[str, ...] = SPARSE_FIELDS
    query_field: str = QUERY_FIELD
    dense_fields: tuple[str, ...] = DENSE_FIELDS
    # Query tokens are hashed (zlib.crc32) into this many buckets; bucket 0 means "no query".
    token_buckets: int = 1 << 18
    # (64, 32) learns the datagen stream as well as (128, 64) (bench.drift) at half the cost.
    hidden_sizes: tuple[int, ...] = (64, 32)
    admit_after: int = 2
    expire_after_ms: int | None = 7 * DAY_MS
    capacity: int = 1_000_000
    # Per-table capacity overrides, as (table name, capacity) pairs.
    table_capacity: tuple[tuple[str, int], ...] = ()
    eviction: str = "lru"
    # When the table is full, evict this fraction of its capacity at once (at least what is
    # needed), so the O(capacity) search for victims is amortised over many admissions.
    eviction_batch_fraction: float = 0.01
    # Std of the random initial default rows; admitted rows start as a copy of the default row,
    # so admission does not change a prediction.
    init_std: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        _require(self.embedding_dim >= 1, f"embedding_dim must be >= 1, got {self.embedding_dim}")
        _require(len(self.sparse_fields) >= 1, "sparse_fields must name at least one field")
        names = list(self.sparse_fields) + [self.query_field]
        _require(len(set(names)) == len(names),
                 f"sparse_fields and query_field must be distinct, got {names}")
        _require(len(set(self.dense_fields)) == len(self.dense_fields),
                 f"dense_fields has duplicates: {self.dense_fields}")
        _require(not set(self.dense_fields) & set(names),
                 "a field cannot be both dense and sparse: "
                 f"{sorted(set(self.dense_fields) & set(names))}")
        _require(self.token_buckets >= 2,
                 f"token_buckets must be >= 2 (bucket 0 is reserved), got {self.token_buckets}")
        _require(all(h >= 1 for h in self.hidden_sizes),
                 f"hidden_sizes must be positive, got {self.hidden_sizes}")
        _require(1 <= self.admit_after < 1 << 20,
                 f"admit_after must be in [1, 2**20), got {self.admit_after}")
        _require(self.expire_after_ms is None or self.expire_after_ms > 0,
                 f"expire_after_ms must be > 0 or None, got {self.expire_after_ms}")
        _require(self.capacity >= 1, f"capacity must be >= 1, got {self.capacity}")
        for name, cap in self.table_capacity:
            _require(name in names, f"table_capacity names unknown table {name!r}; tables: {names}")
            _require(cap >= 1, f"table_capacity for {name!r} must be >= 1, got {cap}")
        _require(self.eviction in EVICTION_POLICIES,
                 f"eviction must be one of {EVICTION_POLICIES}, got {self.eviction!r}")
        _require(0.0 < self.eviction_batch_fraction <= 1.0,
                 f"eviction_batch_fraction must be in (0, 1], got {self.eviction_batch_fraction}")
        _require(self.init_std >= 0.0, f"init_std must be >= 0, got {self.init_std}")

    @property
    def table_names(self) -> tuple[str, ...]:
        """Tables in the order their embeddings appear along the field axis of ``sparse_emb``."""
        return tuple(self.sparse_fields) + (self.query_field,)

    def capacity_of(self, table: str) -> int:
        return dict(self.table_capacity).get(table, self.capacity)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        fields = dict(data)
        for key in ("sparse_fields", "dense_fields", "hidden_sizes"):
            if key in fields:
                fields[key] = tuple(fields[key])
        if "table_capacity" in fields:
            fields["table_capacity"] = tuple((str(n), int(c)) for n, c in fields["table_capacity"])
        return cls(**fields)


@dataclass(frozen=True)
class TrainerConfig:
    """How the model learns from micro-batches.

    Sparse rows use row-wise Adagrad (one accumulator per row, so 4 bytes of optimiser state per
    row); the dense network uses Adam.
    """

    sparse_lr: float = 0.05
    # Row-wise Adagrad accumulators start here. Keep it far below the squared gradients of a row
    # (which scale with 1/batch size, the loss being a batch mean), or it swamps them and the
    # rows barely move; at 0 each row's first step has an RMS of exactly sparse_lr.
    sparse_initial_accumulator: float = 0.0
    # Per-step decay of a row's Adagrad accumulator (applied lazily when the row is next touched).
    # 1.0 is plain Adagrad, whose step size only shrinks; < 1 keeps busy rows able to follow drift.
    sparse_accumulator_decay: float = 0.999
    dense_lr: float = 3e-3
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    # Weight of the purchase head's log-loss relative to the click head's.
    purchase_loss_weight: float = 1.0
    # Gradients are summed over this many micro-batches (averaged) before one update.
    accumulation_steps: int = 1
    # Clip the global gradient norm (dense and touched rows together); None disables clipping.
    max_grad_norm: float | None = 10.0
    # L2 pull towards the weights of the last published version (0 disables it). With embedding
    # anchoring on, each table keeps a copy of its published rows (doubling row memory).
    anchor_l2: float = 0.0
    anchor_embeddings: bool = True
    # Optimiser-state reset: "never", every `slot_reset_every` steps, or whenever a version is
    # marked published. Resets Adam moments and (lazily) all Adagrad accumulators.
    slot_reset: str = "never"
    slot_reset_every: int = 100_000
    # Running dense-feature statistics stop growing their count here, so they keep following a
    # drifting stream (an exponential average over about this many examples).
    normalizer_horizon: int = 1_000_000
    # Prequential metrics kept for `Trainer.recent_metrics()`, in steps.
    metrics_window: int = 50
    deterministic: bool = False
    device: str = "auto"
    # torch intra-op threads; None leaves torch's setting alone.
    num_threads: int | None = None
    # Process-wide (glibc): keep memory freed between steps in the heap instead of returning it
    # to the OS and faulting it back in at the next step (model.trainer.keep_freed_memory).
    keep_freed_memory: bool = True

    def __post_init__(self) -> None:
        _require(self.sparse_lr > 0, f"sparse_lr must be > 0, got {self.sparse_lr}")
        _require(self.sparse_initial_accumulator >= 0,
                 f"sparse_initial_accumulator must be >= 0, got {self.sparse_initial_accumulator}")
        _require(0.0 < self.sparse_accumulator_decay <= 1.0,
                 f"sparse_accumulator_decay must be in (0, 1], got {self.sparse_accumulator_decay}")
        _require(self.dense_lr > 0, f"dense_lr must be > 0, got {self.dense_lr}")
        _require(len(self.adam_betas) == 2 and all(0.0 <= b < 1.0 for b in self.adam_betas),
                 f"adam_betas must be two values in [0, 1), got {self.adam_betas}")
        _require(self.adam_eps > 0, f"adam_eps must be > 0, got {self.adam_eps}")
        _require(self.purchase_loss_weight >= 0,
                 f"purchase_loss_weight must be >= 0, got {self.purchase_loss_weight}")
        _require(self.accumulation_steps >= 1,
                 f"accumulation_steps must be >= 1, got {self.accumulation_steps}")
        _require(self.max_grad_norm is None or self.max_grad_norm > 0,
                 f"max_grad_norm must be > 0 or None, got {self.max_grad_norm}")
        _require(self.anchor_l2 >= 0, f"anchor_l2 must be >= 0, got {self.anchor_l2}")
        _require(self.slot_reset in SLOT_RESET_POLICIES,
                 f"slot_reset must be one of {SLOT_RESET_POLICIES}, got {self.slot_reset!r}")
        _require(self.slot_reset_every >= 1,
                 f"slot_reset_every must be >= 1, got {self.slot_reset_every}")
        _require(self.normalizer_horizon >= 1,
                 f"normalizer_horizon must be >= 1, got {self.normalizer_horizon}")
        _require(self.metrics_window >= 1,
                 f"metrics_window must be >= 1, got {self.metrics_window}")
        _require(self.device in DEVICES or self.device.startswith("cuda:"),
                 f"device must be one of {DEVICES} or 'cuda:<n>', got {self.device!r}")
        _require(self.num_threads is None or self.num_threads >= 1,
                 f"num_threads must be >= 1 or None, got {self.num_threads}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainerConfig":
        fields = dict(data)
        if "adam_betas" in fields:
            fields["adam_betas"] = tuple(fields["adam_betas"])
        return cls(**fields)
