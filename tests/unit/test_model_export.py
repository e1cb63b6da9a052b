import hashlib
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from model.config import ModelConfig, TrainerConfig
from model.embedding_lookup import EmbeddingLookup, build_sparse_emb
from model.export import export_onnx
from model.features import FeatureSpec, encode
from model.network import ProbabilityHeads
from model.synthetic import batches, make_examples
from model.trainer import Trainer


@pytest.fixture(scope="module")
def trained():
    trainer = Trainer(ModelConfig(embedding_dim=4, hidden_sizes=(8,), token_buckets=64,
                                  admit_after=2), TrainerConfig(device="cpu"))
    chunks = batches(make_examples(1500, seed=4, n_users=200, n_items=150), 250)
    for chunk in chunks[:4]:
        trainer.step(chunk)
    return trainer, chunks


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_onnx_matches_torch(trained, tmp_path):
    trainer, chunks = trained
    meta = export_onnx(trainer, tmp_path, version=3)
    onnx.checker.check_model(str(tmp_path / "model.onnx"))
    batch = encode(chunks[5], trainer.spec)
    sparse_emb = trainer.sparse_embeddings(batch)
    outputs = session(tmp_path / "model.onnx").run(
        ["p_click", "p_purchase"], {"sparse_emb": sparse_emb, "dense": batch.dense})
    with torch.no_grad():
        expected = ProbabilityHeads(trainer.network)(torch.from_numpy(sparse_emb),
                                                     torch.from_numpy(batch.dense))
    for got, want in zip(outputs, expected):
        assert got.shape == (batch.size,)
        np.testing.assert_allclose(got, want.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.stack(outputs, 1), trainer.predict(batch), atol=1e-5, rtol=0)
    assert meta["version"] == 3


def test_meta_json_describes_the_graph(trained, tmp_path):
    trainer, _ = trained
    meta = export_onnx(trainer, tmp_path, version=7, model="default")
    on_disk = json.loads((tmp_path / "meta.json").read_text())
    assert on_disk == meta
    assert meta["sha256"] == hashlib.sha256((tmp_path / "model.onnx").read_bytes()).hexdigest()
    assert FeatureSpec.from_dict(meta["spec"]) == trainer.spec
    assert meta["tables"] == list(trainer.spec.table_names)
    assert set(meta["metrics"]) >= {"auc", "logloss", "calibration"}
    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["sparse_emb", "dense"]
    assert [o.name for o in graph.output] == ["p_click", "p_purchase"]


def test_serving_lookup_from_published_rows_reproduces_the_trainer(trained, tmp_path):
    trainer, chunks = trained
    rows: dict[str, dict[str, np.ndarray]] = {}
    for delta in trainer.changed_rows():  # nothing published yet: every row
        rows.setdefault(delta.table, {})[delta.key] = delta.vector
    batch = chunks[5] + [dict(chunks[5][0], user_id="never-seen", query="unseen words here")]
    encoded = encode(batch, trainer.spec)
    np.testing.assert_allclose(build_sparse_emb(encoded, trainer.spec, rows),
                               trainer.sparse_embeddings(encoded), atol=1e-6, rtol=0)

    # Then versions flow as deltas: changed rows and removed ids only.
    lookup = EmbeddingLookup.from_rows(trainer.spec, rows)
    trainer.mark_published(1)
    for chunk in chunks[4:]:
        trainer.step(chunk)
    deltas = trainer.changed_rows()
    assert 0 < len(deltas) < sum(len(v) for v in rows.values()) + 500
    lookup.apply((d.table, d.key, d.vector) for d in deltas)
    lookup.apply((table, key, None) for table, key in trainer.removed_rows())
    trainer.mark_published(2)
    export_onnx(trainer, tmp_path, version=2)
    served = session(tmp_path / "model.onnx").run(
        None, {"sparse_emb": lookup.sparse_emb(encoded), "dense": encoded.dense})
    np.testing.assert_allclose(np.stack(served, 1), trainer.predict(encoded), atol=1e-5, rtol=0)


def test_lookup_rejects_wrong_shapes_and_removes_keys():
    spec = FeatureSpec.from_config(ModelConfig(embedding_dim=3))
    lookup = EmbeddingLookup(spec)
    with pytest.raises(ValueError, match="shape"):
        lookup.upsert("user_id", "u1", np.zeros(4))
    lookup.upsert("user_id", "__default__", np.ones(3))
    lookup.upsert("user_id", "u1", np.full(3, 2.0))
    assert lookup.rows("user_id") == 1
    lookup.remove("user_id", "u1")
    assert lookup.rows("user_id") == 0
    batch = encode([{"user_id": "u1"}], spec)
    np.testing.assert_array_equal(lookup.sparse_emb(batch)[0, 0], np.ones(3))
