"""Running price statistics and the imputation of missing numeric fields.

The statistics live in Flink state (``RunningStats.to_bytes`` / ``from_bytes``),
so imputation keeps its memory across restarts. They are mergeable (parallel
subtasks, rescaling) and bounded (at most ``2 * max_categories`` categories).

Prices are heavy-tailed: one luxury item drags an arithmetic mean far from the
typical price. The statistics are therefore Welford mean and variance of
``log1p(price)``; the imputed value ``expm1(mean)`` is a geometric-style mean,
as cheap and as exactly mergeable as the arithmetic one but far less sensitive
to outliers.
"""

from __future__ import annotations

import json
import math
from typing import Any

STATS_FORMAT_VERSION = 1
DEFAULT_QUANTITY = 1.0
# Events whose top-level price/quantity describe the item they name.
_ITEM_EVENT_TYPES = frozenset({"click", "add_to_cart", "purchase"})
_BASKET_EVENT_TYPES = frozenset({"add_to_cart", "purchase"})


class LogMoments:
    """Count, mean and sum of squared deviations of log1p(value) (Welford)."""

    __slots__ = ("count", "mean", "m2")

    def __init__(self, count: int = 0, mean: float = 0.0, m2: float = 0.0) -> None:
        self.count = count
        self.mean = mean
        self.m2 = m2

    def add(self, value: float) -> None:
        x = math.log1p(value)
        self.count += 1
        delta = x - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (x - self.mean)

    def merge(self, other: "LogMoments") -> None:
        """Absorb ``other`` exactly (Chan et al.'s parallel update)."""
        if other.count == 0:
            return
        total = self.count + other.count
        delta = other.mean - self.mean
        self.mean += delta * other.count / total
        self.m2 += other.m2 + delta * delta * self.count * other.count / total
        self.count = total

    @property
    def log_variance(self) -> float:
        return max(self.m2, 0.0) / (self.count - 1) if self.count > 1 else 0.0

    @property
    def typical_value(self) -> float:
        return math.expm1(self.mean)

    def to_list(self) -> list:
        return [self.count, self.mean, self.m2]

    @classmethod
    def from_list(cls, values: Any) -> "LogMoments":
        if (not isinstance(values, list) or len(values) != 3 or type(values[0]) is not int
                or values[0] < 0 or not all(type(v) in (int, float) and math.isfinite(v) for v in values[1:])):
            raise ValueError(f"bad moments {values!r}")
        return cls(values[0], float(values[1]), float(values[2]))


class RunningStats:
    """Price statistics per category plus a global fallback.

    Args:
        max_categories: categories kept after a prune; the map may grow to twice
            this before the least frequent are dropped (amortised O(log n) per new one).
        min_count: observations a category needs before its own price is trusted.
        default_price: imputed when nothing at all has been observed yet.
    """

    def __init__(self, max_categories: int = 1000, min_count: int = 5, default_price: float = 0.0) -> None:
        if type(max_categories) is not int or max_categories < 1:
            raise ValueError("max_categories must be an int >= 1")
        if type(min_count) is not int or min_count < 1:
            raise ValueError("min_count must be an int >= 1")
        if not (isinstance(default_price, (int, float)) and math.isfinite(default_price) and default_price >= 0):
            raise ValueError("default_price must be a finite number >= 0")
        self.max_categories = max_categories
        self.min_count = min_count
        self.default_price = float(default_price)
        self.overall = LogMoments()
        self.by_category: dict[str, LogMoments] = {}

    def observe(self, price: float, category: str | None) -> None:
        """Record one observed (finite, non-negative) price."""
        self.overall.add(price)
        if category is None:
            return
        moments = self.by_category.get(category)
        if moments is None:
            moments = self.by_category[category] = LogMoments()
        moments.add(price)
        if len(self.by_category) > 2 * self.max_categories:
            self._prune()

    def typical_price(self, category: str | None) -> float:
        """The price to impute: the category's when trusted, else the global one, else the default."""
        moments = self.by_category.get(category) if category is not None else None
        if moments is not None and moments.count >= self.min_count:
            return moments.typical_value
        if self.overall.count > 0:
            return self.overall.typical_value
        return self.default_price

    def merge(self, other: "RunningStats") -> None:
        """Absorb another subtask's statistics (result as if it had seen both streams)."""
        self.overall.merge(other.overall)
        for category, moments in other.by_category.items():
            mine = self.by_category.get(category)
            if mine is None:
                self.by_category[category] = LogMoments(moments.count, moments.mean, moments.m2)
            else:
                mine.merge(moments)
        if len(self.by_category) > 2 * self.max_categories:
            self._prune()

    def _prune(self) -> None:
        # Keep the most frequent; ties broken by name so restarts and merges are deterministic.
        ranked = sorted(self.by_category.items(), key=lambda kv: (-kv[1].count, kv[0]))
        self.by_category = dict(ranked[: self.max_categories])

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATS_FORMAT_VERSION,
            "overall": self.overall.to_list(),
            "categories": {category: m.to_list() for category, m in self.by_category.items()},
        }

    def to_bytes(self) -> bytes:
        """Compact UTF-8 JSON, the form kept in Flink state."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False).encode("utf-8")

    @classmethod
    def from_dict(cls, data: Any, **settings: Any) -> "RunningStats":
        """Rebuild from ``to_dict``; ``settings`` are the constructor arguments (not stored)."""
        if not isinstance(data, dict) or data.get("version") != STATS_FORMAT_VERSION:
            raise ValueError(f"unsupported running-stats format: {str(data)[:80]}")
        categories = data.get("categories")
        if not isinstance(categories, dict):
            raise ValueError("running stats: categories must be an object")
        stats = cls(**settings)
        stats.overall = LogMoments.from_list(data.get("overall"))
        stats.by_category = {str(name): LogMoments.from_list(m) for name, m in categories.items()}
        if len(stats.by_category) > 2 * stats.max_categories:  # restored with a smaller cap
            stats._prune()
        return stats

    @classmethod
    def from_bytes(cls, blob: bytes, **settings: Any) -> "RunningStats":
        return cls.from_dict(json.loads(blob.decode("utf-8")), **settings)


def impute(event: dict[str, Any], stats: RunningStats, *, learn: bool = True) -> dict[str, Any]:
    """Fill missing prices and quantities of a clean event; return a new event.

    The result has an extra key ``imputed``: the paths filled, e.g.
    ``["items[2].price", "quantity"]`` (empty when nothing was missing). With
    ``learn`` the event's own observed prices update ``stats`` first, so one call
    per event keeps the statistics current.

    - impression: each item's missing price from its category (or the event's).
    - click, add_to_cart, purchase: missing price from the event's category.
    - add_to_cart, purchase: missing quantity is 1.
    - search: nothing to fill (it names no item).
    """
    event_type = event["type"]
    event_category = event["category"]
    if learn:
        _observe(event, stats)
    result = dict(event)
    imputed: list[str] = []
    items = event["items"]
    if items is not None:
        filled_items = []
        for index, item in enumerate(items):
            if item["price"] is None:
                item = dict(item)
                item["price"] = stats.typical_price(item["category"] or event_category)
                imputed.append(f"items[{index}].price")
            filled_items.append(item)
        result["items"] = filled_items
    if event_type in _ITEM_EVENT_TYPES and event["price"] is None:
        result["price"] = stats.typical_price(event_category)
        imputed.append("price")
    if event_type in _BASKET_EVENT_TYPES and event["quantity"] is None:
        result["quantity"] = DEFAULT_QUANTITY
        imputed.append("quantity")
    result["imputed"] = imputed
    return result


def _observe(event: dict[str, Any], stats: RunningStats) -> None:
    event_category = event["category"]
    if event["items"] is not None:
        for item in event["items"]:
            if item["price"] is not None:
                stats.observe(item["price"], item["category"] or event_category)
    if event["type"] in _ITEM_EVENT_TYPES and event["price"] is not None:
        stats.observe(event["price"], event_category)
