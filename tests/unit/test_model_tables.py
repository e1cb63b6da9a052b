import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from model.tables import DEFAULT_ROW, EmbeddingTable


def make_table(**overrides) -> EmbeddingTable:
    args = dict(name="t", dim=4, capacity=100, admit_after=1, expire_after_ms=None,
                eviction="lru", eviction_batch_fraction=0.01,
                default_row=np.arange(4, dtype=np.float32), initial_accumulator=0.1,
                keep_anchor=False, device=torch.device("cpu"))
    args.update(overrides)
    return EmbeddingTable(**args)


def rows_of(table, keys, now_ms=0, step=1):
    unique, inverse = table.observe(keys, now_ms, step)
    table.unpin_all()
    return unique[inverse]


def test_admission_after_k_sightings_shares_default_until_then():
    table = make_table(admit_after=3)
    assert list(rows_of(table, ["a"])) == [DEFAULT_ROW]
    assert list(rows_of(table, ["a", "b"])) == [DEFAULT_ROW, DEFAULT_ROW]
    assert table.live_rows == 0 and table.pending_count("a") == 2
    row = rows_of(table, ["a"])[0]
    assert row != DEFAULT_ROW and table.live_rows == 1 and "a" not in table.pending
    # Sightings within one batch count too, and every occurrence gets the new row.
    rows = rows_of(table, ["c", "c", "c", "b"])
    assert rows[0] == rows[1] == rows[2] != DEFAULT_ROW
    assert rows[3] == DEFAULT_ROW  # b: seen twice so far
    assert table.admitted == 2 and table.pending_count("b") == 2


def test_a_missing_value_stays_on_the_default_row():
    """'' (a missing category, device, recent category...) is never admitted: a row of its own
    would be published under a delta key without a row key, which serving rejects."""
    table = make_table(admit_after=1)
    rows = rows_of(table, ["", "a", "", "b", ""])
    assert list(rows[[0, 2, 4]]) == [DEFAULT_ROW] * 3 and rows[1] != DEFAULT_ROW and rows[3] != DEFAULT_ROW
    unique, inverse = table.observe(["", "c"], 0, 2, counts=np.array([5, 1]))
    table.unpin_all()
    assert unique[inverse][0] == DEFAULT_ROW and unique[inverse][1] != DEFAULT_ROW
    assert table.live_rows == 3 and "" not in table.index and "" not in table.pending


def test_admitted_row_starts_as_the_default_row():
    table = make_table()
    row = rows_of(table, ["a"])[0]
    assert torch.equal(table.weight[row], table.weight[DEFAULT_ROW])
    assert table.accumulator[row].item() == np.float32(0.1)


def test_distinct_keys_never_share_a_row():
    table = make_table(capacity=20_000)
    keys = [f"user-{i}" for i in range(10_000)]
    rows = rows_of(table, keys)
    assert len(set(rows.tolist())) == len(keys) and DEFAULT_ROW not in rows
    assert [table.key_of(r) for r in rows[:5]] == keys[:5]
    assert list(table.lookup(keys[:3] + ["unknown"], 4))[-1] == DEFAULT_ROW


def test_rows_unseen_for_expiry_time_are_freed_and_reused():
    table = make_table(expire_after_ms=1_000)
    table.forget_removed(-1)  # what a publication does: removals are tracked from then on
    row_a = rows_of(table, ["a"], now_ms=0)[0]
    rows_of(table, ["b"], now_ms=900)
    assert table.maybe_expire(now_ms=900, step=2) == 0
    assert table.maybe_expire(now_ms=1_500, step=3) == 1  # a: unseen for 1500 ms; b: 600 ms
    assert "a" not in table.index and "b" in table.index
    assert table.expired == 1 and table.removed == {"a": 3}
    assert table.lookup(["a"], 1)[0] == DEFAULT_ROW
    assert rows_of(table, ["c"], now_ms=1_600)[0] == row_a  # the freed row is reused


def test_expiry_spares_pinned_rows_and_forgets_stale_pending_ids():
    table = make_table(expire_after_ms=1_000, admit_after=2)
    table.observe(["a", "a", "p"], 0, 1)  # a admitted and pinned (update not applied yet)
    assert table.maybe_expire(now_ms=5_000, step=2) == 0
    assert "a" in table.index and "p" not in table.pending


def test_lru_eviction_when_full():
    table = make_table(capacity=3)
    table.forget_removed(-1)
    for t, key in enumerate(["a", "b", "c"]):
        rows_of(table, [key], now_ms=t)
    rows_of(table, ["a"], now_ms=10)  # a is now the most recent
    rows_of(table, ["d"], now_ms=11)
    assert set(table.index) == {"a", "c", "d"} and table.evicted == 1
    assert table.live_rows == 3 and table.removed == {"b": 1}


def test_lfu_eviction_when_full():
    table = make_table(capacity=3, eviction="lfu")
    rows_of(table, ["a", "a", "a", "b", "c", "c"], now_ms=0)
    rows_of(table, ["d"], now_ms=1)
    assert set(table.index) == {"a", "c", "d"}


def test_pinned_rows_are_never_evicted_id_waits_instead():
    table = make_table(capacity=2)
    table.observe(["a", "b"], 0, 1)  # both pinned: their gradients are not applied yet
    unique, inverse = table.observe(["c"], 1, 1)
    assert list(unique[inverse]) == [DEFAULT_ROW] and "c" in table.pending
    table.unpin_all()
    assert rows_of(table, ["c"], now_ms=2)[0] != DEFAULT_ROW and table.evicted == 1


def test_adagrad_update_touches_only_given_rows():
    table = make_table()
    rows_of(table, ["a", "b", "c"])
    before = table.weight.clone()
    rows = np.array([1, 3])
    grad = torch.ones(2, 4)
    table.adagrad_update(rows, grad, lr=0.5, step=5, decay=1.0)
    changed = (table.weight != before).any(dim=1).nonzero().ravel().tolist()
    assert changed == [1, 3]
    # accumulator 0.1 + mean(g^2) = 1.1; step = lr * g / sqrt(1.1)
    expected = before[1] - 0.5 / np.sqrt(1.1)
    assert torch.allclose(table.weight[1], expected)
    assert list(table.updated_step[[1, 2, 3]]) == [5, 1, 5]


def test_slot_reset_and_decay_are_applied_lazily():
    table = make_table()
    rows_of(table, ["a"])
    row = np.array([1])
    table.adagrad_update(row, torch.ones(1, 4), lr=0.1, step=1, decay=1.0)
    assert table.accumulator[1].item() == np.float32(1.1)
    table.reset_slots(step=1)
    table.adagrad_update(row, torch.ones(1, 4), lr=0.1, step=2, decay=1.0)
    assert table.accumulator[1].item() == np.float32(1.1)  # reset to 0.1, then + 1
    table.adagrad_update(row, torch.ones(1, 4), lr=0.1, step=4, decay=0.5)
    assert np.isclose(table.accumulator[1].item(), 1.1 * 0.25 + 1.0)


def test_pack_and_load_rows_round_trip():
    table = make_table(keep_anchor=True)
    rows_of(table, ["a", "b", "ключ/with/slashes"])
    table.adagrad_update(np.array([1, 2]), torch.randn(2, 4), lr=0.1, step=3, decay=1.0)
    packed = table.pack_rows(np.flatnonzero(table.alive))
    copy = make_table(keep_anchor=True, default_row=np.zeros(4, dtype=np.float32))
    copy.load_rows(packed)
    assert copy.index == table.index
    for name in ("last_seen", "hits", "updated_step", "slot_step", "alive"):
        assert np.array_equal(getattr(copy, name)[:4], getattr(table, name)[:4]), name
    assert torch.equal(copy.weight[:4], table.weight[:4])
    assert torch.equal(copy.accumulator[:4], table.accumulator[:4])
    assert torch.equal(copy.anchor[:4], table.anchor[:4])


def test_unique_rows_matches_numpy_on_both_paths():
    from model.tables import unique_rows

    rng = np.random.default_rng(1)
    for bound in (5, 100_000):  # counting pass, then sort
        rows = rng.integers(0, bound, 300)
        unique, inverse, counts = unique_rows(rows, bound)
        expected = np.unique(rows, return_inverse=True, return_counts=True)
        for got, want in zip((unique, inverse, counts), expected):
            assert np.array_equal(got, want)


def test_distinct_keys_with_counts_count_every_sighting():
    table = make_table(admit_after=3)
    unique, inverse = table.observe(["x", "y"], 0, 1, counts=np.array([3, 1]))
    rows = unique[inverse]
    assert rows[0] != DEFAULT_ROW and rows[1] == DEFAULT_ROW
    assert table.pending_count("y") == 1 and table.hits[rows[0]] == 3


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, 30), min_size=1, max_size=12),
                          st.integers(0, 400)), min_size=1, max_size=25),
       st.integers(1, 3), st.sampled_from(["lru", "lfu"]))
def test_table_invariants_under_random_traffic(batches_, admit_after, eviction):
    table = make_table(capacity=8, admit_after=admit_after, eviction=eviction,
                       expire_after_ms=300)
    now, step = 0, 0
    for ids, advance in batches_:
        now, step = now + advance, step + 1
        keys = [f"k{i}" for i in ids]
        unique, inverse = table.observe(keys, now, step)
        rows = unique[inverse]
        # every key got its own row or the default one, and the same key always the same row
        for key, row in zip(keys, rows.tolist()):
            assert row == table.index.get(key, DEFAULT_ROW)
        table.unpin_all()
        table.maybe_expire(now, step)
        assert table.live_rows <= 8
        live = [r for r in range(table.used) if table.alive[r] and r != DEFAULT_ROW]
        assert sorted(table.index.values()) == live  # no two keys share a row
        assert all(table.row_keys[r] == k for k, r in table.index.items())
        assert set(table.free_rows).isdisjoint(live) and DEFAULT_ROW not in table.free_rows
        assert set(table.index).isdisjoint(table.pending)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, 30), min_size=1, max_size=40),
                          st.integers(0, 400)), min_size=1, max_size=25),
       st.integers(1, 3), st.sampled_from(["lru", "lfu"]))
def test_distinct_keys_with_counts_equal_keys_with_repeats(batches_, admit_after, eviction):
    # The trainer looks up each distinct id of a batch once, with its number of sightings
    # (first-seen order); the table must end up exactly as if it had seen every occurrence.
    args = dict(capacity=8, admit_after=admit_after, eviction=eviction, expire_after_ms=300)
    repeated, distinct = make_table(**args), make_table(**args)
    for table in (repeated, distinct):
        table.forget_removed(-1)
        table.delta_entries(-1)  # start tracking pending changes
    now, step = 0, 0
    for ids, advance in batches_:
        now, step = now + advance, step + 1
        keys = [f"k{i}" for i in ids]
        unique, inverse = repeated.observe(keys, now, step)
        first_seen = list(dict.fromkeys(keys))
        index = np.array([first_seen.index(k) for k in keys])
        unique_d, inverse_d = distinct.observe(first_seen, now, step,
                                               np.bincount(index, minlength=len(first_seen)))
        assert np.array_equal(unique, unique_d)
        assert np.array_equal(inverse, inverse_d[index])
        for table in (repeated, distinct):
            table.unpin_all()
            table.maybe_expire(now, step)
        assert repeated.index == distinct.index and repeated.pending == distinct.pending
        assert list(repeated.pending) == list(distinct.pending)  # order breaks pruning ties
        assert list(repeated.index) == list(distinct.index)  # same admission order
        assert repeated.pending_changed == distinct.pending_changed
        assert repeated.row_keys == distinct.row_keys and repeated.free_rows == distinct.free_rows
        for name in ("last_seen", "hits", "updated_step", "slot_step", "alive", "pinned"):
            assert np.array_equal(getattr(repeated, name), getattr(distinct, name)), name
        assert (repeated.admitted, repeated.evicted, repeated.expired) == (
            distinct.admitted, distinct.evicted, distinct.expired)
        assert repeated.removed == distinct.removed


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 4)), min_size=1,
                         max_size=20, unique_by=lambda t: t[0]), min_size=1, max_size=12),
       st.integers(1, 3))
def test_vectorised_pending_counts_equal_the_one_by_one_loop(batches_, admit_after):
    fast, loop = make_table(capacity=6, admit_after=admit_after), make_table(
        capacity=6, admit_after=admit_after)  # max_pending 6: pruning happens too
    for table in (fast, loop):
        table.delta_entries(-1)
    for now, batch in enumerate(batches_):
        keys = [f"k{i}" for i, _ in batch]
        sightings = np.array([n for _, n in batch], dtype=np.int64)
        ready = fast._count_pending(keys, sightings, now * 1000)
        expected = loop._count_pending_loop(keys, sightings.tolist(), now * 1000)
        assert np.array_equal(ready, expected)
        assert list(fast.pending.items()) == list(loop.pending.items())
        assert fast.pending_changed == loop.pending_changed
    # A clock too large for packed int64 values takes the loop.
    far = make_table(admit_after=2)
    assert list(far._count_pending(["a", "b"], np.array([2, 1]), 1 << 50)) == [0]
    assert far.pending_count("a") == 2 and far.pending["b"] >> 20 == 1 << 50
