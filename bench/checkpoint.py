"""Checkpoint size and duration against changed rows; the training operator's throughput in Flink.

    python -m bench.checkpoint [--quick] [--json PATH]

Part A (checkpoints): a PyFlink job in a local MiniCluster (RocksDB, incremental checkpoints)
keeps a real EmbeddingTable of 1,000,000 rows (100,000 with --quick) in its Python worker and
writes it to a MapState the way the training operator does: one entry "row/<table>/<row>" per
changed row, packed by the table's own delta_entries(). The first command writes every row;
each later one rewrites a given number of random rows. This script paces the job: it drops one
command, waits until the function has applied it, triggers a checkpoint through the REST API
and reads that checkpoint's statistics, so exactly one round lies between two checkpoints.
checkpointed_size is what the checkpoint uploaded; the first one, taken right after all rows were
written, is the full checkpoint.

Part B (throughput): the real TrainingOperator in a bounded job built with the job's own
environment (flink_jobs.online_training.build_environment: RocksDB, incremental and unaligned
checkpoints every 5 s), fed micro-batch records shaped like the `micro_batches` view from
freshrank.datagen examples; publishing is switched off. Next to it, in the same run, the
Flink-free path over the same batches: a TrainingSession doing what process_element does
(json.loads, train, state_changes), timed before and after the Flink job.
"""
from __future__ import annotations

import dataclasses
import json
import os
import socket
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import torch
from pyflink.common import Configuration, Duration, Row, Types, WatermarkStrategy
from pyflink.datastream import (CheckpointingMode, KeyedProcessFunction, RuntimeContext,
                                StreamExecutionEnvironment)
from pyflink.datastream.connectors.file_system import FileSource, StreamFormat
from pyflink.datastream.state import MapStateDescriptor

from bench._common import parse_args, write_report
from flink_jobs.online_training import build_environment
from flink_jobs.training_operator import LEDGER_TAG, TrainingOperator
from flink_jobs.training_session import TrainingSession
from freshrank.config import FreshrankConfig, load_config
from freshrank.datagen import EventGenerator, GeneratorConfig
from model.config import ModelConfig
from model.tables import EmbeddingTable

SEED = 7
TABLE = "item_id"  # the entries look like the item table's: "row/item_id/<row>"
TOUCHED_SHARE = 0.01  # the headline: 1% of the rows change between two checkpoints
TARGET_RATIO = 0.05
BATCH_EXAMPLES = 1_000
NEVER_MS = 10 ** 15  # publish interval that never comes: Part B measures training only


# ------------------------------------------------------------------------------ Part A
class RowRounds(KeyedProcessFunction):
    """Each command "<round>,<rows>" changes rows of a live EmbeddingTable and puts the changed
    ones into MapState, as TrainingOperator does with snapshot_delta(). After a command it writes
    <progress_dir>/done-<round>: the writes are then in PyFlink's state cache, which is flushed
    to the state backend before the next checkpoint barrier."""

    def __init__(self, rows: int, progress_dir: str):
        self.rows = rows
        self.progress_dir = progress_dir

    def open(self, runtime_context: RuntimeContext) -> None:
        # The operator's own descriptor: same name, same key and value serializers.
        self.entries_state = runtime_context.get_map_state(
            MapStateDescriptor("model-rows", Types.STRING(), Types.PICKLED_BYTE_ARRAY()))
        mc = ModelConfig()
        self.dim = mc.embedding_dim
        self.table = EmbeddingTable(
            name=TABLE, dim=self.dim, capacity=self.rows, admit_after=1, expire_after_ms=None,
            eviction=mc.eviction, eviction_batch_fraction=mc.eviction_batch_fraction,
            default_row=np.zeros(self.dim, np.float32), initial_accumulator=0.0, keep_anchor=False,
            device=torch.device("cpu"))
        self.keys = [f"i{n:07d}" for n in range(self.rows)]
        self.rng = np.random.default_rng(SEED)

    def process_element(self, command: str, ctx: KeyedProcessFunction.Context) -> None:
        round_no, touched = map(int, command.split(","))
        started = time.perf_counter()
        step = round_no + 1  # a table's rows start at step 0
        if touched >= self.rows:
            keys = self.keys
        else:
            keys = [self.keys[i] for i in self.rng.choice(self.rows, touched, replace=False)]
        rows, _ = self.table.observe(keys, now_ms=step, step=step)  # admits the ids on round 0
        # A random gradient gives every written row new, incompressible values, like training.
        grad = torch.from_numpy(self.rng.standard_normal((len(rows), self.dim), dtype=np.float32))
        self.table.adagrad_update(rows, grad, lr=0.05, step=step, decay=1.0)
        self.table.unpin_all()
        packed, _ = self.table.delta_entries(since_step=step - 1)
        for row, blob in packed.items():
            self.entries_state.put(f"row/{TABLE}/{row}", blob)
        report = {"written": len(packed), "value_bytes": sum(map(len, packed.values())),
                  "seconds": time.perf_counter() - started}
        marker = Path(self.progress_dir) / f"done-{round_no}"
        marker.with_suffix(".tmp").write_text(json.dumps(report))
        marker.with_suffix(".tmp").rename(marker)


class RestClient:
    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"

    def call(self, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method="POST" if data else "GET",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def wait_running(self, job_id: str, timeout_s: float = 120) -> None:
        """Until every task runs: a checkpoint is declined while any task is still deploying."""
        def running() -> bool:
            try:
                vertices = self.call(f"/jobs/{job_id}")["vertices"]
            except OSError:
                return False  # the REST endpoint is not up yet
            return all(v["status"] == "RUNNING" for v in vertices)
        _wait_for(running, timeout_s, f"job {job_id} did not start")

    def ensure_running(self, job_id: str) -> None:
        state = self.call(f"/jobs/{job_id}")["state"]
        if state != "RUNNING":
            raise RuntimeError(f"job {job_id} is {state}: see the log under pyflink/log")

    def checkpoint(self, job_id: str, timeout_s: float = 600) -> dict:
        """Trigger a checkpoint, wait for it, return its statistics."""
        trigger = self.call(f"/jobs/{job_id}/checkpoints", {"checkpointType": "CONFIGURED"})["request-id"]
        result: dict = {}

        def done() -> bool:
            result.update(self.call(f"/jobs/{job_id}/checkpoints/{trigger}"))
            return result["status"]["id"] == "COMPLETED"
        _wait_for(done, timeout_s, "checkpoint did not complete")
        operation = result.get("operation") or {}
        if "checkpointId" not in operation:
            raise RuntimeError(f"checkpoint failed: {operation.get('failure-cause')}")
        details: dict = {}

        def recorded() -> bool:
            try:  # 404 until the statistics tracker has the checkpoint
                details.update(self.call(f"/jobs/{job_id}/checkpoints/details/{operation['checkpointId']}"))
            except urllib.error.HTTPError as error:
                if error.code != 404:
                    raise
            return details.get("status") == "COMPLETED"
        _wait_for(recorded, 30, "checkpoint statistics missing")
        return details


def _wait_for(condition, timeout_s: float, message: str, poll_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(message)
        time.sleep(poll_s)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def checkpoint_environment(settings: dict[str, str]) -> StreamExecutionEnvironment:
    conf = Configuration()
    for key, value in settings.items():
        conf.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(1)
    # Periodic checkpoints stay out of the way (one hour); the driver triggers every checkpoint.
    env.enable_checkpointing(3_600_000, CheckpointingMode.EXACTLY_ONCE)
    env.get_checkpoint_config().set_checkpoint_timeout(600_000)
    return env


def checkpoint_settings(work: Path, rest_port: int) -> dict[str, str]:
    # PyFlink's state caches keep their defaults, as in the job: a python.map-state.write-cache-size
    # of 10,000 or 100,000 instead of 1,000 did not make writing all rows measurably faster here.
    return {
        "state.backend.type": "rocksdb",
        "execution.checkpointing.incremental": "true",
        "execution.checkpointing.dir": (work / "checkpoints").as_uri(),
        "rest.port": str(rest_port),
        "python.executable": sys.executable,
        "restart-strategy.type": "none",  # a failure should end the benchmark, not loop
    }


def measure_checkpoints(rows: int, sweep: list[tuple[int, int]]) -> dict:
    """Load `rows` rows, checkpoint (full), then per (touched, repeats) in `sweep`: a round that
    rewrites `touched` rows (none for 0), then a checkpoint."""
    with tempfile.TemporaryDirectory(prefix="freshrank-bench-checkpoint-") as tmp:
        work = Path(tmp)
        commands, progress = work / "commands", work / "progress"
        commands.mkdir()
        progress.mkdir()
        settings = checkpoint_settings(work, _free_port())
        env = checkpoint_environment(settings)
        # An unbounded source of commands: every file dropped into `commands` is one command.
        source = FileSource.for_record_stream_format(StreamFormat.text_line_format(), str(commands)) \
            .monitor_continuously(Duration.of_millis(100)).build()
        env.from_source(source, WatermarkStrategy.no_watermarks(), "commands") \
            .key_by(lambda command: TABLE, key_type=Types.STRING()) \
            .process(RowRounds(rows, str(progress))) \
            .name("row rounds")
        job = env.execute_async("freshrank bench: checkpoint size")
        job_id = str(job.get_job_id())
        rest = RestClient(int(settings["rest.port"]))
        try:
            rest.wait_running(job_id)
            next_round = 0

            def run_round(touched: int) -> dict:
                nonlocal next_round
                name = f"round-{next_round:05d}"
                # Written under a hidden name, then renamed: the source skips files starting with '.'.
                (commands / f".{name}").write_text(f"{next_round},{touched}\n")
                (commands / f".{name}").rename(commands / name)
                marker = progress / f"done-{next_round}"

                def applied() -> bool:
                    rest.ensure_running(job_id)
                    return marker.exists()
                _wait_for(applied, 1_800, f"round {next_round} was not applied")
                next_round += 1
                return json.loads(marker.read_text())

            loaded = run_round(rows)
            checkpoints = [_checkpoint_row(rest.checkpoint(job_id), rows, loaded)]
            for touched, repeats in sweep:
                for _ in range(repeats):
                    applied = run_round(touched) if touched else {"written": 0, "seconds": 0.0}
                    checkpoints.append(_checkpoint_row(rest.checkpoint(job_id), touched, applied))
        finally:
            job.cancel().result()
    return {"load_seconds": loaded["seconds"], "value_bytes_per_row": loaded["value_bytes"] / rows,
            "checkpoints": checkpoints, "settings": settings}


def _checkpoint_row(stats: dict, touched: int, applied: dict) -> dict:
    return {"id": stats["id"], "touched_rows": touched, "rows_written": applied["written"],
            "round_seconds": applied["seconds"], "checkpointed_bytes": stats["checkpointed_size"],
            "state_bytes": stats["state_size"], "duration_ms": stats["end_to_end_duration"]}


# ------------------------------------------------------------------------------ Part B
def bench_config(store: Path, checkpoints: Path) -> FreshrankConfig:
    cfg = load_config()
    return dataclasses.replace(
        cfg,
        job=dataclasses.replace(cfg.job, model_store=str(store), checkpoint_dir=str(checkpoints),
                                publish_interval_ms=NEVER_MS, batch_max_examples=BATCH_EXAMPLES,
                                step_examples=BATCH_EXAMPLES),  # one step per chunk, as measured before
        stack=dataclasses.replace(cfg.stack, flink_rest_port=_free_port()))


def make_batches(n_batches: int) -> list[str]:
    examples = list(EventGenerator(GeneratorConfig(seed=SEED)).examples(n_batches * BATCH_EXAMPLES))
    # As the `micro_batches` view delivers them: [partition, offset, example]; one chunk each.
    records = [[0, offset, example] for offset, example in enumerate(examples)]
    return [json.dumps(records[i:i + BATCH_EXAMPLES]) for i in range(0, len(records), BATCH_EXAMPLES)]


class TimedTrainingOperator(TrainingOperator):
    """The real TrainingOperator, timing its batches; close() writes the timings to a file."""

    def __init__(self, cfg: FreshrankConfig, timing_path: str):
        super().__init__(cfg)
        self.timing_path = timing_path

    def open(self, runtime_context: RuntimeContext):
        super().open(runtime_context)
        self.timing = {"batches": 0, "first_started": None, "last_finished": None,
                       "busy_s": 0.0, "step_s": 0.0, "state_write_s": 0.0}

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        started = time.time()
        yield from super().process_element(value, ctx)
        finished = time.time()
        t = self.timing
        t["batches"] += 1
        t["first_started"] = t["first_started"] or started
        t["last_finished"] = finished
        t["busy_s"] += finished - started
        t["step_s"] += self.session.last_step_ms / 1000

    def _write_state(self, changes) -> None:
        started = time.time()
        super()._write_state(changes)
        self.timing["state_write_s"] += time.time() - started

    def close(self):
        Path(self.timing_path).write_text(json.dumps(self.timing))


def measure_operator(cfg: FreshrankConfig, batches: list[str], work: Path) -> dict:
    """The operator in the job's environment, fed from a file of micro-batches."""
    batches_file, timing_file = work / "batches.txt", work / "operator-timing.json"
    batches_file.write_text("".join(f"{i}\t{batch}\n" for i, batch in enumerate(batches)))
    env, _ = build_environment(cfg)
    model, interval_ms = cfg.job.model_name, cfg.job.batch_interval_ms
    row_type = Types.ROW_NAMED(
        ["model", "window_end", "n", "batch", "first_offset", "last_offset"],
        [Types.STRING(), Types.LONG(), Types.LONG(), Types.STRING(), Types.LONG(), Types.LONG()])

    def micro_batch(line: str) -> Row:
        # A `micro_batches` row (window_end is a TIMESTAMP_LTZ there; the operator reads only the batch).
        index, batch = line.split("\t", 1)
        first = int(index) * BATCH_EXAMPLES
        return Row(model, (int(index) + 1) * interval_ms, BATCH_EXAMPLES, batch,
                   first, first + BATCH_EXAMPLES - 1)

    source = FileSource.for_record_stream_format(StreamFormat.text_line_format(), str(batches_file)).build()
    trained = env.from_source(source, WatermarkStrategy.no_watermarks(), "micro-batches") \
        .map(micro_batch, output_type=row_type) \
        .key_by(lambda row: row[0], key_type=Types.STRING()) \
        .process(TimedTrainingOperator(cfg, str(timing_file)), output_type=Types.STRING()) \
        .name("train + publish")
    trained.print()  # publishing is off: nothing is printed
    # The ledger side output must be consumed (PyFlink sends an unclaimed tag to the main output).
    trained.get_side_output(LEDGER_TAG).filter(lambda _: False).print()
    result = env.execute("freshrank bench: training operator")
    timing = json.loads(timing_file.read_text())
    if timing["batches"] != len(batches):
        raise RuntimeError(f"the operator saw {timing['batches']} of {len(batches)} batches")
    examples = len(batches) * BATCH_EXAMPLES
    span_s = timing["last_finished"] - timing["first_started"]
    job_s = result.get_net_runtime() / 1000
    return {"examples_per_s": examples / span_s, "seconds": span_s,
            "busy_share": timing["busy_s"] / span_s, "step_share": timing["step_s"] / span_s,
            "state_write_share": timing["state_write_s"] / span_s,
            "job_seconds": job_s, "examples_per_s_with_startup": examples / job_s}


def measure_trainer(cfg: FreshrankConfig, batches: list[str]) -> dict:
    """What process_element does (json.loads, train, state_changes), without Flink."""
    session = TrainingSession(cfg)
    step_s = 0.0
    started = time.perf_counter()
    session.load(None)
    for i, batch in enumerate(batches):
        session.consume([tuple(record) for record in json.loads(batch)], now_ms=i)
        step_s += session.last_step_ms / 1000
        session.state_changes()
    seconds = time.perf_counter() - started
    return {"examples_per_s": len(batches) * BATCH_EXAMPLES / seconds, "seconds": seconds,
            "step_share": step_s / seconds, "torch_threads": torch.get_num_threads()}


def measure_throughput(n_batches: int) -> dict:
    """The Flink-free path right before and right after the operator, on the same batches: a
    shared machine's load changes by the minute."""
    batches = make_batches(n_batches)
    with tempfile.TemporaryDirectory(prefix="freshrank-bench-operator-") as tmp:
        work = Path(tmp)
        cfg = bench_config(work / "models", work / "checkpoints")
        before = measure_trainer(cfg, batches)
        operator = measure_operator(cfg, batches, work)
        after = measure_trainer(cfg, batches)
    return {"operator": operator, "trainer_runs": [before, after]}


# ------------------------------------------------------------------------------ report
def checkpoint_figures(rows: int, touched: int, checkpoints: list[dict]) -> dict:
    full = checkpoints[0]
    full_bytes = full["checkpointed_bytes"]
    headline = [c for c in checkpoints[1:] if c["touched_rows"] == touched]
    sizes = [c["checkpointed_bytes"] for c in headline]
    by_touched: dict[int, list[dict]] = {}
    for c in checkpoints[1:]:
        by_touched.setdefault(c["touched_rows"], []).append(c)
    return {
        "rows": rows, "touched_rows": touched,
        "full_bytes": full_bytes, "full_checkpoint_ms": full["duration_ms"],
        "incremental_bytes": statistics.median(sizes),
        "incremental_ratio": statistics.median(sizes) / full_bytes,
        # RocksDB compactions rewrite files, and the checkpoint after one uploads them again:
        # the mean and the max show what the median hides.
        "incremental_bytes_mean": statistics.mean(sizes),
        "incremental_ratio_mean": statistics.mean(sizes) / full_bytes,
        "incremental_ratio_max": max(sizes) / full_bytes,
        "incremental_checkpoints": len(sizes),
        "incremental_checkpoint_ms": statistics.median(c["duration_ms"] for c in headline),
        "target_ratio": TARGET_RATIO,
        "checkpoint_sweep": [
            {"touched_rows": t, "checkpoints": len(cs),
             "median_checkpointed_bytes": statistics.median(c["checkpointed_bytes"] for c in cs),
             "mean_checkpointed_bytes": statistics.mean(c["checkpointed_bytes"] for c in cs),
             "median_duration_ms": statistics.median(c["duration_ms"] for c in cs)}
            for t, cs in sorted(by_touched.items())],
        "checkpoints": checkpoints,
    }


def throughput_figures(throughput: dict) -> dict:
    operator, runs = throughput["operator"], throughput["trainer_runs"]
    trainer = statistics.mean(r["examples_per_s"] for r in runs)
    return {
        "operator_examples_per_s": operator["examples_per_s"],
        "trainer_examples_per_s": trainer,
        "operator_vs_trainer_ratio": operator["examples_per_s"] / trainer,
        "operator": operator, "trainer_runs": runs,
    }


def report_rows(f: dict) -> list[tuple[str, str]]:
    operator, runs = f["operator"], f["trainer_runs"]
    return [
        ("rows in state", f"{f['rows']:,} ({f['value_bytes_per_row']:.0f} B packed per row, "
                          f"all written in {f['load_seconds']:.1f} s)"),
        ("full checkpoint", f"{_mb(f['full_bytes'])}, {f['full_checkpoint_ms']:,} ms"),
        (f"incremental, {f['touched_rows']:,} rows changed",
         f"{_mb(f['incremental_bytes'])} median of {f['incremental_checkpoints']}, "
         f"{f['incremental_checkpoint_ms']:,.0f} ms"),
        ("incremental / full", f"{f['incremental_ratio']:.2%} median, {f['incremental_ratio_mean']:.2%} mean, "
                               f"{f['incremental_ratio_max']:.2%} max (target <= {TARGET_RATIO:.0%})"),
        ("checkpoints in order", "rows changed before it: uploaded, duration"),
        *[(f"  #{c['id']}", f"{c['touched_rows']:>9,}: {_mb(c['checkpointed_bytes']):>10}, {c['duration_ms']:,} ms")
          for c in f["checkpoints"]],
        ("operator in Flink", f"{operator['examples_per_s']:,.0f} examples/s over {operator['seconds']:.1f} s "
                              f"(in process_element {operator['busy_share']:.0%}: train steps "
                              f"{operator['step_share']:.0%}, state writes {operator['state_write_share']:.0%}); "
                              f"{operator['examples_per_s_with_startup']:,.0f} with job start-up"),
        ("Flink-free TrainingSession", f"{f['trainer_examples_per_s']:,.0f} examples/s, mean of "
         + ", ".join(f"{r['examples_per_s']:,.0f}" for r in runs)
         + f" (train steps {statistics.mean(r['step_share'] for r in runs):.0%}, "
           f"{runs[0]['torch_threads']} torch threads)"),
        ("operator / trainer", f"{f['operator_vs_trainer_ratio']:.2f}"),
    ]


def main() -> None:
    args = parse_args("checkpoint", __doc__.split("\n\n")[0])
    rows = 100_000 if args.quick else 1_000_000
    touched = int(rows * TOUCHED_SHARE)
    sweep = [(touched, 4 if args.quick else 8), (touched // 10, 2), (touched * 10, 2), (0, 2)]
    n_batches = 40 if args.quick else 200
    load_before = os.getloadavg()
    state = measure_checkpoints(rows, sweep)
    throughput = measure_throughput(n_batches)
    figures = {
        "quick": args.quick,
        **checkpoint_figures(rows, touched, state["checkpoints"]),
        "load_seconds": state["load_seconds"], "value_bytes_per_row": state["value_bytes_per_row"],
        "flink_settings": state["settings"],
        **throughput_figures(throughput),
        "throughput_batches": n_batches, "batch_examples": BATCH_EXAMPLES,
        "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
    }
    write_report("checkpoint", args.json, figures, report_rows(figures))


def _mb(n: float) -> str:
    return f"{n / 1e6:,.2f} MB"


if __name__ == "__main__":
    main()
