"""Tests of the event generator: reproducibility, contract shape, label timing, defect ground
truth, honest window features and the interest drift the freshness benchmark relies on."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections import Counter, defaultdict

import numpy as np
import pytest

from freshrank.datagen import (
    DAY_MS,
    EVENT_TYPES,
    HOUR_MS,
    MALFORMED_DEFECTS,
    MINUTE_MS,
    EventGenerator,
    GeneratorConfig,
    _World,
    _dumps,
)
from udfs.features import CTR_PRIOR, CTR_PRIOR_STRENGTH, smoothed_ctr

# docs/contracts.md, "Training example": field -> type.
CONTRACT_FIELDS = {
    "example_id": str, "model": str, "ts": int, "user_id": str, "item_id": str, "query": str,
    "category": str, "brand": str, "device": str, "platform": str, "position": int, "price": float,
    "hour": int, "u_click_5m": float, "u_click_1h": float, "u_click_24h": float, "u_cart_5m": float,
    "u_cart_1h": float, "u_cart_24h": float, "u_purchase_5m": float, "u_purchase_1h": float,
    "u_purchase_24h": float, "u_last_category": str, "i_impr_1h": float, "i_click_1h": float, "i_ctr_1h": float,
    "qi_ctr_24h": float, "click": int, "purchase": int,
}
LABEL_TYPES = ("click", "add_to_cart", "purchase")

# A small, busy world: few users with many pages each, so windows, labels and drift show up
# within a few thousand records.
# events_per_second is low so that hours (and purchases) pass within a few thousand records.
SMALL = GeneratorConfig(seed=11, n_users=80, n_items_initial=300, n_brands=60, new_items_per_hour=30.0,
                        events_per_second=2.0)


def decoded(generator: EventGenerator, n: int) -> list[dict]:
    return [json.loads(value) for _, value in generator.events(n)]


# ----------------------------------------------------------------- configuration and determinism


@pytest.mark.parametrize("change", [
    {"n_users": 0},
    {"items_per_page": 0},
    {"items_per_page": 201},
    {"n_items_initial": 5, "items_per_page": 10},
    {"click_propensity": 0.0},
    {"purchase_propensity": 1.0},
    {"malformed_share": -0.1},
    {"malformed_share": 0.6, "duplicate_share": 0.5},
    {"late_min_lag_ms": 10_000, "late_max_lag_ms": 5_000},
    {"events_per_second": 0.0},
    {"interest_drift_rate": -1.0},
    {"new_items_per_hour": float("nan")},
    {"n_users": 10.5},
    {"seed": True},
    {"start_ms": 1_700_000_000},  # seconds, not milliseconds
])
def test_config_rejects_bad_values(change):
    with pytest.raises(ValueError):
        GeneratorConfig(**change)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        GeneratorConfig().seed = 3  # type: ignore[misc]


def test_same_config_gives_identical_bytes_and_another_seed_does_not():
    config = dataclasses.replace(SMALL, malformed_share=0.05, duplicate_share=0.02, late_share=0.02,
                                 late_min_lag_ms=1_000, late_max_lag_ms=20_000)
    first = list(EventGenerator(config).events(4_000))
    second = list(EventGenerator(config).events(4_000))
    assert first == second
    assert list(EventGenerator(SMALL).examples(2_000)) == list(EventGenerator(SMALL).examples(2_000))
    other_seed = list(EventGenerator(dataclasses.replace(config, seed=12)).events(4_000))
    assert other_seed != first


def test_repeated_calls_restart_the_simulation():
    generator = EventGenerator(SMALL)
    assert list(generator.events(500)) == list(generator.events(500))


def test_n_caps_the_output():
    generator = EventGenerator(SMALL)
    assert len(list(generator.events(123))) == 123
    assert len(list(generator.examples(37))) == 37
    assert list(generator.events(0)) == [] and list(generator.examples(0)) == []


# ----------------------------------------------------------------- the raw event stream


def test_valid_records_follow_contract_v1_in_event_time_order():
    records = list(EventGenerator(SMALL).events(6_000))
    events = [json.loads(value) for _, value in records]
    timestamps = [event["ts"] for event in events]
    assert timestamps == sorted(timestamps)
    assert len({event["event_id"] for event in events}) == len(events)
    assert set(Counter(event["type"] for event in events)) == set(EVENT_TYPES)
    for (key, _), event in zip(records, events):
        assert key == event["user_id"].encode()
        for field in ("event_id", "type", "ts", "user_id", "request_id"):
            assert event[field] not in (None, "")
        assert len(event["event_id"]) <= 128
        if event["type"] in ("search", "impression"):
            assert isinstance(event["query"], str) and event["query"].strip()
        if event["type"] == "impression":
            positions = [item["position"] for item in event["items"]]
            assert positions == list(range(1, SMALL.items_per_page + 1))
            assert len({item["item_id"] for item in event["items"]}) == SMALL.items_per_page
            assert all(item["price"] >= 0 and item["category"] and item["brand"] for item in event["items"])
        if event["type"] in LABEL_TYPES:
            assert event["item_id"] and event["price"] >= 0
        if event["type"] in ("add_to_cart", "purchase"):
            assert event["quantity"] >= 1


def test_labels_refer_to_impressed_items_and_come_after_the_impression():
    impressions: dict[str, tuple[int, set[str]]] = {}
    last_label: dict[tuple[str, str, str], int] = {}
    counts = Counter()
    for event in decoded(EventGenerator(SMALL), 8_000):
        if event["type"] == "impression":
            impressions[event["request_id"]] = (event["ts"], {item["item_id"] for item in event["items"]})
        elif event["type"] in LABEL_TYPES:
            counts[event["type"]] += 1
            impression_ts, shown = impressions[event["request_id"]]
            assert event["item_id"] in shown
            assert event["ts"] > impression_ts
            key = (event["request_id"], event["item_id"], event["type"])
            last_label[key] = event["ts"]
            # A cart needs an earlier click on the same slot, a purchase an earlier cart.
            previous = {"add_to_cart": "click", "purchase": "add_to_cart"}.get(event["type"])
            if previous:
                assert last_label[(event["request_id"], event["item_id"], previous)] < event["ts"]
    assert counts["click"] > 100 and counts["add_to_cart"] > 10


def test_label_delays_match_their_scale():
    config = SMALL
    impression_ts, click_ts, delays = {}, {}, defaultdict(list)
    for event in decoded(EventGenerator(config), 10_000):
        if event["type"] == "impression":
            impression_ts[event["request_id"]] = event["ts"]
        elif event["type"] == "click":
            click_ts[(event["request_id"], event["item_id"])] = event["ts"]
            delays["click"].append(event["ts"] - impression_ts[event["request_id"]])
        elif event["type"] == "add_to_cart":
            delays["cart"].append(event["ts"] - click_ts[(event["request_id"], event["item_id"])])
        elif event["type"] == "purchase":
            delays["purchase"].append(event["ts"] - impression_ts[event["request_id"]])
    # Seconds for clicks, minutes for carts, minutes to hours for purchases.
    assert 2_000 < np.median(delays["click"]) < 30_000
    assert MINUTE_MS < np.median(delays["cart"]) < 10 * MINUTE_MS
    assert 5 * MINUTE_MS < np.median(delays["purchase"]) < 4 * HOUR_MS


def test_events_per_second_paces_simulated_time():
    config = dataclasses.replace(SMALL, events_per_second=50.0, diurnal_amplitude=0.0)
    events = decoded(EventGenerator(config), 8_000)
    simulated_seconds = (events[-1]["ts"] - events[0]["ts"]) / 1_000
    assert 8_000 / simulated_seconds == pytest.approx(50.0, rel=0.15)


def test_catalogue_grows_and_new_items_get_impressions():
    config = dataclasses.replace(SMALL, events_per_second=0.5)
    events = decoded(EventGenerator(config), 10_000)
    assert events[-1]["ts"] - events[0]["ts"] > 4 * HOUR_MS
    shown = {int(item["item_id"][1:]) for event in events if event["type"] == "impression"
             for item in event["items"]}
    assert sum(item >= SMALL.n_items_initial for item in shown) > 20


def test_messy_raw_queries_clean_to_the_plain_query():
    config = dataclasses.replace(SMALL, messy_query_share=0.5)
    queries = [event["query"] for event in decoded(EventGenerator(config), 3_000) if event["type"] == "search"]
    messy = [query for query in queries if query != " ".join(query.lower().split())]
    assert 0.35 < len(messy) / len(queries) < 0.65
    # Cleaning gives words from the vocabulary: modifiers, brand names, a category word last.
    assert all(" ".join(query.lower().split()).split()[-1].isalpha() for query in messy)


def test_fast_impression_encoding_matches_plain_json_encoding():
    world = _World(SMALL, records_per_second=SMALL.events_per_second)
    entries = list(itertools.islice(world.timeline(), 6_000))
    assert {EVENT_TYPES[entry[2]] for entry in entries} == set(EVENT_TYPES)
    for entry in entries:
        assert world.record_bytes(entry) == _dumps(world.record(entry))


# ----------------------------------------------------------------- defects and their ground truth


def test_defect_shares_and_truth_labels():
    config = dataclasses.replace(SMALL, events_per_second=1.0, malformed_share=0.05, duplicate_share=0.03,
                                 late_share=0.02, late_min_lag_ms=10 * MINUTE_MS, late_max_lag_ms=40 * MINUTE_MS)
    rows = list(EventGenerator(config).events_with_truth(15_000))
    kinds = Counter(truth["kind"] for _, _, truth in rows)
    assert kinds["malformed"] / len(rows) == pytest.approx(0.05, rel=0.15)
    assert kinds["duplicate"] / len(rows) == pytest.approx(0.03, rel=0.2)
    # Late records are held back, so the last ones of the run are still in flight.
    assert 0.6 * 0.02 * 0.92 < kinds["late"] / len(rows) < 0.02
    assert set(Counter(truth["defect"] for _, _, truth in rows if truth["kind"] == "malformed")) == set(MALFORMED_DEFECTS)

    seen_values: set[bytes] = set()
    max_ts = 0
    for key, value, truth in rows:
        kind = truth["kind"]
        if kind == "malformed":
            assert truth["expected_reason"] == MALFORMED_DEFECTS[truth["defect"]]
            assert_really_broken(truth["defect"], value, config)
        elif kind == "duplicate":
            assert value in seen_values
            assert json.loads(value)["event_id"] == truth["event_id"]
        else:
            event = json.loads(value)
            assert event["event_id"] == truth["event_id"] and event["type"] == truth["type"]
            assert value not in seen_values
            seen_values.add(value)
            if kind == "late":
                assert max_ts - event["ts"] == truth["lag_ms"] >= config.late_min_lag_ms
            else:
                assert event["ts"] >= max_ts  # on-time records keep event-time order
                max_ts = event["ts"]


def assert_really_broken(defect: str, value: bytes, config: GeneratorConfig) -> None:
    """Check each defect independently of the generator's own bookkeeping."""
    if defect == "empty_value":
        assert value == b""
        return
    if defect == "invalid_utf8":
        with pytest.raises(UnicodeDecodeError):
            value.decode("utf-8")
        return
    if defect == "truncated_json":
        with pytest.raises(json.JSONDecodeError):
            json.loads(value)
        return
    if defect == "oversize":
        assert len(value) > config.oversize_bytes
        return
    document = json.loads(value)
    if defect == "not_object":
        assert not isinstance(document, dict)
        return
    items = document.get("items") or []
    if defect == "wrong_type":
        assert (isinstance(document["ts"], str) or isinstance(document["user_id"], dict)
                or isinstance(document.get("items"), str))
    elif defect == "nan_value":
        assert any(isinstance(item.get("price"), float) and math.isnan(item["price"]) for item in items)
    elif defect == "missing_field":
        specific = {"impression": "items", "search": "query"}.get(document.get("type"), "item_id")
        assert any(field not in document for field in ("event_id", "type", "ts", "user_id", specific))
    elif defect == "negative_price":
        assert any(item.get("price", 0) < 0 for item in items)
    elif defect == "position_zero":
        assert any(item["position"] == 0 for item in items)
    elif defect == "unknown_type":
        assert document["type"] not in EVENT_TYPES
    elif defect == "future_ts":
        assert document["ts"] > 4_000_000_000_000
    elif defect == "id_too_long":
        assert len(document["event_id"]) > 128
    elif defect == "ts_in_seconds":
        assert document["ts"] < 946_684_800_000
    elif defect == "bad_quantity":
        assert document["type"] in ("add_to_cart", "purchase") and document["quantity"] == 0
    else:
        raise AssertionError(f"test does not know defect {defect}")


def test_defects_leave_the_valid_stream_unchanged():
    dirty = dataclasses.replace(SMALL, malformed_share=0.1, duplicate_share=0.1)
    dirty_valid = [(key, value) for key, value, truth in EventGenerator(dirty).events_with_truth(5_000)
                   if truth["kind"] == "valid"]
    assert list(EventGenerator(SMALL).events(len(dirty_valid))) == dirty_valid


def test_missing_optional_fields_are_reported():
    config = dataclasses.replace(SMALL, missing_optional_share=0.2)
    dropped_any = 0
    for _, value, truth in EventGenerator(config).events_with_truth(2_000):
        event = json.loads(value)
        for name in truth.get("missing_optional", []):
            if name.startswith("items["):
                position, field = name[len("items["):].split("].")
                assert field not in event["items"][int(position) - 1]
            else:
                assert name not in event
            dropped_any += 1
        assert truth["kind"] == "valid"
    assert dropped_any > 500


def test_labels_without_request_id_are_reported_and_change_nothing_else():
    config = dataclasses.replace(SMALL, label_without_request_share=0.3)
    plain = list(EventGenerator(SMALL).events(3_000))
    rows = list(EventGenerator(config).events_with_truth(3_000))
    assert rows == list(EventGenerator(config).events_with_truth(3_000))  # seeded: reproducible
    validation = pytest.importorskip("udfs.validation")
    without = Counter()
    for (key, value, truth), (plain_key, plain_value) in zip(rows, plain):
        event, original = json.loads(value), json.loads(plain_value)
        assert key == plain_key and truth["kind"] == "valid"
        if "request_id" in truth.get("missing_optional", []):
            assert event["type"] in LABEL_TYPES and "request_id" not in event
            original.pop("request_id")
            without[event["type"]] += 1
            # The contract allows a label without request_id: the validator accepts it.
            assert validation.validate(value, now_ms=event["ts"], watermark_ms=None).ok
        assert event == original  # the same record, less its request_id at most
    labels = sum(1 for _, value in plain if json.loads(value)["type"] in LABEL_TYPES)
    assert set(without) == set(LABEL_TYPES) and 0.2 * labels < sum(without.values()) < 0.4 * labels


def test_expected_reasons_are_validator_reason_codes():
    reasons = pytest.importorskip("udfs.reasons")
    assert set(MALFORMED_DEFECTS.values()) <= set(reasons.REASON_CODES)


def test_the_validator_agrees_with_the_ground_truth():
    """The pipeline's own validator accepts every valid record and gives each defect its code."""
    validation = pytest.importorskip("udfs.validation")
    # Lags just past the validator's default allowed lateness (1 h), so late records show up soon.
    config = dataclasses.replace(SMALL, events_per_second=0.5, malformed_share=0.15, duplicate_share=0.02, late_share=0.03,
                                 late_min_lag_ms=70 * MINUTE_MS, late_max_lag_ms=100 * MINUTE_MS,
                                 missing_optional_share=0.05, messy_query_share=0.3)
    rows = list(EventGenerator(config).events_with_truth(8_000))
    now_ms = max(json.loads(value)["ts"] for _, value, truth in rows if truth["kind"] == "valid") + MINUTE_MS
    watermark = 0
    verdicts = Counter()
    for _, value, truth in rows:
        verdict = validation.validate(value, now_ms=now_ms, watermark_ms=watermark)
        reason = verdict.reason.value if verdict.reason else None
        if truth["kind"] == "malformed":
            assert reason == truth["expected_reason"], (truth, verdict.detail)
        elif truth["kind"] == "late":
            assert reason == "LATE_TS", (truth, verdict.detail)
        else:  # valid, or a duplicate of a valid record (dedup comes after validation)
            assert verdict.ok, (truth, verdict.detail)
            watermark = max(watermark, verdict.event["ts"])
        verdicts[truth["kind"]] += 1
    assert verdicts["malformed"] > 1_000 and verdicts["late"] > 30


# ----------------------------------------------------------------- training examples


def test_examples_have_the_contract_shape():
    examples = list(EventGenerator(SMALL).examples(5_000))
    assert len(examples) == 5_000
    assert len({example["example_id"] for example in examples}) == len(examples)
    for example in examples:
        assert set(example) == set(CONTRACT_FIELDS)
        for field, expected in CONTRACT_FIELDS.items():
            assert type(example[field]) is expected, field
        assert example["model"] == "default"
        assert example["example_id"].endswith(f":{example['position']}")
        assert 1 <= example["position"] <= SMALL.items_per_page
        assert example["hour"] == (example["ts"] // HOUR_MS) % 24
        assert example["query"] == " ".join(example["query"].lower().split())
        assert example["click"] in (0, 1) and example["purchase"] in (0, 1)
        assert example["purchase"] <= example["click"]  # purchases follow clicks
        assert 0 < example["i_ctr_1h"] < 1 and 0 <= example["qi_ctr_24h"] <= 1
    timestamps = [example["ts"] for example in examples]
    assert timestamps == sorted(timestamps)
    click_rate = np.mean([example["click"] for example in examples])
    assert 0.02 < click_rate < 0.3


def test_smoothed_ctr_formula():
    assert smoothed_ctr(0, 0) == pytest.approx(CTR_PRIOR)
    assert smoothed_ctr(3, 10) == pytest.approx((3 + CTR_PRIOR * CTR_PRIOR_STRENGTH) / (10 + CTR_PRIOR_STRENGTH))


def test_examples_per_sim_day_paces_simulated_time():
    config = dataclasses.replace(SMALL, examples_per_sim_day=10_000, diurnal_amplitude=0.0)
    examples = list(EventGenerator(config).examples(10_000))
    assert (examples[-1]["ts"] - examples[0]["ts"]) / DAY_MS == pytest.approx(1.0, rel=0.1)


def test_window_features_count_only_events_strictly_before_the_impression():
    """Recompute every window feature by brute force from the full simulated timeline.

    Every example ties with its own impression (same ts), so an implementation that counted
    events at ts itself would be off by one in i_impr_1h on every example."""
    config = dataclasses.replace(SMALL, examples_per_sim_day=20_000)
    examples = list(EventGenerator(config).examples(12_000))
    # The same world examples() simulates, read raw: every event with its true time, one row
    # per (event, item) with integer codes so the brute-force scans below stay cheap.
    world = _World(config, examples_per_day=config.examples_per_sim_day)
    query_codes: dict[str, int] = {}
    rows = []
    for entry_ts, _, entry_kind, page, slot in world.timeline():
        if entry_ts > examples[-1]["ts"]:
            break
        slots = range(len(page.items)) if entry_kind == 1 else [slot] if entry_kind > 1 else []
        code = query_codes.setdefault(page.query, len(query_codes))
        rows.extend((entry_ts, entry_kind, page.user, page.items[s], code) for s in slots)
    ts, kind, user, item, query = np.array(rows, dtype=np.int64).T
    kind_code = {name: code for code, name in enumerate(EVENT_TYPES)}

    def count(example, width_ms, event_kind, *same):
        """Events of event_kind in [ts - width, ts) with the example's user / item / query."""
        mask = (ts >= example["ts"] - width_ms) & (ts < example["ts"]) & (kind == kind_code[event_kind])
        if "user" in same:
            mask &= user == int(example["user_id"][1:])
        if "item" in same:
            mask &= item == int(example["item_id"][1:])
        if "query" in same:
            mask &= query == query_codes.get(example["query"], -1)
        return float(mask.sum())

    def last_category(example):
        """Category of the user's latest click, cart or purchase in [ts - 24 h, ts), '' if none."""
        mask = ((ts >= example["ts"] - DAY_MS) & (ts < example["ts"]) & (kind >= kind_code["click"])
                & (user == int(example["user_id"][1:])))
        if not mask.any():
            return ""
        latest = item[mask][-1]  # rows are in time order
        return world.category_names[world.item_category[latest]]

    nonzero = Counter()
    for example in examples[::40]:
        expected = {
            "u_click_5m": count(example, 5 * MINUTE_MS, "click", "user"),
            "u_click_1h": count(example, HOUR_MS, "click", "user"),
            "u_click_24h": count(example, DAY_MS, "click", "user"),
            "u_cart_5m": count(example, 5 * MINUTE_MS, "add_to_cart", "user"),
            "u_cart_1h": count(example, HOUR_MS, "add_to_cart", "user"),
            "u_cart_24h": count(example, DAY_MS, "add_to_cart", "user"),
            "u_purchase_5m": count(example, 5 * MINUTE_MS, "purchase", "user"),
            "u_purchase_1h": count(example, HOUR_MS, "purchase", "user"),
            "u_purchase_24h": count(example, DAY_MS, "purchase", "user"),
            "i_impr_1h": count(example, HOUR_MS, "impression", "item"),
            "i_click_1h": count(example, HOUR_MS, "click", "item"),
        }
        expected["i_ctr_1h"] = smoothed_ctr(expected["i_click_1h"], expected["i_impr_1h"])
        expected["qi_ctr_24h"] = smoothed_ctr(
            count(example, DAY_MS, "click", "item", "query"),
            count(example, DAY_MS, "impression", "item", "query"))
        assert example["u_last_category"] == last_category(example), example
        nonzero["u_last_category"] += example["u_last_category"] != ""
        for name, value in expected.items():
            assert example[name] == pytest.approx(value), (name, example)
            nonzero[name] += value != (CTR_PRIOR if "ctr" in name else 0.0)
    # The check means something only if the windows were actually populated.
    assert all(nonzero[name] > 5 for name in ("u_click_1h", "u_click_24h", "u_cart_1h", "u_cart_24h", "u_last_category",
                                              "u_purchase_1h", "u_purchase_24h",
                                              "i_impr_1h", "i_click_1h", "i_ctr_1h", "qi_ctr_24h"))


def test_example_labels_match_the_label_events_of_the_same_world():
    config = dataclasses.replace(SMALL, examples_per_sim_day=50_000)
    examples = list(EventGenerator(config).examples(5_000))
    # Read the world examples() simulated as raw records, up to well after the last purchase.
    world = _World(config, examples_per_day=config.examples_per_sim_day)
    request_of_impression, labelled = {}, defaultdict(set)
    for entry in world.timeline():
        if entry[0] > examples[-1]["ts"] + 12 * HOUR_MS:
            break
        record = world.record(entry)
        if record["type"] == "impression":
            request_of_impression[record["event_id"]] = record["request_id"]
        elif record["type"] in ("click", "purchase"):
            labelled[record["type"]].add((record["request_id"], record["item_id"]))
    for example in examples:
        request_id = request_of_impression[example["example_id"].rsplit(":", 1)[0]]
        for label in ("click", "purchase"):
            assert example[label] == int((request_id, example["item_id"]) in labelled[label])
    assert sum(example["click"] for example in examples) > 100
    assert sum(example["purchase"] for example in examples) > 5


# ----------------------------------------------------------------- drift


def test_user_interests_drift_over_days():
    snapshot = EventGenerator(GeneratorConfig(n_users=1_000)).interest_snapshot([1.0, 1.0 + 1 / 24, 5.0])
    total_variation = lambda a, b: 0.5 * np.abs(a - b).sum(axis=-1).mean()
    assert np.allclose(snapshot.sum(axis=-1), 1.0)
    within_hour = total_variation(snapshot[0], snapshot[1])
    over_four_days = total_variation(snapshot[0], snapshot[2])
    assert over_four_days > 0.4
    assert over_four_days > 4 * within_hour
    # Most users have a different favourite category four days later.
    assert (snapshot[0].argmax(axis=1) == snapshot[2].argmax(axis=1)).mean() < 0.5


def test_drift_can_be_switched_off():
    still = GeneratorConfig(n_users=200, interest_drift_rate=0.0, interest_jump_rate=0.0)
    snapshot = EventGenerator(still).interest_snapshot([0.0, 5.0])
    assert np.allclose(snapshot[0], snapshot[1])


def test_searches_follow_drifting_interests():
    """In the emitted stream, a user's day-0 favourite categories lose their share of searches."""
    config = dataclasses.replace(SMALL, n_users=20, events_per_second=0.02)
    searched: dict[tuple[str, int], list[str]] = defaultdict(list)  # (user, day) -> categories in order
    for event in decoded(EventGenerator(config), 9_500):  # about five simulated days
        if event["type"] == "search":
            day = (event["ts"] - config.start_ms) // DAY_MS
            searched[(event["user_id"], day)].append(event["query"].lower().split()[-1])
    users = hits_same_day = searches_same_day = hits_day_four = searches_day_four = 0
    for (user_id, day), categories in list(searched.items()):
        day_four = searched.get((user_id, 4), [])
        if day != 0 or len(categories) < 10 or len(day_four) < 10:
            continue
        users += 1
        # Top three from alternate searches of day 0, measured on the others and on day 4.
        top = {category for category, _ in Counter(categories[::2]).most_common(3)}
        hits_same_day += sum(category in top for category in categories[1::2])
        searches_same_day += len(categories[1::2])
        hits_day_four += sum(category in top for category in day_four)
        searches_day_four += len(day_four)
    assert users >= 5
    assert hits_day_four / searches_day_four < hits_same_day / searches_same_day - 0.2
