"""Incremental trainer: learns from micro-batches, touching only the rows a batch touches.

Sparse/dense separation: each batch's distinct rows are gathered from the tables into one small
leaf tensor, autograd runs over that block and the dense network only, and the row updates are
scattered back with row-wise Adagrad. No optimiser ever walks a whole table.

No Flink here: the PyFlink operator drives `step`, publishes `changed_rows` and stores
`snapshot_delta` in its state; see docs/model.md.
"""

from __future__ import annotations

import ctypes
import io
import os
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from model.config import ModelConfig, TrainerConfig
from model.features import EncodedBatch, FeatureSpec, encode
from model.metrics import auc, calibration, logloss
from model.network import RankingNetwork
from model.tables import EmbeddingTable, rowwise_adagrad, unique_rows

_SNAPSHOT_FORMAT = 1
_VERSIONS_REMEMBERED = 32

Batch = Sequence[Mapping[str, Any]] | EncodedBatch


@dataclass(frozen=True)
class StepMetrics:
    """Prequential metrics of one batch, from predictions made before learning from it."""

    n: int
    auc: float  # click AUC; NaN when the batch has a single class
    logloss: float  # click log-loss
    calibration: float  # mean predicted click probability / click rate
    auc_purchase: float
    logloss_purchase: float
    mean_prediction: float
    mean_label: float
    loss: float  # training objective of the batch (click + weighted purchase log-loss)
    skipped: bool = False  # True: the batch changed no weight, optimiser state or statistic
    skip_reason: str = ""
    updated: bool = False  # True: this step applied an optimiser update

    @classmethod
    def empty(cls, n: int = 0, skipped: bool = False, reason: str = "") -> "StepMetrics":
        nan = float("nan")
        return cls(n, nan, nan, nan, nan, nan, nan, nan, nan, skipped, reason)


class RowDelta(NamedTuple):
    table: str
    key: str  # the id, or "__default__" for the table's shared default row
    vector: np.ndarray  # float32 [embedding_dim]


@dataclass(frozen=True)
class SnapshotDelta:
    """What changed since the previous `snapshot_delta()` call.

    dense: the whole non-row state (network, Adam, normaliser, counters, table bookkeeping);
      small, replaces the previous one.
    entries: "row/<table>/<row>" -> packed row and "pending/<table>/<id>" -> admission count;
      None means delete the entry. Applying every delta in order to a map, then
      `Trainer.restore_from_parts(dense, map)`, restores the trainer exactly.
    """

    dense: bytes
    entries: dict[str, bytes | None]


class _BatchRows(NamedTuple):
    """The table rows a batch uses, gathered as one block: table t's distinct rows sit at
    [starts[t], starts[t] + len(rows[t])) of the block."""

    size: int  # examples in the batch
    rows: list[np.ndarray]  # per table: distinct rows used, sorted
    rows_t: list[torch.Tensor]
    ids: torch.Tensor  # [B * number of id fields]: block position of each id's row
    tokens: torch.Tensor  # [T]: block position of each query token's row
    token_example: torch.Tensor  # [T]: example of each query token
    token_weight: torch.Tensor  # [T, 1]: 1 / number of tokens of its example (mean pooling)

    @property
    def sizes(self) -> list[int]:
        return [len(r) for r in self.rows]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 64 << 20) -> bool:
    """Process-wide (glibc only): reuse freed heap memory instead of handing it back to the OS.

    A training step allocates and frees tens of MB of activations and gradients. With glibc's
    defaults the top of the heap is trimmed after every step and the next step faults those pages
    back in: ~3,000 page faults per 4,096-example step, about a fifth of the step on the 2-vCPU
    development VM. Blocks under `mmap_threshold` (32 MiB is glibc's maximum) then come from the
    heap, and up to `trim_threshold` of free heap is kept. Changes no result. Returns False where
    mallopt is unavailable or refuses (not glibc).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)
                and mallopt(_M_TRIM_THRESHOLD, trim_threshold))


def enable_determinism() -> None:
    """Process-wide: deterministic kernels only (and a fixed cuBLAS workspace on CUDA)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


class Trainer:
    """Ranking model + incremental trainer. See docs/model.md for the operator's call pattern."""

    def __init__(self, model_config: ModelConfig | None = None,
                 trainer_config: TrainerConfig | None = None) -> None:
        self.model_config = mc = model_config or ModelConfig()
        self.config = tc = trainer_config or TrainerConfig()
        self.spec = FeatureSpec.from_config(mc)
        self.device = resolve_device(tc.device)
        if tc.num_threads is not None:
            torch.set_num_threads(tc.num_threads)
        if tc.deterministic:
            enable_determinism()
        if tc.keep_freed_memory:
            keep_freed_memory()

        rng = np.random.default_rng(mc.seed)
        keep_anchor = tc.anchor_l2 > 0 and tc.anchor_embeddings
        self.tables: dict[str, EmbeddingTable] = {
            name: EmbeddingTable(
                name=name, dim=mc.embedding_dim, capacity=mc.capacity_of(name),
                admit_after=mc.admit_after, expire_after_ms=mc.expire_after_ms,
                eviction=mc.eviction, eviction_batch_fraction=mc.eviction_batch_fraction,
                default_row=rng.normal(0.0, mc.init_std, mc.embedding_dim).astype(np.float32),
                initial_accumulator=tc.sparse_initial_accumulator, keep_anchor=keep_anchor,
                device=self.device)
            for name in mc.table_names
        }
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
            torch.manual_seed(mc.seed)
            network = RankingNetwork(self.spec.num_fields, mc.embedding_dim, self.spec.num_dense,
                                     mc.hidden_sizes, tc.normalizer_horizon)
        self.network = network.to(self.device)
        self._params = list(self.network.parameters())
        self._optimizer = torch.optim.Adam(self._params, lr=tc.dense_lr, betas=tc.adam_betas,
                                           eps=tc.adam_eps, fused=True)
        self._dense_anchor = ([p.detach().clone() for p in self._params]
                              if tc.anchor_l2 > 0 else None)

        self._step = 0  # step() calls with examples; stamps every row change
        self._clock_ms = 0  # event time: the largest example ts seen
        self._examples = self._batches = self._skipped = 0
        self._published: dict[int, int] = {}  # version -> step it was published at
        self._delta_step = -1  # step of the last snapshot_delta()
        self._last_slot_reset = 0
        # Micro-batches learned since the last update: dense gradients summed, and per
        # micro-batch its rows (per table) with their [rows, D] gradient block.
        self._acc_dense: list[torch.Tensor] | None = None
        self._acc_rows: list[tuple[list[np.ndarray], torch.Tensor]] = []
        self._acc_weights: torch.Tensor | None = None
        self._recent: deque[StepMetrics] = deque(maxlen=tc.metrics_window)

    # ------------------------------------------------------------------ learning
    def step(self, batch: Batch) -> StepMetrics:
        """Score the batch with the current model (metrics), then learn from it."""
        enc = self._encode(batch)
        if enc.size == 0:
            return StepMetrics.empty()
        if not enc.has_labels:
            raise ValueError("step() needs labelled examples (fields 'click' and 'purchase')")
        self._step += 1
        self._batches += 1
        if not (np.isfinite(enc.dense).all() and np.isfinite(enc.click).all()
                and np.isfinite(enc.purchase).all()):
            return self._skip(StepMetrics.empty(enc.size), "non-finite input")

        now_ms = max(self._clock_ms, int(enc.ts.max()))
        self._clock_ms = now_ms
        batch_rows = self._batch_rows(enc, now_ms=now_ms)
        # Autograd sees only this block of rows (a leaf), never the tables themselves.
        block = self._gather(batch_rows).requires_grad_()
        dense = torch.from_numpy(enc.dense).to(self.device)
        logits = self.network(self._assemble(block, batch_rows), dense)
        targets = torch.from_numpy(np.stack([enc.click, enc.purchase], axis=1)).to(self.device)
        losses = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(dim=0)
        loss = losses[0] + self.config.purchase_loss_weight * losses[1]
        metrics = self._prequential(torch.sigmoid(logits.detach()).cpu().numpy(), enc,
                                    float(loss.detach()))
        if not torch.isfinite(loss):
            return self._skip(metrics, "non-finite loss")
        grads = torch.autograd.grad(loss, self._params + [block])
        if not torch.isfinite(torch.stack(torch._foreach_norm(grads))).all():
            return self._skip(metrics, "non-finite gradient")

        self._accumulate(grads[:-1], grads[-1], batch_rows.rows, block.detach())
        self.network.normalizer.update(dense)
        self._examples += enc.size
        updated = len(self._acc_rows) >= self.config.accumulation_steps
        if updated:
            self._apply_update(now_ms)
        metrics = _replace(metrics, updated=updated)
        self._recent.append(metrics)
        return metrics

    def _skip(self, metrics: StepMetrics, reason: str) -> StepMetrics:
        self._skipped += 1
        return _replace(metrics, skipped=True, skip_reason=reason)

    def _accumulate(self, dense_grads: Sequence[torch.Tensor], row_grad: torch.Tensor,
                    rows: list[np.ndarray], row_weights: torch.Tensor) -> None:
        if self._acc_dense is None:
            self._acc_dense = list(dense_grads)
        else:
            torch._foreach_add_(self._acc_dense, dense_grads)
        self._acc_rows.append((rows, row_grad))
        # The gathered rows are still the tables' values when one micro-batch is applied.
        self._acc_weights = row_weights if len(self._acc_rows) == 1 else None

    def _apply_update(self, now_ms: int) -> None:
        tc, step, tables = self.config, self._step, list(self.tables.values())
        dense_grads = self._acc_dense
        if len(self._acc_rows) == 1:
            (rows, row_grad), weights = self._acc_rows[0], self._acc_weights
        else:
            rows, row_grad = _merge_row_grads(self._acc_rows)
            weights = None
            scale = 1.0 / len(self._acc_rows)
            torch._foreach_mul_(dense_grads, scale)
            row_grad.mul_(scale)
        if tc.anchor_l2 > 0:
            self._add_anchor_pull(dense_grads, rows, row_grad)
        if tc.max_grad_norm is not None:
            all_grads = list(dense_grads) + [row_grad]
            total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(all_grads)))
            torch._foreach_mul_(all_grads, torch.clamp(tc.max_grad_norm / (total + 1e-6), max=1.0))
        for param, grad in zip(self._params, dense_grads):
            param.grad = grad
        self._optimizer.step()
        for param in self._params:
            param.grad = None
        rowwise_adagrad(tables, rows, row_grad, weights, tc.sparse_lr, step,
                        tc.sparse_accumulator_decay)
        for table in tables:
            table.unpin_all()
            table.maybe_expire(now_ms, step)
        self._acc_dense, self._acc_rows, self._acc_weights = None, [], None
        if tc.slot_reset == "every_n_steps" and step - self._last_slot_reset >= tc.slot_reset_every:
            self.reset_optimizer_state()

    def _add_anchor_pull(self, dense_grads: list[torch.Tensor], rows: list[np.ndarray],
                         row_grad: torch.Tensor) -> None:
        # Gradient of anchor_l2/2 * ||w - w_published||^2, only over rows the batch touched.
        strength = self.config.anchor_l2
        for grad, param, anchor in zip(dense_grads, self._params, self._dense_anchor):
            grad.add_(param.detach() - anchor, alpha=strength)
        start = 0
        for table, table_rows in zip(self.tables.values(), rows):
            end = start + len(table_rows)
            if table.anchor is not None:
                index = torch.from_numpy(table_rows).to(self.device)
                row_grad[start:end].add_(table.weight.index_select(0, index)
                                         - table.anchor.index_select(0, index), alpha=strength)
            start = end

    def reset_optimizer_state(self) -> None:
        """Forget Adam moments and all Adagrad accumulators (the latter lazily, per row)."""
        self._optimizer.state.clear()
        for table in self.tables.values():
            table.reset_slots(self._step)
        self._last_slot_reset = self._step

    # ------------------------------------------------------------------ inference
    def predict(self, batch: Batch) -> np.ndarray:
        """[B, 2] probabilities (click, purchase); no side effects, unknown ids use defaults."""
        enc = self._encode(batch)
        with torch.no_grad():
            emb = self._sparse_emb(enc)
            logits = self.network(emb, torch.from_numpy(enc.dense).to(self.device))
            return torch.sigmoid(logits).cpu().numpy()

    def sparse_embeddings(self, batch: Batch) -> np.ndarray:
        """The `sparse_emb` input [B, F, D] the network sees for `batch` (no side effects)."""
        with torch.no_grad():
            return self._sparse_emb(self._encode(batch)).cpu().numpy()

    def _sparse_emb(self, enc: EncodedBatch) -> torch.Tensor:
        batch_rows = self._batch_rows(enc, now_ms=None)
        return self._assemble(self._gather(batch_rows), batch_rows)

    # ------------------------------------------------------------------ batch plumbing
    def _encode(self, batch: Batch) -> EncodedBatch:
        return batch if isinstance(batch, EncodedBatch) else encode(batch, self.spec)

    def _batch_rows(self, enc: EncodedBatch, now_ms: int | None) -> _BatchRows:
        """Rows the batch uses; with `now_ms` (training) ids are also counted, admitted and
        marked as seen, without it (inference) nothing changes."""
        tables = list(self.tables.values())
        rows, positions = [], []
        for f, (table, keys) in enumerate(zip(tables, enc.sparse_keys)):
            distinct = enc.distinct_keys(f)
            if distinct is not None:
                # Each distinct id is looked up (and counted, with its sightings) once.
                keys, key_index = distinct
            if now_ms is None:
                unique, inverse, _ = unique_rows(table.lookup(keys, len(keys)), table.used)
            elif distinct is None:
                unique, inverse = table.observe(keys, now_ms, self._step)
            else:
                counts = np.bincount(key_index, minlength=len(keys))
                unique, inverse = table.observe(keys, now_ms, self._step, counts)
            rows.append(unique)
            positions.append(inverse if distinct is None else inverse[key_index])
        # Query tokens: distinct buckets first (vectorised), then their rows.
        buckets, token_bucket, occurrences = np.unique(
            enc.token_buckets, return_inverse=True, return_counts=True)
        bucket_keys = list(map(str, buckets.tolist()))
        query_table = tables[-1]
        if now_ms is None:
            unique, inverse, _ = unique_rows(query_table.lookup(bucket_keys, len(bucket_keys)),
                                             query_table.used)
        else:
            unique, inverse = query_table.observe(bucket_keys, now_ms, self._step, occurrences)
        rows.append(unique)
        starts = np.cumsum([0] + [len(r) for r in rows[:-1]])
        ids = np.stack(positions, axis=1) + starts[:-1]
        tokens = inverse[token_bucket] + starts[-1]
        lengths = np.diff(enc.token_offsets)
        token_example = np.repeat(np.arange(enc.size), lengths)
        token_weight = (1.0 / lengths.astype(np.float32))[token_example]
        to_device = lambda a: torch.from_numpy(a).to(self.device)  # noqa: E731
        return _BatchRows(enc.size, rows, [to_device(r) for r in rows], to_device(ids.ravel()),
                          to_device(tokens), to_device(token_example),
                          to_device(token_weight[:, None]))

    def _gather(self, batch_rows: _BatchRows) -> torch.Tensor:
        return torch.cat([table.weight.index_select(0, rows)
                          for table, rows in zip(self.tables.values(), batch_rows.rows_t)])

    @staticmethod
    def _assemble(block: torch.Tensor, batch_rows: _BatchRows) -> torch.Tensor:
        """sparse_emb [B, F, D]: each id's row, then the mean of the query-token rows.

        One gather for all id fields (one scatter in the backward pass); the token mean is a
        weighted index_add, cheaper to differentiate than embedding_bag's sort-based backward.
        """
        n, n_ids = batch_rows.size, len(batch_rows.rows) - 1
        ids = block.index_select(0, batch_rows.ids).view(n, n_ids, -1)
        tokens = block.index_select(0, batch_rows.tokens) * batch_rows.token_weight
        query = torch.zeros(n, block.shape[1], dtype=block.dtype, device=block.device)
        query = query.index_add(0, batch_rows.token_example, tokens)
        return torch.cat([ids, query.unsqueeze(1)], dim=1)

    def _prequential(self, probabilities: np.ndarray, enc: EncodedBatch,
                     loss: float) -> StepMetrics:
        p_click, p_purchase = probabilities[:, 0], probabilities[:, 1]
        return StepMetrics(
            n=enc.size, auc=auc(enc.click, p_click), logloss=logloss(enc.click, p_click),
            calibration=calibration(enc.click, p_click),
            auc_purchase=auc(enc.purchase, p_purchase),
            logloss_purchase=logloss(enc.purchase, p_purchase),
            mean_prediction=float(p_click.mean()), mean_label=float(enc.click.mean()), loss=loss)

    # ------------------------------------------------------------------ reporting
    def counters(self) -> dict[str, Any]:
        tables = self.tables.values()
        return {
            "steps": self._step, "examples": self._examples, "batches": self._batches,
            "skipped_batches": self._skipped,
            "admitted": sum(t.admitted for t in tables),
            "expired": sum(t.expired for t in tables),
            "evicted": sum(t.evicted for t in tables),
            "rows": {name: t.live_rows for name, t in self.tables.items()},
            "pending_ids": {name: len(t.pending) for name, t in self.tables.items()},
        }

    def recent_metrics(self) -> dict[str, float]:
        """Prequential metrics over the last `metrics_window` learned batches, example-weighted."""
        recent = [m for m in self._recent if not m.skipped]
        n = sum(m.n for m in recent)
        if n == 0:
            return {"n": 0}

        def weighted(name: str) -> float:
            pairs = [(getattr(m, name), m.n) for m in recent if np.isfinite(getattr(m, name))]
            total = sum(w for _, w in pairs)
            return sum(v * w for v, w in pairs) / total if total else float("nan")

        mean_label = sum(m.mean_label * m.n for m in recent) / n
        mean_prediction = sum(m.mean_prediction * m.n for m in recent) / n
        return {"n": n, "auc": weighted("auc"), "logloss": weighted("logloss"),
                "calibration": mean_prediction / mean_label if mean_label else float("nan"),
                "auc_purchase": weighted("auc_purchase"),
                "logloss_purchase": weighted("logloss_purchase")}

    # ------------------------------------------------------------------ publishing
    def changed_rows(self, since_version: int | None = None) -> list[RowDelta]:
        """Rows changed since `since_version` (default: the last published version; all rows
        when nothing was published yet), default rows included under key '__default__'."""
        since = self._step_of(since_version)
        deltas = []
        for name, table in self.tables.items():
            rows = table.changed_rows(since)
            vectors = table.vectors(rows)
            deltas.extend(RowDelta(name, table.key_of(r), vectors[i])
                          for i, r in enumerate(rows.tolist()))
        return deltas

    def removed_rows(self, since_version: int | None = None) -> list[tuple[str, str]]:
        """(table, key) of ids expired or evicted since `since_version` and not re-admitted:
        their published rows should be deleted (a tombstone on the compacted deltas topic)."""
        since = self._step_of(since_version)
        return [(name, key) for name, table in self.tables.items()
                for key in table.removed_keys(since)]

    def mark_published(self, version: int) -> None:
        """Record that the current state was published as `version` (call right after reading
        changed_rows/removed_rows, with no step in between)."""
        if self._published and version <= max(self._published):
            raise ValueError(f"version {version} is not above the last published "
                             f"version {max(self._published)}")
        self._published[version] = self._step
        while len(self._published) > _VERSIONS_REMEMBERED:
            del self._published[min(self._published)]
        oldest = min(self._published.values())
        for table in self.tables.values():
            table.forget_removed(oldest)
        if self.config.anchor_l2 > 0:
            for anchor, param in zip(self._dense_anchor, self._params):
                anchor.copy_(param.detach())
            for table in self.tables.values():
                table.set_anchor_to_current()
        if self.config.slot_reset == "on_publish":
            self.reset_optimizer_state()

    @property
    def published_version(self) -> int | None:
        return max(self._published) if self._published else None

    def _step_of(self, version: int | None) -> int:
        if version is None:
            return self._published[max(self._published)] if self._published else -1
        if version not in self._published:
            raise KeyError(f"version {version} is not among the last {_VERSIONS_REMEMBERED} "
                           f"published versions {sorted(self._published)}")
        return self._published[version]

    # ------------------------------------------------------------------ persistence
    def snapshot(self) -> dict[str, bytes | np.ndarray]:
        """Everything, as {"dense": bytes, "table/<name>/<array>": ndarray or bytes}."""
        parts: dict[str, bytes | np.ndarray] = {"dense": self._dense_state()}
        for name, table in self.tables.items():
            for key, value in table.arrays().items():
                parts[f"table/{name}/{key}"] = value
        return parts

    @classmethod
    def restore(cls, snapshot: Mapping[str, bytes | np.ndarray]) -> "Trainer":
        state = _load_state(snapshot["dense"])
        trainer = cls._from_state(state)
        for name, table in trainer.tables.items():
            prefix = f"table/{name}/"
            table.load_arrays({k[len(prefix):]: v for k, v in snapshot.items()
                               if k.startswith(prefix)})
        trainer._load_state(state)
        return trainer

    def snapshot_delta(self) -> SnapshotDelta:
        """The dense state plus the rows and pending ids changed since the previous call
        (everything on the first call)."""
        entries: dict[str, bytes | None] = {}
        for name, table in self.tables.items():
            rows, pending = table.delta_entries(self._delta_step)
            entries.update((f"row/{name}/{row}", blob) for row, blob in rows.items())
            entries.update((f"pending/{name}/{key}", blob) for key, blob in pending.items())
        self._delta_step = self._step
        return SnapshotDelta(self._dense_state(), entries)

    @classmethod
    def restore_from_parts(cls, dense: bytes, entries: Mapping[str, bytes | None]) -> "Trainer":
        """Rebuild from the latest `dense` and the union of all delta entries (None = absent)."""
        state = _load_state(dense)
        trainer = cls._from_state(state)
        rows: dict[str, dict[int, bytes]] = {name: {} for name in trainer.tables}
        pending: dict[str, dict[str, bytes]] = {name: {} for name in trainer.tables}
        for key, blob in entries.items():
            if blob is None:
                continue
            kind, table, rest = key.split("/", 2)
            if kind == "row":
                rows[table][int(rest)] = blob
            elif kind == "pending":
                pending[table][rest] = blob
            else:
                raise ValueError(f"unknown snapshot entry {key!r}")
        for name, table in trainer.tables.items():
            table.load_rows(rows[name])
            table.load_pending(pending[name])
        trainer._load_state(state)
        return trainer

    def _dense_state(self) -> bytes:
        cpu = torch.device("cpu")
        state = {
            "format": _SNAPSHOT_FORMAT,
            "model_config": self.model_config.to_dict(),
            "trainer_config": self.config.to_dict(),
            "network": {k: v.to(cpu) for k, v in self.network.state_dict().items()},
            "optimizer": _to_device(self._optimizer.state_dict(), cpu),
            "dense_anchor": (None if self._dense_anchor is None
                             else [a.to(cpu) for a in self._dense_anchor]),
            "step": self._step, "clock_ms": self._clock_ms, "examples": self._examples,
            "batches": self._batches, "skipped": self._skipped,
            "published": dict(self._published), "delta_step": self._delta_step,
            "last_slot_reset": self._last_slot_reset,
            "acc_dense": (None if self._acc_dense is None
                          else [g.to(cpu) for g in self._acc_dense]),
            "acc_rows": [([torch.from_numpy(r) for r in rows], grad.to(cpu))
                         for rows, grad in self._acc_rows],
            "recent": [asdict(m) for m in self._recent],
            "tables": {name: table.state() for name, table in self.tables.items()},
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.getvalue()

    @classmethod
    def _from_state(cls, state: Mapping[str, Any]) -> "Trainer":
        if state.get("format") != _SNAPSHOT_FORMAT:
            raise ValueError(f"unsupported snapshot format {state.get('format')!r}")
        return cls(ModelConfig.from_dict(state["model_config"]),
                   TrainerConfig.from_dict(state["trainer_config"]))

    def _load_state(self, state: Mapping[str, Any]) -> None:
        self.network.load_state_dict(state["network"])
        self._optimizer.load_state_dict(state["optimizer"])
        if state["dense_anchor"] is not None and self._dense_anchor is not None:
            for anchor, saved in zip(self._dense_anchor, state["dense_anchor"]):
                anchor.copy_(saved)
        self._step, self._clock_ms = state["step"], state["clock_ms"]
        self._examples, self._batches = state["examples"], state["batches"]
        self._skipped = state["skipped"]
        self._published = dict(state["published"])
        self._delta_step, self._last_slot_reset = state["delta_step"], state["last_slot_reset"]
        self._acc_dense = (None if state["acc_dense"] is None
                           else [g.to(self.device) for g in state["acc_dense"]])
        self._acc_rows = [([r.numpy() for r in rows], grad.to(self.device))
                          for rows, grad in state["acc_rows"]]
        self._acc_weights = None  # re-gathered at the update
        self._recent.extend(StepMetrics(**m) for m in state["recent"])
        for name, table in self.tables.items():
            table.load_state(state["tables"][name])
        # Rows with gradients still being accumulated must not be evicted before applied.
        for rows, _ in self._acc_rows:
            for table, table_rows in zip(self.tables.values(), rows):
                table.pinned[table_rows] = True


def _merge_row_grads(parts: list[tuple[list[np.ndarray], torch.Tensor]]
                     ) -> tuple[list[np.ndarray], torch.Tensor]:
    """Sum the row gradients of several micro-batches into one per distinct row of each table."""
    per_part = [grad.split([len(r) for r in rows]) for rows, grad in parts]
    merged_rows, merged_grads = [], []
    for t in range(len(parts[0][0])):
        rows, position = np.unique(np.concatenate([rows[t] for rows, _ in parts]),
                                   return_inverse=True)
        grads = torch.cat([pieces[t] for pieces in per_part])
        merged = torch.zeros(len(rows), grads.shape[1], dtype=grads.dtype, device=grads.device)
        merged.index_add_(0, torch.from_numpy(position).to(grads.device), grads)
        merged_rows.append(rows)
        merged_grads.append(merged)
    return merged_rows, torch.cat(merged_grads)


def _replace(metrics: StepMetrics, **changes: Any) -> StepMetrics:
    return StepMetrics(**{**asdict(metrics), **changes})


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(v, device) for v in value)
    return value


def _load_state(blob: bytes) -> dict[str, Any]:
    return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
