"""The train -> gate -> publish -> checkpoint -> restore cycle of the training operator, without Flink."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from flink_jobs.training_session import TrainingSession
from freshrank.config import FreshrankConfig, JobConfig, StackConfig
from freshrank.datagen import EventGenerator, GeneratorConfig


def make_cfg(tmp_path: Path, **job) -> FreshrankConfig:
    base = FreshrankConfig(stack=StackConfig(state_dir=str(tmp_path)))
    job = {"publish_interval_ms": 3_000, "gate_min_examples": 100, "holdout_share": 0.1,
           "holdout_size": 2_000, **job}
    return dataclasses.replace(base, job=JobConfig(**job))


def batches(n_batches: int, size: int = 500, seed: int = 3):
    stream = EventGenerator(GeneratorConfig(seed=seed, n_users=300, n_items_initial=200)).examples(n_batches * size)
    examples = list(stream)
    return [examples[i:i + size] for i in range(0, len(examples), size)]


class FlinkStateDouble:
    """What Flink keeps for the operator: the latest values and the maps with every change applied."""

    def __init__(self):
        self.dense = self.side = None
        self.entries, self.holdout, self.published = {}, {}, {}

    def write(self, changes):
        self.dense = changes.dense if changes.dense is not None else self.dense
        self.side = changes.side if changes.side is not None else self.side
        for target, delta in ((self.entries, changes.entries), (self.holdout, changes.holdout),
                              (self.published, changes.published)):
            for key, blob in delta.items():
                if blob is None:
                    target.pop(key, None)
                else:
                    target[key] = blob

    def read(self):
        return {"dense": self.dense, "entries": dict(self.entries), "side": self.side,
                "holdout": dict(self.holdout), "published": dict(self.published)}


def run(session, state, all_batches, start_ms=0, step_ms=600):
    publications = []
    for i, batch in enumerate(all_batches):
        publication = session.maybe_publish(now_ms=start_ms + i * step_ms)
        if publication is not None:
            publications.append(publication)
        session.train([dict(e) for e in batch])
        state.write(session.state_changes())
    return publications


def test_versions_are_gated_published_and_match_their_files(tmp_path):
    session, state = TrainingSession(make_cfg(tmp_path)), FlinkStateDouble()
    session.load(None)
    publications = run(session, state, batches(30))
    accepted = [p for p in publications if p.accepted]
    assert accepted, [p.reason for p in publications]
    versions = [json.loads(p.version_record)["version"] for p in accepted]
    assert versions == list(range(1, len(versions) + 1))  # monotonic, no gaps
    first = json.loads(accepted[0].version_record)
    onnx = Path(urlparse(first["onnx_uri"]).path)
    assert hashlib.sha256(onnx.read_bytes()).hexdigest() == first["sha256"]
    assert first["delta_rows"] == len(accepted[0].deltas) > 0
    # The first version carries every row (including defaults); later ones only what changed.
    assert any(json.loads(d)["key"] == "__default__" for d in accepted[0].deltas)
    if len(accepted) > 1:
        assert len(accepted[1].deltas) < len(accepted[0].deltas)
        assert "live_auc" in json.loads(accepted[1].version_record)["metrics"]


def test_holdout_is_never_trained_on(tmp_path):
    session = TrainingSession(make_cfg(tmp_path, holdout_share=0.2))
    session.load(None)
    batch = batches(1, size=2_000)[0]
    learned = session.holdout.take(batch)
    held = session.holdout.examples()
    assert 200 < len(held) < 600 and len(learned) + len(held) == len(batch)
    assert not {e["example_id"] for e in held} & {e["example_id"] for e in learned}


def test_restore_from_state_continues_exactly(tmp_path):
    all_batches = batches(24)
    cfg = make_cfg(tmp_path)
    a, state = TrainingSession(cfg), FlinkStateDouble()
    a.load(None)
    run(a, state, all_batches[:12])

    b = TrainingSession(cfg)
    b.load(state.read())  # a "crash": everything not in state is gone
    probe = all_batches[-1]
    np.testing.assert_array_equal(a.trainer.predict(probe), b.trainer.predict(probe))
    assert (a.version, a.last_publish_ms, a.holdout.next_slot) == (b.version, b.last_publish_ms, b.holdout.next_slot)
    if a.version:
        np.testing.assert_allclose(a.live.predict(probe), b.live.predict(probe), rtol=0, atol=1e-7)
    assert a.stats.to_dict() == b.stats.to_dict()

    # Both go on from the same point and stay in lockstep.
    run(a, FlinkStateDouble(), all_batches[12:], start_ms=12 * 600)
    run(b, FlinkStateDouble(), all_batches[12:], start_ms=12 * 600)
    np.testing.assert_array_equal(a.trainer.predict(probe), b.trainer.predict(probe))
    assert a.version == b.version


def test_missing_prices_are_imputed_per_category(tmp_path):
    session = TrainingSession(make_cfg(tmp_path))
    session.load(None)
    examples = [{"category": "shoes", "price": p} for p in (10.0, 12.0, 11.0, 9.0, 10.5, 11.5)]
    examples.append({"category": "shoes", "price": None})
    session.impute(examples)
    assert examples[-1]["price"] == pytest.approx(10.6, abs=0.5)
