"""Latest online features per user, per item and per (query, item), from the job's compacted
feature topics.

Each record holds window counts as of its `ts`: the events in [ts - w, ts], its own event and
any other in the same millisecond included (the job emits one on every event of the user or
item). A request at `now` counts the events in [now - w, now): strictly before the request, and
including the window's start, as the job's windows do (Flink's RANGE frames keep a row exactly w
old). The record is the newest one, so no event came after `ts`: when `now - ts > w`, every
counted event is older than the window's start and the window reads as empty; at
`now - ts == w` the record's own event sits exactly on the start and still counts. Windows still
open keep the record's counts (they may include a few events that aged out since, which only
the next event's record would correct). A record at or after `now` (an event in the request's
own millisecond, or a request stamped behind the stream) is used as it is: serving keeps no
older record to fall back on. (The job's training examples also count other events in the
impression's own millisecond, a known limit in docs/design.md; serving does not.)
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from udfs.features import smoothed_ctr

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

# Window length of every online feature (flink_jobs/sql/03_user_features.sql, 05_item_features.sql).
USER_WINDOWS_MS: dict[str, int] = {
    "u_click_5m": 5 * MINUTE_MS, "u_click_1h": HOUR_MS, "u_click_24h": DAY_MS,
    "u_cart_5m": 5 * MINUTE_MS, "u_cart_1h": HOUR_MS, "u_cart_24h": DAY_MS,
    "u_purchase_5m": 5 * MINUTE_MS, "u_purchase_1h": HOUR_MS, "u_purchase_24h": DAY_MS,
}
ITEM_COUNT_WINDOWS_MS: dict[str, int] = {"i_impr_1h": HOUR_MS, "i_click_1h": HOUR_MS}
ITEM_CTR_FIELD = "i_ctr_1h"
# An item with no impression in the last hour reads as the prior's CTR, as in the job's SQL.
USER_FIELDS = tuple(USER_WINDOWS_MS)
# The user's recent category ('' if none) and when it happened: it stays for 24 h after that.
USER_CATEGORY_FIELD, USER_CATEGORY_TS_FIELD = "u_last_category", "u_last_category_ts"
USER_CATEGORY_WINDOW_MS = DAY_MS
ITEM_FIELDS = tuple(ITEM_COUNT_WINDOWS_MS) + (ITEM_CTR_FIELD,)
# (query, item): the record also carries its counts; the model reads the smoothed CTR only.
QUERY_ITEM_WINDOW_MS = DAY_MS
QUERY_ITEM_COUNT_FIELDS = ("qi_impr_24h", "qi_click_24h")
QUERY_ITEM_CTR_FIELD = "qi_ctr_24h"
QUERY_ITEM_RECORD_FIELDS = QUERY_ITEM_COUNT_FIELDS + (QUERY_ITEM_CTR_FIELD,)
ONLINE_FIELDS = frozenset(USER_FIELDS + ITEM_FIELDS + (USER_CATEGORY_FIELD, QUERY_ITEM_CTR_FIELD))
# The compacted topic's key: the cleaned query, a tab, the item id (flink_jobs/sql/08_online_features.sql).
# A cleaned query never holds a tab (udfs.text collapses every whitespace run to one space).
QUERY_ITEM_SEPARATOR = "\t"


def query_item_key(query: str, item_id: str) -> str:
    """The key of a (cleaned query, item) pair on the query-item feature topic."""
    return f"{query}{QUERY_ITEM_SEPARATOR}{item_id}"


def window_ended(age_ms: int, window_ms: int) -> bool:
    """True when a window of `window_ms` ending at now holds none of the events counted by a record
    `age_ms` old. The job's windows include their start (an event exactly `window_ms` before now
    counts, as in flink_jobs/sql/03_user_features.sql), so only an age beyond the window ends it."""
    return age_ms > window_ms


class LatestPerKey:
    """A bounded map key -> newest record (by `ts`), evicting the least recently used key."""

    def __init__(self, max_keys: int) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, got {max_keys}")
        self.max_keys = max_keys
        self._records: OrderedDict[str, dict[str, float]] = OrderedDict()
        self._lock = threading.Lock()  # OrderedDict reordering is not safe across threads
        self.evicted = 0

    def put(self, key: str, record: dict[str, float]) -> None:
        with self._lock:
            current = self._records.get(key)
            # Compaction and replays can deliver an older record after a newer one.
            if current is not None and current["ts"] > record["ts"]:
                return
            self._records[key] = record
            self._records.move_to_end(key)
            while len(self._records) > self.max_keys:
                self._records.popitem(last=False)
                self.evicted += 1

    def remove(self, key: str) -> None:
        with self._lock:
            self._records.pop(key, None)

    def get(self, key: str) -> dict[str, float] | None:
        with self._lock:
            record = self._records.get(key)
            if record is not None:
                self._records.move_to_end(key)
            return record

    def __len__(self) -> int:
        return len(self._records)


@dataclass(frozen=True)
class FeatureCounts:
    users: int
    items: int
    users_evicted: int
    items_evicted: int
    query_items: int = 0
    query_items_evicted: int = 0


class OnlineFeatures:
    """User, item and (query, item) features as of a request's time, from the latest record per key."""

    def __init__(self, max_users: int = 1_000_000, max_items: int = 1_000_000,
                 max_query_items: int | None = None) -> None:
        self.users = LatestPerKey(max_users)
        self.items = LatestPerKey(max_items)
        self.query_items = LatestPerKey(max_items if max_query_items is None else max_query_items)
        self.malformed = 0

    # ------------------------------------------------------------------ consuming
    def apply_user(self, user_id: str, value: Mapping[str, Any] | None) -> None:
        """One record of the user features topic (None: a tombstone)."""
        self._apply(self.users, user_id, value, _parse_user)

    def apply_item(self, item_id: str, value: Mapping[str, Any] | None) -> None:
        """One record of the item features topic (None: a tombstone)."""
        self._apply(self.items, item_id, value, _parse_item)

    def apply_query_item(self, key: str, value: Mapping[str, Any] | None) -> None:
        """One record of the query-item features topic (key: `query_item_key`; None: a tombstone)."""
        self._apply(self.query_items, key, value, _parse_query_item)

    def _apply(self, store: LatestPerKey, key: str, value: Mapping[str, Any] | None,
               parse: Callable[[Mapping[str, Any]], dict[str, Any] | None]) -> None:
        if value is None:
            store.remove(key)
            return
        record = parse(value)
        if record is None:
            self.malformed += 1
            return
        store.put(key, record)

    # ------------------------------------------------------------------ reading
    def user_features(self, user_id: str, now_ms: int) -> dict[str, Any]:
        """The user's window counts and recent category (a string) at now_ms."""
        record = self.users.get(user_id)
        if record is None:
            return {**dict.fromkeys(USER_FIELDS, 0.0), USER_CATEGORY_FIELD: ""}
        age = now_ms - record["ts"]
        features: dict[str, Any] = {f: (0.0 if window_ended(age, window) else record[f])
                                    for f, window in USER_WINDOWS_MS.items()}
        category_ts = record[USER_CATEGORY_TS_FIELD]
        recent = category_ts is not None and not window_ended(now_ms - category_ts, USER_CATEGORY_WINDOW_MS)
        features[USER_CATEGORY_FIELD] = record[USER_CATEGORY_FIELD] if recent else ""
        return features

    def item_features(self, item_id: str, now_ms: int) -> dict[str, float]:
        record = self.items.get(item_id)
        if record is None or window_ended(now_ms - record["ts"], HOUR_MS):
            return {**dict.fromkeys(ITEM_COUNT_WINDOWS_MS, 0.0),
                    ITEM_CTR_FIELD: smoothed_ctr(0.0, 0.0)}
        return {f: record[f] for f in ITEM_FIELDS}

    def query_item_features(self, query: str, item_id: str, now_ms: int) -> dict[str, float]:
        """qi_ctr_24h of a cleaned query and an item (the prior when the pair's window is empty)."""
        record = self.query_items.get(query_item_key(query, item_id))
        if record is None or window_ended(now_ms - record["ts"], QUERY_ITEM_WINDOW_MS):
            return {QUERY_ITEM_CTR_FIELD: smoothed_ctr(0.0, 0.0)}
        return {QUERY_ITEM_CTR_FIELD: record[QUERY_ITEM_CTR_FIELD]}

    def counts(self) -> FeatureCounts:
        return FeatureCounts(len(self.users), len(self.items), self.users.evicted, self.items.evicted,
                             len(self.query_items), self.query_items.evicted)


def _parse_user(value: Mapping[str, Any]) -> dict[str, Any] | None:
    """A user record: its counts, its recent category and that category's time (None: malformed)."""
    record = _parse(value, USER_FIELDS)
    if record is None:
        return None
    category = value.get(USER_CATEGORY_FIELD) or ""
    category_ts = _integral(value.get(USER_CATEGORY_TS_FIELD))
    if type(category) is not str or (category_ts is not None and type(category_ts) is not int):
        return None
    return {**record, USER_CATEGORY_FIELD: category, USER_CATEGORY_TS_FIELD: category_ts if category else None}


def _integral(value: Any) -> Any:
    """A whole-number float (JSON writers may give epoch ms as 1.7e12) as an int; else unchanged."""
    if type(value) is float and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def _parse_item(value: Mapping[str, Any]) -> dict[str, float] | None:
    return _parse(value, ITEM_FIELDS)


def _parse_query_item(value: Mapping[str, Any]) -> dict[str, float] | None:
    return _parse(value, QUERY_ITEM_RECORD_FIELDS)


def _parse(value: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, float] | None:
    """The record's `ts` and fields as floats (a missing or null field counts as 0.0)."""
    ts = _integral(value.get("ts"))
    if type(ts) is not int:
        return None
    record: dict[str, float] = {"ts": ts}
    for name in fields:
        number = value.get(name)
        if number is None:
            number = 0.0
        if type(number) not in (int, float) or not math.isfinite(number):
            return None
        record[name] = float(number)
    return record
