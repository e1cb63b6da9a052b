import pytest

from serving.online_features import (HOUR_MS, MINUTE_MS, LatestPerKey, OnlineFeatures, query_item_key,
                                     window_ended)

T = 1_700_000_000_000


def user(ts, **counts):
    return {"user_id": "u", "ts": ts, **USER_COUNTS, **counts}


USER_COUNTS = {"u_click_5m": 1.0, "u_click_1h": 2.0, "u_click_24h": 3.0, "u_cart_5m": 4.0, "u_cart_1h": 5.0,
               "u_cart_24h": 6.0, "u_purchase_5m": 7.0, "u_purchase_1h": 8.0, "u_purchase_24h": 9.0}


def test_windows_that_ended_before_now_are_empty():
    features = OnlineFeatures()
    features.apply_user("u", user(T))
    assert features.user_features("u", T + MINUTE_MS) == {**USER_COUNTS, "u_last_category": ""}
    assert features.user_features("u", T + 5 * MINUTE_MS + 1) == {
        **USER_COUNTS, "u_click_5m": 0.0, "u_cart_5m": 0.0, "u_purchase_5m": 0.0, "u_last_category": ""}
    assert features.user_features("u", T + 2 * HOUR_MS)["u_click_24h"] == 3.0
    assert features.user_features("u", T + 25 * HOUR_MS) == {**dict.fromkeys(USER_COUNTS, 0.0),
                                                             "u_last_category": ""}


def test_the_recent_category_lasts_a_day_from_its_own_event():
    """The category's own time decides, not the record's: as in the job's SQL, a category seen at
    c is the user's recent category up to and including c + 24 h."""
    features = OnlineFeatures()
    seen = T - 3 * HOUR_MS
    features.apply_user("u", user(T, u_last_category="boots", u_last_category_ts=seen))
    assert features.user_features("u", T + 1)["u_last_category"] == "boots"
    assert features.user_features("u", seen + 24 * HOUR_MS)["u_last_category"] == "boots"
    assert features.user_features("u", seen + 24 * HOUR_MS + 1)["u_last_category"] == ""
    assert features.user_features("u", seen + 24 * HOUR_MS + 1)["u_click_24h"] == 3.0  # the record's own 24 h
    features.apply_user("v", user(T, u_last_category=None, u_last_category_ts=None))
    assert features.user_features("v", T + 1)["u_last_category"] == ""
    features.apply_user("w", user(T, u_last_category=7, u_last_category_ts=seen))
    features.apply_user("x", user(T, u_last_category="boots", u_last_category_ts="yesterday"))
    assert features.malformed == 2 and features.counts().users == 2


@pytest.mark.parametrize("field, window", [
    (f"u_{kind}_{name}", length) for kind in ("click", "cart", "purchase")
    for name, length in (("5m", 5 * MINUTE_MS), ("1h", HOUR_MS), ("24h", 24 * HOUR_MS))])
def test_a_user_window_includes_its_start_as_the_job_does(field, window):
    """The job's RANGE frames keep a row exactly one window old: at now = ts + w the record's own
    event is on the window's start and counts; one millisecond later it is out."""
    features = OnlineFeatures()
    features.apply_user("u", user(T))
    assert features.user_features("u", T + window - 1)[field] == user(T)[field]
    assert features.user_features("u", T + window)[field] == user(T)[field]
    assert features.user_features("u", T + window + 1)[field] == 0.0


def test_unknown_and_stale_items_have_no_impressions_and_the_prior_ctr():
    features = OnlineFeatures()
    record = {"i_impr_1h": 10.0, "i_click_1h": 3.0, "i_ctr_1h": 4.0 / 30.0}
    features.apply_item("i", {"item_id": "i", "ts": T, **record})
    assert features.item_features("i", T + 10) == record
    # The 1 h window includes its start: the record's impression exactly one hour ago still counts.
    assert features.item_features("i", T + HOUR_MS) == record
    prior = {"i_impr_1h": 0.0, "i_click_1h": 0.0, "i_ctr_1h": 1.0 / 20.0}
    assert features.item_features("i", T + HOUR_MS + 1) == prior
    assert features.item_features("never-seen", T) == prior


@pytest.mark.parametrize("age, window, ended", [(0, 10, False), (9, 10, False), (10, 10, False),
                                                (11, 10, True), (-5, 10, False)])
def test_window_ended_only_beyond_the_window(age, window, ended):
    assert window_ended(age, window) is ended


def test_a_user_without_record_has_zero_counts():
    assert OnlineFeatures().user_features("nobody", T) == {**dict.fromkeys(USER_COUNTS, 0.0), "u_last_category": ""}


def test_an_older_record_never_replaces_a_newer_one_and_tombstones_remove():
    features = OnlineFeatures()
    features.apply_user("u", user(T + 10, u_click_5m=9.0))
    features.apply_user("u", user(T, u_click_5m=1.0))
    assert features.user_features("u", T + 20)["u_click_5m"] == 9.0
    features.apply_user("u", None)
    assert features.user_features("u", T + 20)["u_click_5m"] == 0.0


def test_malformed_records_are_counted_not_stored():
    features = OnlineFeatures()
    features.apply_user("u", {"ts": "now", "u_click_5m": 1.0})
    features.apply_user("v", user(T, u_click_1h="many"))
    features.apply_item("i", {"ts": T, "i_impr_1h": float("inf")})
    features.apply_user("w", {"ts": float(T), "u_click_1h": None})  # null counts as 0.0
    assert features.malformed == 3
    assert features.counts().users == 1 and features.user_features("w", T)["u_click_1h"] == 0.0


def test_the_cache_keeps_the_most_recently_used_keys():
    cache = LatestPerKey(max_keys=2)
    cache.put("a", {"ts": 1})
    cache.put("b", {"ts": 1})
    assert cache.get("a") == {"ts": 1}  # a is now more recent than b
    cache.put("c", {"ts": 1})
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None
    assert len(cache) == 2 and cache.evicted == 1
    with pytest.raises(ValueError):
        LatestPerKey(max_keys=0)


def qi(ts, impressions, clicks):
    return {"query": "red shoes", "item_id": "i", "ts": ts, "qi_impr_24h": impressions,
            "qi_click_24h": clicks, "qi_ctr_24h": (clicks + 1.0) / (impressions + 20.0)}


def test_query_item_ctr_comes_from_the_pairs_latest_record_and_ends_after_a_day():
    features = OnlineFeatures()
    key = query_item_key("red shoes", "i")
    assert key == "red shoes\ti"
    features.apply_query_item(key, qi(T, 10.0, 3.0))
    features.apply_query_item(key, qi(T - 5, 9.0, 3.0))  # older: ignored
    assert features.query_item_features("red shoes", "i", T + HOUR_MS) == {"qi_ctr_24h": 4.0 / 30.0}
    # The 24 h window includes its start, as the job's RANGE frame does.
    assert features.query_item_features("red shoes", "i", T + 24 * HOUR_MS) == {"qi_ctr_24h": 4.0 / 30.0}
    assert features.query_item_features("red shoes", "i", T + 24 * HOUR_MS + 1) == {"qi_ctr_24h": 1.0 / 20.0}
    # Another query, another item, or an unknown pair: the prior.
    assert features.query_item_features("shoes", "i", T + 1) == {"qi_ctr_24h": 1.0 / 20.0}
    assert features.query_item_features("red shoes", "j", T + 1) == {"qi_ctr_24h": 1.0 / 20.0}
    assert features.counts().query_items == 1
    features.apply_query_item(key, None)
    assert features.query_item_features("red shoes", "i", T + 1) == {"qi_ctr_24h": 1.0 / 20.0}


def test_the_empty_query_is_a_query_like_any_other():
    features = OnlineFeatures()
    features.apply_query_item(query_item_key("", "i"), {**qi(T, 1.0, 1.0), "query": ""})
    assert features.query_item_features("", "i", T + 1) == {"qi_ctr_24h": 2.0 / 21.0}
    assert features.query_item_features("red shoes", "i", T + 1) == {"qi_ctr_24h": 1.0 / 20.0}


def test_a_malformed_query_item_record_is_counted():
    features = OnlineFeatures()
    features.apply_query_item(query_item_key("q", "i"), {"ts": T, "qi_ctr_24h": "high"})
    assert features.malformed == 1 and features.counts().query_items == 0
