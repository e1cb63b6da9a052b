"""Shared helpers of the serving tests: a small real trainer and its publications.

`publish` produces what the training job puts on Kafka for a version, the way
flink_jobs/training_session.py (ModelStore.write, maybe_publish) and training_operator.py
(key_of_delta) do:
model.onnx + meta.json in a model store, a version record, and one (key, value) per delta with
a None value (a tombstone) for a removed row. The tests at the bottom pin that shape.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.config import ModelConfig, TrainerConfig
from model.export import export_onnx
from model.synthetic import make_examples
from model.trainer import Trainer
from serving.registry import ModelRegistry
from udfs.imputation import RunningStats

MODEL = "default"
# Small and fast; the user table holds fewer rows than there are users, so later versions
# evict rows and publish tombstones.
SMALL_MODEL = ModelConfig(embedding_dim=8, hidden_sizes=(16,), token_buckets=512, capacity=400,
                          table_capacity=(("user_id", 25),), admit_after=1,
                          expire_after_ms=None, eviction_batch_fraction=0.2, seed=7)
FAST_TRAINER = TrainerConfig(device="cpu", sparse_lr=0.2, dense_lr=0.01)
N_USERS, N_ITEMS = 60, 80


def examples(n: int, seed: int) -> list[dict]:
    """Labelled contract-shaped examples over a small id space (ids repeat, so rows get learned)."""
    return make_examples(n, seed=seed, n_users=N_USERS, n_items=N_ITEMS)


def learn(trainer: Trainer, steps: int, seed: int) -> None:
    for step in range(steps):
        trainer.step(examples(128, seed=seed * 1000 + step))


def trained_trainer(steps: int = 3, seed: int = 0) -> Trainer:
    trainer = Trainer(SMALL_MODEL, FAST_TRAINER)
    learn(trainer, steps, seed)
    return trainer


# Examples no version has learned from, with ids and query tokens no version has a row for.
PROBE = examples(96, seed=4242) + [
    {**examples(1, seed=1)[0], "user_id": "u-never-seen", "item_id": "i-never-seen",
     "query": "zzz-unknown-token another", "category": "", "brand": ""},
    {**examples(1, seed=2)[0], "query": ""},
]


def publish(trainer: Trainer, store: Path, version: int, *, model: str = MODEL,
            imputation: RunningStats | None = None) -> tuple[dict, list[tuple[str, dict | None]]]:
    """Export the trainer's current state as `version`: (version record, deltas), then mark it
    published so the next call only carries rows changed since."""
    out = Path(store) / model / f"v{version:06d}"
    meta = export_onnx(trainer, out, version, model=model)
    if imputation is not None:  # the session's ModelStore adds its price statistics
        meta["imputation"] = imputation.to_dict()
        (out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    deltas: list[tuple[str, dict | None]] = [
        (f"{model}/{d.table}/{d.key}",
         {"model": model, "version": version, "table": d.table, "key": d.key,
          "vector": [float(x) for x in d.vector.astype(np.float32).tolist()]})
        for d in trainer.changed_rows()]
    deltas += [(f"{model}/{table}/{key}", None) for table, key in trainer.removed_rows()]
    trainer.mark_published(version)
    record = {"model": model, "version": version, "onnx_uri": (out / "model.onnx").resolve().as_uri(),
              "sha256": meta["sha256"], "created_ms": 1_700_000_000_000 + version,
              "metrics": {"auc": 0.5}, "delta_rows": len(deltas), "spec": meta["spec"]}
    return record, deltas


@dataclass(frozen=True)
class Publication:
    record: dict
    deltas: list[tuple[str, dict | None]]
    trainer: Trainer  # a frozen copy of the trainer as it was at this version
    probe: np.ndarray  # trainer.predict(PROBE) at this version, [n, 2]

    @property
    def version(self) -> int:
        return self.record["version"]


PRICE_STATS = RunningStats()
for _price, _category in [(10.0, "c1")] * 6 + [(200.0, "c2")] * 6 + [(50.0, None)] * 3:
    PRICE_STATS.observe(_price, _category)


@functools.lru_cache(maxsize=None)
def history() -> tuple[Publication, ...]:
    """Three consecutive versions of one trainer, built once per test session."""
    store = Path(tempfile.mkdtemp(prefix="freshrank-serving-test-"))
    atexit.register(shutil.rmtree, store, ignore_errors=True)
    trainer = trained_trainer(steps=3)
    publications = []
    for version in (1, 2, 3):
        if version > 1:
            learn(trainer, steps=2, seed=version)
        record, deltas = publish(trainer, store, version, imputation=PRICE_STATS)
        frozen = Trainer.restore(trainer.snapshot())
        publications.append(Publication(record, deltas, frozen, frozen.predict(PROBE)))
    return tuple(publications)


def feed(registry: ModelRegistry, publication: Publication | None = None, *,
         record: dict | None = None, deltas: list[tuple[str, dict | None]] = ()) -> None:
    """What the Kafka follower does with one version's records (versions topic first)."""
    if publication is not None:
        record, deltas = publication.record, publication.deltas
    if record is not None:
        registry.apply_version_record(record)
    for key, value in deltas:
        registry.apply_delta(key, value)


def live_version(registry: ModelRegistry) -> int | None:
    return registry.live.version if registry.live else None


# ---------------------------------------------------------------------- the helper's own tests
def test_first_publication_carries_every_row_then_only_changed_and_removed_rows():
    v1, v2, _ = history()
    tables = v1.trainer.tables
    rows = [value for _, value in v1.deltas if value is not None]
    assert v1.record["delta_rows"] == len(v1.deltas)
    assert len(rows) == sum(1 + t.live_rows for t in tables.values())  # + each default row
    assert sum(value["key"] == "__default__" for value in rows) == len(tables)
    assert 0 < v2.record["delta_rows"] == len(v2.deltas) < len(v1.deltas)
    assert any(value is None for _, value in v2.deltas), "no tombstone: eviction did not happen"
    assert all(value["version"] == 2 for _, value in v2.deltas if value is not None)
    assert Path(v2.record["onnx_uri"].removeprefix("file://")).is_file()


def test_published_rows_are_the_trainer_rows():
    v1 = history()[0]
    value = next(v for _, v in v1.deltas if v and v["table"] == "item_id" and v["key"] != "__default__")
    table = v1.trainer.tables["item_id"]
    np.testing.assert_array_equal(np.asarray(value["vector"], dtype=np.float32),
                                  table.weight[table.index[value["key"]]].numpy())
