import numpy as np

from model.config import ModelConfig
from model.features import FeatureSpec, encode, query_token_buckets
from model.synthetic import make_examples

SPEC = FeatureSpec.from_config(ModelConfig())


def test_encode_shapes_and_keys():
    examples = make_examples(50, seed=3)
    batch = encode(examples, SPEC)
    assert batch.size == 50
    assert len(batch.sparse_keys) == len(SPEC.sparse_fields)
    assert batch.sparse_keys[0] == [e["user_id"] for e in examples]
    position = SPEC.sparse_fields.index("position")
    assert batch.sparse_keys[position] == [str(e["position"]) for e in examples]
    assert batch.dense.shape == (50, SPEC.num_dense) and batch.dense.dtype == np.float32
    assert batch.dense[7, SPEC.dense_fields.index("price")] == np.float32(examples[7]["price"])
    assert batch.token_offsets[0] == 0 and batch.token_offsets[-1] == len(batch.token_buckets)
    assert np.all(np.diff(batch.token_offsets) >= 1)  # an empty query still has its bucket 0
    assert list(batch.click) == [e["click"] for e in examples]
    assert list(batch.ts) == [e["ts"] for e in examples]


def test_query_hash_is_stable_across_processes():
    # zlib.crc32, not the per-process salted hash(): these values must never change.
    assert query_token_buckets("red shoe", 1 << 18) == (106024, 252087)
    assert query_token_buckets("red  shoe ", 64) == (58, 24)
    assert query_token_buckets("", 64) == (0,)
    assert query_token_buckets("   ", 64) == (0,)


def test_missing_fields_take_contract_defaults_and_labels_are_optional():
    examples = [{"user_id": "u1", "item_id": "i1", "ts": 5, "price": 3.0, "position": 2}]
    batch = encode(examples, SPEC)
    assert batch.click is None and not batch.has_labels
    assert batch.sparse_keys[SPEC.sparse_fields.index("category")] == [""]
    assert batch.dense[0, SPEC.dense_fields.index("u_click_5m")] == 0.0
    assert batch.dense[0, SPEC.dense_fields.index("price")] == 3.0
    assert list(batch.token_buckets) == [0]


def test_null_dense_counts_as_missing_but_nan_stays_nan():
    base = make_examples(2, seed=1)
    base[0]["u_click_1h"] = None
    base[1]["price"] = float("nan")
    batch = encode(base, SPEC)
    assert batch.dense[0, SPEC.dense_fields.index("u_click_1h")] == 0.0
    assert np.isnan(batch.dense[1, SPEC.dense_fields.index("price")])


def test_encode_of_empty_batch():
    batch = encode([], SPEC)
    assert batch.size == 0 and batch.dense.shape == (0, SPEC.num_dense)
    assert list(batch.token_offsets) == [0]


def test_spec_round_trips_through_dict():
    assert FeatureSpec.from_dict(SPEC.to_dict()) == SPEC


def test_integer_and_mixed_keys_become_strings():
    base = make_examples(3, seed=2)
    base[0]["position"], base[1]["position"], base[2]["position"] = 1, 5000, -2
    batch = encode(base, SPEC)
    assert batch.sparse_keys[SPEC.sparse_fields.index("position")] == ["1", "5000", "-2"]
    base[0]["user_id"], base[1]["user_id"] = 42, None  # off-contract, but must not break
    assert encode(base, SPEC).sparse_keys[0][:2] == ["42", ""]
