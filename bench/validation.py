"""Events/s of the validation stage inside Flink (Kafka -> validation -> sinks), one core.

Generated records (1% malformed) are written to fresh topics; a bounded Kafka source reads them,
the job's validation half (flink_jobs.online_training.add_validation: vouch_event in the JVM, then
the pandas function of flink_jobs.validation_udf over Arrow batches for what it did not vouch for)
classifies each one exactly as in the job, clean events go to a Kafka topic through the job's
clean-topic sink, dead letters to a blackhole. Two runs, of n and 3n records, cancel the job's
start-up (and the JIT compilation of its hot code) out of the figure: events/s =
2n / (runtime(3n) - runtime(n)), after an untimed warm-up run; each run is repeated and its
shortest runtime kept, since on a shared machine a run is only ever slowed down. Peers, on the
same records in this process, their runs interleaved with the shipped job's so all see the same
load: the job without vouch_event (every record in Python, the msgspec fast path first: the
design before it) and the exact validator alone (no fast path at all); the plain Python loop over
`udfs.validation.validate`, with and without the msgspec fast path; and the job's batch function
called directly on pandas batches with every record in Python (what that work costs without
Flink's transport). CPU time per event, start-up cancelled the same way, is reported for the
Python side (a local MiniCluster runs Python functions in this process: PyFlink's loopback mode)
and the JVM; it is less disturbed by other load on the machine than the wall-clock rate.
"""
from __future__ import annotations

import dataclasses
import os
import re
import site
import sys
import time
import uuid

from bench._common import descendant_cpu_ticks, parse_args, write_report
from freshrank.config import REPO_ROOT, load_config
from freshrank.datagen import EventGenerator, GeneratorConfig
from freshrank.produce import KafkaTimestamps
from freshrank.stack import KafkaBroker, Stack, ensure_artifacts


def _records_in_the_past(count: int) -> list[tuple[bytes, bytes]]:
    """Generated records (1% malformed) whose event times all lie at least a minute in the past.

    The generator's clock runs ~6,000 events per simulated minute, so 600,000 records starting an
    hour ago would end ~40 minutes in the future, and the validator rejects a ts beyond its
    5-minute skew: the start moves back by the overshoot (same seed, same records otherwise)."""
    start_ms = int(time.time() * 1000) - 3_600_000
    records = list(EventGenerator(GeneratorConfig(seed=5, malformed_share=0.01, start_ms=start_ms)).events(count))
    stamps = (re.search(rb'"ts":(\d{13})[,}]', value) for _, value in records)
    # Not the injected FUTURE_TS defects (year 2100): those must stay in the future.
    latest = max((ts for ts in (int(found.group(1)) for found in stamps if found) if ts < start_ms + 30 * 86_400_000),
                 default=start_ms)
    overshoot = latest - (int(time.time() * 1000) - 60_000)
    if overshoot > 0:
        records = list(EventGenerator(GeneratorConfig(seed=5, malformed_share=0.01, start_ms=start_ms - overshoot))
                       .events(count))
    return records


def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive the future
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)


def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    from confluent_kafka import Producer
    _create_topic(bootstrap, topic, 1)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.size": 1_000_000,
                         "compression.type": "lz4"})
    # Record timestamps follow event time, as in production, so the source's watermark (and the
    # lateness check against it) does not depend on when the benchmark happened to produce.
    stamps = KafkaTimestamps()
    for key, value in records:
        ts = stamps.for_record(value)
        while True:
            try:
                producer.produce(topic, value, key=key, **({"timestamp": ts} if ts else {}))
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)


def _cpu_seconds(exclude: set[int]) -> dict[int, tuple[str, float]]:
    """CPU seconds so far of this process (where a local job runs its Python functions: PyFlink's
    loopback mode) and of every process below it (the MiniCluster's JVM)."""
    ticks_per_s = os.sysconf("SC_CLK_TCK")
    own = os.times()
    cpu = {os.getpid(): ("python", own.user + own.system)}
    cpu.update({pid: (name, ticks / ticks_per_s) for pid, (name, ticks) in descendant_cpu_ticks(exclude).items()})
    return cpu


def _cpu_used(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds between two readings, Python processes and the rest (the JVM). A process that
    started and ended in between is missed: only short-lived helpers do."""
    used = {"python": 0.0, "jvm": 0.0}
    for pid, (name, seconds) in after.items():
        used["python" if name.startswith("python") else "jvm"] += seconds - before.get(pid, (name, 0.0))[1]
    return used


def _flink_run(cfg, topic: str, clean_topic: str, connector_jar: str, mode: str, exclude: set[int],
               fast_path: str = "jvm") -> dict:
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment

    from flink_jobs.online_training import add_jvm_functions, add_validation
    from flink_jobs.sql_files import statements
    from flink_jobs.validation_udf import python_options

    conf = Configuration()
    conf.set_string("pipeline.jars", f"file://{connector_jar}")
    conf.set_string("python.executable", sys.executable)
    conf.set_string("python.execution-mode", mode)
    for key, value in python_options().items():  # as the job sets them
        conf.set_string(key, value)
    conf.set_string("rest.port", "0")
    conf.set_string("table.local-time-zone", "UTC")
    # As the job that runs validation sets it (the feature stage's own job, `stages = features`):
    # with object reuse, the chain hands each row on without a defensive copy.
    features_job = dataclasses.replace(cfg.job, stages="features")
    conf.set_string("pipeline.object-reuse", str(features_job.job_object_reuse()).lower())
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(1)
    t_env = StreamTableEnvironment.create(env)
    add_jvm_functions(cfg, env, t_env)
    t_env.execute_sql(f"""CREATE TABLE raw_events (
        `value` BYTES, `topic` STRING METADATA VIRTUAL, `partition` INT METADATA VIRTUAL,
        `offset` BIGINT METADATA VIRTUAL, kafka_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp',
        WATERMARK FOR kafka_ts AS kafka_ts - INTERVAL '5' SECOND
      ) WITH ('connector' = 'kafka', 'topic' = '{topic}',
        'properties.bootstrap.servers' = '{cfg.kafka.bootstrap}', 'properties.group.id' = 'bench-{topic}',
        'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset', 'format' = 'raw')""")
    # The job's validation half with its clean-topic sink (at-least-once, as in the job); dead
    # letters (1%) to a blackhole, since the job's transactional sink commits only on checkpoints.
    bench_cfg = dataclasses.replace(cfg, kafka=dataclasses.replace(
        cfg.kafka, topics=dataclasses.replace(cfg.kafka.topics, events_clean=clean_topic)))
    t_env.execute_sql(next(stmt for stmt in statements("02_sinks.sql", bench_cfg) if "clean_events_sink" in stmt))
    t_env.execute_sql("CREATE TABLE dlq_sink (`value` STRING) WITH ('connector' = 'blackhole')")
    sinks = t_env.create_statement_set()
    add_validation(bench_cfg, t_env, sinks, fast_path=fast_path)
    sinks.attach_as_datastream()
    before = _cpu_seconds(exclude)
    result = env.execute(f"bench validation {mode}")
    cpu = _cpu_used(before, _cpu_seconds(exclude))
    return {"seconds": result.get_net_runtime() / 1000.0, "python_cpu_s": cpu["python"], "jvm_cpu_s": cpu["jvm"]}


def _plain_python(records: list[tuple[bytes, bytes]], repeat: int, fast_path: bool = True) -> float:
    from udfs.validation import use_fast_path, validate
    best = 0.0
    use_fast_path(fast_path)
    try:
        for _ in range(repeat):
            started = time.perf_counter()
            now = int(time.time() * 1000)
            for _, value in records:
                validate(value, now_ms=now, watermark_ms=None)
            best = max(best, len(records) / (time.perf_counter() - started))
    finally:
        use_fast_path(True)
    return best


class _NoMetrics:
    """Stands in for Flink's function context: counters that count nothing."""

    def get_metric_group(self):
        return self

    def add_group(self, _name):
        return self

    def counter(self, _name):
        return self

    def inc(self, _n=1):
        pass


def _batch_function(cfg, records: list[tuple[bytes, bytes]], repeat: int) -> float:
    """The job's function on pandas batches of the job's size, as Flink would call it, without Flink."""
    import pandas as pd

    from flink_jobs.validation_udf import ARROW_BATCH_SIZE as batch_size
    from flink_jobs.validation_udf import ValidateEvents

    function = ValidateEvents(cfg.validation)
    function.open(_NoMetrics())
    batches = []
    for start in range(0, len(records), batch_size):
        values = [value for _, value in records[start:start + batch_size]]
        n = len(values)
        batches.append((pd.Series(values, dtype=object), pd.Series([False] * n), pd.Series(["bench"] * n),
                        pd.Series([0] * n, dtype="int32"),
                        pd.Series(range(start, start + n), dtype="int64"),
                        pd.Series(pd.NaT, index=range(n), dtype="datetime64[ms, UTC]")))
    best = 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        for batch in batches:
            function.eval(*batch)
        best = max(best, len(records) / (time.perf_counter() - started))
    return best


def _python_path_for_thread_mode() -> None:
    """Thread mode embeds CPython in the JVM (pemja); that interpreter does not see the venv's
    site-packages unless PYTHONPATH names them. Set before the JVM starts (it inherits env)."""
    paths = [*site.getsitepackages(), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)


def main() -> None:
    _python_path_for_thread_mode()
    args = parse_args("validation", __doc__, [
        ("--mode", {"choices": ("process", "thread", "both"), "default": "process",
                    "help": "PyFlink Python execution mode (default: process). Flink runs pandas functions "
                            "in process mode whatever the setting, so thread mode measures the same operator"}),
        ("--repeat", {"type": int, "default": None,
                      "help": "runs of each size, shortest kept (default: 2, 1 with --quick)"})])
    cfg = load_config()
    n = 50_000 if args.quick else 200_000
    repeat = args.repeat or (1 if args.quick else 2)
    records = _records_in_the_past(3 * n)

    artifacts = ensure_artifacts(cfg.stack)
    broker = KafkaBroker(cfg.stack, artifacts)
    started_here = broker.pid() is None
    if started_here:
        Stack(cfg).up(flink=False)
    exclude = {broker.pid()} if started_here else set()
    try:
        # Two bounded runs, n and 3n records: the difference of their runtimes is the time of
        # 2n records with the job's start-up (seconds on this machine) cancelled out.
        run_id = uuid.uuid4().hex[:8]
        small, large = f"bench.validation.{run_id}.small", f"bench.validation.{run_id}.large"
        _produce(cfg.kafka.bootstrap, small, records[:n])
        _produce(cfg.kafka.bootstrap, large, records)
        clean = f"bench.validation.{run_id}.clean"  # every run writes its clean events here
        _create_topic(cfg.kafka.bootstrap, clean, cfg.kafka.topics.partitions)
        plain = _plain_python(records, repeat)
        plain_exact = _plain_python(records, repeat, fast_path=False)
        batch = _batch_function(cfg, records, repeat)
        modes = ("process", "thread") if args.mode == "both" else (args.mode,)
        # The shipped validator, without vouch_event (the msgspec fast path first), the exact path alone.
        paths = {"shipped": "jvm", "python fast path": "python", "exact path": "off"}
        rates, runtimes = {}, {}
        cpu_us = {}
        for mode in modes:
            runs = {path: {"n": [], "3n": []} for path in paths}
            # The MiniCluster's JVM is shared by every run here and the first one in it pays for
            # class loading and JIT compilation: untimed, or it would pad t(n) and inflate the rate.
            _flink_run(cfg, small, clean, str(artifacts.connector_jar), mode, exclude)
            for _ in range(repeat):
                for path, fast_path in paths.items():  # interleaved: all see the same load
                    for size, topic in (("n", small), ("3n", large)):
                        runs[path][size].append(_flink_run(cfg, topic, clean, str(artifacts.connector_jar), mode,
                                                           exclude, fast_path))
            for path, by_size in runs.items():
                key = mode if path == "shipped" else f"{mode}, {path}"
                runtimes[key] = by_size
                rates[key] = 2 * n / max(min(r["seconds"] for r in by_size["3n"])
                                         - min(r["seconds"] for r in by_size["n"]), 1e-9)
                # CPU per event, start-up cancelled the same way; less disturbed by other load than
                # the wall-clock rate, since a process that waits for a core uses none.
                cpu_us[key] = {kind: 1e6 * (min(r[f"{kind}_cpu_s"] for r in by_size["3n"])
                                            - min(r[f"{kind}_cpu_s"] for r in by_size["n"])) / (2 * n)
                               for kind in ("python", "jvm")}
    finally:
        if started_here:
            broker.stop()
    best_mode = max(modes, key=rates.get)
    exact = rates[f"{best_mode}, exact path"]
    python_only = rates[f"{best_mode}, python fast path"]
    figures = {"events_per_s": rates[best_mode], "mode": best_mode, "n": n, "repeat": repeat, "runtimes_s": runtimes,
               "events_per_s_by_mode": rates, "python_fast_path_events_per_s": python_only,
               "vs_python_fast_path_ratio": rates[best_mode] / python_only, "exact_path_events_per_s": exact,
               "fast_vs_exact_path_ratio": rates[best_mode] / exact, "plain_python_events_per_s": plain,
               "plain_python_exact_path_events_per_s": plain_exact,
               "flink_vs_plain_ratio": rates[best_mode] / plain, "batch_function_events_per_s": batch,
               "flink_vs_batch_function_ratio": rates[best_mode] / batch, "cpu_us_per_event_by_mode": cpu_us,
               "python_events_per_cpu_s": 1e6 / max(cpu_us[best_mode]["python"], 1e-9)}
    rows = [("records", f"{n:,} and {3 * n:,} (1% malformed); rate = 2n / (t(3n) - t(n)), best of {repeat}")]
    rows += [(f"inside Flink, {mode} mode", f"{rate:,.0f} events/s") for mode, rate in rates.items()]
    rows += [(f"  CPU per event, {mode} mode", f"Python {cpu['python']:.1f} µs, JVM {cpu['jvm']:.1f} µs "
              f"({1e6 / max(cpu['python'], 1e-9):,.0f} events per Python CPU-second)") for mode, cpu in cpu_us.items()]
    rows += [("shipped / without vouch_event, inside Flink", f"{rates[best_mode] / python_only:.2f}"),
             ("shipped / exact path alone, inside Flink", f"{rates[best_mode] / exact:.2f}"),
             ("plain Python validate() loop", f"{plain:,.0f} events/s (exact path alone: {plain_exact:,.0f})"),
             ("job's batch function, every record, no Flink", f"{batch:,.0f} events/s"),
             ("Flink / plain Python", f"{rates[best_mode] / plain:.2f}"),
             ("Flink / batch function", f"{rates[best_mode] / batch:.2f}")]
    write_report("validation", args.json, figures, rows)


if __name__ == "__main__":
    main()
