"""Running price statistics: imputation, merging, bounded memory, state round trip."""

from __future__ import annotations

import json
import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from udfs.imputation import DEFAULT_QUANTITY, LogMoments, RunningStats, impute
from udfs.validation import validate

NOW = 1_700_000_000_000


def clean(**fields) -> dict:
    raw = {"event_id": "e", "ts": NOW, "user_id": "u", **fields}
    verdict = validate(json.dumps(raw).encode(), now_ms=NOW)
    assert verdict.ok, verdict.detail
    return verdict.event


def stats_with(prices_by_category: dict, **settings) -> RunningStats:
    stats = RunningStats(**settings)
    for category, prices in prices_by_category.items():
        for price in prices:
            stats.observe(price, category)
    return stats


def test_log_moments_match_direct_computation():
    prices = [1.0, 10.0, 100.0, 5.5, 0.0]
    moments = LogMoments()
    for price in prices:
        moments.add(price)
    logs = [math.log1p(p) for p in prices]
    assert moments.count == 5
    assert moments.mean == pytest.approx(statistics.fmean(logs))
    assert moments.log_variance == pytest.approx(statistics.variance(logs))
    assert moments.typical_value == pytest.approx(math.expm1(statistics.fmean(logs)))


def test_typical_price_resists_an_outlier():
    stats = stats_with({"shoes": [50.0] * 20 + [100_000.0]})
    assert 50 < stats.typical_price("shoes") < 80  # an arithmetic mean would be ~4,800


def test_category_needs_min_count_else_global_else_default():
    stats = RunningStats(min_count=3, default_price=7.0)
    assert stats.typical_price("shoes") == 7.0
    stats.observe(9.0, "hats")
    assert stats.typical_price("shoes") == pytest.approx(9.0)
    for _ in range(2):
        stats.observe(99.0, "shoes")
    assert stats.typical_price("shoes") < 99.0  # two observations: global still used
    stats.observe(99.0, "shoes")
    assert stats.typical_price("shoes") == pytest.approx(99.0)
    assert stats.typical_price(None) == stats.overall.typical_value


def test_impute_fills_click_price_from_category_and_records_it():
    stats = stats_with({"shoes": [40.0] * 10, "hats": [5.0] * 10})
    event = clean(type="click", item_id="i", category="shoes")
    filled = impute(event, stats, learn=False)
    assert filled["price"] == pytest.approx(40.0) and filled["imputed"] == ["price"]
    assert event["price"] is None and "imputed" not in event  # input left alone


def test_impute_fills_impression_items_by_their_own_category():
    stats = stats_with({"shoes": [40.0] * 10, "hats": [5.0] * 10})
    event = clean(type="impression", request_id="r", query="q", category="hats", items=[
        {"item_id": "a", "price": 12.0}, {"item_id": "b", "category": "shoes"}, {"item_id": "c"}])
    filled = impute(event, stats, learn=False)
    assert [item["price"] for item in filled["items"]] == [12.0, pytest.approx(40.0), pytest.approx(5.0)]
    assert filled["imputed"] == ["items[1].price", "items[2].price"]
    assert filled["price"] is None  # an impression's own price names no item
    assert event["items"][1]["price"] is None


def test_impute_quantity_defaults_to_one_for_basket_events_only():
    stats = RunningStats()
    purchase = impute(clean(type="purchase", item_id="i", price=3), stats)
    assert purchase["quantity"] == DEFAULT_QUANTITY and purchase["imputed"] == ["quantity"]
    click = impute(clean(type="click", item_id="i", price=3), stats)
    assert click["quantity"] is None and click["imputed"] == []
    search = impute(clean(type="search", request_id="r", query="q"), stats)
    assert search["price"] is None and search["imputed"] == []


def test_impute_learns_observed_prices_first():
    stats = RunningStats(min_count=1)
    impute(clean(type="impression", request_id="r", query="q", items=[{"item_id": "a", "price": 30, "category": "c"}]),
           stats)
    assert stats.typical_price("c") == pytest.approx(30.0)
    impute(clean(type="purchase", item_id="i", price=10, category="d"), stats)
    assert stats.overall.count == 2 and stats.by_category["d"].count == 1


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.tuples(st.floats(0, 1e6), st.sampled_from(["a", "b", "c", None])), max_size=60), st.integers(0, 60))
def test_merging_two_streams_equals_observing_both(observations, split):
    whole = RunningStats()
    left, right = RunningStats(), RunningStats()
    for index, (price, category) in enumerate(observations):
        whole.observe(price, category)
        (left if index < split else right).observe(price, category)
    left.merge(right)
    assert left.overall.count == whole.overall.count
    assert left.overall.mean == pytest.approx(whole.overall.mean, rel=1e-9, abs=1e-9)
    assert left.overall.m2 == pytest.approx(whole.overall.m2, rel=1e-6, abs=1e-6)
    assert set(left.by_category) == set(whole.by_category)
    for category, moments in whole.by_category.items():
        assert left.by_category[category].mean == pytest.approx(moments.mean, rel=1e-9, abs=1e-9)


def test_category_map_is_bounded_and_keeps_the_most_frequent():
    stats = RunningStats(max_categories=10)
    for _ in range(50):
        stats.observe(1.0, "popular")
    for n in range(1_000):
        stats.observe(2.0, f"rare-{n}")
        assert len(stats.by_category) <= 20
    assert "popular" in stats.by_category
    assert stats.overall.count == 1_050  # the global fallback never forgets


def test_state_round_trip_is_exact_and_compact():
    stats = stats_with({"shoes": [1.5, 99.0, 3.25], "hats": [0.0]})
    stats.observe(7.0, None)
    blob = stats.to_bytes()
    restored = RunningStats.from_bytes(blob)
    assert restored.to_dict() == stats.to_dict()
    assert restored.typical_price("shoes") == stats.typical_price("shoes")
    assert len(blob) < 200


def test_restoring_with_a_smaller_cap_prunes():
    stats = stats_with({f"c{n}": [1.0] * (n + 1) for n in range(30)})
    restored = RunningStats.from_bytes(stats.to_bytes(), max_categories=5)
    assert set(restored.by_category) == {f"c{n}" for n in range(25, 30)}


@pytest.mark.parametrize("blob", [
    b'{"version": 2, "overall": [0, 0, 0], "categories": {}}',
    b'{"version": 1, "overall": [1, "x", 0], "categories": {}}',
    b'{"version": 1, "overall": [0, 0, 0], "categories": []}',
    b'{"version": 1, "overall": [-1, 0, 0], "categories": {}}',
    b'{"version": 1, "overall": [0, 0, 0], "categories": {"a": [1, 0]}}',
])
def test_corrupt_state_is_refused(blob):
    with pytest.raises(ValueError):
        RunningStats.from_bytes(blob)


@pytest.mark.parametrize("settings_", [{"max_categories": 0}, {"min_count": 0}, {"default_price": -1.0},
                                       {"default_price": math.nan}])
def test_bad_settings_are_refused(settings_):
    with pytest.raises(ValueError):
        RunningStats(**settings_)
