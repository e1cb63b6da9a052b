"""Seeded simulator of an e-commerce search stream: raw Kafka records and training examples.

One simulated world backs both outputs:

* users with a preference over categories that drifts (a mean-reverting random walk plus
  occasional jumps to a new favourite), a platform and device, and a price sensitivity;
* a catalogue that keeps growing (new items arrive all the time), each item with a category,
  a brand, a price and a quality that itself drifts; category popularity drifts too;
* result pages: a user searches (query words are made of category, brand and modifier
  words, so query tokens carry information), sees ``items_per_page`` ranked items, clicks
  with a probability that depends on user x category affinity, item quality, position,
  price and query match, and some clicks lead to add-to-cart and purchase minutes to hours
  later.

``EventGenerator.events()`` turns the world into contract-v1 JSON records (see
docs/datagen.md) in event-time order, with malformed, duplicate and late records injected on
request; ``EventGenerator.examples()`` turns it into training examples in the
docs/contracts.md shape, with window features computed from the simulated past only.

Everything is driven by numpy ``Generator(PCG64)`` streams derived from ``config.seed``,
so the same config gives byte-identical output. No global random state is touched.
"""

from __future__ import annotations

import heapq
import json
import math
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, fields
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from udfs.features import smoothed_ctr

SECOND_MS = 1_000
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000

EVENT_TYPES: tuple[str, ...] = ("search", "impression", "click", "add_to_cart", "purchase")
# Positions in EVENT_TYPES, used as compact kind codes inside the simulation.
_SEARCH, _IMPRESSION, _CLICK, _CART, _PURCHASE = range(5)

# Defects that make a record invalid, each with the udfs/reasons.py code a correct validator
# should give it. A test or benchmark can compare the DLQ's reasons against this ground truth.
MALFORMED_DEFECTS: dict[str, str] = {
    "truncated_json": "NOT_JSON",  # the value is cut short mid-document
    "not_object": "NOT_OBJECT",  # valid JSON, but an array around the event
    "wrong_type": "WRONG_TYPE",  # ts as an ISO string, user_id as an object, items as a string
    "nan_value": "NOT_FINITE",  # a price written as NaN
    "missing_field": "MISSING_FIELD",  # event_id, type, ts, user_id or a type-specific field removed
    "negative_price": "NEGATIVE_PRICE",
    "position_zero": "BAD_POSITION",  # an impression slot at position 0 (positions are 1-based)
    "invalid_utf8": "NOT_UTF8",  # raw bytes that do not decode as UTF-8
    "oversize": "TOO_LARGE",  # padded beyond config.oversize_bytes
    "unknown_type": "BAD_ENUM",
    "future_ts": "FUTURE_TS",  # a ts in the year 2100
    "id_too_long": "TOO_LONG",  # event_id over the 128-character limit
    "ts_in_seconds": "BAD_TS",  # a classic producer bug: epoch seconds instead of milliseconds
    "bad_quantity": "BAD_QUANTITY",  # quantity 0 on an add_to_cart or purchase
    "empty_value": "EMPTY",  # zero bytes, like a tombstone
}
_DEFECT_NAMES: tuple[str, ...] = tuple(MALFORMED_DEFECTS)

# Optional fields a producer may leave out; missing_optional_share drops them at random.
OPTIONAL_FIELDS: tuple[str, ...] = ("session_id", "price", "category", "brand", "device", "platform")

_PLATFORMS = ("app", "web", "mini-program")
_PLATFORM_CUMULATIVE = (0.55, 0.85, 1.0)
_DEVICES = {"app": ("ios", "android"), "web": ("desktop", "mobile-web"), "mini-program": ("ios", "android")}
# App users click a little more than web users: something a model can learn from `platform`.
_PLATFORM_CLICK_EFFECT = {"app": 0.2, "web": 0.0, "mini-program": -0.1}

_CATEGORY_WORDS = (
    "shoes", "sneakers", "boots", "jackets", "dresses", "jeans", "shirts", "hoodies", "watches",
    "backpacks", "sunglasses", "headphones", "speakers", "laptops", "tablets", "phones",
    "chargers", "cameras", "monitors", "keyboards", "mice", "lamps", "sofas", "chairs",
    "mattresses", "pillows", "cookware", "knives", "blenders", "coffee", "tea", "chocolate",
    "shampoo", "perfume", "lipstick", "sunscreen", "vitamins", "toys", "puzzles", "bicycles",
)
_BRAND_SYLLABLES = ("ka", "lo", "mi", "ra", "zen", "tor", "vi", "no", "sa", "qu", "el", "dor",
                    "fin", "ba", "ri", "ux")
# Query modifiers change how the searcher weighs price, so these tokens mean something too.
_MODIFIERS = ("cheap", "sale", "best", "premium", "new", "black", "white", "small", "large", "gift")
_MODIFIER_PRICE_FACTOR = {"cheap": 2.5, "sale": 2.0, "best": 0.5, "premium": -0.5}

# Shape of the simulated world. Not config knobs: changing them changes what the drift
# benchmark measures, so they stay fixed and documented in docs/datagen.md.
_QUERY_FOCUS = 2.0  # softmax sharpness of query category choice over interest logits
_AFFINITY_WEIGHT = 0.9  # click logit per unit of user x category interest
_QUERY_CATEGORY_BONUS = 0.5  # click logit bonus for an item in the searched category
_BRAND_MATCH_BONUS = 0.7  # click logit bonus when the query names the item's brand
_PRICE_WEIGHT = 0.35  # click logit per standard deviation of (log) price above the category median
_ITEM_QUALITY_STD = 0.5  # item's fixed quality
_BRAND_PRESTIGE_STD = 0.35
_QUALITY_DRIFT_STD = 0.5  # stationary std of an item's drifting quality component
_CATEGORY_TREND_STD = 0.5  # stationary std of a category's drifting popularity
_ON_QUERY_SHARE = 0.7  # share of a page retrieved from the searched category
_BRAND_SLOTS = 3  # items of the named brand put on the page when the query names one
_FRESH_PICK_SHARE = 0.25  # retrieval picks among the newest tenth of a category this often
_JUMP_SIZE = 2.0  # a new favourite category jumps by this many interest_strength units
_BATCH_SPAN_MS = 5 * MINUTE_MS  # simulated time covered by one vectorised batch of pages
_MIN_BATCH, _MAX_BATCH = 16, 512  # bounds on pages per batch, whatever the pace
_SESSION_GAP_MS = 30 * MINUTE_MS
_FAR_FUTURE_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything that shapes the simulation. Same config, same bytes.

    World:
        seed: root of every random stream.
        start_ms: simulated clock at the start, epoch ms. The default (2025-01-01T00:00:00Z)
            keeps runs reproducible; the CLI passes the wall clock.
        n_users: simulated shoppers, ids ``u000000``...
        n_items_initial: catalogue size at the start, ids ``i000000``...
        new_items_per_hour: mean arrivals of new items per simulated hour (Poisson).
        n_categories: number of categories; the first 40 have readable names.
        n_brands: number of brands; each belongs to one category.
        items_per_page: result slots per search, positions 1..items_per_page.

    Drift (rates are per simulated day; a rate r means a correlation of exp(-r*d) after d days):
        interest_strength: spread (std) of a user's category preference logits.
        interest_drift_rate: how fast a user's preferences move (mean-reverting random walk).
        interest_jump_rate: new favourite categories per user per day.
        item_quality_drift_rate: how fast item quality moves.
        category_trend_rate: how fast category popularity moves.

    Behaviour:
        click_propensity: P(click) of a neutral item at position 1 for a neutral user. Users
            search categories they like, so the overall CTR comes out near 10% at 0.01.
        cart_propensity: P(add_to_cart | click) for a neutral item.
        purchase_propensity: P(purchase | add_to_cart) for a neutral item.
        position_bias: click logit falls by position_bias * ln(position).
        click_delay_s, cart_delay_s, purchase_delay_s: mean delays (exponential, plus a
            small floor) from impression to click, click to cart, cart to purchase.
        messy_query_share: share of pages whose raw query has odd case and spacing (still
            valid; the cleaned query is the same).

    Pacing (simulated event time, not wall time):
        events_per_second: mean valid records per simulated second in ``events()``.
        examples_per_sim_day: mean training examples per simulated day in ``examples()``;
            the default covers about a week in a million examples.
        diurnal_amplitude: traffic swings by +-this fraction over a day (peak 20:00 UTC).

    Defects (``events()`` only; shares of all records emitted):
        malformed_share: records broken in one of MALFORMED_DEFECTS ways (extra records,
            the valid stream is unchanged).
        duplicate_share: byte-identical re-sends of a recent valid record.
        late_share: share of valid records held back and delivered late_min_lag_ms to
            late_max_lag_ms after their ts (the record itself is unchanged).
        missing_optional_share: chance that each optional field (OPTIONAL_FIELDS) is left
            out of a valid record, to exercise imputation.
        label_without_request_share: chance that a click, add_to_cart or purchase is sent
            without its request_id (a producer that lost the page context; the contract allows
            it), so the job attributes it to the user's latest impression of the item.
        oversize_bytes: padding of an "oversize" record; must exceed the validator's
            max_record_bytes (64 KiB) and stay below Kafka's max.message.bytes (~1 MB).
    """

    seed: int = 0
    start_ms: int = 1_735_689_600_000
    n_users: int = 5_000
    n_items_initial: int = 2_000
    new_items_per_hour: float = 10.0
    n_categories: int = 40
    n_brands: int = 400
    items_per_page: int = 10
    interest_strength: float = 1.2
    interest_drift_rate: float = 0.2
    interest_jump_rate: float = 0.1
    item_quality_drift_rate: float = 0.3
    category_trend_rate: float = 0.3
    click_propensity: float = 0.01
    cart_propensity: float = 0.25
    purchase_propensity: float = 0.3
    position_bias: float = 0.6
    click_delay_s: float = 8.0
    cart_delay_s: float = 120.0
    purchase_delay_s: float = 1_800.0
    messy_query_share: float = 0.05
    events_per_second: float = 200.0
    examples_per_sim_day: int = 150_000
    diurnal_amplitude: float = 0.5
    malformed_share: float = 0.0
    duplicate_share: float = 0.0
    late_share: float = 0.0
    late_min_lag_ms: int = 90 * MINUTE_MS
    late_max_lag_ms: int = 6 * HOUR_MS
    missing_optional_share: float = 0.0
    label_without_request_share: float = 0.0
    oversize_bytes: int = 100_000

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            # bool is an int subclass, and True as a count is always a mistake.
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{spec.name} must be a number, got {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{spec.name} must be finite, got {value!r}")
        for name in ("seed", "start_ms", "n_users", "n_items_initial", "n_categories", "n_brands",
                     "items_per_page", "examples_per_sim_day", "late_min_lag_ms",
                     "late_max_lag_ms", "oversize_bytes"):
            if not isinstance(getattr(self, name), int):
                raise ValueError(f"{name} must be an int, got {getattr(self, name)!r}")
        _require(self.seed >= 0, "seed must be >= 0")
        _require(self.start_ms >= 946_684_800_000, "start_ms must be epoch milliseconds after 2000-01-01")
        for name in ("n_users", "n_categories", "n_brands", "items_per_page", "examples_per_sim_day"):
            _require(getattr(self, name) >= 1, f"{name} must be >= 1")
        # 200 is the validator's max_items: a longer page would be dead-lettered whole.
        _require(self.items_per_page <= 200, "items_per_page must be <= 200")
        _require(self.n_items_initial >= self.items_per_page,
                 "n_items_initial must be >= items_per_page (a page shows distinct items)")
        for name in ("new_items_per_hour", "interest_strength", "interest_drift_rate",
                     "interest_jump_rate", "item_quality_drift_rate", "category_trend_rate",
                     "position_bias", "click_delay_s", "cart_delay_s", "purchase_delay_s"):
            _require(getattr(self, name) >= 0, f"{name} must be >= 0")
        for name in ("click_propensity", "cart_propensity", "purchase_propensity"):
            _require(0 < getattr(self, name) < 1, f"{name} must be in (0, 1)")
        _require(self.events_per_second > 0, "events_per_second must be > 0")
        _require(0 <= self.diurnal_amplitude < 1, "diurnal_amplitude must be in [0, 1)")
        for name in ("malformed_share", "duplicate_share", "late_share", "missing_optional_share",
                     "label_without_request_share", "messy_query_share"):
            _require(0 <= getattr(self, name) <= 1, f"{name} must be in [0, 1]")
        _require(self.malformed_share + self.duplicate_share < 1,
                 "malformed_share + duplicate_share must be < 1 (some valid records must flow)")
        _require(self.late_share < 1, "late_share must be < 1")
        _require(0 < self.late_min_lag_ms <= self.late_max_lag_ms,
                 "need 0 < late_min_lag_ms <= late_max_lag_ms")
        _require(self.oversize_bytes >= 1, "oversize_bytes must be >= 1")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))  # reused: json.dumps(separators=) builds one per call


def _dumps(record: Any) -> bytes:
    return _COMPACT_JSON.encode(record).encode()


class _RandomPool:
    """Scalar uniform and normal draws handed out from numpy blocks.

    For the per-record decisions that do not vectorise (defect injection, new items, filling a
    page from tiny categories): a numpy call per scalar draw costs ~1 us, a list read ~0.1 us,
    and the draws stay a pure function of the seed.
    """

    __slots__ = ("_rng", "_block", "_uniforms", "_u_next", "_normals", "_n_next")

    def __init__(self, rng: np.random.Generator, block: int = 16_384) -> None:
        self._rng = rng
        self._block = block
        self._uniforms: list[float] = []
        self._u_next = 0
        self._normals: list[float] = []
        self._n_next = 0

    def uniform(self) -> float:
        """A draw from [0, 1)."""
        i = self._u_next
        if i >= len(self._uniforms):
            self._uniforms = self._rng.random(self._block).tolist()
            i = 0
        self._u_next = i + 1
        return self._uniforms[i]

    def normal(self) -> float:
        i = self._n_next
        if i >= len(self._normals):
            self._normals = self._rng.standard_normal(self._block).tolist()
            i = 0
        self._n_next = i + 1
        return self._normals[i]

    def exponential(self, mean: float) -> float:
        return -mean * math.log(1.0 - self.uniform())

    def index(self, n: int) -> int:
        """A uniform index in range(n)."""
        return int(self.uniform() * n)


class _Page:
    """One result page and everything its user did with it."""

    __slots__ = ("number", "user", "session_id", "impression_ts", "impression_seq", "query",
                 "raw_query", "query_json", "items", "clicked", "purchased", "quantity")


def _ou_step(dt_days: float, rate: float, std: float) -> tuple[float, float]:
    """Exact Ornstein-Uhlenbeck transition over dt: x' = decay * x + noise_std * N(0, 1).

    Mean reversion keeps a long-running stream bounded; the exact form makes the process
    independent of how often a user or item happens to be looked at.
    """
    decay = math.exp(-rate * dt_days)
    return decay, std * math.sqrt(max(0.0, 1.0 - decay * decay))


def _advance_interests(rows: np.ndarray, dt_days: np.ndarray, rng: np.random.Generator,
                       config: GeneratorConfig) -> np.ndarray:
    """Interest logit rows moved forward by dt_days each: OU drift plus Poisson jumps.

    A jump makes a random category a new favourite (+_JUMP_SIZE * interest_strength) at a
    uniform moment in the interval; it then decays like the rest. The one kernel serves the
    streams (each user advanced when they show up) and interest_snapshot (everyone at once).
    """
    c = config
    decay = np.exp(-c.interest_drift_rate * dt_days)
    noise = c.interest_strength * np.sqrt(np.maximum(0.0, 1.0 - decay * decay))
    rows = rows * decay[:, None] + noise[:, None] * rng.standard_normal(rows.shape)
    jumps = rng.poisson(c.interest_jump_rate * dt_days)
    for row in np.flatnonzero(jumps):
        for _ in range(int(jumps[row])):
            age_days = float(dt_days[row]) * rng.random()
            rows[row, rng.integers(c.n_categories)] += (
                _JUMP_SIZE * c.interest_strength * math.exp(-c.interest_drift_rate * age_days))
    return rows


class _World:
    """The simulated users, catalogue and clock; produces a time-ordered timeline of events.

    Pages are simulated in batches with numpy (a batch spans about _BATCH_SPAN_MS of simulated
    time, at least _MIN_BATCH pages; new items and hourly drift apply from the next batch)
    and their events go through
    a heap, which interleaves delayed labels with later pages.

    Timeline entries are tuples ``(ts, seq, kind, page, slot)``: seq is unique and increasing
    (so ties on ts keep creation order and the tuple never compares pages), kind is an index
    into EVENT_TYPES, slot the page slot a label event refers to (-1 for search/impression).
    """

    def __init__(self, config: GeneratorConfig, *, records_per_second: Optional[float] = None,
                 examples_per_day: Optional[int] = None) -> None:
        self.config = c = config
        world_seed, self.defect_seed, self.snapshot_seed = np.random.SeedSequence(c.seed).spawn(3)
        self.rng = np.random.Generator(np.random.PCG64(world_seed))
        self.pool = _RandomPool(self.rng)
        self.tag = f"s{c.seed}t{c.start_ms}"
        self.clock = c.start_ms
        self.seq = 0
        self.pages = 0
        self.records = 0  # valid records scheduled so far, for events_per_second pacing
        self.heap: list[tuple] = []
        self._records_per_second = records_per_second
        self._page_gap_ms = (DAY_MS * c.items_per_page / examples_per_day) if examples_per_day else None

        self._build_categories_and_brands()
        self._build_users()
        self._build_catalogue()
        self.next_item_arrival = self.clock + self._item_gap()
        self.category_trend = self.rng.standard_normal(c.n_categories) * _CATEGORY_TREND_STD
        # Catalogue-wide drift (category trends, item quality) moves in hourly vector steps:
        # far cheaper than per-impression updates, and an hour is fine-grained next to days.
        self.next_hour_step = self.clock + HOUR_MS
        self._trend_step = _ou_step(1 / 24, c.category_trend_rate, _CATEGORY_TREND_STD)
        self._quality_step = _ou_step(1 / 24, c.item_quality_drift_rate, _QUALITY_DRIFT_STD)
        self.click_base = _logit(c.click_propensity)
        self.cart_base = _logit(c.cart_propensity)
        self.purchase_base = _logit(c.purchase_propensity)
        self.log_position = np.log(np.arange(1, c.items_per_page + 1))
        self.modifier_price_factor = np.array(
            [_MODIFIER_PRICE_FACTOR.get(m, 1.0) for m in _MODIFIERS] + [1.0])  # last: no modifier

    # ----------------------------------------------------------------- construction

    def _build_categories_and_brands(self) -> None:
        c, rng = self.config, self.rng
        self.category_names = [(_CATEGORY_WORDS[k] if k < len(_CATEGORY_WORDS) else f"category{k}")
                               for k in range(c.n_categories)]
        # Categories differ in typical price (coffee vs laptops); log-normal around ~30.
        self.category_log_price = (3.3 + 0.9 * rng.standard_normal(c.n_categories)).tolist()
        self.brand_names = [self._brand_name(b) for b in range(c.n_brands)]
        self.brand_prestige = (rng.standard_normal(c.n_brands) * _BRAND_PRESTIGE_STD).tolist()
        self.category_brands: list[list[int]] = [[] for _ in range(c.n_categories)]
        for b in range(c.n_brands):
            self.category_brands[b % c.n_categories].append(b)

    @staticmethod
    def _brand_name(b: int) -> str:
        n = len(_BRAND_SYLLABLES)
        name = _BRAND_SYLLABLES[b % n] + _BRAND_SYLLABLES[(b // n) % n] + _BRAND_SYLLABLES[(b // n // n) % n]
        return name if b < n ** 3 else f"{name}{b // n ** 3}"

    def _build_users(self) -> None:
        c, rng = self.config, self.rng
        self.user_ids = [f"u{u:06d}" for u in range(c.n_users)]
        self.interests = rng.standard_normal((c.n_users, c.n_categories)) * c.interest_strength
        self.interest_ms = np.full(c.n_users, c.start_ms, dtype=np.int64)
        # Heavy-tailed activity: a few users search a lot, most rarely.
        activity = np.exp(rng.standard_normal(c.n_users))
        self.activity_cumulative = np.cumsum(activity / activity.sum())
        platform_draws = rng.random(c.n_users).tolist()
        device_draws = rng.random(c.n_users).tolist()
        self.user_platform = [_PLATFORMS[bisect_right(_PLATFORM_CUMULATIVE, x)] for x in platform_draws]
        self.user_device = [_DEVICES[p][int(d * 2)] for p, d in zip(self.user_platform, device_draws)]
        self.user_click_bias = np.array([_PLATFORM_CLICK_EFFECT[p] for p in self.user_platform])
        self.user_price_sensitivity = np.clip(1.0 + 0.4 * rng.standard_normal(c.n_users), 0.0, None)
        self.user_last_seen = [-1] * c.n_users
        self.user_sessions = [0] * c.n_users

    def _build_catalogue(self) -> None:
        c = self.config
        self.item_ids: list[str] = []
        self.item_category: list[int] = []
        self.item_brand: list[int] = []
        self.item_price: list[float] = []
        self.item_price_z: list[float] = []
        self.item_base_quality: list[float] = []
        self._new_item_drift: list[float] = []  # drift of items not yet in the numpy arrays
        self.item_quality_drift = np.empty(0)
        # Pre-rendered JSON around the position of an impression slot, so serialising a
        # 10-item page is string joins instead of 10 dict encodings.
        self.item_json_head: list[str] = []
        self.item_json_tail: list[str] = []
        self._indexed_items = -1
        for _ in range(c.n_items_initial):
            self._add_item()
        self._index_items()

    def _add_item(self) -> None:
        pool, c = self.pool, self.config
        index = len(self.item_ids)
        category = pool.index(c.n_categories)
        brands = self.category_brands[category]
        brand = brands[pool.index(len(brands))] if brands else category % c.n_brands
        price_z = pool.normal()
        price = max(0.5, round(math.exp(self.category_log_price[category] + 0.5 * price_z), 2))
        item_id = f"i{index:06d}"
        self.item_ids.append(item_id)
        self.item_category.append(category)
        self.item_brand.append(brand)
        self.item_price.append(price)
        self.item_price_z.append(price_z)
        self.item_base_quality.append(_ITEM_QUALITY_STD * pool.normal() + self.brand_prestige[brand])
        self._new_item_drift.append(_QUALITY_DRIFT_STD * pool.normal())
        self.item_json_head.append(f'{{"item_id":{json.dumps(item_id)},"position":')
        self.item_json_tail.append(
            f',"price":{json.dumps(price)},"category":{json.dumps(self.category_names[category])},'
            f'"brand":{json.dumps(self.brand_names[brand])}}}')

    def _index_items(self) -> None:
        """numpy copies of the item table plus items grouped by category and by brand.

        Only items that arrived since the last call are converted; the grouping is a stable
        radix sort, so within a group items stay in arrival order (the newest at the end).
        """
        n = len(self.item_ids)
        done = self._indexed_items
        if n == done:
            return
        c = self.config
        if done <= 0:
            done = 0
            self.np_item_category = np.empty(0, dtype=np.int64)
            self.np_item_brand = np.empty(0, dtype=np.int64)
            self.np_item_price_z = np.empty(0)
            self.np_item_base_quality = np.empty(0)
        self.np_item_category = np.concatenate([self.np_item_category, self.item_category[done:]]).astype(np.int64)
        self.np_item_brand = np.concatenate([self.np_item_brand, self.item_brand[done:]]).astype(np.int64)
        self.np_item_price_z = np.concatenate([self.np_item_price_z, self.item_price_z[done:]])
        self.np_item_base_quality = np.concatenate([self.np_item_base_quality, self.item_base_quality[done:]])
        self.item_quality_drift = np.concatenate([self.item_quality_drift, self._new_item_drift])
        self._new_item_drift = []
        self.item_quality = self.np_item_base_quality + self.item_quality_drift
        self.category_sorted, self.category_start, self.category_count = self._group(
            self.np_item_category, c.n_categories)
        self.brand_sorted, self.brand_start, self.brand_count = self._group(self.np_item_brand, c.n_brands)
        self._indexed_items = n

    @staticmethod
    def _group(keys: np.ndarray, n_keys: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        small_keys = keys.astype(np.int16) if n_keys < 2 ** 15 else keys  # radix sort territory
        order = np.argsort(small_keys, kind="stable")
        count = np.bincount(keys, minlength=n_keys)
        start = np.concatenate([[0], np.cumsum(count)[:-1]])
        return order, start, count

    def _item_gap(self) -> float:
        rate = self.config.new_items_per_hour
        return self.pool.exponential(HOUR_MS / rate) if rate > 0 else math.inf

    # ----------------------------------------------------------------- state over time

    def _advance_world(self, now: int) -> None:
        """New items that arrived by ``now``; hourly drift of category trends and item quality."""
        while self.next_item_arrival <= now:
            self._add_item()
            self.next_item_arrival += self._item_gap()
        self._index_items()
        while self.next_hour_step <= now:
            rng = self.rng
            decay, noise = self._trend_step
            self.category_trend = decay * self.category_trend + noise * rng.standard_normal(self.category_trend.size)
            decay, noise = self._quality_step
            drift = self.item_quality_drift
            self.item_quality_drift = decay * drift + noise * rng.standard_normal(drift.size)
            self.item_quality = self.np_item_base_quality + self.item_quality_drift
            self.next_hour_step += HOUR_MS

    def _page_times(self) -> np.ndarray:
        """Start times of the next batch of pages (a Poisson process, faster in the evening)."""
        c = self.config
        if self._page_gap_ms is not None:
            mean_gap = self._page_gap_ms
        else:
            # Valid records per page are not known up front (they depend on clicks), so pace
            # by a running estimate that starts at a typical 3 records per page.
            records_per_page = (self.records + 3.0 * 16) / (self.pages + 16)
            mean_gap = SECOND_MS * records_per_page / self._records_per_second
        hour_of_day = (self.clock % DAY_MS) / HOUR_MS
        traffic = 1.0 + c.diurnal_amplitude * math.cos(2 * math.pi * (hour_of_day - 20.0) / 24.0)
        mean_gap /= traffic
        size = int(min(_MAX_BATCH, max(_MIN_BATCH, _BATCH_SPAN_MS / mean_gap)))
        offsets = np.floor(np.cumsum(self.rng.exponential(mean_gap, size))).astype(np.int64)
        return self.clock + offsets

    # ----------------------------------------------------------------- the timeline

    def timeline(self) -> Iterator[tuple]:
        """Every simulated event in (ts, seq) order, forever."""
        heap = self.heap
        pop = heapq.heappop
        while True:
            last_page_ts = self._simulate_batch()
            # Later batches only create events at or after their own (later) page times.
            while heap and heap[0][0] <= last_page_ts:
                yield pop(heap)

    def event_id(self, seq: int) -> str:
        return f"{self.tag}-e{seq}"

    def _simulate_batch(self) -> int:
        """Simulate the next batch of pages and schedule their events; returns the last page ts."""
        c, rng = self.config, self.rng
        self._advance_world(self.clock)
        times = self._page_times()
        size = times.size
        self.clock = int(times[-1])
        users = np.minimum(np.searchsorted(self.activity_cumulative, rng.random(size), side="right"),
                           c.n_users - 1)
        interests = self._interests_at(users, times)

        # The searched category follows the user's current interests, so queries drift too.
        interest_cumulative = np.cumsum(
            np.exp(_QUERY_FOCUS * (interests - interests.max(axis=1, keepdims=True))), axis=1)
        totals = interest_cumulative[:, -1:]
        query_category = np.minimum((interest_cumulative < rng.random((size, 1)) * totals).sum(axis=1),
                                    c.n_categories - 1)
        brand_source = self._pick_items(self.category_sorted, self.category_start, self.category_count,
                                        query_category, fresh_share=0.0)
        names_brand = (rng.random(size) < 0.3) & (brand_source >= 0)
        query_brand = np.where(names_brand, self.np_item_brand[np.maximum(brand_source, 0)], -1)
        modifier = np.where(rng.random(size) < 0.4, rng.integers(len(_MODIFIERS), size=size), len(_MODIFIERS))
        messy = rng.random(size) < c.messy_query_share

        items = self._retrieve(query_category, query_brand, interest_cumulative, totals)
        # A production ranker already sorts by (noisy) quality and relevance, so position and
        # quality are correlated, as in real logs; the model has to untangle position bias.
        quality = self.item_quality[items]
        on_query = self.np_item_category[items] == query_category[:, None]
        relevance = 0.6 * quality + 0.8 * on_query + rng.standard_normal(items.shape)
        order = np.argsort(-relevance, axis=1, kind="stable")
        items = np.take_along_axis(items, order, axis=1)
        quality = np.take_along_axis(quality, order, axis=1)
        on_query = np.take_along_axis(on_query, order, axis=1)
        categories = self.np_item_category[items]
        price_z = self.np_item_price_z[items]

        price_weight = (_PRICE_WEIGHT * self.modifier_price_factor[modifier]
                        * self.user_price_sensitivity[users])
        logit = ((self.click_base + self.user_click_bias[users])[:, None]
                 + _AFFINITY_WEIGHT * np.take_along_axis(interests, categories, axis=1)
                 + quality + self.category_trend[categories]
                 - c.position_bias * self.log_position[None, :]
                 - price_weight[:, None] * price_z
                 + _QUERY_CATEGORY_BONUS * on_query
                 + _BRAND_MATCH_BONUS * (self.np_item_brand[items] == query_brand[:, None]))
        clicked = rng.random(items.shape) < 1.0 / (1.0 + np.exp(-logit))

        # Labels of the clicked slots: cart and purchase chances follow quality and price.
        page_of, slot_of = np.nonzero(clicked)
        n_clicks = page_of.size
        label_quality = quality[page_of, slot_of]
        label_price_z = price_z[page_of, slot_of]
        impression_ts = times + rng.integers(20, 320, size=size)  # rendering latency after search
        # Users scan down the page, so lower slots are clicked a little later.
        click_ts = impression_ts[page_of] + (SECOND_MS * (
            0.5 + 0.3 * (slot_of + 1) + rng.exponential(c.click_delay_s, n_clicks))).astype(np.int64)
        carted = rng.random(n_clicks) < 1.0 / (1.0 + np.exp(-(self.cart_base + 0.5 * label_quality
                                                                 - 0.3 * label_price_z)))
        quantity = np.where(rng.random(n_clicks) < 0.8, 1, 2 + rng.integers(2, size=n_clicks)) * carted
        cart_ts = click_ts + (SECOND_MS * (5 + rng.exponential(c.cart_delay_s, n_clicks))).astype(np.int64)
        purchased = carted & (rng.random(n_clicks) < 1.0 / (1.0 + np.exp(-(
            self.purchase_base + 0.3 * label_quality - 0.3 * label_price_z))))
        purchase_ts = cart_ts + (SECOND_MS * (30 + rng.exponential(c.purchase_delay_s, n_clicks))).astype(np.int64)
        purchased_grid = np.zeros(items.shape, dtype=bool)
        purchased_grid[page_of, slot_of] = purchased
        quantity_grid = np.zeros(items.shape, dtype=np.int64)
        quantity_grid[page_of, slot_of] = quantity

        pages = self._schedule_pages(times.tolist(), impression_ts.tolist(), users.tolist(),
                                     query_category.tolist(), query_brand.tolist(), modifier.tolist(),
                                     messy.tolist(), items.tolist(), clicked.tolist(),
                                     purchased_grid.tolist(), quantity_grid.tolist())
        push, heap = heapq.heappush, self.heap
        seq = self.seq
        for page_index, slot, ts_click, is_carted, ts_cart, is_purchased, ts_purchase in zip(
                page_of.tolist(), slot_of.tolist(), click_ts.tolist(), carted.tolist(), cart_ts.tolist(),
                purchased.tolist(), purchase_ts.tolist()):
            page = pages[page_index]
            push(heap, (ts_click, seq, _CLICK, page, slot))
            seq += 1
            if is_carted:
                push(heap, (ts_cart, seq, _CART, page, slot))
                seq += 1
                if is_purchased:
                    push(heap, (ts_purchase, seq, _PURCHASE, page, slot))
                    seq += 1
        self.records += seq - self.seq + 2 * size
        self.seq = seq
        return self.clock

    def _interests_at(self, users: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Each page's user interests at the page time, advancing users lazily in time order."""
        snapshot = np.empty((users.size, self.config.n_categories))
        remaining = np.arange(users.size)
        # A user with several pages in the batch is advanced once per page, in order: each
        # round takes the first remaining page of every user.
        while remaining.size:
            _, first = np.unique(users[remaining], return_index=True)
            pages = remaining[first]
            who = users[pages]
            rows = _advance_interests(self.interests[who], (times[pages] - self.interest_ms[who]) / DAY_MS,
                                      self.rng, self.config)
            self.interests[who] = rows
            self.interest_ms[who] = times[pages]
            snapshot[pages] = rows
            keep = np.ones(remaining.size, dtype=bool)
            keep[first] = False
            remaining = remaining[keep]
        return snapshot

    def _pick_items(self, sorted_items: np.ndarray, start: np.ndarray, count: np.ndarray,
                    groups: np.ndarray, fresh_share: float) -> np.ndarray:
        """One random item from each group (category or brand); -1 for an empty group.

        With probability fresh_share the pick is among the newest tenth of the group: new
        items need exposure to be learnt at all.
        """
        rng = self.rng
        group_count = count[groups]
        draw = rng.random(groups.shape)
        offset = (draw * group_count).astype(np.int64)
        if fresh_share:
            fresh = rng.random(groups.shape) < fresh_share
            newest = group_count - 1 - (draw * np.maximum(1, group_count // 10)).astype(np.int64)
            offset = np.where(fresh, newest, offset)
        position = np.clip(start[groups] + offset, 0, sorted_items.size - 1)
        return np.where(group_count > 0, sorted_items[position], -1)

    def _retrieve(self, query_category: np.ndarray, query_brand: np.ndarray, interest_cumulative: np.ndarray,
                  interest_totals: np.ndarray) -> np.ndarray:
        """Distinct items for each page: named brand first, then the searched category, then
        exploration (half from the user's other interests, half random)."""
        c, rng = self.config, self.rng
        size, wanted = query_category.size, c.items_per_page
        on_query = max(1, round(_ON_QUERY_SHARE * wanted))
        # A few spare draws per group absorb duplicates without a second round.
        spare = 3
        brand_picks = self._pick_items(self.brand_sorted, self.brand_start, self.brand_count,
                                       np.repeat(np.maximum(query_brand, 0)[:, None], _BRAND_SLOTS, axis=1),
                                       fresh_share=0.0)
        brand_picks[query_brand < 0] = -1
        query_picks = self._pick_items(self.category_sorted, self.category_start, self.category_count,
                                       np.repeat(query_category[:, None], on_query + spare, axis=1),
                                       fresh_share=_FRESH_PICK_SHARE)
        n_explore = wanted - on_query + spare
        personal = (interest_cumulative[:, None, :]
                    < (rng.random((size, n_explore)) * interest_totals)[:, :, None]).sum(axis=2)
        explore_category = np.where(rng.random((size, n_explore)) < 0.5,
                                    np.minimum(personal, c.n_categories - 1),
                                    rng.integers(c.n_categories, size=(size, n_explore)))
        explore_picks = self._pick_items(self.category_sorted, self.category_start, self.category_count,
                                         explore_category, fresh_share=_FRESH_PICK_SHARE)
        n_catalogue = len(self.item_ids)
        uniform = self.pool.uniform
        pages = []
        for brand_row, query_row, explore_row in zip(brand_picks.tolist(), query_picks.tolist(),
                                                     explore_picks.tolist()):
            chosen: list[int] = []
            seen: set[int] = set()
            for candidates, limit in ((brand_row, on_query), (query_row, on_query), (explore_row, wanted)):
                for item in candidates:
                    if len(chosen) >= limit:
                        break
                    if item >= 0 and item not in seen:
                        seen.add(item)
                        chosen.append(item)
            while len(chosen) < wanted:  # tiny or empty categories: fill from the whole catalogue
                item = int(uniform() * n_catalogue)
                if item not in seen:
                    seen.add(item)
                    chosen.append(item)
            pages.append(chosen)
        return np.array(pages, dtype=np.int64).reshape(size, wanted)

    def _schedule_pages(self, times: list[int], impression_ts: list[int], users: list[int],
                        query_category: list[int], query_brand: list[int], modifier: list[int],
                        messy: list[bool], items: list[list[int]], clicked: list[list[bool]],
                        purchased: list[list[bool]], quantity: list[list[int]]) -> list[_Page]:
        """Page objects with session and query text; search and impression events scheduled."""
        push, heap = heapq.heappush, self.heap
        user_ids, last_seen, sessions = self.user_ids, self.user_last_seen, self.user_sessions
        category_names, brand_names = self.category_names, self.brand_names
        pages = []
        seq = self.seq
        number = self.pages
        for b, ts in enumerate(times):
            page = _Page()
            page.number = number
            number += 1
            page.user = user = users[b]
            if last_seen[user] < 0 or ts - last_seen[user] > _SESSION_GAP_MS:
                sessions[user] += 1
            last_seen[user] = ts
            page.session_id = f"{user_ids[user]}-s{sessions[user]}"
            words = [_MODIFIERS[modifier[b]]] if modifier[b] < len(_MODIFIERS) else []
            if query_brand[b] >= 0:
                words.append(brand_names[query_brand[b]])
            words.append(category_names[query_category[b]])
            page.query = page.raw_query = " ".join(words)
            if messy[b]:
                page.raw_query = "  " + "   ".join(word.title() for word in words) + " "
            page.query_json = None  # encoded on first use: examples() never needs it
            page.items = items[b]
            page.clicked = clicked[b]
            page.purchased = purchased[b]
            page.quantity = quantity[b]
            page.impression_ts = impression_ts[b]
            push(heap, (ts, seq, _SEARCH, page, -1))
            page.impression_seq = seq + 1
            push(heap, (page.impression_ts, seq + 1, _IMPRESSION, page, -1))
            seq += 2
            pages.append(page)
        self.seq = seq
        self.pages = number
        return pages

    # ----------------------------------------------------------------- records

    def record(self, entry: tuple) -> dict:
        """The contract-v1 JSON object for a timeline entry (``record_bytes`` encodes it)."""
        ts, seq, kind, page, slot = entry
        user = page.user
        record: dict[str, Any] = {
            "event_id": f"{self.tag}-e{seq}",
            "type": EVENT_TYPES[kind],
            "ts": ts,
            "user_id": self.user_ids[user],
            "session_id": page.session_id,
            "request_id": f"{self.tag}-r{page.number}",
        }
        if kind <= _IMPRESSION:
            record["query"] = page.raw_query
        else:
            item = page.items[slot]
            record["item_id"] = self.item_ids[item]
            record["price"] = self.item_price[item]
            if kind != _CLICK:
                record["quantity"] = page.quantity[slot]
            record["category"] = self.category_names[self.item_category[item]]
            record["brand"] = self.brand_names[self.item_brand[item]]
        record["device"] = self.user_device[user]
        record["platform"] = self.user_platform[user]
        if kind == _IMPRESSION:
            names, brands = self.category_names, self.brand_names
            record["items"] = [
                {"item_id": self.item_ids[item], "position": position, "price": self.item_price[item],
                 "category": names[self.item_category[item]], "brand": brands[self.item_brand[item]]}
                for position, item in enumerate(page.items, 1)
            ]
        return record

    def record_bytes(self, entry: tuple) -> bytes:
        """Exactly ``_dumps(self.record(entry))``, written with f-strings: ~4x faster.

        Only the query can hold characters JSON must escape (it is encoded with json.dumps,
        once per page); ids, names and numbers are generated here and never need escaping.
        """
        ts, seq, kind, page, slot = entry
        user = page.user
        head = (f'{{"event_id":"{self.tag}-e{seq}","type":"{EVENT_TYPES[kind]}","ts":{ts},'
                f'"user_id":"{self.user_ids[user]}","session_id":"{page.session_id}",'
                f'"request_id":"{self.tag}-r{page.number}",')
        tail = f'"device":"{self.user_device[user]}","platform":"{self.user_platform[user]}"'
        if kind <= _IMPRESSION:
            if page.query_json is None:
                page.query_json = json.dumps(page.raw_query)
            if kind == _SEARCH:
                return f'{head}"query":{page.query_json},{tail}}}'.encode()
            heads, tails = self.item_json_head, self.item_json_tail
            items = ",".join([heads[item] + str(position) + tails[item]
                              for position, item in enumerate(page.items, 1)])
            return f'{head}"query":{page.query_json},{tail},"items":[{items}]}}'.encode()
        item = page.items[slot]
        quantity = "" if kind == _CLICK else f'"quantity":{page.quantity[slot]},'
        return (f'{head}"item_id":"{self.item_ids[item]}","price":{self.item_price[item]!r},{quantity}'
                f'"category":"{self.category_names[self.item_category[item]]}",'
                f'"brand":"{self.brand_names[self.item_brand[item]]}",{tail}}}').encode()


class _SlidingCounter:
    """Per-key counts of events with ts in [now - width, now).

    Events arrive in event-time order, so one deque ordered by ts serves all keys and
    expiry costs O(1) per event; empty keys are dropped so memory follows the window.
    """

    __slots__ = ("width", "counts", "_log")

    def __init__(self, width_ms: int) -> None:
        self.width = width_ms
        self.counts: dict[Any, int] = {}
        self._log: deque[tuple[int, Any]] = deque()

    def add(self, ts: int, key: Any) -> None:
        self._log.append((ts, key))
        self.counts[key] = self.counts.get(key, 0) + 1

    def expire(self, now: int) -> None:
        cutoff = now - self.width
        log, counts = self._log, self.counts
        while log and log[0][0] < cutoff:
            key = log.popleft()[1]
            left = counts[key] - 1
            if left:
                counts[key] = left
            else:
                del counts[key]


class _WindowFeatures:
    """The dense window features of docs/contracts.md, fed with events in event-time order."""

    def __init__(self) -> None:
        # The user's counts of docs/contracts.md, u_<kind>_<window>, by the event kind they count.
        windows = (("5m", 5 * MINUTE_MS), ("1h", HOUR_MS), ("24h", DAY_MS))
        self.user_counts: dict[str, _SlidingCounter] = {}
        self._user_counters_of: dict[int, list[_SlidingCounter]] = {}
        for kind, name in ((_CLICK, "click"), (_CART, "cart"), (_PURCHASE, "purchase")):
            counters = [_SlidingCounter(width) for _, width in windows]
            self.user_counts.update(zip((f"u_{name}_{window}" for window, _ in windows), counters))
            self._user_counters_of[kind] = counters
        # The user's latest click, cart or purchase: (ts, item), for the recent category.
        self.user_last_item: dict[int, tuple[int, int]] = {}
        self.item_impressions_1h = _SlidingCounter(HOUR_MS)
        self.item_clicks_1h = _SlidingCounter(HOUR_MS)
        self.query_item_impressions_24h = _SlidingCounter(DAY_MS)
        self.query_item_clicks_24h = _SlidingCounter(DAY_MS)
        self._all = (*self.user_counts.values(), self.item_impressions_1h, self.item_clicks_1h,
                     self.query_item_impressions_24h, self.query_item_clicks_24h)

    def apply(self, entry: tuple) -> None:
        ts, _, kind, page, slot = entry
        if kind == _IMPRESSION:
            query = page.query
            for item in page.items:
                self.item_impressions_1h.add(ts, item)
                self.query_item_impressions_24h.add(ts, (query, item))
            return
        user_counters = self._user_counters_of.get(kind)
        if user_counters is None:  # a search
            return
        user, item = page.user, page.items[slot]
        for counter in user_counters:
            counter.add(ts, user)
        self.user_last_item[user] = (ts, item)
        if kind == _CLICK:
            self.item_clicks_1h.add(ts, item)
            # A click counts for the query of the page it came from.
            self.query_item_clicks_24h.add(ts, (page.query, item))

    def expire(self, now: int) -> None:
        for counter in self._all:
            counter.expire(now)



class EventGenerator:
    """Reproducible stream of raw events or training examples from one simulated world.

    Each call to ``events``, ``events_with_truth`` or ``examples`` starts a fresh simulation
    from the config, so calling twice gives the same output. ``events`` paces simulated time
    by ``config.events_per_second``; ``examples`` by ``config.examples_per_sim_day``.
    """

    def __init__(self, config: Optional[GeneratorConfig] = None) -> None:
        self.config = config if config is not None else GeneratorConfig()

    # ----------------------------------------------------------------- raw records

    def events(self, n: Optional[int] = None) -> Iterator[tuple[bytes, bytes]]:
        """``(key, value)`` Kafka records: key = user_id bytes, value = JSON bytes.

        Valid records come in event-time order; injected defects are extra records (the
        valid stream is the same whatever the defect shares), late records arrive after
        their ts. ``n`` caps the number of records; None means forever.
        """
        for key, value, _ in self.events_with_truth(n):
            yield key, value

    def events_with_truth(self, n: Optional[int] = None) -> Iterator[tuple[bytes, bytes, dict]]:
        """Like ``events`` but each record comes with what it really is.

        truth is ``{'kind': 'valid'|'late'|'duplicate'|'malformed', 'defect': name or None,
        'event_id': ..., 'type': ...}``; malformed records also carry 'expected_reason' (the
        udfs/reasons.py code; their event_id is None when the defect removed it), late ones
        'lag_ms' (newest delivered ts minus the record's ts), valid records whose optional fields
        were dropped 'missing_optional'.
        """
        c = self.config
        world = _World(c, records_per_second=c.events_per_second)
        # Defects draw from their own stream, so the valid records are the same whatever
        # the defect shares are: a test can compare a dirty run with a clean one.
        defect_pool = _RandomPool(np.random.Generator(np.random.PCG64(world.defect_seed)))
        valid = self._valid_records(world, defect_pool)
        recent: deque[tuple[bytes, bytes, dict]] = deque(maxlen=256)
        # Bases for malformed copies, kept as bytes and decoded only when a defect needs one.
        last_record: Optional[tuple[bytes, bytes]] = None
        last_impression: Optional[tuple[bytes, bytes]] = None
        last_with_quantity: Optional[tuple[bytes, bytes]] = None
        newest_ts = 0  # of the on-time records so far
        malformed_share = c.malformed_share
        corrupt_or_copy = c.malformed_share + c.duplicate_share
        emitted = 0
        while n is None or emitted < n:
            draw = defect_pool.uniform() if corrupt_or_copy else 1.0
            if draw < malformed_share and last_impression is not None:
                defect = _DEFECT_NAMES[defect_pool.index(len(_DEFECT_NAMES))]
                if defect in ("negative_price", "position_zero", "nan_value", "wrong_type"):
                    base = last_impression  # these corrupt an item slot or the items list
                elif defect == "bad_quantity" and last_with_quantity is not None:
                    base = last_with_quantity
                elif defect == "bad_quantity":  # no cart or purchase yet to break
                    defect, base = "negative_price", last_impression
                else:
                    base = last_record
                base_record = json.loads(base[1])
                # One defect per record: an old base (a cart from hours ago) must not be late too.
                base_record["ts"] = max(base_record["ts"], newest_ts)
                value, event_id = self._malformed(defect, base_record, emitted, defect_pool)
                yield base[0], value, {"kind": "malformed", "defect": defect,
                                       "expected_reason": MALFORMED_DEFECTS[defect],
                                       "event_id": event_id, "type": base_record["type"]}
            elif draw < corrupt_or_copy and recent:
                key, value, original = recent[defect_pool.index(len(recent))]
                yield key, value, {"kind": "duplicate", "defect": "duplicate",
                                   "event_id": original["event_id"], "type": original["type"]}
            else:
                key, value, truth, ts = next(valid)
                if corrupt_or_copy and truth["kind"] == "valid":
                    # Copies and bases come from on-time records only, so each injected record
                    # has exactly one thing wrong with it.
                    newest_ts = ts
                    recent.append((key, value, truth))
                    last_record = (key, value)
                    if truth["type"] == "impression":
                        last_impression = last_record
                    elif truth["type"] in ("add_to_cart", "purchase"):
                        last_with_quantity = last_record
                yield key, value, truth
            emitted += 1

    def _valid_records(self, world: _World, defect_pool: _RandomPool) -> Iterator[tuple[bytes, bytes, dict, int]]:
        """The valid stream as (key, value, truth, ts); held-back late records delivered late."""
        c = self.config
        late_share = c.late_share
        late_heap: list[tuple[int, int, bytes, bytes, dict]] = []
        lag_span = c.late_max_lag_ms - c.late_min_lag_ms
        drop_share = c.missing_optional_share
        no_request_share = c.label_without_request_share
        keys = [user_id.encode() for user_id in world.user_ids]
        tag = world.tag
        for entry in world.timeline():
            ts, seq, kind, page, _ = entry
            truth = {"kind": "valid", "defect": None, "event_id": f"{tag}-e{seq}", "type": EVENT_TYPES[kind]}
            # Draws come from the defect stream, so the world (and every other record) is unchanged.
            no_request = bool(no_request_share and kind >= _CLICK and defect_pool.uniform() < no_request_share)
            if drop_share or no_request:
                record = world.record(entry)
                dropped = self._drop_optional_fields(record, drop_share, defect_pool) if drop_share else []
                if no_request:
                    del record["request_id"]
                    dropped.append("request_id")
                if dropped:
                    truth["missing_optional"] = dropped
                value = _dumps(record)
            else:
                value = world.record_bytes(entry)
            key = keys[page.user]
            if late_share and defect_pool.uniform() < late_share:
                truth["ts"] = ts
                lag = c.late_min_lag_ms + defect_pool.index(lag_span + 1)
                heapq.heappush(late_heap, (ts + lag, seq, key, value, truth))
                continue
            yield key, value, truth, ts
            # Held-back records come out once the stream has moved past ts + lag, so
            # lag_ms is exactly how far behind the newest delivered event they are.
            while late_heap and late_heap[0][0] <= ts:
                _, _, late_key, late_value, late_truth = heapq.heappop(late_heap)
                late_truth["kind"] = late_truth["defect"] = "late"
                late_ts = late_truth.pop("ts")
                late_truth["lag_ms"] = ts - late_ts
                yield late_key, late_value, late_truth, late_ts

    @staticmethod
    def _drop_optional_fields(record: dict, share: float, pool: _RandomPool) -> list[str]:
        dropped = []
        for name in OPTIONAL_FIELDS:
            if name in record and pool.uniform() < share:
                del record[name]
                dropped.append(name)
        for item in record.get("items", ()):
            for name in ("price", "category", "brand"):
                if pool.uniform() < share:
                    del item[name]
                    dropped.append(f"items[{item['position']}].{name}")
        return dropped

    def _malformed(self, defect: str, base: dict, number: int, pool: _RandomPool) -> tuple[bytes, Optional[str]]:
        """A broken copy of ``base`` with its own event_id; returns (value, event_id)."""
        record = dict(base)
        if "items" in record:
            record["items"] = [dict(item) for item in record["items"]]
        record["event_id"] = f"{base['event_id']}~m{number}"
        event_id: Optional[str] = record["event_id"]
        items = record.get("items")
        if defect == "truncated_json":
            raw = _dumps(record)
            # Any proper prefix of a JSON object lacks its closing brace, so it never parses.
            return raw[: 1 + pool.index(len(raw) - 1)], event_id
        if defect == "not_object":
            return _dumps([record]), event_id
        if defect == "empty_value":
            return b"", None
        if defect == "wrong_type":
            variant = pool.index(3)
            if variant == 0:
                record["ts"] = "2025-01-01T00:00:00Z"
            elif variant == 1:
                record["user_id"] = {"id": record["user_id"]}
            else:
                record["items"] = ",".join(item["item_id"] for item in items)
        elif defect == "nan_value":
            items[pool.index(len(items))]["price"] = float("nan")  # json.dumps writes NaN
        elif defect == "missing_field":
            specific = {"impression": "items", "search": "query"}.get(record["type"], "item_id")
            field = ("event_id", "type", "ts", "user_id", specific)[pool.index(5)]
            del record[field]
            if field == "event_id":
                event_id = None
        elif defect == "negative_price":
            item = items[pool.index(len(items))]
            item["price"] = -round(abs(item.get("price", 1.0)) + 0.01, 2)
        elif defect == "position_zero":
            items[pool.index(len(items))]["position"] = 0
        elif defect == "invalid_utf8":
            # 0xFF never occurs in UTF-8; put it inside the user id string.
            return _dumps(record).replace(b'"user_id":"', b'"user_id":"\xff\xfe', 1), event_id
        elif defect == "oversize":
            record["padding"] = "x" * self.config.oversize_bytes
        elif defect == "unknown_type":
            record["type"] = "wishlist_add"
        elif defect == "future_ts":
            record["ts"] = _FAR_FUTURE_MS + record["ts"] % DAY_MS
        elif defect == "id_too_long":
            record["event_id"] = event_id = record["event_id"] + "x" * 200
        elif defect == "ts_in_seconds":
            record["ts"] = record["ts"] // SECOND_MS
        elif defect == "bad_quantity":
            record["quantity"] = 0
        else:  # pragma: no cover - MALFORMED_DEFECTS and this dispatch are kept in step
            raise AssertionError(f"unhandled defect {defect}")
        return _dumps(record), event_id

    # ----------------------------------------------------------------- training examples

    def examples(self, n: Optional[int] = None) -> Iterator[dict]:
        """Training examples in the docs/contracts.md shape, in event-time order.

        One example per impressed item, labels from the same simulation (click, and purchase
        whenever it happens, even hours later), window features from events strictly before
        the impression. Prices, categories and brands are the true values (no imputation).
        """
        if n is not None and n <= 0:
            return
        world = _World(self.config, examples_per_day=self.config.examples_per_sim_day)
        windows = _WindowFeatures()
        user_counts = {name: counter.counts for name, counter in windows.user_counts.items()}
        i_impr, i_click = windows.item_impressions_1h.counts, windows.item_clicks_1h.counts
        qi_impr, qi_click = windows.query_item_impressions_24h.counts, windows.query_item_clicks_24h.counts
        item_ids, user_ids = world.item_ids, world.user_ids
        item_category, item_brand, item_price = world.item_category, world.item_brand, world.item_price
        category_names, brand_names = world.category_names, world.brand_names
        # Events with the same ts as an impression must not count for it ("strictly before"),
        # so an event is applied to the windows only once time has moved past its ts.
        unapplied: list[tuple] = []
        unapplied_ts = -1
        produced = 0
        for entry in world.timeline():
            ts, _, kind, page, _ = entry
            if kind == _SEARCH:
                continue
            if unapplied and ts > unapplied_ts:
                for pending in unapplied:
                    windows.apply(pending)
                unapplied.clear()
            if kind == _IMPRESSION:
                windows.expire(ts)
                user = page.user
                query = page.query
                impression_id = world.event_id(page.impression_seq)
                user_id = user_ids[user]
                device, platform = world.user_device[user], world.user_platform[user]
                hour = (ts // HOUR_MS) % 24
                user_features = {name: float(counts.get(user, 0)) for name, counts in user_counts.items()}
                last = windows.user_last_item.get(user)
                recent = last is not None and ts - last[0] <= DAY_MS
                user_features["u_last_category"] = category_names[item_category[last[1]]] if recent else ""
                clicked, purchased = page.clicked, page.purchased
                for slot, item in enumerate(page.items):
                    impressions = i_impr.get(item, 0)
                    clicks = i_click.get(item, 0)
                    pair = (query, item)
                    yield {
                        "example_id": f"{impression_id}:{slot + 1}",
                        "model": "default",
                        "ts": ts,
                        "user_id": user_id,
                        "item_id": item_ids[item],
                        "query": query,
                        "category": category_names[item_category[item]],
                        "brand": brand_names[item_brand[item]],
                        "device": device,
                        "platform": platform,
                        "position": slot + 1,
                        "price": item_price[item],
                        "hour": hour,
                        **user_features,
                        "i_impr_1h": float(impressions),
                        "i_click_1h": float(clicks),
                        "i_ctr_1h": smoothed_ctr(clicks, impressions),
                        "qi_ctr_24h": smoothed_ctr(qi_click.get(pair, 0), qi_impr.get(pair, 0)),
                        "click": int(clicked[slot]),
                        "purchase": int(purchased[slot]),
                    }
                    produced += 1
                    if n is not None and produced >= n:
                        return
            unapplied.append(entry)
            unapplied_ts = ts

    # ----------------------------------------------------------------- inspection

    def interest_snapshot(self, days: Sequence[float]) -> np.ndarray:
        """Users' category preferences (softmax of interest logits, as queries use them).

        Returns an array ``[len(days), n_users, n_categories]``; ``days`` are simulated days
        since start_ms, in any order. It is a realisation of the same interest process the
        streams use, from the same initial interests, with its own draws for the drift (the
        streams advance each user lazily, only when the user shows up).
        """
        c = self.config
        world = _World(c, examples_per_day=c.examples_per_sim_day)
        rng = np.random.Generator(np.random.PCG64(world.snapshot_seed))
        interests = world.interests
        order = sorted(range(len(days)), key=lambda k: days[k])
        result = np.empty((len(days), c.n_users, c.n_categories))
        now_days = 0.0
        for k in order:
            target = float(days[k])
            if target < 0:
                raise ValueError(f"days must be >= 0, got {target}")
            dt_days = target - now_days
            if dt_days > 0:
                interests = _advance_interests(interests, np.full(c.n_users, dt_days), rng, c)
                now_days = target
            weights = np.exp(_QUERY_FOCUS * (interests - interests.max(axis=1, keepdims=True)))
            result[k] = weights / weights.sum(axis=1, keepdims=True)
        return result
