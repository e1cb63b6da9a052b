"""Examples/s of the feature + label-join stage inside Flink, with 1,000,000 users; its state size.

    python -m bench.features [--quick] [--json PATH] [--users N] [--events N] [--pairs N] [--flink KEY=VALUE ...]

The job's own feature stage (flink_jobs.online_training with job.stages = "features") runs in a
MiniCluster in two bounded jobs: its validation half fills the run's clean topic (untimed:
bench.validation measures it), then its feature half (deduplication, the user and item windows,
label joins, and the Kafka sinks of examples and online features, exactly-once) is timed, with
the job's environment
(checkpoints every 5 s, parallelism 1, and the settings of a features-only job: the heap state
backend and object reuse by default, job.features_state_backend and job.features_object_reuse;
FRESHRANK_JOB__FEATURES_STATE_BACKEND=rocksdb FRESHRANK_JOB__FEATURES_OBJECT_REUSE=false measures
the settings of a job with stages = "all"). `--flink KEY=VALUE` adds Flink options on top of the
job's own, to compare settings. It reads a fresh topic of generated
events (freshrank.datagen, user ids drawn from `--users` ids, Kafka timestamp = event time as in
production) through the job's sources made bounded, so each job ends when its topic is read and
the end of input closes every window. Each run is timed from the first event out of the source's
chain (the job is deployed) to the job's end; two runs, of n and 3n events,
cancel what is left of start-up and the end (the final checkpoint) out of the figure:

    examples/s = (examples(3n) - examples(n)) / (t(3n) - t(n)),  events/s = 2n / (t(3n) - t(n))

On this shared 2-core machine one pair's figure swings by 2x and more (the difference of two
wall times), so the bench runs three pairs of 60,000 and 180,000 events and reports the median of
each figure (`--pairs`, `--events`; `--quick`: one pair of 4,000 and 12,000). Runs of 15,000 and
45,000 events, the default until 2026-11-30, ended while the JIT compiler still took half a core
or more: every job compiles its own generated code, so they measured a warming JVM.

Examples are counted on the examples topic (read_committed) after each run. The state size comes
from Flink's checkpoint statistics (REST /jobs/<id>/checkpoints), polled during the 3n run: the
full size of the largest completed checkpoint (`state_size`; with incremental checkpoints each
one uploads less, `checkpointed_size`). The busiest vertices (busyTimeMsPerSecond, averaged over
the 3n run) say where the time goes. On a shared machine wall time follows the load; the CPU
time of the JVM and its Python workers (from /proc, the same n/3n difference) is the steadier
figure for comparing two versions of the job: `cpu_ms_per_event`, `examples_per_cpu_s`.
"""
from __future__ import annotations

import dataclasses
import json
import os
import socket
import statistics
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from bench._common import descendant_cpu_ticks, parse_args, print_table, write_report
from freshrank.config import FreshrankConfig, load_config
from freshrank.datagen import EventGenerator, GeneratorConfig
from freshrank.stack import KafkaBroker, Stack, create_topics, ensure_artifacts

SEED = 11
TARGET_EXAMPLES_PER_S = 30_000
DEFAULT_EVENTS = 60_000
DEFAULT_PAIRS = 3
POLL_S = 2.0


# ------------------------------------------------------------------------------ events
def generate(users: int, count: int) -> tuple[list[tuple[bytes, bytes, int]], dict]:
    """`count` valid events (key, value, ts) in event-time order, ending a few minutes ago."""
    probe = GeneratorConfig(seed=SEED, n_users=users)
    span_ms = int(count / probe.events_per_second * 1000)
    start_ms = int(time.time() * 1000) - span_ms - 10 * 60_000
    gen_cfg = dataclasses.replace(probe, start_ms=start_ms)
    records, users_seen, impressions, impressed_items = [], set(), 0, 0
    for key, value in EventGenerator(gen_cfg).events(count):
        event = json.loads(value)
        records.append((key, value, event["ts"]))
        users_seen.add(event["user_id"])
        if event["type"] == "impression":
            impressions += 1
            impressed_items += len(event["items"])
    stats = {"n_users": users, "n_items_initial": gen_cfg.n_items_initial,
             "sim_events_per_second": gen_cfg.events_per_second,
             "event_time_span_s": (records[-1][2] - records[0][2]) / 1000,
             "distinct_users": len(users_seen), "impressions": impressions, "impressed_items": impressed_items,
             "mean_event_bytes": statistics.mean(len(v) for _, v, _ in records)}
    return records, stats


def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes, int]]) -> None:
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.size": 1_000_000,
                         "compression.type": "lz4"})
    for key, value, ts in records:
        while True:
            try:
                producer.produce(topic, value, key=key, timestamp=ts)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(120):
        raise RuntimeError(f"could not produce every event to {topic}")


def _count(bootstrap: str, topic: str) -> int:
    """Committed records of a one-partition topic."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-features-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        if high == 0:
            return 0
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        count, empty = 0, 0
        while empty < 3:
            messages = consumer.consume(10_000, timeout=1.0)
            real = [m for m in messages if m.error() is None]
            count += len(real)
            empty = 0 if messages else empty + 1
            if messages and messages[-1].offset() >= high - 2:  # the last record, or the last commit marker
                break
        return count
    finally:
        consumer.close()


# ------------------------------------------------------------------------------ the job
def run_config(base: FreshrankConfig, run_id: str, work: Path) -> FreshrankConfig:
    """The job's settings with this run's own topics, model name (consumer group, transactional
    ids), checkpoint directory and web port."""
    topics = dataclasses.replace(
        base.kafka.topics, partitions=1,
        **{name: f"bench.features.{run_id}.{name}" for name in (
            "events", "dlq", "events_clean", "features_user", "features_item", "training_examples", "training_ledger",
            "model_versions", "model_deltas")})
    return dataclasses.replace(
        base,
        kafka=dataclasses.replace(base.kafka, topics=topics),
        job=dataclasses.replace(base.job, model_name=f"bench{run_id}", stages="features",
                                checkpoint_dir=str(work / "checkpoints"), model_store=str(work / "models")),
        stack=dataclasses.replace(base.stack, flink_rest_port=_free_port()))


def bounded_source(cfg: FreshrankConfig, table: str) -> str:
    """A source table of the job (01_source.sql), read to the end offsets at start-up and then
    finished."""
    from flink_jobs.sql_files import statements
    stmt = next(s for s in statements("01_source.sql", cfg) if f"CREATE TABLE {table} " in s)
    bounded = stmt.replace("'connector' = 'kafka',", "'connector' = 'kafka',\n  'scan.bounded.mode' = 'latest-offset',", 1)
    if bounded == stmt:
        raise RuntimeError(f"01_source.sql changed: cannot make {table} bounded")
    return bounded


def _half_job(cfg: FreshrankConfig, connector_jar: str, flink_options: dict[str, str] | None,
              source_table: str, add_half):
    """An environment running one half of the job's feature stage (`add_half`, from
    flink_jobs.online_training) over its bounded source table and the job's sinks."""
    from flink_jobs import online_training as job
    from flink_jobs.sql_files import statements

    env, t_env = job.build_environment(cfg, connector_jar, flink_options)
    for stmt in [bounded_source(cfg, source_table), *statements("02_sinks.sql", cfg)]:
        t_env.execute_sql(stmt)
    sinks = t_env.create_statement_set()
    add_half(cfg, t_env, sinks)
    sinks.attach_as_datastream()
    return env


def validate_into_clean_topic(cfg: FreshrankConfig, connector_jar: str, flink_options: dict[str, str] | None) -> None:
    """The job's validation half over the whole events topic, filling the run's clean topic (untimed)."""
    from flink_jobs.online_training import add_validation

    env = _half_job(cfg, connector_jar, flink_options, "raw_events", add_validation)
    env.execute(f"freshrank bench: validation {cfg.job.model_name}")


def run_job(cfg: FreshrankConfig, connector_jar: str, sample: bool, exclude_pids: set[int],
            flink_options: dict[str, str] | None = None) -> dict:
    """The feature half over the whole clean topic; its runtime and checkpoint statistics."""
    from flink_jobs.online_training import add_features  # with add_validation, job.stages = "features"

    # The REST metrics this bench polls are refreshed every 10 s by default: longer than a short
    # run of the feature half lasts.
    options = {"metrics.fetcher.update-interval": "250", **(flink_options or {})}
    env = _half_job(cfg, connector_jar, options, "clean_events", add_features)
    client = env.execute_async(f"freshrank bench: features {cfg.job.model_name}")
    job_id = str(client.get_job_id())
    monitor = Monitor(cfg.stack.flink_rest_port, job_id, sample, exclude_pids)
    monitor.start()
    try:
        result = client.get_job_execution_result().result()
        finished_at = time.monotonic()
    finally:
        monitor.stop()
    if monitor.failure:
        raise RuntimeError(monitor.failure)
    if monitor.first_output_at is None:
        raise RuntimeError("never saw the source emit (the job ended before the first poll?)")
    return {"seconds": result.get_net_runtime() / 1000.0, "cpu_seconds": monitor.cpu_seconds(),
            "processing_seconds": finished_at - monitor.first_output_at,
            "processing_cpu_seconds": monitor.cpu_seconds(since=monitor.cpu_at_first_output),
            "checkpoints": monitor.checkpoints, "busy": monitor.busy_summary()}


def cpu_ticks(exclude: set[int]) -> dict[int, int]:
    """utime + stime (clock ticks) of every process below this one (see descendant_cpu_ticks)."""
    return {pid: ticks for pid, (_, ticks) in descendant_cpu_ticks(exclude).items()}


class Monitor(threading.Thread):
    """Polls the job's REST API (completed checkpoints, vertex busy time; stops a restarting job)
    and the CPU time of the processes that run it."""

    def __init__(self, port: int, job_id: str, sample_busy: bool, exclude_pids: set[int]):
        super().__init__(name="bench-monitor", daemon=True)
        self.base = f"http://127.0.0.1:{port}/jobs/{job_id}"
        self.job_id = job_id
        self.sample_busy = sample_busy
        self.checkpoints: dict[int, dict] = {}
        self.busy: dict[str, list[float]] = {}
        self.failure: str | None = None
        self.exclude_pids = exclude_pids
        self.cpu_start = cpu_ticks(exclude_pids)
        self.cpu_last = dict(self.cpu_start)
        # When the first clean event left the source's chain: the job is deployed; what follows
        # is processing.
        self.first_output_at: float | None = None
        self.cpu_at_first_output: dict[int, int] = {}
        self._done = threading.Event()

    def sample_cpu(self) -> None:
        self.cpu_last.update(cpu_ticks(self.exclude_pids))

    def cpu_seconds(self, since: dict[int, int] | None = None) -> float:
        """CPU time used since the job was submitted, or since `since` (a worker's last poll
        interval before it exits is lost)."""
        since = self.cpu_start if since is None else since
        ticks = sum(last - since.get(pid, 0) for pid, last in self.cpu_last.items())
        return ticks / os.sysconf("SC_CLK_TCK")

    def _watch_first_output(self) -> None:
        info = self._get("")
        source = next(v for v in info["vertices"] if v["name"].startswith("Source: clean_events"))
        values = self._get(f"/vertices/{source['id']}/subtasks/metrics?get=numRecordsOut")
        if any((value.get("sum") or 0) > 0 for value in values):
            self.first_output_at = time.monotonic()
            self.sample_cpu()
            self.cpu_at_first_output = dict(self.cpu_last)

    def _get(self, path: str):
        with urllib.request.urlopen(self.base + path, timeout=10) as response:
            return json.loads(response.read())

    def run(self) -> None:
        while self.first_output_at is None and not self._done.wait(0.25):
            try:
                self._watch_first_output()
            except (OSError, KeyError, StopIteration):
                continue  # the REST endpoint, the job or its metrics are not up yet
        while not self._done.wait(POLL_S):
            self.sample_cpu()
            try:
                self.poll()
            except (OSError, KeyError, ValueError):
                continue  # the REST endpoint is not up yet, already gone with the job, or mid-change

    def poll(self) -> None:
        info = self._get("")
        if info["state"] in ("RESTARTING", "FAILING", "FAILED"):
            self.failure = f"job {self.job_id} is {info['state']}: see the log under pyflink/log"
            urllib.request.urlopen(urllib.request.Request(self.base + "?mode=cancel", method="PATCH"), timeout=10)  # cancel
            return
        for entry in self._get("/checkpoints").get("history", []):
            if entry.get("status") == "COMPLETED":
                self.checkpoints[entry["id"]] = {
                    "id": entry["id"], "state_bytes": entry["state_size"],
                    "checkpointed_bytes": entry["checkpointed_size"],
                    "duration_ms": entry["end_to_end_duration"]}
        if self.sample_busy:
            for vertex in info["vertices"]:
                if vertex["status"] != "RUNNING":
                    continue
                values = self._get(f"/vertices/{vertex['id']}/subtasks/metrics?get=busyTimeMsPerSecond")
                for value in values:
                    if value.get("max") is not None:
                        self.busy.setdefault(vertex["name"], []).append(float(value["max"]))

    def busy_summary(self) -> list[dict]:
        rows = [{"vertex": name, "busy_share": statistics.mean(v) / 1000.0, "samples": len(v)}
                for name, v in self.busy.items() if v]
        return sorted(rows, key=lambda r: -r["busy_share"])

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=30)
        self.sample_cpu()
        try:
            self.poll()  # the last checkpoints
        except OSError:
            pass


def _fmt_rate(rate: float | None) -> str:
    return "n/a (the 3n run took no longer than the n run: the load changed)" if rate is None else f"{rate:,.0f}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(base: FreshrankConfig, connector_jar: str, users: int, n: int, exclude_pids: set[int],
            flink_options: dict[str, str] | None = None) -> dict:
    records, stats = generate(users, 3 * n)
    with tempfile.TemporaryDirectory(prefix="freshrank-bench-features-") as tmp:
        runs = {}
        for label, part in (("n", records[:n]), ("3n", records)):
            run_id = uuid.uuid4().hex[:8]
            cfg = run_config(base, run_id, Path(tmp) / run_id)
            create_topics(cfg, log=lambda *_: None)
            _produce(cfg.kafka.bootstrap, cfg.kafka.topics.events, part)
            print(f"  run {label}: {len(part):,} events on {cfg.kafka.topics.events} ...", flush=True)
            validate_into_clean_topic(cfg, connector_jar, flink_options)
            run = run_job(cfg, connector_jar, sample=label == "3n", exclude_pids=exclude_pids,
                          flink_options=flink_options)
            run["events"] = len(part)
            run["examples"] = _count(cfg.kafka.bootstrap, cfg.kafka.topics.training_examples)
            run["dead_letters"] = _count(cfg.kafka.bootstrap, cfg.kafka.topics.dlq)
            print(f"    {run['seconds']:.1f} s, of which {run['processing_seconds']:.1f} s after the first event "
                  f"({run['processing_cpu_seconds']:.0f} CPU s); {run['examples']:,} examples, "
                  f"{len(run['checkpoints'])} checkpoints", flush=True)
            runs[label] = run
    small, large = runs["n"], runs["3n"]
    # From the first event out of the source to the end of the job: deployment and the Python
    # worker's start are outside it; the end of input (every window closes) and the final
    # checkpoint are inside, and the n/3n difference cancels them.
    seconds = large["processing_seconds"] - small["processing_seconds"]
    cpu_seconds = large["processing_cpu_seconds"] - small["processing_cpu_seconds"]
    checkpoints = sorted(large["checkpoints"].values(), key=lambda c: c["id"])
    biggest = max(checkpoints, key=lambda c: c["state_bytes"]) if checkpoints else None
    return {
        "users": users, "n": n, "generator": stats,
        # None when the 3n run took no longer than the n run: the machine's load swung between them.
        "examples_per_s": (large["examples"] - small["examples"]) / seconds if seconds > 0 else None,
        "events_per_s": 2 * n / seconds if seconds > 0 else None,
        "examples_per_s_3n_alone": large["examples"] / large["processing_seconds"],
        "examples_per_event": large["examples"] / large["events"],
        # Load-independent: what 2n events cost in CPU time (JVM + Python workers), start-up cancelled.
        "cpu_ms_per_event": 1000 * cpu_seconds / (2 * n),
        "examples_per_cpu_s": (large["examples"] - small["examples"]) / max(cpu_seconds, 1e-9),
        "state_bytes": biggest["state_bytes"] if biggest else None,
        "state_bytes_per_distinct_user": biggest["state_bytes"] / stats["distinct_users"] if biggest else None,
        "runs": {label: {k: v for k, v in run.items() if k != "checkpoints"} | {"checkpoints": sorted(
            run["checkpoints"].values(), key=lambda c: c["id"])} for label, run in runs.items()},
        "largest_checkpoint": biggest,
    }


MEDIAN_FIGURES = ("examples_per_s", "events_per_s", "examples_per_s_3n_alone", "examples_per_event",
                  "cpu_ms_per_event", "examples_per_cpu_s", "state_bytes", "state_bytes_per_distinct_user")


def summarize(pairs: list[dict]) -> dict:
    """The bench's figures: each the median over the pairs of runs (a pair whose 3n run took no
    longer than its n run has no rate and is left out of that median)."""
    figures = {key: pairs[0][key] for key in ("users", "n", "generator")}
    for key in MEDIAN_FIGURES:
        values = [pair[key] for pair in pairs if pair[key] is not None]
        figures[key] = statistics.median(values) if values else None
    figures["pairs"] = pairs
    return figures


def main() -> None:
    args = parse_args("features", __doc__, [
        ("--users", {"type": int, "default": 1_000_000, "help": "user id space (default 1,000,000)"}),
        ("--events", {"type": int, "default": None,
                      "help": f"n, events of the short run (default {DEFAULT_EVENTS:,}; --quick 4,000)"}),
        ("--pairs", {"type": int, "default": None,
                     "help": f"pairs of n and 3n runs; the figures are their medians (default {DEFAULT_PAIRS}; --quick 1)"}),
        ("--flink", {"action": "append", "default": [], "metavar": "KEY=VALUE",
                     "help": "a Flink option on top of the job's own (repeatable), to compare settings"})])
    flink_options = dict(option.split("=", 1) for option in args.flink)
    base = load_config()
    n = args.events or (4_000 if args.quick else DEFAULT_EVENTS)
    pair_count = args.pairs or (1 if args.quick else DEFAULT_PAIRS)
    if n < 1 or pair_count < 1:
        raise SystemExit("--events and --pairs must be at least 1")
    artifacts = ensure_artifacts(base.stack)
    broker = KafkaBroker(base.stack, artifacts)
    started_here = broker.pid() is None
    if started_here:
        Stack(base).up(flink=False)
    try:
        pairs = []
        for index in range(pair_count):
            print(f"pair {index + 1} of {pair_count}", flush=True)
            pairs.append(measure(base, str(artifacts.connector_jar), args.users, n,
                                 exclude_pids={pid for pid in [broker.pid()] if pid and started_here},
                                 flink_options=flink_options))
    finally:
        if started_here:
            broker.stop()

    figures = summarize(pairs)
    gen = figures["generator"]
    figures["target_examples_per_s"] = TARGET_EXAMPLES_PER_S
    features_job = dataclasses.replace(base.job, stages="features")
    state_backend = features_job.job_state_backend()
    object_reuse = flink_options.get("pipeline.object-reuse", str(features_job.job_object_reuse()).lower())
    figures["state_backend"] = state_backend
    figures["object_reuse"] = object_reuse
    figures["flink_options"] = flink_options
    print()
    print_table(["pair", "run", "events", "examples", "dead letters", "job s", "processing s", "processing CPU s",
                 "checkpoints"],
                [[index + 1, label, r["events"], r["examples"], r["dead_letters"], r["seconds"],
                  r["processing_seconds"], r["processing_cpu_seconds"], len(r["checkpoints"])]
                 for index, pair in enumerate(pairs) for label, r in pair["runs"].items()])
    print()
    print_table(["pair", "examples/s", "3n run alone", "CPU ms per event", "largest checkpoint MB"],
                [[index + 1, _fmt_rate(pair["examples_per_s"]), f"{pair['examples_per_s_3n_alone']:,.0f}",
                  f"{pair['cpu_ms_per_event']:.3f}",
                  "n/a" if pair["state_bytes"] is None else f"{pair['state_bytes'] / 1e6:,.1f}"]
                 for index, pair in enumerate(pairs)])
    busy = pairs[-1]["runs"]["3n"]["busy"]
    if busy:
        print("\n  busiest vertices in the last 3n run (share of time busy, max over subtasks):")
        for row in busy[:4]:
            print(f"    {row['busy_share']:5.0%}  {row['vertex'][:110]}")
    state = figures["state_bytes"]
    median = f"median of {pair_count} pairs" if pair_count > 1 else "one pair"
    rows = [
        ("users (id space) / seen in 3n", f"{figures['users']:,} / {gen['distinct_users']:,} "
                                          f"({gen['n_items_initial']:,} items at the start)"),
        ("events, n and 3n", f"{figures['n']:,} and {3 * figures['n']:,} "
                             f"({gen['event_time_span_s'] / 60:.0f} min of event time in 3n)"),
        ("state backend, object reuse, extra Flink options", f"{state_backend}, {object_reuse}, "
                                               + (", ".join(f"{k}={v}" for k, v in flink_options.items()) or "none")),
        ("examples per event", f"{figures['examples_per_event']:.2f}"),
        (f"examples/s inside Flink ({median})",
         f"{_fmt_rate(figures['examples_per_s'])} (target {TARGET_EXAMPLES_PER_S:,}; "
         f"3n run alone {figures['examples_per_s_3n_alone']:,.0f})"),
        ("events/s inside Flink", _fmt_rate(figures['events_per_s'])),
        ("CPU time per event (JVM + Python)", f"{figures['cpu_ms_per_event']:.2f} ms "
                                              f"({figures['examples_per_cpu_s']:,.0f} examples per CPU second)"),
        (f"state (largest checkpoint, 3n, {state_backend})", "n/a" if state is None else
         f"{state / 1e6:,.1f} MB ({figures['state_bytes_per_distinct_user']:,.0f} B per user seen)"),
    ]
    write_report("features", args.json, figures, rows)


if __name__ == "__main__":
    main()
