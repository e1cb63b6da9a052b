"""Which model version answers requests: follows version records and embedding deltas, hot-swaps.

The Kafka follower (serving/kafka_follower.py) only calls `apply_version_record`, `apply_delta`,
`advance` and the replay markers, so everything here is tested without a broker.

Consistency rule: version V goes live only when its record has arrived and all `delta_rows` of
its delta records have been applied (the two topics are read independently, so either side may
come first: both are buffered). Its rows are then exactly the trainer's rows at V:
the base (folded older versions) plus the copy-on-write layers of every version up to V
(serving/embedding_store.py). The swap is one reference assignment (`self._live = model`), so a
request that started on the old version finishes on it.

Versions only move forward: a record or delta at or below the newest version that was ever live
is ignored. `rollback()` makes the previous live version live again; the rolled-back version and
everything older than it can never become live again, newer versions still will.

Tombstones (a removed row: a null value) carry no version. The deltas topic has one partition and
the trainer writes a version's changed rows, then its removed rows, before the next version's,
so a tombstone belongs to the version of the value delta read just before it.

Restart: the follower replays both topics from the beginning (`begin_replay` ... `end_replay`).
Nothing goes live during the replay. The deltas topic is compacted, so only the newest state is
guaranteed to be complete in it: at the end of the replay the newest version goes live, as soon
as its rows are complete or, failing that (compaction may have dropped some of its tombstones),
after `restore_settle_s` with `complete: false` in its status.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter, deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from model.features import FeatureSpec
from serving.embedding_store import EmbeddingStore, EmbeddingView
from serving.onnx_model import ModelFileError, OnnxModel, load_onnx_model

log = logging.getLogger("freshrank.serving.registry")

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_HISTORY = 50

Loader = Callable[[str, str, Mapping[str, Any] | None], OnnxModel]


class NoLiveModel(Exception):
    """No version is live yet (nothing published, or its rows are still arriving)."""


class NothingToRollBack(Exception):
    """There is no previous live version to return to."""


@dataclass(frozen=True)
class VersionRecord:
    """One value of the versions topic (docs/contracts.md), validated."""

    model: str
    version: int
    onnx_uri: str
    sha256: str
    created_ms: int
    delta_rows: int
    metrics: Mapping[str, Any] = field(default_factory=dict)
    spec: Mapping[str, Any] | None = None

    @classmethod
    def parse(cls, value: Mapping[str, Any]) -> "VersionRecord":
        def typed(name: str, kind: type, check=lambda v: True) -> Any:
            v = value.get(name)
            if type(v) is not kind or not check(v):
                raise ValueError(f"version record: bad {name!r}: {v!r}")
            return v

        if not isinstance(value, Mapping):
            raise ValueError(f"version record: expected an object, got {type(value).__name__}")
        metrics = value.get("metrics") or {}
        spec = value.get("spec")
        if not isinstance(metrics, Mapping) or not (spec is None or isinstance(spec, Mapping)):
            raise ValueError("version record: metrics and spec must be objects")
        return cls(
            model=typed("model", str, bool), version=typed("version", int, lambda v: v >= 1),
            onnx_uri=typed("onnx_uri", str, bool),
            sha256=typed("sha256", str, _SHA256.fullmatch).lower(),
            created_ms=typed("created_ms", int), delta_rows=typed("delta_rows", int, lambda v: v >= 0),
            metrics=dict(metrics), spec=spec)


def split_delta_key(key: str | bytes) -> tuple[str, str, str]:
    """`<model>/<table>/<row key>` -> (model, table, row key); the row key may contain '/'."""
    text = key.decode("utf-8") if isinstance(key, bytes) else key
    parts = text.split("/", 2) if isinstance(text, str) else []
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"delta key is not <model>/<table>/<row key>: {key!r}")
    return parts[0], parts[1], parts[2]


class LiveModel:
    """A version that can answer requests: its graph, its rows and its feature spec."""

    def __init__(self, record: VersionRecord, onnx: OnnxModel, embeddings: EmbeddingView,
                 complete: bool, live_since_ms: int) -> None:
        self.record = record
        self.onnx = onnx
        self.embeddings = embeddings  # replaced (one assignment) when old layers are folded
        self.complete = complete  # False only for a restore from a compacted log
        self.live_since_ms = live_since_ms
        self.in_flight = 0  # requests using it now; guarded by the registry's lease lock

    @property
    def name(self) -> str:
        return self.record.model

    @property
    def version(self) -> int:
        return self.record.version

    @property
    def spec(self) -> FeatureSpec:
        return self.onnx.spec

    def describe(self) -> dict[str, Any]:
        return {"version": self.version, "created_ms": self.record.created_ms,
                "live_since_ms": self.live_since_ms, "complete": self.complete,
                "delta_rows": self.record.delta_rows, "onnx_uri": self.record.onnx_uri,
                "sha256": self.record.sha256, "providers": self.onnx.providers,
                "metrics": dict(self.record.metrics)}


class ModelRegistry:
    """The live, previous and pending versions of one model."""

    _REPLAYING, _SETTLING, _FOLLOWING = "replaying", "settling", "following"

    def __init__(self, model_name: str = "default", *, loader: Loader = load_onnx_model,
                 restore_settle_s: float = 5.0, clock: Callable[[], float] = time.monotonic,
                 wall_clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self.model_name = model_name
        self._loader = loader
        self._restore_settle_s = restore_settle_s
        self._clock = clock
        self._wall_clock_ms = wall_clock_ms
        self._lock = threading.RLock()  # state changes: the follower thread, rollback, status
        self._lease_lock = threading.Lock()  # in-flight counts of LiveModels
        self._store = EmbeddingStore()
        self._records: dict[int, VersionRecord] = {}
        self._received: Counter[int] = Counter()
        self._rejected: dict[int, str] = {}
        self._live: LiveModel | None = None
        self._previous: LiveModel | None = None
        self._retired: list[LiveModel] = []
        self._floor = 0  # newest version ever live: nothing at or below it goes live again
        self._newest_seen = 0
        self._last_value_version: int | None = None  # tombstones belong to this version
        self._phase = self._FOLLOWING
        self._settle_deadline = 0.0
        self._history: deque[dict[str, Any]] = deque(maxlen=_HISTORY)
        self.counters: Counter[str] = Counter()

    # ------------------------------------------------------------------ reading
    @property
    def live(self) -> LiveModel | None:
        return self._live

    @contextmanager
    def acquire(self) -> Iterator[LiveModel]:
        """The live model, held for one request (its rows stay valid until released)."""
        with self._lease_lock:
            model = self._live
            if model is not None:
                model.in_flight += 1
        if model is None:  # explained outside the lease lock: _why_no_model takes _lock
            raise NoLiveModel(self._why_no_model())
        try:
            yield model
        finally:
            with self._lease_lock:
                model.in_flight -= 1

    def _why_no_model(self) -> str:
        with self._lock:
            if self._phase == self._REPLAYING:
                return (f"no model version is live yet: replaying the model topics of "
                        f"{self.model_name!r}")
            if not self._records:
                return f"no model version of {self.model_name!r} has been published yet"
            pending = ", ".join(f"v{v} ({self._received[v]}/{r.delta_rows} rows)"
                                for v, r in sorted(self._records.items()))
            return f"no model version of {self.model_name!r} is live yet; waiting for {pending}"

    # ------------------------------------------------------------------ consuming
    def apply_version_record(self, value: Mapping[str, Any]) -> None:
        """One value of the versions topic."""
        try:
            record = VersionRecord.parse(value)
        except ValueError as exc:
            self._count("malformed_records", str(exc))
            return
        if record.model != self.model_name:
            self.counters["other_model_records"] += 1
            return
        with self._lock:
            if record.version <= self._floor:
                self._count("stale_records", f"version {record.version} is not above {self._floor}")
                return
            self._records[record.version] = record
            self._rejected.pop(record.version, None)  # a re-publication gets a fresh chance
            self._newest_seen = max(self._newest_seen, record.version)

    def apply_delta(self, key: str | bytes, value: Mapping[str, Any] | None) -> None:
        """One record of the deltas topic: a row (value) or a removed row (value None)."""
        try:
            model, table, row_key = split_delta_key(key)
        except ValueError as exc:
            self._count("malformed_deltas", str(exc))
            return
        if model != self.model_name:
            self.counters["other_model_deltas"] += 1
            return
        with self._lock:
            if value is None:
                version = self._last_value_version
                if version is None:
                    # Nothing of this model read before it: the id never had a row here.
                    self.counters["unattributed_tombstones"] += 1
                    return
            else:
                version = self._delta_version(value, model, table, row_key)
                if version is None:
                    return
                self._last_value_version = version
            if version <= max(self._floor, self._store.base_version):
                self.counters["stale_deltas"] += 1
                return
            try:
                if value is None:
                    self._store.remove(version, table, row_key)
                else:
                    self._store.apply(version, table, row_key, value.get("vector"))
            except (TypeError, ValueError) as exc:
                self._count("malformed_deltas", str(exc))
                return
            self._received[version] += 1

    def _delta_version(self, value: Mapping[str, Any], model: str, table: str,
                       row_key: str) -> int | None:
        version = value.get("version") if isinstance(value, Mapping) else None
        if (type(version) is not int or version < 1 or value.get("model") != model
                or value.get("table") != table or value.get("key") != row_key):
            self._count("malformed_deltas", f"delta {model}/{table}/{row_key} does not match its "
                        f"key or has no version: {str(value)[:200]}")
            return None
        return version

    # ------------------------------------------------------------------ replay after a restart
    def begin_replay(self) -> None:
        """The follower starts reading both topics from the beginning: hold promotions."""
        with self._lock:
            self._phase = self._REPLAYING

    def end_replay(self) -> None:
        """The follower has read both topics up to where they ended when it started."""
        with self._lock:
            if self._phase == self._REPLAYING:
                self._phase = self._SETTLING
                self._settle_deadline = self._clock() + self._restore_settle_s

    # ------------------------------------------------------------------ promotion
    def advance(self) -> LiveModel | None:
        """Make the newest version whose rows are complete live; returns it, or None if none."""
        with self._lock:
            if self._phase == self._REPLAYING:
                self._fold_replayed()
                return None
            if self._phase == self._SETTLING:
                return self._restore()
            candidates = sorted((v for v in self._records if self._is_complete(v)), reverse=True)
            for version in candidates:
                model = self._load(version)
                if model is not None:
                    self._make_live(model, "live")
                    return model
            self._fold_unreachable()
            return None

    def _is_complete(self, version: int) -> bool:
        return (version not in self._rejected
                and self._received[version] >= self._records[version].delta_rows)

    def _fold_replayed(self) -> None:
        # Nothing is live during a replay, so no one reads the store: keep memory at about one
        # model by folding through the newest complete version (older ones cannot be restored
        # from a compacted log anyway).
        complete = [v for v in self._records if self._is_complete(v)]
        if complete and max(complete) > self._store.base_version:
            self._store.fold_through(max(complete))
            for version in [v for v in self._records if v < self._store.base_version]:
                del self._records[version]

    def _restore(self) -> LiveModel | None:
        # After a replay only the newest state is sure to be whole in the compacted log.
        candidates = sorted((v for v in self._records if v not in self._rejected), reverse=True)
        if candidates and not self._is_complete(candidates[0]) \
                and self._clock() < self._settle_deadline:
            return None  # its rows may still be committing: wait a little
        self._phase = self._FOLLOWING
        for version in candidates:
            model = self._load(version)
            if model is not None:
                if not model.complete:
                    log.warning("restored %s v%d with %d of %d delta rows (compacted log)",
                                self.model_name, version, self._received[version],
                                model.record.delta_rows)
                self._make_live(model, "restored")
                return model
        return None

    def _load(self, version: int) -> LiveModel | None:
        record = self._records[version]
        try:
            onnx = self._loader(record.onnx_uri, record.sha256, record.spec)
        except ModelFileError as exc:
            self._reject(version, str(exc))
            return None
        view = self._store.view(version)
        missing = view.tables_missing_default(onnx.spec.table_names)
        if missing:
            self._reject(version, f"no __default__ row for table(s) {', '.join(missing)}")
            return None
        if self._store.dim is not None and self._store.dim != onnx.spec.embedding_dim:
            self._reject(version, f"rows have {self._store.dim} values, the graph expects "
                                  f"{onnx.spec.embedding_dim}")
            return None
        complete = self._received[version] >= record.delta_rows
        return LiveModel(record, onnx, view, complete, self._wall_clock_ms())

    def _reject(self, version: int, reason: str) -> None:
        log.error("%s v%d rejected: %s", self.model_name, version, reason)
        self._rejected[version] = reason
        self._note(version, "rejected", reason)

    def _make_live(self, model: LiveModel, event: str) -> None:
        old = self._live
        self._live = model  # the swap: requests already running keep their own reference
        if old is not None:
            if self._previous is not None:
                self._retired.append(self._previous)
            self._previous = old
        self._floor = model.version
        for version in [v for v in self._records if v <= self._floor]:
            del self._records[version]
        for version in [v for v in self._received if v <= self._floor]:
            del self._received[version]
        for version in [v for v in self._rejected if v <= self._floor]:
            del self._rejected[version]
        log.info("%s v%d is live (%d delta rows)", self.model_name, model.version,
                 model.record.delta_rows)
        self._note(model.version, event, "" if model.complete else "incomplete rows")
        self._fold_unreachable()

    def rollback(self) -> LiveModel:
        """Make the previous live version live again; returns it."""
        with self._lock:
            if self._previous is None or self._live is None:
                raise NothingToRollBack(f"{self.model_name!r} has no previous live version to roll back to")
            rolled_back, self._live = self._live, self._previous  # again one assignment
            self._previous = None
            self._retired.append(rolled_back)
            log.warning("%s rolled back from v%d to v%d", self.model_name, rolled_back.version,
                        self._live.version)
            self._note(rolled_back.version, "rolled_back", f"v{self._live.version} is live again")
            self._fold_unreachable()
            return self._live

    def _fold_unreachable(self) -> None:
        """Fold into the base every layer that no readable version can see differently.

        Views of versions >= F are unchanged by folding layers <= F, so F is the oldest version
        still readable: live, previous (rollback) or retired with a request still running.
        """
        if self._live is None:
            return
        with self._lease_lock:
            self._retired = [m for m in self._retired if m.in_flight > 0]
            readable = [self._live, self._previous, *self._retired]
        fold_through = min(m.version for m in readable if m is not None)
        if fold_through <= self._store.base_version:
            return
        self._store.fold_through(fold_through)
        for model in (self._live, self._previous):
            if model is not None:
                model.embeddings = self._store.view(model.version)  # drop folded layers

    # ------------------------------------------------------------------ reporting
    def _note(self, version: int, event: str, detail: str) -> None:
        self._history.append({"version": version, "event": event, "detail": detail,
                              "at_ms": self._wall_clock_ms()})

    def _count(self, counter: str, detail: str) -> None:
        self.counters[counter] += 1
        log.warning("%s: %s", counter, detail)

    def health(self) -> dict[str, Any]:
        live = self._live
        with self._lock:
            return {
                "model": self.model_name, "phase": self._phase,
                "live_version": live.version if live else None,
                "newest_version_seen": self._newest_seen or None,
                "versions_behind": (self._newest_seen - live.version) if live else None,
                "live_model_age_s": ((self._wall_clock_ms() - live.record.created_ms) / 1000
                                     if live else None),
                "pending_versions": sorted(self._records),
            }

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "model": self.model_name, "phase": self._phase,
                "live": self._live.describe() if self._live else None,
                "previous": self._previous.describe() if self._previous else None,
                "pending": [{"version": v, "delta_rows": r.delta_rows, "received": self._received[v],
                             "rejected": self._rejected.get(v)}
                            for v, r in sorted(self._records.items())],
                "deltas_without_record": {v: n for v, n in sorted(self._received.items())
                                          if v not in self._records},
                "history": list(self._history),
                "embeddings": self._store.stats(),
                "counters": dict(self.counters),
            }
