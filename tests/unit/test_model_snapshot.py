import numpy as np
import torch

from model.config import ModelConfig, TrainerConfig
from model.synthetic import batches, make_examples
from model.trainer import Trainer

# Small tables and short expiry, so snapshots cover admission, eviction and expiry.
MODEL = ModelConfig(embedding_dim=4, hidden_sizes=(8,), token_buckets=64, admit_after=2,
                    capacity=120, expire_after_ms=40_000)
TRAINER = TrainerConfig(device="cpu", accumulation_steps=2, anchor_l2=0.1,
                        sparse_accumulator_decay=0.99)


def data(n=2400, size=200, seed=0):
    return batches(make_examples(n, seed=seed, n_users=400, n_items=300, span_ms=200_000), size)


def assert_same_state(a: Trainer, b: Trainer) -> None:
    for name in a.tables:
        ta, tb = a.tables[name], b.tables[name]
        assert tb.used == ta.used, name
        assert np.array_equal(ta.alive[:ta.used], tb.alive[:tb.used]), name
        live_rows = np.flatnonzero(ta.alive)  # a freed row's content is never read again
        live = torch.from_numpy(live_rows)
        assert ta.index == tb.index, name
        assert ta.pending == tb.pending, name
        for tensor in ("weight", "accumulator", "anchor"):
            assert torch.equal(getattr(ta, tensor)[live], getattr(tb, tensor)[live]), tensor
        for array in ("last_seen", "hits", "updated_step", "slot_step"):
            assert np.array_equal(getattr(ta, array)[live_rows],
                                  getattr(tb, array)[live_rows]), array
        assert sorted(ta.free_rows) == sorted(tb.free_rows), name
    for (ka, va), (kb, vb) in zip(a.network.state_dict().items(), b.network.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka
    assert a.counters() == b.counters()


def train_on(trainer, chunks):
    return [trainer.step(b) for b in chunks]


def test_snapshot_restore_round_trip_continues_identically():
    chunks = data()
    original = Trainer(MODEL, TRAINER)
    train_on(original, chunks[:5])  # odd count: one micro-batch is waiting for accumulation
    original.mark_published(1)
    assert original.counters()["evicted"] + original.counters()["expired"] > 0

    snapshot = original.snapshot()
    assert all(isinstance(v, (bytes, np.ndarray)) for v in snapshot.values())
    restored = Trainer.restore(snapshot)
    assert_same_state(original, restored)
    assert restored.published_version == 1

    metrics_a = train_on(original, chunks[5:])
    metrics_b = train_on(restored, chunks[5:])
    assert metrics_a == metrics_b
    assert_same_state(original, restored)
    assert [(d.table, d.key) for d in original.changed_rows()] == [
        (d.table, d.key) for d in restored.changed_rows()]


def test_restore_from_incremental_parts_matches_the_live_trainer():
    chunks = data()
    live = Trainer(MODEL, TRAINER)
    state: dict[str, bytes] = {}  # what the Flink operator keeps in MapState
    dense = b""
    for chunk in chunks[:9]:
        live.step(chunk)
        delta = live.snapshot_delta()
        dense = delta.dense
        for key, value in delta.entries.items():
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value
    assert live.snapshot_delta().entries == {}  # nothing changed since the last call
    rows_in_state = sum(1 for k in state if k.startswith("row/"))
    assert rows_in_state == sum(t.live_rows + 1 for t in live.tables.values())

    restored = Trainer.restore_from_parts(dense, state)
    assert_same_state(live, restored)
    assert train_on(live, chunks[9:]) == train_on(restored, chunks[9:])
    assert_same_state(live, restored)


def test_delta_marks_freed_rows_for_deletion():
    live = Trainer(ModelConfig(**{**MODEL.to_dict(), "capacity": 30, "hidden_sizes": (8,)}),
                   TrainerConfig(device="cpu"))
    chunks = data(n=800)
    live.step(chunks[0])
    first = live.snapshot_delta()
    live.step(chunks[1])
    live.step(chunks[2])
    second = live.snapshot_delta()
    deleted = [k for k, v in second.entries.items() if v is None]
    assert live.counters()["evicted"] > 0 and deleted
    assert all(k.startswith(("row/", "pending/")) for k in deleted)
    assert set(first.entries) & set(deleted)


def test_delta_carries_only_rows_the_step_touched():
    trainer = Trainer(ModelConfig(embedding_dim=4, hidden_sizes=(8,), token_buckets=64,
                                  admit_after=1), TrainerConfig(device="cpu"))
    chunks = data(n=1000)
    for chunk in chunks:
        trainer.step(chunk)
    everything = trainer.snapshot_delta()
    few = chunks[0][:3]
    trainer.step(few)
    delta = trainer.snapshot_delta()
    rows = {k for k in delta.entries if k.startswith("row/")}
    touched = {(name, str(e[name])) for e in few for name in MODEL.sparse_fields}
    assert len(rows) <= len(touched) + 3 * 3 + len(trainer.tables)  # ids, tokens, defaults
    assert len(rows) < len([k for k in everything.entries if k.startswith("row/")]) / 10
    user_rows = {int(k.split("/")[2]) for k in rows if k.startswith("row/user_id/")}
    assert {trainer.tables["user_id"].key_of(r) for r in user_rows} == {e["user_id"] for e in few}
