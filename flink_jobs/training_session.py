"""What the training operator does with each micro-batch, without any Flink import.

Kept apart from the operator so that the whole train/gate/publish/restore cycle is tested in
milliseconds; the operator only moves bytes between this object and Flink state.
"""
from __future__ import annotations

import json
import math
import shutil
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flink_jobs.offset_chunks import OffsetChunks, Record, offset_runs
from freshrank.config import FreshrankConfig
from model.export import export_onnx, finite_or_none
from model.gate import Gate
from model.trainer import Trainer
from udfs.imputation import RunningStats

SIDE_FORMAT = 2


@dataclass
class TrainResult:
    examples: int = 0
    batches: int = 0
    skipped: int = 0


@dataclass
class StateChanges:
    dense: bytes | None
    entries: dict[str, bytes | None]  # trainer rows and admission counters
    side: bytes | None  # version, publication clock, imputation statistics
    holdout: dict[int, bytes]  # ring-buffer slots of held-out examples written since last time
    published: dict[str, bytes | None]  # "<table>/<key>" -> the live version's row (None: removed)
    pending: dict[str, bytes | None]  # "<partition>:<offset>" -> an example waiting for its chunk


@dataclass
class Publication:
    accepted: bool
    reason: str
    version: int
    version_record: str | None = None  # JSON for the versions topic
    deltas: list[str] = field(default_factory=list)  # JSON per changed/removed row


class Holdout:
    """Examples never trained on, chosen by a hash of the example id, in a ring buffer.

    Candidate and live version are both judged on them, so neither has seen the answers. The
    purchase correction of a held-out impression is held out too (same base id).
    """

    def __init__(self, share: float, size: int):
        self.threshold = int(share * 10_000)
        self.size = size
        self.slots: dict[int, dict] = {}
        self.next_slot = 0
        self._changed: dict[int, bytes] = {}

    def is_held_out(self, example: dict) -> bool:
        kind = example.get("kind") or "impression"
        base = str(example.get("example_id", ""))
        if kind != "impression":
            base = base.removesuffix(":" + kind)
        return zlib.crc32(base.encode()) % 10_000 < self.threshold

    def take(self, examples: list[dict]) -> list[dict]:
        """Keep the held-out examples; return the ones to learn from."""
        learn = []
        for example in examples:
            if self.is_held_out(example):
                slot = self.next_slot
                self.slots[slot] = example
                self._changed[slot] = json.dumps(example).encode()
                self.next_slot = (slot + 1) % self.size
            else:
                learn.append(example)
        return learn

    def examples(self) -> list[dict]:
        return list(self.slots.values())

    def drain_changes(self) -> dict[int, bytes]:
        changed, self._changed = self._changed, {}
        return changed

    def restore(self, slots: dict[int, bytes], next_slot: int) -> None:
        self.slots = {int(k): json.loads(v) for k, v in slots.items()}
        self.next_slot = next_slot


class LiveVersion:
    """The published version exactly as serving runs it: its ONNX file and its embedding rows.

    The gate scores the live version with this, so "live" means what users are served, not a
    copy of the trainer's weights. Rows are kept per (table, key) and written to Flink state only
    when a publication changes them.
    """

    def __init__(self, spec):
        from model.embedding_lookup import EmbeddingLookup
        self.spec = spec
        self.lookup = EmbeddingLookup(spec)
        self.session = None
        self._changed: dict[str, bytes | None] = {}

    def apply(self, onnx_path: Path, rows: list, removed: list[tuple[str, str]]) -> None:
        for row in rows:
            self.lookup.upsert(row.table, row.key, row.vector)
            self._changed[f"{row.table}/{row.key}"] = np.asarray(row.vector, np.float32).tobytes()
        for table, key in removed:
            self.lookup.remove(table, key)
            self._changed[f"{table}/{key}"] = None
        self._open(onnx_path)

    def _open(self, onnx_path: Path) -> None:
        import onnxruntime as ort
        self.session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

    def restore(self, onnx_path: Path | None, rows: dict[str, bytes]) -> None:
        for name, blob in rows.items():
            table, key = name.split("/", 1)
            self.lookup.upsert(table, key, np.frombuffer(blob, np.float32))
        if onnx_path is not None and onnx_path.exists():
            self._open(onnx_path)

    def predict(self, examples: list[dict]) -> np.ndarray | None:
        if self.session is None:
            return None
        from model.features import encode
        batch = encode(examples, self.spec)
        p_click, p_purchase = self.session.run(
            ["p_click", "p_purchase"], {"sparse_emb": self.lookup.sparse_emb(batch), "dense": batch.dense})
        return np.stack([p_click, p_purchase], axis=1)

    def drain_changes(self) -> dict[str, bytes | None]:
        changed, self._changed = self._changed, {}
        return changed


class ModelStore:
    """<root>/<model>/v<version>/{model.onnx, meta.json}; written to a temp dir, then renamed."""

    def __init__(self, root: Path, model_name: str):
        self.dir = Path(root) / model_name
        self.dir.mkdir(parents=True, exist_ok=True)

    def version_dir(self, version: int) -> Path:
        return self.dir / f"v{version:06d}"

    def write(self, trainer: Trainer, version: int, model: str, extra_meta: dict) -> tuple[Path, dict]:
        final = self.version_dir(version)
        tmp = final.with_name(final.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        meta = export_onnx(trainer, tmp, version, model=model)
        meta.update(extra_meta)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        # A version number can be written twice when a crash undid its first publication;
        # the record that serving sees always matches the file's sha256.
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        return final / "model.onnx", meta


class TrainingSession:
    def __init__(self, cfg: FreshrankConfig):
        self.cfg = cfg
        self.model_name = cfg.job.model_name
        self.trainer: Trainer | None = None
        self.live: LiveVersion | None = None
        self.stats = RunningStats()
        self.version = 0
        self.last_publish_ms = 0
        self.learned_since_publish = 0
        self.state_bytes_written = 0  # what the last step wrote to Flink state
        self.last_step_ms = 0.0
        self._last_loss = float("nan")
        job = cfg.job
        self.gate = Gate(max_auc_drop=job.gate_max_auc_drop, max_logloss_rise=job.gate_max_logloss_rise,
                         min_examples=job.gate_min_examples, min_first_auc=job.gate_min_first_auc)
        self.holdout = Holdout(job.holdout_share, job.holdout_size)
        self.store = ModelStore(cfg.model_store(), self.model_name)
        self.chunks = OffsetChunks(job.batch_max_examples, job.batch_linger_ms)
        self.chunks_trained = 0
        self.examples_consumed = 0  # examples taken into trained chunks (learned or held out)
        self.trained_through: dict[int, int] = {}  # per partition: offset after the last trained chunk
        self._state_sizes = {"dense": 0, "side": 0, "row_entry": 0, "pending_entry": 0, "holdout": {}, "pending": {}}

    # -------------------------------------------------------------------- lifecycle
    @property
    def ready(self) -> bool:
        return self.trainer is not None

    def load(self, state: dict[str, Any] | None) -> None:
        """Restore from Flink state, or start a fresh model when the state is empty."""
        if state is None:
            self.trainer = Trainer(self.cfg.model, self.cfg.trainer)
            self.live = LiveVersion(self.trainer.spec)
            return
        self.trainer = Trainer.restore_from_parts(state["dense"], state["entries"])
        self.live = LiveVersion(self.trainer.spec)
        if state.get("side"):
            side = json.loads(state["side"])
            self.version = side["version"]
            self.last_publish_ms = side["last_publish_ms"]
            self.learned_since_publish = side["learned_since_publish"]
            self.stats = RunningStats.from_dict(side["imputation"])
            self.holdout.restore(state.get("holdout") or {}, side["holdout_next"])
            self.chunks.restore(state.get("pending") or {}, side["chunks"])
            self.chunks_trained = side["chunks_trained"]
            self.examples_consumed = side["examples_consumed"]
            self.trained_through = {int(p): o for p, o in side["trained_through"].items()}
            live_file = self.store.version_dir(self.version) / "model.onnx" if self.version else None
            self.live.restore(live_file, state.get("published") or {})
        self._note_sizes(StateChanges(state["dense"], state["entries"], state.get("side") or b"",
                                      state.get("holdout") or {}, {}, state.get("pending") or {}))

    # -------------------------------------------------------------------- training
    def consume(self, records: list[Record], now_ms: int) -> list[str]:
        """One micro-batch of (partition, offset, example): trains every chunk it completes;
        returns their ledger entries (JSON)."""
        self.chunks.add(records, now_ms)
        return [self._train_chunk(chunk, now_ms) for chunk in self.chunks.full_chunks(now_ms)]

    def linger_due(self, now_ms: int) -> bool:
        return self.chunks.linger_due(now_ms)

    def flush(self, now_ms: int) -> list[str]:
        """Train the partial chunk that waited longer than the linger."""
        chunk = self.chunks.take_partial()
        return [self._train_chunk(chunk, now_ms)] if chunk else []

    def _train_chunk(self, chunk: list[Record], now_ms: int) -> str:
        examples = [example for _, _, example in chunk]
        result = self.train(examples)
        offsets: dict[int, list[int]] = {}
        for partition, offset, _ in chunk:
            offsets.setdefault(partition, []).append(offset)
            self.trained_through[partition] = offset + 1
        self.chunks_trained += 1
        self.examples_consumed += len(chunk)
        return json.dumps({
            "model": self.model_name, "chunk": self.chunks_trained, "examples": len(chunk),
            "held_out": len(chunk) - result.examples, "trained": 0 if result.skipped else result.examples,
            "skipped": result.skipped > 0, "offsets": {str(p): offset_runs(o) for p, o in offsets.items()},
            "loss": None if result.skipped else finite_or_none({"loss": self._last_loss})["loss"],
            "live_version": self.version,
            "trained_ms": now_ms,
        })

    def impute(self, examples: list[dict]) -> None:
        """Fill missing prices from running per-category statistics (which travel with the model)."""
        for ex in examples:
            price = ex.get("price")
            if isinstance(price, (int, float)) and math.isfinite(price) and price >= 0:
                self.stats.observe(float(price), ex.get("category") or None)
            else:
                ex["price"] = self.stats.typical_price(ex.get("category") or None)

    def train(self, examples: list[dict]) -> TrainResult:
        """Learn from a micro-batch, except the share kept back for the gate."""
        result = TrainResult()
        self.impute(examples)
        examples = self.holdout.take(examples)
        size = self.cfg.job.step_examples
        started = time.perf_counter()
        for start in range(0, len(examples), size):
            chunk = examples[start:start + size]
            metrics = self.trainer.step(chunk)
            result.batches += 1
            result.examples += metrics.n
            if metrics.skipped:
                result.skipped += 1
            else:
                self.learned_since_publish += metrics.n
                self._last_loss = metrics.loss
        self.last_step_ms = (time.perf_counter() - started) * 1000
        return result

    # -------------------------------------------------------------------- publishing
    def publish_due(self, now_ms: int) -> bool:
        return (self.learned_since_publish > 0
                and now_ms - self.last_publish_ms >= self.cfg.job.publish_interval_ms)

    def maybe_publish(self, now_ms: int) -> Publication | None:
        """Gate the current model on the held-out examples; publish it if it passes."""
        if not self.publish_due(now_ms):
            return None
        self.last_publish_ms = now_ms
        decision = self._gate()
        candidate = self.version + 1
        if not decision.accepted:
            return Publication(False, decision.reason, candidate)
        metrics = {**self.trainer.recent_metrics(), **decision.metrics}
        onnx_path, meta = self.store.write(self.trainer, candidate, self.model_name, extra_meta={
            "imputation": self.stats.to_dict(), "gate": decision.reason, "gate_metrics": finite_or_none(decision.metrics)})
        changed, removed = self.trainer.changed_rows(), self.trainer.removed_rows()
        # float32 -> shortest decimal that round-trips, so serving rebuilds the exact rows.
        deltas = [json.dumps({"model": self.model_name, "version": candidate, "table": d.table,
                              "key": d.key, "vector": [float(x) for x in d.vector.astype(np.float32).tolist()]})
                  for d in changed]
        deltas += [json.dumps({"model": self.model_name, "version": candidate, "table": table,
                               "key": key, "removed": True})
                   for table, key in removed]
        self.trainer.mark_published(candidate)
        self.live.apply(onnx_path, changed, removed)
        self.version = candidate
        self.learned_since_publish = 0
        record = {
            "model": self.model_name, "version": candidate, "onnx_uri": onnx_path.resolve().as_uri(),
            "sha256": meta["sha256"], "created_ms": now_ms, "metrics": finite_or_none(metrics),
            "delta_rows": len(deltas), "spec": meta.get("spec"), "gate": decision.reason,
            # What this version has learned from, so anyone can tell how fresh it is.
            "chunks_trained": self.chunks_trained, "examples_consumed": self.examples_consumed,
            "trained_through": {str(p): o for p, o in self.trained_through.items()},
        }
        return Publication(True, decision.reason, candidate, json.dumps(record), deltas)

    def _gate(self):
        held_out = self.holdout.examples()
        labels = np.asarray([float(ex.get("click", 0)) for ex in held_out])
        if not held_out:
            return self.gate.evaluate(np.zeros(0), None, labels)
        return self.gate.evaluate(self.trainer.predict(held_out), self.live.predict(held_out), labels)

    # -------------------------------------------------------------------- state
    def state_changes(self) -> StateChanges:
        delta = self.trainer.snapshot_delta()
        side = json.dumps({
            "format": SIDE_FORMAT, "version": self.version, "last_publish_ms": self.last_publish_ms,
            "learned_since_publish": self.learned_since_publish, "imputation": self.stats.to_dict(),
            "holdout_next": self.holdout.next_slot, "chunks": self.chunks.side(),
            "chunks_trained": self.chunks_trained, "examples_consumed": self.examples_consumed,
            "trained_through": {str(p): o for p, o in self.trained_through.items()},
        }).encode()
        changes = StateChanges(delta.dense, delta.entries, side, self.holdout.drain_changes(),
                               self.live.drain_changes(), self.chunks.drain_changes())
        self.state_bytes_written = len(delta.dense) + len(side) + sum(
            len(b) for part in (changes.entries, changes.holdout, changes.published, changes.pending)
            for b in part.values() if b)
        self._note_sizes(changes)
        return changes

    def _note_sizes(self, changes: StateChanges) -> None:
        sizes = self._state_sizes
        sizes["dense"], sizes["side"] = len(changes.dense), len(changes.side)
        for kind in ("row", "pending"):  # entries of one kind have (nearly) one size
            lengths = [len(b) for k, b in changes.entries.items() if b and k.startswith(kind + "/")]
            if lengths:
                sizes[kind + "_entry"] = max(lengths)
        for slot, blob in changes.holdout.items():
            sizes["holdout"][slot] = len(blob)
        for key, blob in changes.pending.items():  # fewer than a chunk
            if blob is None:
                sizes["pending"].pop(key, None)
            else:
                sizes["pending"][key] = len(blob)

    def state_bytes(self) -> int:
        """The model's size in Flink state: exact for the dense part, side values, hold-out and
        pending examples; rows and published rows are counted times their (fixed) size."""
        if not self.trainer:
            return 0
        sizes, counters = self._state_sizes, self.trainer.counters()
        rows, ids = sum(counters["rows"].values()), sum(counters["pending_ids"].values())
        published_rows = sum(self.live.lookup.rows(table) for table in self.trainer.spec.table_names)
        return (sizes["dense"] + sizes["side"] + rows * sizes["row_entry"] + ids * sizes["pending_entry"]
                + sum(sizes["holdout"].values())
                + sum(sizes["pending"].values()) + published_rows * 4 * self.trainer.spec.embedding_dim)

    # -------------------------------------------------------------------- metrics
    def counter(self, name: str) -> int:
        return int(self.trainer.counters()[name]) if self.trainer else 0

    def table_rows(self) -> int:
        return int(sum(self.trainer.counters()["rows"].values())) if self.trainer else 0

    def metric_x10000(self, name: str) -> int:
        if not self.trainer:
            return 0
        value = self._last_loss if name == "loss" else self.trainer.recent_metrics().get(name, float("nan"))
        return int(round(value * 10_000)) if isinstance(value, float) and math.isfinite(value) else 0
