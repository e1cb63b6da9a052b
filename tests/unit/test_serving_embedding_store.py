import numpy as np
import pytest

from model.embedding_lookup import build_sparse_emb
from model.features import FeatureSpec, encode
from model.tables import DEFAULT_KEY
from serving.embedding_store import BaseTable, EmbeddingStore
from tests.unit.test_serving_support import PROBE, SMALL_MODEL, trained_trainer


@pytest.fixture(scope="module")
def trainer():
    return trained_trainer(steps=2)  # never published: changed_rows() is every row


def _store_of(trainer) -> EmbeddingStore:
    store = EmbeddingStore()
    for row in trainer.changed_rows():
        store.apply(1, row.table, row.key, row.vector)
    return store


def test_lookup_equals_the_trainers_sparse_embeddings(trainer):
    got = _store_of(trainer).view(1).lookup(encode(PROBE, trainer.spec), trainer.spec)
    expected = trainer.sparse_embeddings(PROBE)
    assert got.shape == expected.shape == (len(PROBE), trainer.spec.num_fields, 8)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_lookup_agrees_with_the_model_packages_reference_lookup(trainer):
    rows = {}
    for row in trainer.changed_rows():
        rows.setdefault(row.table, {})[row.key] = row.vector
    batch = encode(PROBE, trainer.spec)
    got = _store_of(trainer).view(1).lookup(batch, trainer.spec)
    np.testing.assert_allclose(got, build_sparse_emb(batch, trainer.spec, rows), rtol=0, atol=1e-6)


def test_unknown_ids_get_the_default_row_and_the_query_is_mean_pooled():
    store = EmbeddingStore()
    spec = FeatureSpec.from_config(SMALL_MODEL)
    for table in spec.table_names:
        store.apply(1, table, DEFAULT_KEY, np.full(8, -1.0))
    store.apply(1, "item_id", "i1", np.arange(8.0))
    red, shoe = (str(b) for b in encode([{"query": "red shoe"}], spec).token_buckets)
    store.apply(1, "query", red, np.full(8, 2.0))
    store.apply(1, "query", shoe, np.full(8, 4.0))
    batch = encode([{"item_id": "i1", "query": "red shoe"},
                    {"item_id": "i2", "query": "red unknown"}], spec)
    emb = store.view(1).lookup(batch, spec)
    item = spec.sparse_fields.index("item_id")
    np.testing.assert_array_equal(emb[0, item], np.arange(8.0))
    np.testing.assert_array_equal(emb[1, item], np.full(8, -1.0))  # i2: default row
    np.testing.assert_array_equal(emb[0, -1], np.full(8, 3.0))  # mean of red and shoe
    np.testing.assert_array_equal(emb[1, -1], np.full(8, 0.5))  # mean of red and the default


def test_each_version_sees_its_own_rows_copy_on_write():
    store = EmbeddingStore()
    store.apply(1, "item_id", DEFAULT_KEY, np.zeros(4))
    store.apply(1, "item_id", "a", np.full(4, 1.0))
    store.apply(1, "item_id", "b", np.full(4, 1.0))
    store.apply(2, "item_id", "a", np.full(4, 2.0))
    store.remove(2, "item_id", "b")
    store.apply(3, "item_id", "c", np.full(4, 3.0))
    v1, v2, v3 = store.view(1), store.view(2), store.view(3)

    def rows(view):
        return view.vectors("item_id", ["a", "b", "c"], 4)[:, 0].tolist()

    assert rows(v1) == [1.0, 1.0, 0.0]
    assert rows(v2) == [2.0, 0.0, 0.0]  # b removed: back to the default row
    assert rows(v3) == [2.0, 0.0, 3.0]
    store.fold_through(2)  # views of versions >= 2 read the same rows afterwards
    assert store.base_version == 2 and store.layer_versions() == [3]
    assert rows(v2) == rows(store.view(2)) == [2.0, 0.0, 0.0]
    assert rows(v3) == rows(store.view(3)) == [2.0, 0.0, 3.0]
    with pytest.raises(ValueError, match="older than the folded base"):
        store.view(1)
    with pytest.raises(ValueError, match="already folded"):
        store.apply(2, "item_id", "a", np.zeros(4))


def test_base_table_reuses_freed_rows_and_grows():
    base = BaseTable(dim=2)
    for i in range(3000):
        base.put(f"k{i}", np.array([i, i], dtype=np.float32))
    base.remove("k5")
    base.put("new", np.array([-1, -1], dtype=np.float32))
    assert base.index["new"] == 5 and len(base) == 3000
    assert base.matrix[base.index["k2999"]].tolist() == [2999.0, 2999.0]


def test_malformed_vectors_are_refused():
    store = EmbeddingStore()
    store.apply(1, "item_id", "a", [0.0, 1.0])
    with pytest.raises(ValueError, match="has 3 values"):
        store.apply(1, "item_id", "b", [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="not a finite vector"):
        store.apply(1, "item_id", "c", [float("nan"), 1.0])


def test_a_table_without_default_row_is_reported():
    store = EmbeddingStore()
    store.apply(1, "item_id", DEFAULT_KEY, np.zeros(4))
    assert store.view(1).tables_missing_default(["item_id", "user_id"]) == ["user_id"]
