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


def reference_encode(examples, spec):
    """The plain per-example definition of encode(), which its column-wise fast path must
    reproduce exactly."""
    def get(e, f, default):
        return e.get(f, default)

    n = len(examples)
    sparse = tuple([("" if get(e, f, "") is None else str(get(e, f, ""))) for e in examples]
                   for f in spec.sparse_fields)
    tokens, offsets = [], [0]
    for e in examples:
        query = get(e, spec.query_field, "")
        buckets = query_token_buckets("" if query is None else query, spec.token_buckets)
        tokens.extend(buckets)
        offsets.append(offsets[-1] + len(buckets))
    dense = np.zeros((n, spec.num_dense), dtype=np.float32)
    for i, e in enumerate(examples):
        for j, f in enumerate(spec.dense_fields):
            value = get(e, f, 0.0)
            dense[i, j] = 0.0 if value is None else np.float32(value)
    labelled = n > 0 and "click" in examples[0] and "purchase" in examples[0]
    labels = [np.array([get(e, f, 0) for e in examples], dtype=np.float32) if labelled else None
              for f in ("click", "purchase")]
    return dict(sparse_keys=sparse, token_buckets=np.array(tokens, dtype=np.int64),
                token_offsets=np.array(offsets, dtype=np.int64), dense=dense,
                ts=np.array([get(e, "ts", 0) for e in examples], dtype=np.int64),
                click=labels[0], purchase=labels[1])


def assert_matches_reference(examples):
    batch, want = encode(examples, SPEC), reference_encode(examples, SPEC)
    assert batch.sparse_keys == want["sparse_keys"]
    assert all(type(k) is str for keys in batch.sparse_keys for k in keys)
    for name in ("token_buckets", "token_offsets", "dense", "ts", "click", "purchase"):
        got, expected = getattr(batch, name), want[name]
        if expected is None:
            assert got is None, name
            continue
        assert got.dtype == expected.dtype and got.shape == expected.shape, name
        assert np.array_equal(got, expected, equal_nan=got.dtype.kind == "f"), name
    # The distinct keys the trainer uses: first-seen order, no repeats, and they rebuild the keys.
    for f, keys in enumerate(batch.sparse_keys):
        assert batch.distinct_keys(f) is batch.sparse_distinct[f]
        if batch.sparse_distinct[f] is None:  # left to per-example lookups: mostly distinct
            assert len(set(keys[:512])) > 0.75 * len(keys[:512])
            continue
        distinct, index = batch.sparse_distinct[f]
        assert distinct == list(dict.fromkeys(keys))
        assert index.dtype == np.int64 and [distinct[i] for i in index.tolist()] == keys


def test_fast_encode_matches_the_per_example_definition():
    from freshrank.datagen import EventGenerator, GeneratorConfig

    assert_matches_reference(make_examples(500, seed=4))
    datagen = list(EventGenerator(GeneratorConfig(seed=3, n_users=50, n_items_initial=40))
                   .examples(400))
    assert_matches_reference(datagen)
    assert_matches_reference(datagen[:1])
    assert_matches_reference([])


def test_fast_encode_matches_the_definition_on_off_contract_values():
    examples = make_examples(60, seed=5)
    odd = [None, 7, "7", True, 1, 2.5, "", ["a"], float("nan"), -3, "x y"]
    for i, e in enumerate(examples):
        e["user_id"] = odd[i % len(odd)]  # ids that print alike, unhashable, null, bool...
        e["brand"] = [3, None, 3, 4][i % 4]  # ints and null, no clash
        e["hour"] = [1, True][i % 2]  # True == 1 but prints "True"
        e["position"] = [5, "5"][i % 2]  # two values, one key
        e["query"] = [None, "", "red shoe", "  shoe"][i % 4]
        e["price"] = [None, float("nan"), 3, 2.5][i % 4]
        if i % 7 == 0:
            del e["category"], e["u_click_1h"]
    assert_matches_reference(examples)
    assert_matches_reference([dict(e, hour=i % 3) for i, e in enumerate(examples)])
    # Numbers: all present and finite (the example-by-example path), with ints, bools, huge
    # values, labels that are floats or null (NaN, unlike a null dense feature).
    plain = make_examples(40, seed=6)
    assert_matches_reference(plain)
    for i, e in enumerate(plain):
        e["i_impr_1h"], e["u_cart_1h"] = i * 10**15, bool(i % 2)
        e["click"] = [0, 1, 0.25, 1.0][i % 4]
    assert_matches_reference(plain)
    plain[3]["price"] = 1e300  # beyond float32: inf either way
    plain[5]["purchase"] = None
    with np.errstate(over="ignore"):
        assert_matches_reference(plain)
        plain[7]["qi_ctr_24h"] = "0.5"  # a numeric string converts like numpy converts it
        assert_matches_reference(plain)


def test_dedupe_keeps_first_seen_order_on_short_and_long_columns():
    from model.features import _dedupe

    for n in (0, 1, 5, 9000):  # 9000: longer than the ready-made positions
        column = [f"k{(i * 7919) % 1000}" for i in range(n)]
        distinct, index = _dedupe(column)
        assert distinct == list(dict.fromkeys(column))
        assert index.dtype == np.int64 and [distinct[i] for i in index.tolist()] == column
