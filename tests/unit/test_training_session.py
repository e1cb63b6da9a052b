"""The train -> gate -> publish -> checkpoint -> restore cycle of the training operator, without Flink."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import torch

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
        self.entries, self.holdout, self.published, self.pending = {}, {}, {}, {}

    def write(self, changes):
        self.dense = changes.dense if changes.dense is not None else self.dense
        self.side = changes.side if changes.side is not None else self.side
        for target, delta in ((self.entries, changes.entries), (self.holdout, changes.holdout),
                              (self.published, changes.published), (self.pending, changes.pending)):
            for key, blob in delta.items():
                if blob is None:
                    target.pop(key, None)
                else:
                    target[key] = blob

    def read(self):
        return {"dense": self.dense, "entries": dict(self.entries), "side": self.side,
                "holdout": dict(self.holdout), "published": dict(self.published),
                "pending": dict(self.pending)}


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
    all_batches = batches(30)
    publications = run(session, state, all_batches)
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
        # Later ones carry only what changed: every user row of version 2 belongs to a user whose
        # examples were trained after version 1 was cut (run() publishes before batch i trains,
        # every publish_interval_ms = 5 batches here).
        first_cut_ms = json.loads(accepted[0].version_record)["created_ms"]
        cut = [i for i in range(len(all_batches)) if i * 600 >= first_cut_ms]
        second_users = {json.loads(d)["key"] for d in accepted[1].deltas if json.loads(d)["table"] == "user_id"}
        trained_since = {e["user_id"] for i in cut for e in all_batches[i]}
        assert second_users and second_users - {"__default__"} <= trained_since
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


def micro_batches(examples: list[dict], sizes: list[int], first_offset: int = 0):
    """(partition 0, offset, example) records cut into micro-batches of the given sizes, with the
    gaps a transactional topic has (every 7th offset is a commit marker)."""
    records, offset = [], first_offset
    for example in examples:
        if offset % 7 == 6:
            offset += 1
        records.append((0, offset, dict(example)))
        offset += 1
    out, start = [], 0
    for size in sizes:
        out.append(records[start:start + size])
        start += size
    assert start == len(records)
    return out


def deterministic_cfg(tmp_path, **job):
    cfg = make_cfg(tmp_path, batch_max_examples=256, batch_linger_ms=0, **job)
    return dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, deterministic=True))


def trained_offsets(ledger: list[str]) -> list[int]:
    offsets = []
    for entry in map(json.loads, ledger):
        for first, last in entry["offsets"]["0"]:
            offsets.extend(range(first, last + 1))
    return offsets


def test_chunks_do_not_depend_on_micro_batch_boundaries_or_crashes(tmp_path):
    examples = [e for batch in batches(6, size=400, seed=5) for e in batch]  # 2,400 examples
    cfg = deterministic_cfg(tmp_path / "a")

    straight = TrainingSession(cfg)
    straight.load(None)
    ledger_a = []
    for i, batch in enumerate(micro_batches(examples, [600] * 4)):
        ledger_a += straight.consume(batch, now_ms=i * 1_000)

    # Other micro-batch sizes, a restore from state after every batch, and a replay of records
    # the checkpoint had already taken in (they are recognised by offset and ignored).
    cfg_b = deterministic_cfg(tmp_path / "b")
    state, ledger_b = FlinkStateDouble(), []
    session = TrainingSession(cfg_b)
    session.load(None)
    cut = micro_batches(examples, [1, 255, 300, 77, 500, 900, 367])
    for i, batch in enumerate(cut):
        ledger_b += session.consume(batch, now_ms=i * 1_000)
        state.write(session.state_changes())
        session = TrainingSession(cfg_b)
        session.load(state.read())
        if i == 3:
            assert session.consume(cut[i][-10:], now_ms=i * 1_000) == []  # already taken in
            assert session.chunks.ignored == 10

    offsets = [o for batch in cut for _, o, _ in batch]
    assert trained_offsets(ledger_a) == trained_offsets(ledger_b) == offsets[:9 * 256]
    assert len(session.chunks.pending) == straight.chunks.pending_count() == 2_400 - 9 * 256
    for name, tensor in straight.trainer.network.state_dict().items():
        assert torch.equal(tensor, session.trainer.network.state_dict()[name]), name
    rows_a = {(d.table, d.key): d.vector for d in straight.trainer.changed_rows()}
    rows_b = {(d.table, d.key): d.vector for d in session.trainer.changed_rows()}
    assert rows_a.keys() == rows_b.keys()
    assert all(np.array_equal(rows_a[k], rows_b[k]) for k in rows_a)


def test_ledger_accounts_for_every_example_of_a_chunk(tmp_path):
    session = TrainingSession(deterministic_cfg(tmp_path, holdout_share=0.2))
    session.load(None)
    examples = batches(1, size=600, seed=8)[0]
    ledger = [json.loads(e) for e in session.consume(micro_batches(examples, [600])[0], now_ms=0)]
    assert [e["chunk"] for e in ledger] == [1, 2]
    for entry in ledger:
        assert entry["examples"] == 256 == entry["held_out"] + entry["trained"]
        assert 20 < entry["held_out"] < 90 and entry["loss"] > 0
    assert session.examples_consumed == 512 and session.trained_through == {0: ledger[-1]["offsets"]["0"][-1][1] + 1}


def test_a_partial_chunk_is_trained_after_the_linger(tmp_path):
    session = TrainingSession(make_cfg(tmp_path, batch_max_examples=256, batch_linger_ms=2_000))
    session.load(None)
    assert session.consume(micro_batches(batches(1, size=100)[0], [100])[0], now_ms=10_000) == []
    assert not session.linger_due(11_999) and session.chunks.linger_deadline() == 12_000
    assert session.linger_due(12_000)
    (entry,) = map(json.loads, session.flush(12_000))
    assert entry["examples"] == 100 and session.chunks.pending_count() == 0
    assert session.chunks.linger_deadline() is None


def test_state_bytes_counts_the_model_in_state(tmp_path):
    session = TrainingSession(deterministic_cfg(tmp_path))
    session.load(None)
    session.consume(micro_batches(batches(1, size=700)[0], [700])[0], now_ms=0)
    changes = session.state_changes()
    written = (len(changes.dense) + len(changes.side)
               + sum(len(b) for part in (changes.entries, changes.holdout, changes.pending)
                     for b in part.values() if b))
    assert session.state_bytes_written == written  # the first write is everything
    assert abs(session.state_bytes() - written) / written < 0.05
