import json
import shutil
from pathlib import Path

import pytest

from model.features import FeatureSpec
from serving.onnx_model import ModelFileError, load_onnx_model, path_of_uri, preferred_providers
from tests.unit.test_serving_support import PRICE_STATS, history


def _copy_of_v1(tmp_path) -> Path:
    source = Path(history()[0].record["onnx_uri"].removeprefix("file://")).parent
    return Path(shutil.copytree(source, tmp_path / "v1"))


def test_loads_the_graph_its_spec_and_the_price_statistics():
    record = history()[0].record
    model = load_onnx_model(record["onnx_uri"], record["sha256"], record["spec"])
    assert model.spec == FeatureSpec.from_dict(record["spec"])
    assert model.providers[-1] == "CPUExecutionProvider"
    assert model.imputation.typical_price("c2") == pytest.approx(PRICE_STATS.typical_price("c2"))


def test_cpu_is_always_the_last_provider():
    assert preferred_providers()[-1] == "CPUExecutionProvider"


def test_only_local_file_uris_are_accepted():
    assert path_of_uri("file:///models/default/v000001/model.onnx") == Path(
        "/models/default/v000001/model.onnx")
    for uri in ("s3://bucket/model.onnx", "file://otherhost/model.onnx", "/plain/path"):
        with pytest.raises(ModelFileError):
            path_of_uri(uri)


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match="cannot read"):
        load_onnx_model((tmp_path / "model.onnx").as_uri(), "0" * 64)


def test_the_record_and_meta_json_must_agree_on_the_feature_spec(tmp_path):
    copy = _copy_of_v1(tmp_path)
    record = history()[0].record
    spec = {**record["spec"], "embedding_dim": 99}
    with pytest.raises(ModelFileError, match="disagree on the feature spec"):
        load_onnx_model((copy / "model.onnx").as_uri(), record["sha256"], spec)


def test_a_spec_that_does_not_fit_the_graph_is_refused(tmp_path):
    copy = _copy_of_v1(tmp_path)
    record = history()[0].record
    meta = json.loads((copy / "meta.json").read_text())
    meta["spec"] = {**meta["spec"], "embedding_dim": 99}
    (copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="input sparse_emb has shape"):
        load_onnx_model((copy / "model.onnx").as_uri(), record["sha256"], None)


def test_without_meta_json_the_record_spec_is_used_and_prices_impute_the_default(tmp_path):
    copy = _copy_of_v1(tmp_path)
    (copy / "meta.json").unlink()
    record = history()[0].record
    model = load_onnx_model((copy / "model.onnx").as_uri(), record["sha256"], record["spec"])
    assert model.imputation.typical_price("c2") == 0.0
    with pytest.raises(ModelFileError, match="no feature spec"):
        load_onnx_model((copy / "model.onnx").as_uri(), record["sha256"], None)
