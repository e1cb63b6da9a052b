import math

import numpy as np
import pytest
import torch

from model.config import ModelConfig, TrainerConfig
from model.synthetic import batches, make_examples
from model.tables import DEFAULT_KEY
from model.trainer import Trainer

SMALL = dict(embedding_dim=4, hidden_sizes=(8,), token_buckets=64, admit_after=1)


def small_trainer(model=None, **trainer) -> Trainer:
    return Trainer(ModelConfig(**{**SMALL, **(model or {})}),
                   TrainerConfig(**{"device": "cpu", **trainer}))


def stream(n=1200, size=200, seed=0, **kwargs):
    return batches(make_examples(n, seed=seed, n_users=300, n_items=200, **kwargs), size)


def table_weights(trainer):
    return {name: t.weight.clone() for name, t in trainer.tables.items()}


def test_step_metrics_are_computed_before_learning():
    trainer = small_trainer()
    data = stream()
    for b in data[:2]:
        trainer.step(b)
    predicted = trainer.predict(data[2])
    metrics = trainer.step(data[2])
    clicks = np.array([e["click"] for e in data[2]])
    from model.metrics import auc, logloss
    assert metrics.auc == pytest.approx(auc(clicks, predicted[:, 0]), abs=1e-6)
    assert metrics.logloss == pytest.approx(logloss(clicks, predicted[:, 0]), rel=1e-5)
    assert metrics.calibration == pytest.approx(predicted[:, 0].mean() / clicks.mean(), rel=1e-5)
    assert metrics.n == 200 and not metrics.skipped and metrics.updated
    assert not np.allclose(trainer.predict(data[2]), predicted)  # and then it learned


def test_only_rows_touched_by_a_batch_change():
    trainer = small_trainer(model={"admit_after": 2})
    data = stream()
    for b in data[:4]:
        trainer.step(b)
    trainer.mark_published(1)
    before = table_weights(trainer)
    batch = data[4]
    trainer.step(batch)
    for f, name in enumerate(trainer.model_config.sparse_fields):
        table = trainer.tables[name]
        touched = set(table.lookup([str(e[name]) for e in batch], len(batch)).tolist())
        changed = set((table.weight[:len(before[name])] != before[name]).any(1)
                      .nonzero().ravel().tolist())
        assert changed <= touched, name
        assert len(changed) >= 0.9 * len(touched - {0}), name  # touched rows did learn
    deltas = trainer.changed_rows()
    users = {d.key for d in deltas if d.table == "user_id"}
    assert users <= {e["user_id"] for e in batch} | {DEFAULT_KEY}
    assert all(d.vector.shape == (4,) and d.vector.dtype == np.float32 for d in deltas)


def test_changed_rows_follow_published_versions_and_include_defaults():
    trainer = small_trainer(model={"admit_after": 3})
    data = stream()
    trainer.step(data[0])
    first = trainer.changed_rows()
    assert {(d.table, d.key) for d in first if d.key == DEFAULT_KEY} == {
        (name, DEFAULT_KEY) for name in trainer.tables}
    trainer.mark_published(1)
    assert trainer.changed_rows() == []
    trainer.step(data[1])
    since_1 = {(d.table, d.key) for d in trainer.changed_rows()}
    trainer.mark_published(2)
    trainer.step(data[2])
    assert {(d.table, d.key) for d in trainer.changed_rows(since_version=1)} >= since_1
    with pytest.raises(KeyError):
        trainer.changed_rows(since_version=7)
    with pytest.raises(ValueError):
        trainer.mark_published(2)


def test_expired_ids_are_reported_as_removed():
    early = make_examples(50, seed=1, n_users=20, start_ms=0, span_ms=1_000)
    late = make_examples(50, seed=2, n_users=20, start_ms=600_000, span_ms=1_000)
    for e in late:
        e["user_id"] = "late-" + e["user_id"]
    early_users = {e["user_id"] for e in early}

    trainer = small_trainer(model={"expire_after_ms": 60_000})
    trainer.step(early)
    trainer.mark_published(1)
    trainer.step(late)  # ten minutes later: the early ids expired
    removed = trainer.removed_rows()
    assert early_users <= {k for t, k in removed if t == "user_id"}
    assert trainer.counters()["expired"] >= len(early_users)
    assert all(trainer.tables["user_id"].lookup([u], 1)[0] == 0 for u in early_users)

    unpublished = small_trainer(model={"expire_after_ms": 60_000})
    unpublished.step(early)
    unpublished.step(late)
    assert unpublished.counters()["expired"] >= len(early_users)
    assert unpublished.removed_rows() == []  # nothing was published, nothing to delete


def test_nan_input_batch_is_skipped_and_changes_nothing():
    trainer = small_trainer()
    data = stream()
    trainer.step(data[0])
    before = trainer.snapshot()
    bad = [dict(e) for e in data[1]]
    bad[3]["price"] = float("nan")
    metrics = trainer.step(bad)
    assert metrics.skipped and metrics.skip_reason == "non-finite input"
    after = trainer.snapshot()
    for key, value in before.items():
        if key.startswith("table/"):
            assert np.array_equal(np.asarray(value), np.asarray(after[key])), key
    assert trainer.counters()["skipped_batches"] == 1


def test_non_finite_loss_or_gradient_is_skipped_and_counted():
    trainer = small_trainer()
    data = stream()
    trainer.step(data[0])
    # Ids are still counted (and may be admitted, as a copy of the default row) in a skipped
    # batch; what must not change is any learned value.
    alive = {name: np.flatnonzero(t.alive) for name, t in trainer.tables.items()}
    weights = {name: t.weight[alive[name]].clone() for name, t in trainer.tables.items()}
    params = [p.detach().clone() for p in trainer.network.parameters()]
    normalizer_mean = trainer.network.normalizer.mean.clone()

    hook = trainer.network.heads.weight.register_hook(lambda g: g * float("nan"))
    metrics = trainer.step(data[1])
    hook.remove()
    assert metrics.skipped and metrics.skip_reason == "non-finite gradient"
    assert math.isfinite(metrics.logloss)  # the batch was still scored

    with torch.no_grad():
        trainer.network.heads.bias[0] = float("inf")
    metrics = trainer.step(data[2])
    assert metrics.skipped and metrics.skip_reason == "non-finite loss"
    with torch.no_grad():
        trainer.network.heads.bias[0] = params[-1][0]

    for name, w in weights.items():
        assert torch.equal(trainer.tables[name].weight[alive[name]], w), name
    for p, saved in zip(trainer.network.parameters(), params):
        assert torch.equal(p.detach(), saved)
    assert torch.equal(trainer.network.normalizer.mean, normalizer_mean)
    assert trainer.counters()["skipped_batches"] == 2
    assert not trainer.step(data[3]).skipped  # and it goes on learning


def test_gradient_accumulation_updates_every_n_batches():
    trainer = small_trainer(accumulation_steps=3)
    data = stream()
    params = [p.detach().clone() for p in trainer.network.parameters()]
    flags = [trainer.step(b).updated for b in data[:3]]
    assert flags == [False, False, True]
    assert any(not torch.equal(p, q) for p, q in zip(trainer.network.parameters(), params))


@pytest.fixture
def restore_determinism_flag():
    # deterministic=True switches a process-wide torch flag; leave other tests unaffected.
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)


def test_deterministic_mode_gives_bit_identical_weights(restore_determinism_flag):
    data = stream(n=1000)

    def run():
        trainer = small_trainer(model={"admit_after": 2, "capacity": 150}, deterministic=True,
                                accumulation_steps=2)
        for b in data:
            trainer.step(b)
        return trainer

    a, b = run(), run()
    for name in a.tables:
        assert torch.equal(a.tables[name].weight, b.tables[name].weight), name
        assert torch.equal(a.tables[name].accumulator, b.tables[name].accumulator), name
    for p, q in zip(a.network.state_dict().values(), b.network.state_dict().values()):
        assert torch.equal(p, q)
    assert a.counters()["evicted"] > 0  # eviction happened, and identically
    assert a.counters() == b.counters()



def test_distinct_key_path_learns_exactly_like_per_example_keys(restore_determinism_flag):
    # encode() hands the trainer each field's distinct keys; a batch built without them (or
    # dicts) must train to bit-identical weights, rows and counters.
    import dataclasses

    from model.features import encode

    data = stream(n=1000, size=125)

    def run(prepare):
        trainer = small_trainer(model={"admit_after": 2, "capacity": 150}, deterministic=True)
        for b in data:
            trainer.step(prepare(trainer, b))
        return trainer

    runs = [run(lambda t, b: b),
            run(lambda t, b: dataclasses.replace(encode(b, t.spec), sparse_distinct=None))]
    a, b = runs
    for name in a.tables:
        assert torch.equal(a.tables[name].weight, b.tables[name].weight), name
        assert torch.equal(a.tables[name].accumulator, b.tables[name].accumulator), name
        assert a.tables[name].index == b.tables[name].index, name
    for p, q in zip(a.network.state_dict().values(), b.network.state_dict().values()):
        assert torch.equal(p, q)
    assert a.counters() == b.counters() and a.counters()["evicted"] > 0
    probe = data[0]
    assert np.array_equal(a.predict(probe), b.predict(
        dataclasses.replace(encode(probe, b.spec), sparse_distinct=None)))

def test_anchor_pulls_towards_published_weights():
    data = stream(n=2000)

    def distance(anchor_l2):
        trainer = small_trainer(anchor_l2=anchor_l2, dense_lr=0.01)
        trainer.step(data[0])
        trainer.mark_published(1)
        published = [p.detach().clone() for p in trainer.network.parameters()]
        for b in data[1:]:
            trainer.step(b)
        return sum((p.detach() - q).pow(2).sum().item()
                   for p, q in zip(trainer.network.parameters(), published))

    assert distance(5.0) < 0.5 * distance(0.0)


def test_slot_reset_policies():
    trainer = small_trainer(slot_reset="every_n_steps", slot_reset_every=2)
    data = stream()
    trainer.step(data[0])
    assert trainer._optimizer.state  # Adam moments exist
    trainer.step(data[1])
    assert not trainer._optimizer.state  # reset after step 2
    assert all(t.slot_reset_step == 2 for t in trainer.tables.values())
    on_publish = small_trainer(slot_reset="on_publish")
    on_publish.step(data[0])
    on_publish.mark_published(1)
    assert not on_publish._optimizer.state


def test_model_learns_a_learnable_stream():
    trainer = small_trainer(model={"hidden_sizes": (16,), "embedding_dim": 8},
                            sparse_lr=0.1, dense_lr=0.01)
    data = batches(make_examples(24_000, seed=5, n_users=500, n_items=300), 500)
    metrics = [trainer.step(b) for b in data]
    early = np.mean([m.logloss for m in metrics[:4]])
    late = np.mean([m.logloss for m in metrics[-8:]])
    assert late < early
    assert np.nanmean([m.auc for m in metrics[-8:]]) > 0.65


def test_step_rejects_unlabelled_examples_and_ignores_empty_batches():
    trainer = small_trainer()
    unlabelled = [{k: v for k, v in e.items() if k not in ("click", "purchase")}
                  for e in stream()[0]]
    with pytest.raises(ValueError, match="labelled"):
        trainer.step(unlabelled)
    assert trainer.step([]).n == 0 and trainer.counters()["batches"] == 0
    assert trainer.predict(unlabelled).shape == (200, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_trainer_learns_like_the_cpu_one():
    data = stream(n=1000)
    cpu, cuda = small_trainer(device="cpu"), small_trainer(device="cuda")
    for b in data[:-1]:
        cpu.step(b)
        cuda.step(b)
    assert cuda.tables["user_id"].weight.is_cuda
    np.testing.assert_allclose(cuda.predict(data[-1]), cpu.predict(data[-1]), atol=1e-3)
    restored = Trainer.restore(cuda.snapshot())
    np.testing.assert_array_equal(restored.predict(data[-1]), cuda.predict(data[-1]))


def test_keep_freed_memory_is_applied_on_glibc():
    import platform

    from model.trainer import keep_freed_memory

    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert keep_freed_memory() is True
    else:
        assert keep_freed_memory() in (True, False)
    assert TrainerConfig.from_dict({}).keep_freed_memory  # older snapshots: the default
