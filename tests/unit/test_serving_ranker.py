import pytest

from serving.online_features import HOUR_MS, OnlineFeatures, query_item_key
from serving.ranker import BadRequest, ModelUnavailable, Ranker
from serving.registry import ModelRegistry
from tests.unit.test_serving_support import PRICE_STATS, feed, history

NOW_MS = 1_699_920_000_000 + 13 * HOUR_MS + 5_000  # 2023-11-14 13:00:05 UTC


@pytest.fixture(scope="module")
def served():
    """v1 live, with online features for one user and two items."""
    registry = ModelRegistry()
    feed(registry, history()[0])
    registry.advance()
    features = OnlineFeatures(max_users=100, max_items=100)
    features.apply_user("u3", {"user_id": "u3", "ts": NOW_MS - 60_000, "u_click_5m": 2.0,
                               "u_click_1h": 3.0, "u_click_24h": 7.0, "u_cart_5m": 0.0, "u_cart_1h": 1.0,
                               "u_cart_24h": 2.0, "u_purchase_5m": 0.0, "u_purchase_1h": 0.0,
                               "u_purchase_24h": 1.0, "u_last_category": "c7",
                               "u_last_category_ts": NOW_MS - 2 * HOUR_MS})
    features.apply_item("i5", {"item_id": "i5", "ts": NOW_MS - 1_000, "i_impr_1h": 40.0,
                               "i_click_1h": 4.0, "i_ctr_1h": 5.0 / 60.0})
    features.apply_item("i9", {"item_id": "i9", "ts": NOW_MS - 2 * HOUR_MS, "i_impr_1h": 9.0,
                               "i_click_1h": 9.0, "i_ctr_1h": 0.3})
    # (query, item) records are keyed by the cleaned query: the request's "  Red   SHOE ".
    features.apply_query_item(query_item_key("red shoe", "i5"), {
        "query": "red shoe", "item_id": "i5", "ts": NOW_MS - 3 * HOUR_MS, "qi_impr_24h": 10.0,
        "qi_click_24h": 2.0, "qi_ctr_24h": 3.0 / 30.0})
    features.apply_query_item(query_item_key("red shoe", "7"), {
        "query": "red shoe", "item_id": "7", "ts": NOW_MS - 25 * HOUR_MS, "qi_impr_24h": 5.0,
        "qi_click_24h": 5.0, "qi_ctr_24h": 0.24})
    return registry, features


REQUEST = {
    "user_id": "u3", "query": "  Red   SHOE ", "device": "mobile", "platform": None, "ts": NOW_MS,
    "request_id": "r1",
    "candidates": [{"item_id": "i5", "category": "c5", "brand": "b5", "price": 12.5},
                   {"item_id": "i9", "category": "c1"},  # no price: imputed from c1's prices
                   {"item_id": 7, "category": None, "brand": "b7", "price": None, "qi_ctr_24h": 0.2},
                   {"item_id": "i-new", "category": "c-unseen", "price": "3.5"}]
    + [{"item_id": f"i{n}", "category": f"c{n % 50}", "brand": f"b{n}", "price": float(n)}
       for n in range(10, 30)],
}


def test_scores_equal_the_trainers_predictions_on_the_same_examples(served):
    registry, features = served
    ranker = Ranker(registry, features)
    response = ranker.rank(REQUEST)
    with registry.acquire() as model:
        examples = ranker.examples(ranker.parse(REQUEST), model)
    expected = history()[0].trainer.predict(examples)  # the trainer as it was at v1
    by_item = {item["item_id"]: item for item in response["items"]}
    for example, (p_click, p_purchase) in zip(examples, expected):
        item = by_item[example["item_id"]]
        assert item["p_click"] == pytest.approx(p_click, abs=1e-5)
        assert item["p_purchase"] == pytest.approx(p_purchase, abs=1e-5)
        assert item["request_position"] == example["position"]
    assert (response["model"], response["version"], response["request_id"]) == ("default", 1, "r1")
    scores = [item["score"] for item in response["items"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == len(REQUEST["candidates"])
    assert response["latency_ms"] > 0


def test_examples_have_the_training_example_shape(served):
    registry, features = served
    ranker = Ranker(registry, features)
    with registry.acquire() as model:
        first, imputed, numeric_id, unseen = ranker.examples(ranker.parse(REQUEST), model)[:4]
    assert first == {
        "example_id": "r1:1", "model": "default", "ts": NOW_MS, "user_id": "u3", "item_id": "i5",
        "query": "red shoe", "category": "c5", "brand": "b5", "device": "mobile", "platform": "",
        "position": 1, "price": 12.5, "hour": 13,
        # u_click_5m: 1 min old, still inside its window
        "u_click_5m": 2.0, "u_click_1h": 3.0, "u_click_24h": 7.0, "u_cart_5m": 0.0, "u_cart_1h": 1.0,
        "u_cart_24h": 2.0, "u_purchase_5m": 0.0, "u_purchase_1h": 0.0, "u_purchase_24h": 1.0,
        "u_last_category": "c7",  # from a click 2 h ago: inside its 24 h
        "i_impr_1h": 40.0, "i_click_1h": 4.0, "i_ctr_1h": 5.0 / 60.0,
        "qi_ctr_24h": 3.0 / 30.0,  # the pair's record, 3 h old: inside its 24 h window
    }
    assert imputed["position"] == 2 and imputed["price"] == pytest.approx(PRICE_STATS.typical_price("c1"))
    # i9's record is two hours old: its one-hour windows are empty now, CTR is the prior's.
    assert (imputed["i_impr_1h"], imputed["i_click_1h"], imputed["i_ctr_1h"]) == (0.0, 0.0, 0.05)
    assert numeric_id["item_id"] == "7" and numeric_id["category"] == ""
    assert numeric_id["price"] == pytest.approx(PRICE_STATS.typical_price(None))
    # Its pair's record is 25 h old (the window ended: the prior), and the number the candidate
    # carries is ignored: qi_ctr_24h is an online feature, computed as the job computes it.
    assert numeric_id["qi_ctr_24h"] == 1.0 / 20.0
    assert imputed["qi_ctr_24h"] == 1.0 / 20.0  # no record for the pair at all
    assert unseen["price"] == 3.5 and unseen["i_ctr_1h"] == 0.05


def test_purchase_weight_blends_the_two_heads(served):
    registry, features = served
    by_purchase = Ranker(registry, features, purchase_weight=1.0).rank(REQUEST)["items"]
    assert [i["score"] for i in by_purchase] == [i["p_purchase"] for i in by_purchase]
    assert [i["p_purchase"] for i in by_purchase] == sorted((i["p_purchase"] for i in by_purchase),
                                                           reverse=True)
    half = Ranker(registry, features, purchase_weight=0.5).rank(REQUEST)["items"]
    assert all(i["score"] == pytest.approx((i["p_click"] + i["p_purchase"]) / 2) for i in half)
    with pytest.raises(ValueError):
        Ranker(registry, features, purchase_weight=1.5)


def test_no_model_yet_is_a_503_with_a_clear_message():
    ranker = Ranker(ModelRegistry(), OnlineFeatures())
    message = "no model version of 'default' has been published yet"
    with pytest.raises(ModelUnavailable, match=message) as info:
        ranker.rank(REQUEST)
    assert info.value.status == 503


@pytest.mark.parametrize("change, message", [
    ({"user_id": None}, "user_id is required"),
    ({"candidates": []}, "candidates must be a non-empty list"),
    ({"candidates": [{"category": "c1"}]}, r"candidates\[0\].item_id is required"),
    ({"candidates": [{"item_id": "i1", "price": -3}]}, r"candidates\[0\].price is -3.0, must be >= 0"),
    ({"candidates": ["i1"]}, r"candidates\[0\] must be an object"),
    ({"ts": "yesterday"}, "ts must be an integer"),
    ({"query": 5}, "query must be a string"),
])
def test_malformed_requests_are_a_400(served, change, message):
    registry, features = served
    with pytest.raises(BadRequest, match=message) as info:
        Ranker(registry, features).rank({**REQUEST, **change})
    assert info.value.status == 400


def test_hour_and_time_default_to_now(served):
    registry, features = served
    ranker = Ranker(registry, features, clock_ms=lambda: NOW_MS + 3 * HOUR_MS)
    request = {key: value for key, value in REQUEST.items() if key != "ts"}
    page = ranker.parse(request)
    with registry.acquire() as model:
        example = ranker.examples(page, model)[0]
    assert page.ts == NOW_MS + 3 * HOUR_MS and example["hour"] == 16
    assert example["u_click_5m"] == 0.0 and example["u_click_24h"] == 7.0  # windows aged out


def test_equal_scores_keep_the_request_order(served):
    registry, features = served
    # Slots past 20 were never seen in training: they share the position table's default row,
    # so the same item in slots 21..24 scores exactly the same.
    same = {**REQUEST, "candidates": [{"item_id": "i5", "price": 1.0}] * 24}
    items = Ranker(registry, features).rank(same)["items"]
    tied = [i["request_position"] for i in items if i["request_position"] > 20]
    assert len({i["score"] for i in items if i["request_position"] > 20}) == 1
    assert tied == [21, 22, 23, 24]
    assert Ranker(registry, features).rank(same)["items"] == items
