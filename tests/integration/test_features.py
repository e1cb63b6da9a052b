"""Point-in-time features, serving parity, and event-time edge cases, through the real job.

One crafted stream (simulated time from 2025-01-01, exact millisecond timestamps, Kafka record
timestamp = event ts) runs through one job on the integration stack; the module-scoped fixture
collects what the job committed, and each test asserts on it:

- `test_features_see_only_earlier_events`: every count of one impression is computed by hand from
  events before it; later events exist at +1 ms, +5 s, +1 min ..., so any leak changes a count.
- `test_serving_features_equal_training_features`: serving's OnlineFeatures, fed the online
  feature records published before t, gives the training example's features at t.
- `test_out_of_order_late_events_and_an_idle_partition`: out-of-order events within the watermark
  delay count as if in order, an event beyond the allowed lateness is dead-lettered, one within it
  is kept, and a partition that goes quiet does not stop the watermark. Every online record (user,
  item, (query, item)), label and qi_ctr_24h of step 1 equals an in-order oracle.
- `test_labels_without_request_id_go_to_the_users_latest_impression_of_the_item`: the fallback
  attribution of clicks and purchases without request_id, and that a label with one goes to its
  own request only.

The (query, item) CTR (qi_ctr_24h) is checked in the leak test, the parity test and the oracle
comparison: a click counts for the query of the impression it is attributed to, so a click
without request_id counts through the fallback attribution.

The stream is produced in three steps so that what the job sees does not depend on timing:

1. Before the job starts: every feature and out-of-order event, all on partition 0 (partition 1 is
   empty, so it goes idle and the watermark is partition 0's own: deterministic, in Kafka order).
   The fixture waits until the job's watermark has passed the end of this step (E1 - 30 s).
2. Late events on partition 0 (3 h and 40 min behind E1) and the only events partition 1 ever gets
   (just after E1); the fixture waits until the job's source has read them all (committed offsets).
3. Partition 0 only: more impressions, then a closing event two hours later. Partition 1 stays
   quiet, so without the idle timeout the watermark would stop at partition 1's last event.

Until step 3, keep-alive searches (see KeepAlive) keep partition 0 from going idle between steps.

Two more tests probe the window edges. Serving and training agree about an event exactly one
window length before t: both count it (`test_serving_agrees_with_training_at_the_window_start`).
Events in the impression's own millisecond are not counted, by the job nor by serving, while
the online records of that millisecond hold them (`test_same_millisecond_events_are_not_counted`).

The job runs on its own topics and model name (consumer group, transactional ids), so it shares
nothing with test_pipeline.py on the same stack.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field, fields

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from freshrank.config import TopicsConfig, load_config
from freshrank.stack import FlinkCluster, create_topics
from serving.online_features import OnlineFeatures

pytestmark = pytest.mark.integration

SECOND, MINUTE, HOUR = 1_000, 60_000, 3_600_000
T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z
CLICK_WINDOW_MS = 10_000
PURCHASE_WINDOW_MS = 60_000
PRIOR_CLICKS, PRIOR_IMPRESSIONS = 1.0, 20.0  # udfs.features: (clicks + 1) / (impressions + 20)
USER_FIELDS = tuple(f"u_{kind}_{window}" for kind in ("click", "cart", "purchase")
                    for window in ("5m", "1h", "24h"))
ITEM_FIELDS = ("i_impr_1h", "i_click_1h", "i_ctr_1h")
QUERY_ITEM_FIELDS = ("qi_impr_24h", "qi_click_24h", "qi_ctr_24h")  # online records (examples: qi_ctr_24h)
# (feature, event type counted, window); item impressions come from impression items.
USER_WINDOWS = tuple((f"u_{kind}_{window}", event_type, length)
                     for kind, event_type in (("click", "click"), ("cart", "add_to_cart"), ("purchase", "purchase"))
                     for window, length in (("5m", 5 * MINUTE), ("1h", HOUR), ("24h", 24 * HOUR)))

MODEL = "featuretest"
JOB_ENV = {
    # Own topics (every one of them) and model name (-> consumer group and transactional ids):
    # nothing shared with the other integration tests that use the same stack.
    "FRESHRANK_JOB__MODEL_NAME": MODEL,
    **{f"FRESHRANK_KAFKA__TOPICS__{name.upper()}": f"featuretest.{name}"
       for name in (f.name for f in fields(TopicsConfig)) if name != "partitions"},
    "FRESHRANK_JOB__CLICK_WINDOW_MS": str(CLICK_WINDOW_MS),
    "FRESHRANK_JOB__PURCHASE_WINDOW_MS": str(PURCHASE_WINDOW_MS),
    "FRESHRANK_JOB__CHECKPOINT_INTERVAL_MS": "2000",
    "FRESHRANK_JOB__IDLE_PARTITION_TIMEOUT_MS": "3000",
}

# Times of the scenario (see the builders below).
T_LEAK = T0 + 26 * HOUR        # the impression of the leak test (26 h of history before it)
T_EXPIRY = T_LEAK + 2 * HOUR   # serving parity where windows expired between the last event and t
T_ANON = T_LEAK + 3 * HOUR     # labels without request_id
T_OOO = T_LEAK + 4 * HOUR      # out-of-order events
T_PEER = T_LEAK + 5 * HOUR     # events in the same millisecond as an impression
T_EDGE = T_LEAK + 6 * HOUR     # events exactly one window length before an impression
E1 = T_LEAK + 7 * HOUR         # end of step 1


# ------------------------------------------------------------------------------ the stream
@dataclass
class Stream:
    """Crafted events in production order, each with the partition it goes to."""
    records: list[tuple[int, dict]] = field(default_factory=list)
    _n: int = 0

    def add(self, partition: int, type_: str, ts: int, user: str, *, event_id: str | None = None,
            **fields) -> dict:
        self._n += 1
        event = {"event_id": event_id or f"{user}-{type_}-{self._n}", "type": type_, "ts": ts,
                 "user_id": user, **fields}
        self.records.append((partition, event))
        return event

    def click(self, p, ts, user, item, request=None, **kw):
        return self.add(p, "click", ts, user, item_id=item,
                        **({"request_id": request} if request else {}), **kw)

    def cart(self, p, ts, user, item="x-cart", **kw):
        return self.add(p, "add_to_cart", ts, user, item_id=item, **kw)

    def purchase(self, p, ts, user, item="x-bought", request=None, **kw):
        # Without request_id (and an item the user was never shown) a purchase counts in the
        # user's features but makes no correction copy.
        return self.add(p, "purchase", ts, user, item_id=item, price=10.0,
                        **({"request_id": request} if request else {}), **kw)

    def impression(self, p, ts, user, event_id, request, items, query="running shoes"):
        return self.add(p, "impression", ts, user, event_id=event_id, request_id=request,
                        query=query,
                        items=[{"item_id": item, "position": pos, "price": 50.0 + pos,
                                "category": "shoes", "brand": "acme"}
                               for pos, item in enumerate(items, start=1)])

    def search(self, p, ts, user, request):
        return self.add(p, "search", ts, user, request_id=request, query="socks")

    def events(self) -> list[dict]:
        return [event for _, event in self.records]


def step1() -> Stream:
    """Everything on partition 0 (partition 1 stays empty until step 2)."""
    s, t = Stream(), T_LEAK
    # --- The leak test: user u-leak, items i-leak and i-unclicked, impression at t. ----------
    # Clicks of u-leak before t (items x-*, no request: they only count as user activity).
    for n, ago in enumerate((25 * HOUR, 23 * HOUR, 61 * MINUTE, 30 * MINUTE, 10 * MINUTE,
                             2 * MINUTE, 1)):
        s.click(0, t - ago, "u-leak", f"x-{n}")
    s.cart(0, t - 2 * HOUR, "u-leak")
    s.cart(0, t - 20 * MINUTE, "u-leak", category="boots")  # u-leak's recent category at t
    s.purchase(0, t - 26 * HOUR, "u-leak", category="coats")
    s.purchase(0, t - 3 * HOUR, "u-leak", category="hats")
    # Item i-leak before t, from other users.
    s.impression(0, t - 70 * MINUTE, "u-a", "e-a1", "r-a1", ["i-leak", "x-other"])
    s.click(0, t - 69 * MINUTE, "u-a", "i-leak", "r-a1")
    s.impression(0, t - 50 * MINUTE, "u-a", "e-a2", "r-a2", ["i-leak"])
    s.click(0, t - 45 * MINUTE, "u-a", "i-leak", "r-a2")
    s.impression(0, t - 20 * MINUTE, "u-b", "e-b1", "r-b1", ["i-leak"])
    s.impression(0, t - 1 * SECOND, "u-b", "e-b2", "r-b2", ["i-leak"])
    s.click(0, t - 1, "u-b", "i-leak", "r-b2")
    # (query, item) history of ("running shoes", i-leak) more than 1 h before t (outside the
    # item window, inside the 24 h one): an impression clicked without request_id (attributed to
    # it: counts), one with another query clicked through its request (counts for that query
    # only), a click without request_id by a user never shown i-leak (attributed to nothing:
    # counts nowhere), and an impression + click 25 h before t (outside the window).
    s.impression(0, t - 5 * HOUR, "u-e", "e-e1", "r-e1", ["i-leak"])
    s.click(0, t - 5 * HOUR + 3 * SECOND, "u-e", "i-leak")
    s.impression(0, t - 4 * HOUR, "u-e", "e-e2", "r-e2", ["i-leak"], query="trail shoes")
    s.click(0, t - 4 * HOUR + 2 * SECOND, "u-e", "i-leak", "r-e2")
    s.click(0, t - 3 * HOUR, "u-f", "i-leak")
    s.impression(0, t - 25 * HOUR, "u-e", "e-e0", "r-e0", ["i-leak"])
    s.click(0, t - 25 * HOUR + SECOND, "u-e", "i-leak", "r-e0")
    # The impression.
    s.impression(0, t, "u-leak", "e-leak", "r-leak", ["i-leak", "i-unclicked"])
    # Later events, each of which would change a count if it leaked.
    s.click(0, t + 1, "u-leak", "i-leak", "r-leak")  # also the click label of e-leak:1
    s.impression(0, t + 1, "u-c", "e-c1", "r-c1", ["i-leak", "i-unclicked"])
    s.click(0, t + 2, "u-c", "i-leak", "r-c1")
    s.cart(0, t + 5 * SECOND, "u-leak", category="socks")
    s.purchase(0, t + 10 * SECOND, "u-leak", category="socks")
    s.click(0, t + MINUTE, "u-leak", "x-later")
    s.impression(0, t + MINUTE, "u-c", "e-c2", "r-c2", ["i-leak", "i-unclicked"])
    s.click(0, t + MINUTE + 1, "u-c", "i-unclicked", "r-c2")
    s.click(0, t + 30 * MINUTE, "u-leak", "x-later")

    # --- Serving parity after quiet periods: user u-expiry and item i-expiry at T_EXPIRY. -------
    # The user's last event is 12 min before t (5 min window expired, 1 h and 24 h open); the
    # item's is 85 min before t (1 h window expired). No event of either lies in a window's
    # "aged out since the last record" zone [last - w, t - w), so serving can be exact.
    t2 = T_EXPIRY
    for ago in (80 * MINUTE, 40 * MINUTE, 12 * MINUTE):
        s.click(0, t2 - ago, "u-expiry", "x-exp")
    s.impression(0, t2 - 90 * MINUTE, "u-d", "e-d", "r-d", ["i-expiry"])
    s.click(0, t2 - 85 * MINUTE, "u-d", "i-expiry", "r-d")
    s.impression(0, t2, "u-expiry", "e-expiry", "r-expiry", ["i-expiry"])
    s.click(0, t2 + 3 * SECOND, "u-expiry", "i-expiry", "r-expiry")

    # --- Labels without request_id (click window 10 s, purchase window 60 s). ------------------
    a = T_ANON
    # u-anon is shown i-anon-a twice (two requests) and i-anon-b once; clicks without request_id
    # go to the latest impression of the item before them: i-anon-a to e-anon2, i-anon-b to e-anon1.
    s.impression(0, a, "u-anon", "e-anon1", "r-anon1", ["i-anon-a", "i-anon-b"])
    s.impression(0, a + 2 * SECOND, "u-anon", "e-anon2", "r-anon2", ["i-anon-a"])
    s.click(0, a + 4 * SECOND, "u-anon", "i-anon-a")
    s.click(0, a + 5 * SECOND, "u-anon", "i-anon-b")
    # A purchase without request_id 30 s later: within the purchase window of e-anon1's i-anon-b.
    s.purchase(0, a + 30 * SECOND, "u-anon", "i-anon-b")
    # Another user was shown i-anon-c; u-anon's click on it belongs to no impression of u-anon.
    s.impression(0, a + 1 * SECOND, "u-other", "e-other", "r-other", ["i-anon-c"])
    s.click(0, a + 6 * SECOND, "u-anon", "i-anon-c")
    # Beyond the click window (11 s after the only impression): no label.
    s.impression(0, a + MINUTE, "u-anon", "e-anon3", "r-anon3", ["i-anon-d"])
    s.click(0, a + MINUTE + 11 * SECOND, "u-anon", "i-anon-d")
    # With a request_id the click is its request's, even when a later impression of the item
    # exists: e-both1 gets the label, e-both2 (the latest) does not, and nothing gets two.
    s.impression(0, a, "u-both", "e-both1", "r-both1", ["i-both"])
    s.impression(0, a + 2 * SECOND, "u-both", "e-both2", "r-both2", ["i-both"])
    s.click(0, a + 3 * SECOND, "u-both", "i-both", "r-both1")
    s.click(0, a + 4 * SECOND, "u-both", "i-both", "r-both1")  # a double click: still one positive
    s.purchase(0, a + 20 * SECOND, "u-both", "i-both", request="r-both1")
    # A purchase through an impression that was never clicked: a purchase is a post-click
    # conversion, so it corrects no example.
    s.impression(0, a, "u-noclick", "e-noclick", "r-noclick", ["i-noclick"])
    s.purchase(0, a + 20 * SECOND, "u-noclick", "i-noclick", request="r-noclick")

    # --- Out of order within the watermark delay (5 s), produced in this order. --------------
    s3 = T_OOO
    s.impression(0, s3, "u-ooo", "e-ooo1", "r-ooo1", ["i-ooo-1", "i-ooo-2"])
    s.click(0, s3 - 3 * SECOND, "u-ooo", "x-ooo")            # 3 s behind the newest
    s.click(0, s3 + 2 * SECOND, "u-ooo", "i-ooo-1", "r-ooo1")  # label of e-ooo1:1
    s.click(0, s3 - 1 * SECOND, "u-ooo", "x-ooo")            # 3 s behind
    s.impression(0, s3 + 1 * SECOND, "u-ooo", "e-ooo2", "r-ooo2", ["i-ooo-1"])  # 1 s behind
    s.click(0, s3 + 4 * SECOND, "u-ooo", "x-ooo")
    s.cart(0, s3 + 500, "u-ooo")                             # 3.5 s behind

    # --- Probes of the window edges (the two tests at the end). ----------------------------
    s.click(0, T_PEER, "u-peer", "x-peer")
    s.impression(0, T_PEER, "u-peer", "e-peer", "r-peer", ["i-peer"])
    s.impression(0, T_PEER, "u-peer2", "e-peer2", "r-peer2", ["i-peer"])
    s.click(0, T_EDGE - HOUR, "u-edge", "x-edge")
    s.click(0, T_EDGE - 5 * MINUTE, "u-edge", "x-edge")
    s.impression(0, T_EDGE - HOUR, "u-edge2", "e-edge2", "r-edge2", ["i-edge"])
    s.impression(0, T_EDGE, "u-edge", "e-edge", "r-edge", ["i-edge"])

    # --- The end of step 1: the fixture waits for u-marker's record at E1 - 30 s. ------------
    s.search(0, E1 - 30 * SECOND, "u-marker", "r-m1")
    s.search(0, E1, "u-marker", "r-m2")
    return s


def step2() -> Stream:
    """Late events (partition 0) and the only events partition 1 ever gets."""
    s = Stream()
    # The watermark is now at least E1 - 30 s and at most E1 + 1 min - 5 s (partition 1's, once
    # these are read): this one is more than 1 h behind it ...
    s.click(0, E1 - 3 * HOUR, "u-too-late", "x-late", event_id="e-too-late")
    # ... and this one 40-41 min behind it: within the allowed lateness, moved to the watermark.
    s.click(0, E1 - 40 * MINUTE, "u-late", "x-late", event_id="e-late-click")
    s.impression(1, E1 + MINUTE, "u-idle", "e-idle", "r-idle", ["i-idle-1", "i-idle-2"])
    s.click(1, E1 + MINUTE + 2 * SECOND, "u-idle", "i-idle-1", "r-idle")
    return s


def step3() -> Stream:
    """Partition 0 only; partition 1 has gone quiet."""
    s = Stream()
    s.impression(0, E1 + 3 * MINUTE, "u-busy", "e-busy", "r-busy", ["i-busy"])
    # 10 min after E1: the moved late click (at most E1 + 1 min - 5 s) is outside the 5 min window
    # and inside the 1 h one, as the original ts (E1 - 40 min) would be.
    s.impression(0, E1 + 10 * MINUTE, "u-late", "e-late-impr", "r-late", ["i-late"])
    s.search(0, E1 + 2 * HOUR, "u-closing", "r-closing")  # moves the watermark past every window
    return s


# ------------------------------------------------------------------------------ oracles
def user_state(events: list[dict], user: str, ts: int) -> dict[str, float]:
    """What the job publishes after an event of `user` at `ts`: counts over [ts - w, ts]."""
    mine = [e for e in events if e["user_id"] == user]
    return {name: float(sum(1 for e in mine if e["type"] == kind and ts - w <= e["ts"] <= ts))
            for name, kind, w in USER_WINDOWS}


def item_rows(events: list[dict]) -> list[tuple[str, int, str]]:
    """(item, ts, 'impr'|'click') for every impressed item and every click with an item."""
    rows = []
    for e in events:
        if e["type"] == "impression":
            rows += [(i["item_id"], e["ts"], "impr") for i in e["items"]]
        elif e["type"] == "click":
            rows.append((e["item_id"], e["ts"], "click"))
    return rows


def item_state(rows, item: str, ts: int) -> dict[str, float]:
    """What the job publishes after an event of `item` at `ts`: counts over [ts - 1 h, ts]."""
    inside = [kind for i, at, kind in rows if i == item and ts - HOUR <= at <= ts]
    impr, clicks = float(inside.count("impr")), float(inside.count("click"))
    return {"i_impr_1h": impr, "i_click_1h": clicks,
            "i_ctr_1h": (clicks + PRIOR_CLICKS) / (impr + PRIOR_IMPRESSIONS)}


def attributed_to(events: list[dict], label: dict) -> list[tuple[dict, dict]]:
    """The (impression, item) pairs a click or purchase is attributed to (docs/design.md).

    With a request_id: every impression of that request showing the item, at most one window
    before the label. Without: the same user's latest impression of the item at or before the
    label, if it is at most one window before it. (The scenario has no ties to break.)
    """
    window = CLICK_WINDOW_MS if label["type"] == "click" else PURCHASE_WINDOW_MS
    shown = [(e, i) for e in events if e["type"] == "impression" for i in e["items"]
             if i["item_id"] == label["item_id"] and e["ts"] <= label["ts"]]
    if label.get("request_id"):
        return [(e, i) for e, i in shown if e["request_id"] == label["request_id"]
                and label["ts"] - e["ts"] <= window]
    mine = [(e, i) for e, i in shown if e["user_id"] == label["user_id"]]
    if not mine:
        return []
    latest = max(mine, key=lambda pair: pair[0]["ts"])
    return [latest] if label["ts"] - latest[0]["ts"] <= window else []


def labelled(events: list[dict], kind: str) -> set[str]:
    """Example ids ('<impression event_id>:<position>') that a click or purchase is attributed to."""
    return {f"{e['event_id']}:{i['position']}" for label in events if label["type"] == kind
            for e, i in attributed_to(events, label)}


def click_label(events: list[dict], impression: dict, item: dict) -> int:
    return int(f"{impression['event_id']}:{item['position']}" in labelled(events, "click"))


def corrected(events: list[dict]) -> set[str]:
    """Example ids that get a purchase correction: a purchase is attributed to them and they were
    clicked (a purchase is a post-click conversion, docs/design.md)."""
    return labelled(events, "purchase") & labelled(events, "click")


def expected_example_ids(events: list[dict]) -> set[str]:
    return {f"{e['event_id']}:{i['position']}" for e in events if e["type"] == "impression"
            for i in e["items"]} | {f"{ex}:purchase_correction" for ex in corrected(events)}


def query_item_rows(events: list[dict]) -> list[tuple[str, str, int, str]]:
    """(query, item, ts, 'impr'|'click'): every impressed item under its page's query, and every
    click attributed to an impression, under that impression's query, at the click's time."""
    rows = []
    for e in events:
        if e["type"] == "impression":
            rows += [(e["query"], i["item_id"], e["ts"], "impr") for i in e["items"]]
        elif e["type"] == "click":
            rows += [(impression["query"], e["item_id"], e["ts"], "click")
                     for impression, _ in attributed_to(events, e)[:1]]
    return rows


def query_item_state(rows, query: str, item: str, ts: int, strictly_before: bool = False) -> dict[str, float]:
    """What the job publishes after an event of (query, item) at `ts`: counts over [ts - 24 h, ts];
    with strictly_before, what an example at `ts` holds: counts over [ts - 24 h, ts)."""
    inside = [kind for q, i, at, kind in rows if (q, i) == (query, item) and ts - 24 * HOUR <= at
              and (at < ts if strictly_before else at <= ts)]
    impr, clicks = float(inside.count("impr")), float(inside.count("click"))
    return {"qi_impr_24h": impr, "qi_click_24h": clicks,
            "qi_ctr_24h": (clicks + PRIOR_CLICKS) / (impr + PRIOR_IMPRESSIONS)}


# ------------------------------------------------------------------------------ Kafka helpers
class TopicReader:
    """Everything committed to a topic so far, read from its start by one consumer."""

    def __init__(self, bootstrap: str, topic: str, committed_only: bool = True):
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"featuretest-{time.monotonic_ns()}",
                                  "enable.auto.commit": False,
                                  "isolation.level": "read_committed" if committed_only else "read_uncommitted"})
        partitions = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        self.records: list[tuple[str | None, bytes | None]] = []  # (key, value), in topic order

    def drain(self) -> list[tuple[str | None, bytes | None]]:
        while msgs := self.consumer.consume(500, timeout=0.5):
            for m in msgs:
                if m.error() is None:
                    self.records.append((m.key().decode() if m.key() is not None else None, m.value()))
        return self.records

    def json(self) -> list[tuple[str | None, dict]]:
        return [(k, json.loads(v)) for k, v in self.drain() if v is not None]

    def close(self) -> None:
        self.consumer.close()


class EventProducer:
    """Produces crafted events: key = user_id as in production, an explicit partition (so that the
    scenario does not depend on the client's partitioner), Kafka timestamp = event time (what the
    job's source watermark follows)."""

    def __init__(self, bootstrap: str, topic: str):
        self.topic = topic
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
        self.failures: list = []

    def send(self, partition: int, event: dict) -> None:
        self.producer.produce(self.topic, json.dumps(event).encode(), key=event["user_id"].encode(),
                              partition=partition, timestamp=event["ts"],
                              on_delivery=lambda err, _m: err and self.failures.append(err))

    def produce(self, stream: Stream) -> None:
        for partition, event in stream.records:
            self.send(partition, event)
        self.flush()

    def flush(self) -> None:
        self.producer.flush(30)
        assert not self.failures, self.failures[:3]


class KeepAlive:
    """Searches on partition 0, one every 250 ms, at E1, E1 + 1 ms, E1 + 2 ms, ... (one user each).

    While the fixture steers the job between steps, partition 0 never goes idle: only partition 1
    does, as the idle-partition test intends. If every partition went idle, the resumption could
    lose impressions: the job's item-feature OVER window and label joins read impressions through
    three more OVER steps than clicks, and when a fully idle source resumes, the short branch can
    advance those operators' watermark while the long one is still marked idle (see the report).
    Keep-alives stay far below step 3 (E1 + 3 min) and move no window of the scenario.
    """

    def __init__(self, bootstrap: str, topic: str):
        self.producer = EventProducer(bootstrap, topic)
        self.sent = 0
        self.error: Exception | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="keepalive", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stop.wait(0.25):
                self.send_one()
        except Exception as error:  # reported by close()
            self.error = error

    def send_one(self) -> None:
        n, self.sent = self.sent, self.sent + 1
        self.producer.send(0, {"event_id": f"keepalive-{n}", "type": "search", "ts": E1 + n,
                               "user_id": f"u-keepalive-{n}", "request_id": f"r-keepalive-{n}",
                               "query": "keepalive"})
        self.producer.flush()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        assert self.error is None, f"keep-alives failed: {self.error!r}"


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"featuretest-{time.monotonic_ns()}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    finally:
        consumer.close()


def source_has_read(bootstrap: str, group: str, topic: str, ends: dict[int, int]) -> bool:
    """True when the job's source committed (on a completed checkpoint) the offsets `ends`."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in ends], timeout=10)
        return all(tp.offset >= ends[tp.partition] for tp in committed)
    finally:
        consumer.close()


def job_state(cluster: FlinkCluster, job_id: str, bootstrap: str, topic: str) -> str:
    """What the job was doing, for a failure message: a stuck watermark or stuck checkpoints?"""
    try:
        lines = [f"job {cluster.rest(f'/jobs/{job_id}')['state']}",
                 f"checkpoints {cluster.rest(f'/jobs/{job_id}/checkpoints')['counts']}"]
        for vertex in cluster.rest(f"/jobs/{job_id}")["vertices"]:
            marks = cluster.rest(f"/jobs/{job_id}/vertices/{vertex['id']}/watermarks")
            lines.append(f"watermark {[m['value'] for m in marks]} {vertex['name'][:50]}")
            base = f"/jobs/{job_id}/vertices/{vertex['id']}/metrics"
            wanted = [m["id"] for m in cluster.rest(base) if ("OverAggregate" in m["id"] or "IntervalJoin" in m["id"])
                      and m["id"].endswith((".numRecordsIn", ".numRecordsOut", ".numLateRecordsDropped"))]
            if wanted:
                values = cluster.rest(base + "?get=" + ",".join(wanted))
                lines.append("  " + ", ".join(f"{m['id']}={m['value']}" for m in values))
        lines.append("user records: " + str([v for k, v in TopicReader(bootstrap, topic.replace(
            "training_examples", "features_user"), committed_only=False).json()
            if k in ("u-late", "u-idle", "u-busy", "u-marker")]))
        lines.append("item records: " + str([v for k, v in TopicReader(bootstrap, topic.replace(
            "training_examples", "features_item"), committed_only=False).json()
            if k in ("i-busy", "i-idle-1", "i-idle-2", "i-late")]))
        reader = TopicReader(bootstrap, topic, committed_only=False)
        ids = sorted(json.loads(v)["example_id"] for _, v in reader.drain() if v is not None)
        reader.close()
        lines.append(f"examples written, committed or not: {ids}")
        return "\n".join(lines)
    except Exception as error:  # diagnostics must not hide the real failure
        return f"(no diagnostics: {error!r})"


def wait_until(check, timeout_s: float, every_s: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every_s)
    return False


# ------------------------------------------------------------------------------ the one job run
@dataclass
class Run:
    events: list[dict]  # every crafted event that reached Kafka
    step1: list[dict]  # those of step 1 (in order on partition 0, or out of order within the delay)
    examples: dict[str, list[dict]]  # example_id -> training examples (a list: exactly once is checked)
    user_records: list[tuple[str, dict]]  # (user_id, value) in topic order
    item_records: list[tuple[str, dict]]
    query_item_records: list[tuple[str, dict]]  # (query + tab + item_id, value)
    dead_letters: list[dict]
    missing: set[str]  # expected example ids that never came
    diagnostics: str  # the job's state when not everything came

    def example(self, example_id: str) -> dict:
        found = self.examples.get(example_id, [])
        assert len(found) == 1, f"{example_id}: {len(found)} examples (expected exactly one)"
        return found[0]


@pytest.fixture(scope="module")
def run(stack):
    with pytest.MonkeyPatch.context() as mp:
        for key, value in JOB_ENV.items():
            mp.setenv(key, value)
        cfg = load_config()  # the stack's settings (from stack_env) plus this module's
        bootstrap, topics = cfg.kafka.bootstrap, cfg.kafka.topics
        create_topics(cfg, log=lambda *_: None)
        readers = {name: TopicReader(bootstrap, getattr(topics, name))
                   for name in ("training_examples", "features_user", "features_item",
                                "features_query_item", "dlq")}
        cluster = FlinkCluster(cfg)
        job_id = keepalive = None
        try:
            s1, s2, s3 = step1(), step2(), step3()
            producer = EventProducer(bootstrap, topics.events)
            producer.produce(s1)
            keepalive = KeepAlive(bootstrap, topics.events)
            job_id = cluster.submit([], log=lambda *_: None)

            # Step 1 done once u-marker's record at E1 - 30 s is out: the watermark passed it.
            marker = E1 - 30 * SECOND
            if not wait_until(lambda: any(k == "u-marker" and v["ts"] == marker
                                          for k, v in readers["features_user"].json()), 300):
                pytest.fail(f"the job's watermark never reached the end of step 1 "
                            f"(job state: {cluster.rest(f'/jobs/{job_id}')['state']})")
            producer.produce(s2)
            ends = end_offsets(bootstrap, topics.events)
            if not wait_until(lambda: source_has_read(bootstrap, f"freshrank-job-{MODEL}", topics.events, ends),
                              120, every_s=0.5):
                pytest.fail("the job's source did not read (and checkpoint) the records of step 2")
            keepalive.close()
            producer.produce(s3)

            events = s1.events() + s2.events() + s3.events()
            expected = expected_example_ids(events)

            def complete() -> bool:
                have = {json.loads(v)["example_id"] for _, v in readers["training_examples"].drain()}
                return expected <= have and len(readers["dlq"].drain()) >= 1
            diagnostics = "" if wait_until(complete, 180) else \
                job_state(cluster, job_id, bootstrap, topics.training_examples)  # the tests say what is missing
            examples: dict[str, list[dict]] = {}
            for _, value in readers["training_examples"].json():
                examples.setdefault(value["example_id"], []).append(value)
            yield Run(events=events, step1=s1.events(), examples=examples,
                      user_records=readers["features_user"].json(),
                      item_records=readers["features_item"].json(),
                      query_item_records=readers["features_query_item"].json(),
                      dead_letters=[v for _, v in readers["dlq"].json()],
                      missing=expected - set(examples), diagnostics=diagnostics)
        finally:
            if keepalive is not None:
                keepalive.close()
            for reader in readers.values():
                reader.close()
            if job_id is not None:
                try:
                    cluster.cancel(job_id)
                except Exception:  # the stack is torn down at the end of the session anyway
                    pass


def serving_at(run: Run, t: int) -> OnlineFeatures:
    """Serving's online features as they stand at t: every record published before t, applied in
    topic order, as serving's feature follower applies them (the topics are compacted: a key's
    older records may be gone in production, which OnlineFeatures tolerates)."""
    features = OnlineFeatures()
    for user, value in run.user_records:
        if value["ts"] < t:
            features.apply_user(user, value)
    for item, value in run.item_records:
        if value["ts"] < t:
            features.apply_item(item, value)
    for key, value in run.query_item_records:
        if value["ts"] < t:
            features.apply_query_item(key, value)
    return features


def user_features(example: dict) -> dict[str, float]:
    return {f: example[f] for f in USER_FIELDS}


def clicks_only(click_5m: float, click_1h: float, click_24h: float) -> dict[str, float]:
    """The user features of a user with clicks but no cart or purchase in the last 24 h."""
    return {**{f: 0.0 for f in USER_FIELDS}, "u_click_5m": click_5m, "u_click_1h": click_1h,
            "u_click_24h": click_24h}


def item_features(example: dict) -> dict[str, float]:
    return {f: example[f] for f in ITEM_FIELDS}


def online_features_at(serving: OnlineFeatures, example: dict, t: int) -> dict[str, float]:
    """As serving.ranker.Ranker.examples builds a candidate's features for a request at t."""
    return {**serving.user_features(example["user_id"], t), **serving.item_features(example["item_id"], t),
            **serving.query_item_features(example["query"], example["item_id"], t)}


def training_features(example: dict) -> dict[str, float | str]:
    return {**user_features(example), "u_last_category": example["u_last_category"],
            **item_features(example), "qi_ctr_24h": example["qi_ctr_24h"]}


# ------------------------------------------------------------------------------ the tests
def test_features_see_only_earlier_events(run):
    """The example of (impression at t, item) counts exactly the events before t.

    u-leak clicked at t-25h, t-23h, t-61min, t-30min, t-10min, t-2min and t-1ms, added to the
    cart at t-2h and t-20min, bought at t-26h and t-3h; i-leak was impressed at t-70min, t-50min,
    t-20min, t-1s and clicked at t-69min, t-45min, t-1ms. After t there are clicks of the user at
    t+1ms, t+1min, t+30min, a cart at t+5s, a purchase at t+10s, impressions of both items at
    t+1ms and t+1min and clicks on them at t+2ms and t+1min+1ms: any of them leaking raises a
    count. No event lies exactly one window length (or one window length + 1 ms) before t.
    Categories: the cart at t-20min is in "boots", the purchases in "coats" and "hats", the cart
    and purchase after t in "socks"; the clicks have none.

    ("running shoes", i-leak) was also impressed at t-5h (clicked 3 s later without request_id:
    attributed to it) and t-25h; i-leak was shown for "trail shoes" at t-4h (clicked through its
    request) and clicked without request_id by u-f, who was never shown it.
    """
    leak = run.example("e-leak:1")
    assert user_features(leak) == {
        "u_click_5m": 2.0,      # t-2min, t-1ms
        "u_click_1h": 4.0,      # + t-30min, t-10min
        "u_click_24h": 6.0,     # + t-23h, t-61min
        "u_cart_5m": 0.0,
        "u_cart_1h": 1.0,       # t-20min
        "u_cart_24h": 2.0,      # + t-2h
        "u_purchase_5m": 0.0,
        "u_purchase_1h": 0.0,
        "u_purchase_24h": 1.0,  # t-3h
    }
    # The latest cart or purchase with a category before t (clicks without one are skipped);
    # not the carts and purchases in "socks" after t.
    assert leak["u_last_category"] == "boots"
    assert item_features(leak) == {
        "i_impr_1h": 3.0,        # t-50min, t-20min, t-1s
        "i_click_1h": 2.0,       # t-45min, t-1ms
        "i_ctr_1h": 3.0 / 23.0,  # (2 + 1) / (3 + 20)
    }
    # (query, item) over 24 h: impressions t-5h, t-70min, t-50min, t-20min, t-1s; attributed
    # clicks t-5h+3s (no request_id) and t-1ms. Not the clicks at t-69min and t-45min (a minute
    # and more after their impressions, beyond the 10 s click window: no label, no query), not
    # "trail shoes", not u-f's click, not t-25h, and nothing at or after t.
    assert leak["qi_ctr_24h"] == 3.0 / 25.0  # (2 + 1) / (5 + 20)
    unclicked = run.example("e-leak:2")
    assert user_features(unclicked) == user_features(leak)
    assert item_features(unclicked) == {"i_impr_1h": 0.0, "i_click_1h": 0.0, "i_ctr_1h": 1.0 / 20.0}
    assert unclicked["qi_ctr_24h"] == 1.0 / 20.0
    assert run.example("e-e2:1")["qi_ctr_24h"] == 1.0 / 20.0  # "trail shoes": nothing before
    # Labels: i-leak was clicked through request r-leak 1 ms later; i-unclicked never was.
    assert (leak["click"], leak["purchase"], leak["kind"]) == (1, 0, "impression")
    assert (unclicked["click"], unclicked["purchase"], unclicked["kind"]) == (0, 0, "impression")
    assert (leak["ts"], leak["user_id"], leak["item_id"], leak["position"]) == (T_LEAK, "u-leak", "i-leak", 1)

    # One millisecond later the impression at t does count: i-unclicked impressed again at t+1ms.
    c1 = run.example("e-c1:2")
    assert item_features(c1) == {"i_impr_1h": 1.0, "i_click_1h": 0.0, "i_ctr_1h": 1.0 / 21.0}


def test_serving_features_equal_training_features(run):
    """Serving's features for (user, item, t) equal those of the training example at t.

    Serving is fed, in topic order, every online feature record published before t (ts < t), and
    asked for the features at t exactly as serving.ranker does. Serving holds one record per key
    and can only drop whole windows that ended, so equality holds when no counted event ages out
    between the last record and t (no event in [last - w, t - w) for a window w); the stream keeps
    that zone empty. Cases: u-leak / i-leak (last records 1 ms before t, every window open),
    i-unclicked (no record at all: prior), u-expiry (last event 12 min before t: the 5 min window
    ended, the 1 h and 24 h ones hold), i-expiry (last event 85 min before t: read as the prior),
    u-ooo / i-ooo-1 at both out-of-order impressions.
    """
    cases = [("e-leak", 1), ("e-leak", 2), ("e-expiry", 1), ("e-ooo1", 1), ("e-ooo1", 2), ("e-ooo2", 1),
             ("e-anon2", 1), ("e-both2", 1)]
    for event_id, position in cases:
        example = run.example(f"{event_id}:{position}")
        t = example["ts"]
        assert online_features_at(serving_at(run, t), example, t) == training_features(example), \
            f"{event_id}:{position}"

    # The cases exercise what they claim: the expiry example has an expired 5 min window and an
    # item read as the prior, with non-zero 1 h and 24 h counts.
    expiry = run.example("e-expiry:1")
    assert user_features(expiry) == clicks_only(0.0, 2.0, 3.0)
    assert item_features(expiry) == {"i_impr_1h": 0.0, "i_click_1h": 0.0, "i_ctr_1h": 1.0 / 20.0}
    assert expiry["click"] == 1
    # (query, item) cases: i-leak's pair counts a click without request_id (t-5h+3s) and its
    # window is open (not the prior); i-expiry's pair outlives the item's 1 h window (its
    # impression 90 min before t counts, its click 5 min after it was not attributed).
    assert run.example("e-leak:1")["qi_ctr_24h"] == 3.0 / 25.0
    assert expiry["qi_ctr_24h"] == 1.0 / 21.0


def test_out_of_order_late_events_and_an_idle_partition(run):
    """Out-of-order within the delay counts as in order; too late -> DLQ; late -> kept; idle ok."""
    # Every example came, exactly once (a missing one is most likely a stuck watermark).
    assert not run.missing, f"examples never emitted: {sorted(run.missing)}\n{run.diagnostics}"
    assert all(len(v) == 1 for v in run.examples.values()), \
        {k: len(v) for k, v in run.examples.items() if len(v) != 1}

    # Out of order by up to 3.5 s (production order: impression s, clicks s-3s, s+2s, s-1s,
    # impression s+1s, click s+4s, cart s+0.5s): counted as if they had come in time order.
    ooo1, ooo1b, ooo2 = run.example("e-ooo1:1"), run.example("e-ooo1:2"), run.example("e-ooo2:1")
    assert user_features(ooo1) == user_features(ooo1b) == clicks_only(2.0, 2.0, 2.0)
    assert user_features(ooo2) == {  # produced after the clicks at s+2s and s+4s, before the cart
        **clicks_only(2.0, 2.0, 2.0), "u_cart_5m": 1.0, "u_cart_1h": 1.0, "u_cart_24h": 1.0}
    assert item_features(ooo1) == {"i_impr_1h": 0.0, "i_click_1h": 0.0, "i_ctr_1h": 1.0 / 20.0}
    assert item_features(ooo2) == {"i_impr_1h": 1.0, "i_click_1h": 0.0, "i_ctr_1h": 1.0 / 21.0}
    assert (ooo1["click"], ooo1b["click"], ooo2["click"]) == (1, 0, 0)

    # The online feature streams of all of step 1 (in order on one partition, or out of order
    # within the delay) equal the in-order computation, record by record.
    step1_events = run.step1
    users = {e["user_id"] for e in step1_events}
    got = sorted((u, v["ts"], tuple(v[f] for f in USER_FIELDS)) for u, v in run.user_records if u in users)
    want = sorted((e["user_id"], e["ts"], tuple(user_state(step1_events, e["user_id"], e["ts"])[f]
                                                for f in USER_FIELDS)) for e in step1_events)
    assert got == want
    rows = item_rows(step1_events)
    items = {r[0] for r in rows}
    got = sorted((i, v["ts"], tuple(v[f] for f in ITEM_FIELDS)) for i, v in run.item_records if i in items)
    want = sorted((i, at, tuple(item_state(rows, i, at)[f] for f in ITEM_FIELDS)) for i, at, _ in rows)
    assert got == want
    qi_rows = query_item_rows(step1_events)
    pairs = {(q, i) for q, i, _, _ in qi_rows}
    assert all(key == f"{v['query']}\t{v['item_id']}" for key, v in run.query_item_records)
    got = sorted((v["query"], v["item_id"], v["ts"], tuple(v[f] for f in QUERY_ITEM_FIELDS))
                 for _, v in run.query_item_records if (v["query"], v["item_id"]) in pairs)
    want = sorted((q, i, at, tuple(query_item_state(qi_rows, q, i, at)[f] for f in QUERY_ITEM_FIELDS))
                  for q, i, at, _ in qi_rows)
    assert got == want
    # And every label and (query, item) CTR of step 1 is the in-order one (the CTR: the state
    # strictly before the impression's millisecond).
    for e in step1_events:
        if e["type"] == "impression":
            for item in e["items"]:
                example = run.example(f"{e['event_id']}:{item['position']}")
                assert example["click"] == click_label(run.events, e, item), (e["event_id"], item["item_id"])
                state = query_item_state(qi_rows, e["query"], item["item_id"], e["ts"], strictly_before=True)
                assert example["qi_ctr_24h"] == state["qi_ctr_24h"], (e["event_id"], item["item_id"])
    corrections = {k.removesuffix(":purchase_correction") for k in run.examples if k.endswith(":purchase_correction")}
    assert corrections == corrected(run.events)

    # More than the allowed lateness (1 h) behind the watermark: dead-lettered, LATE_TS.
    assert len(run.dead_letters) == 1, run.dead_letters
    dead = run.dead_letters[0]
    assert dead["reason"] == "LATE_TS" and json.loads(dead["payload"])["event_id"] == "e-too-late"
    assert dead["source_partition"] == 0
    assert not [v for u, v in run.user_records if u == "u-too-late"]
    # Behind the watermark but within the allowed lateness: kept (moved to the watermark), so it
    # is in the user's online features and counts for the user's next impression.
    late = [v for u, v in run.user_records if u == "u-late" and v["ts"] == E1 - 40 * MINUTE]
    assert len(late) == 1 and late[0]["u_click_1h"] == 1.0 and late[0]["u_click_24h"] == 1.0
    assert user_features(run.example("e-late-impr:1")) == clicks_only(0.0, 1.0, 1.0)

    # Partition 1 got its last event at E1+1min+2s; then only partition 0 had events. The
    # impressions after that point (on both partitions) were emitted, negatives included, so the
    # watermark went on without partition 1.
    assert (run.example("e-idle:1")["click"], run.example("e-idle:2")["click"]) == (1, 0)
    assert run.example("e-busy:1")["click"] == 0


def test_labels_without_request_id_go_to_the_users_latest_impression_of_the_item(run):
    """A click or purchase without request_id is attributed to the same user's latest impression
    of the item within the attribution window before it: exactly one impression gets the label.
    One with a request_id goes to its request's impression only, even when a later one exists."""
    def labels(example_id: str) -> tuple[int, int, str]:
        example = run.example(example_id)
        return example["click"], example["purchase"], example["kind"]

    # i-anon-a was shown in e-anon1 and again in e-anon2 (2 s later): the click at +4 s is e-anon2's.
    assert labels("e-anon1:1") == (0, 0, "impression")
    assert labels("e-anon2:1") == (1, 0, "impression")
    # i-anon-b's click (+5 s) and purchase (+30 s) both go to e-anon1, its only impression.
    assert labels("e-anon1:2") == (1, 0, "impression")
    assert labels("e-anon1:2:purchase_correction") == (1, 1, "purchase_correction")
    # A click on an item only another user was shown labels nothing; nor one after the window.
    assert labels("e-other:1") == (0, 0, "impression")
    assert labels("e-anon3:1") == (0, 0, "impression")
    # With a request_id: e-both1 (its request) gets the click and the purchase, e-both2 nothing.
    assert labels("e-both1:1") == (1, 0, "impression")
    assert len(run.examples["e-both1:1"]) == 1  # its double click (+4 s) made no second positive
    assert labels("e-both1:1:purchase_correction") == (1, 1, "purchase_correction")
    assert labels("e-both2:1") == (0, 0, "impression")
    # A purchase of an impression never clicked: its example stays as it left, with no correction.
    assert labels("e-noclick:1") == (0, 0, "impression")
    corrections = {k for k in run.examples if k.endswith(":purchase_correction")}
    assert corrections == {"e-anon1:2:purchase_correction", "e-both1:1:purchase_correction"}
    # The attributed click without request_id also counts for the (query, item) pair, at its own
    # time: the pair's online record after it holds the click.
    records = [v for k, v in run.query_item_records if k == "running shoes\ti-anon-a"]
    assert [(v["ts"], v["qi_impr_24h"], v["qi_click_24h"]) for v in records] == [
        (T_ANON, 1.0, 0.0), (T_ANON + 2 * SECOND, 2.0, 0.0), (T_ANON + 4 * SECOND, 2.0, 1.0)]


# ------------------------------------------------------------------------------ window edges
def test_same_millisecond_events_are_not_counted(run):
    """docs/contracts.md: counts over windows ending strictly before ts.

    u-peer clicked at T_PEER and was shown i-peer at T_PEER; u-peer2 was shown i-peer at T_PEER
    too. Neither event is strictly before the impression, so neither counts, though a RANGE frame
    ending at CURRENT ROW holds every row of that millisecond (sliding_counts keeps them apart).
    The same for e-c1 (t+1ms): u-leak's click on i-leak at t+1ms is not counted. Serving (fed the
    records before T_PEER) agrees, and the online records of that millisecond count all of it,
    for requests after T_PEER.
    """
    peer, peer2 = run.example("e-peer:1"), run.example("e-peer2:1")
    assert (peer["u_click_5m"], peer["u_click_1h"], peer["u_click_24h"]) == (0.0, 0.0, 0.0)
    assert item_features(peer) == item_features(peer2) == {
        "i_impr_1h": 0.0, "i_click_1h": 0.0, "i_ctr_1h": 1.0 / 20.0}
    assert peer["qi_ctr_24h"] == peer2["qi_ctr_24h"] == 1.0 / 20.0
    assert run.example("e-c1:1")["i_click_1h"] == 2.0  # t-45min, t-1ms; not the click at t+1ms
    serving = serving_at(run, T_PEER)
    for example in (peer, peer2):
        assert online_features_at(serving, example, T_PEER) == training_features(example)
    assert [v["u_click_5m"] for u, v in run.user_records if u == "u-peer"] == [1.0, 1.0]
    assert [v["i_impr_1h"] for i, v in run.item_records if i == "i-peer"] == [2.0, 2.0]
    assert [v["qi_impr_24h"] for k, v in run.query_item_records if k == "running shoes\ti-peer"] == [2.0, 2.0]


def test_serving_agrees_with_training_at_the_window_start(run):
    """u-edge clicked exactly 1 h and 5 min before T_EDGE; i-edge was impressed exactly 1 h before.

    The job counts them (RANGE ... PRECEDING includes rows exactly w earlier: u_click_5m = 1,
    i_impr_1h = 1); serving, whose latest record of the user is exactly 5 min old and of the item
    exactly 1 h old, keeps both windows (a window ends only when the record is older than it).
    """
    example = run.example("e-edge:1")
    assert (example["u_click_5m"], example["u_click_1h"], example["i_impr_1h"]) == (1.0, 2.0, 1.0)
    assert example["qi_ctr_24h"] == 1.0 / 21.0  # e-edge2, 1 h before: well inside 24 h
    assert online_features_at(serving_at(run, T_EDGE), example, T_EDGE) == training_features(example)
