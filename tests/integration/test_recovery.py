"""Crash the training job mid-stream; it must learn every example exactly once and end with the
weights of a run that never crashed.

The training stage runs alone (`job.stages = training`) on its own topics, fed a known stream of
examples at a steady rate. While it learns, the TaskManager JVM running it is killed with SIGKILL
(and a fresh one started), and later, separately, its Python worker is killed. Flink restores
the job from its latest checkpoint each time. Then:
  * the committed training ledger names every offset of the examples topic in exactly one chunk,
    and the chunks are numbered 1..n without a gap or a repeat;
  * in deterministic CPU mode, the last version's weights (its ONNX file and the embedding rows
    on the deltas topic) equal those of the same examples learned without interruption, by the
    same code outside Flink, to 1e-6.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import onnx
import pytest
from confluent_kafka import Consumer, Producer
from onnx import numpy_helper

from flink_jobs.training_session import TrainingSession
from freshrank.config import load_config
from freshrank.stack import create_topics, flink_home, pid_alive
from model.export import export_onnx
from model.synthetic import make_examples

pytestmark = pytest.mark.integration

MODEL = "recovery"
CHUNK = 256
CHUNKS = 24
RATE_PER_S = 60  # the stream lasts ~100 s, so both crashes fall inside it
RECOVERY_JOB = {
    "FRESHRANK_JOB__STAGES": "training",
    "FRESHRANK_JOB__MODEL_NAME": MODEL,
    "FRESHRANK_JOB__BATCH_MAX_EXAMPLES": str(CHUNK),
    "FRESHRANK_JOB__BATCH_LINGER_MS": "0",  # chunks by offset only: a replay is exact
    "FRESHRANK_JOB__CHECKPOINT_INTERVAL_MS": "2000",
    "FRESHRANK_JOB__PUBLISH_INTERVAL_MS": "3000",
    "FRESHRANK_JOB__HOLDOUT_SHARE": "0.1",
    # The test is about state, not about model quality: every candidate passes the gate.
    "FRESHRANK_JOB__GATE_MIN_EXAMPLES": "20",
    "FRESHRANK_JOB__GATE_MAX_AUC_DROP": "1.0",
    "FRESHRANK_JOB__GATE_MAX_LOGLOSS_RISE": "100.0",
    "FRESHRANK_TRAINER__DETERMINISTIC": "true",
    "FRESHRANK_TRAINER__DEVICE": "cpu",
    "FRESHRANK_KAFKA__TOPICS__TRAINING_EXAMPLES": "recovery.training.examples",
    "FRESHRANK_KAFKA__TOPICS__TRAINING_LEDGER": "recovery.training.ledger",
    "FRESHRANK_KAFKA__TOPICS__MODEL_VERSIONS": "recovery.model.versions",
    "FRESHRANK_KAFKA__TOPICS__MODEL_DELTAS": "recovery.model.deltas",
}


def records(bootstrap: str, topic: str, timeout_s: float = 10.0, until=None) -> list[tuple[int, bytes | None]]:
    """(offset, value) of every committed record, until `until(records)` or a quiet topic."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"recovery-test-{time.monotonic_ns()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    consumer.subscribe([topic])
    out: list[tuple[int, bytes | None]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not (until and until(out)):
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                out.append((msg.offset(), msg.value()))
    finally:
        consumer.close()
    return out


def produce_steadily(bootstrap: str, topic: str, examples: list[dict], done: threading.Event,
                     stop: threading.Event) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20})
    for i, example in enumerate(examples):
        if stop.is_set():
            return
        producer.produce(topic, json.dumps(example).encode(), key=MODEL.encode())
        producer.poll(0)
        if i % 20 == 19:
            time.sleep(20 / RATE_PER_S)
    producer.flush(30)
    done.set()


def committed_chunks(bootstrap: str, topic: str) -> int:
    return len(records(bootstrap, topic, timeout_s=3))


def wait_for(check, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(1)
    pytest.fail(f"timed out waiting for {what}; last observation: {last}")


# ---------------------------------------------------------------------------- crashes
def _taskmanager_pid(flink) -> int:
    (pid_file,) = flink.pid_dir.glob("*taskexecutor*.pid")
    (pid,) = [int(p) for p in pid_file.read_text().split() if p.isdigit() and pid_alive(int(p))]
    return pid


def _python_workers(flink) -> list[int]:
    """The cluster's Python worker processes. The TaskManager starts them detached (their parent
    is init), so they are recognised by the cluster's configuration dir in their environment."""
    marker = f"FLINK_CONF_DIR={flink.conf_dir}".encode()
    workers = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
            if (b"pyflink.fn_execution" in cmdline or b"pyflink-udf-runner" in cmdline) \
                    and marker in (proc / "environ").read_bytes().split(b"\0"):
                workers.append(int(proc.name))
        except OSError:  # gone meanwhile
            continue
    return workers


def kill_taskmanager_and_start_another(flink) -> None:
    pid = _taskmanager_pid(flink)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), 30, "the TaskManager to die")
    for pid_file in flink.pid_dir.glob("*taskexecutor*.pid"):
        pid_file.unlink()
    subprocess.run(["bash", str(flink_home() / "bin" / "taskmanager.sh"), "start"], env=flink.env(), check=True,
                   capture_output=True)


def kill_python_worker(flink) -> int:
    workers = _python_workers(flink)
    assert workers, "no Python worker under the TaskManager:\n" + subprocess.run(
        ["ps", "-eo", "pid,ppid,args", "--forest"], capture_output=True, text=True).stdout[-6000:]
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    return len(workers)


def restarts(flink, job_id: str) -> int:
    metrics = flink.rest(f"/jobs/{job_id}/metrics?get=numRestarts")  # [] until the JobManager has it
    return int(float(metrics[0]["value"])) if metrics else 0


# ---------------------------------------------------------------------------- weights
def onnx_weights(path: Path) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def published_rows(bootstrap: str, topic: str, version: int) -> dict[tuple[str, str], np.ndarray]:
    rows: dict[tuple[str, str], np.ndarray] = {}
    for _, value in records(bootstrap, topic, timeout_s=10):
        if value is None:
            continue  # a tombstone; nothing expires or is evicted in this stream
        delta = json.loads(value)
        if delta["version"] <= version:
            rows[(delta["table"], delta["key"])] = np.asarray(delta["vector"], np.float32)
    return rows


def test_crashes_neither_lose_nor_repeat_an_example(stack, flink, monkeypatch, tmp_path):
    for key, value in RECOVERY_JOB.items():
        monkeypatch.setenv(key, value)
    cfg = load_config()
    bootstrap, topics = cfg.kafka.bootstrap, cfg.kafka.topics
    create_topics(cfg, log=lambda *_: None)
    examples = make_examples(CHUNK * CHUNKS, seed=21, n_users=300, n_items=200)
    for example in examples:
        example["model"] = MODEL

    job_id = flink.submit([])
    done, stop = threading.Event(), threading.Event()
    producer = threading.Thread(target=produce_steadily, daemon=True,
                                args=(bootstrap, topics.training_examples, examples, done, stop))
    producer.start()
    try:
        # Progress is read from the committed ledger: metrics of a killed task linger in the
        # JobManager's metric store, the ledger holds only what a checkpoint committed.
        wait_for(lambda: committed_chunks(bootstrap, topics.training_ledger) >= CHUNKS // 6, 240, "the first chunks")
        kill_taskmanager_and_start_another(flink)
        wait_for(lambda: restarts(flink, job_id) >= 1 and _python_workers(flink)
                 and committed_chunks(bootstrap, topics.training_ledger) >= CHUNKS // 3, 300,
                 "the job to come back after the TaskManager was killed")
        assert not done.is_set(), "the stream ended before the second crash"
        assert kill_python_worker(flink) >= 1
        wait_for(lambda: restarts(flink, job_id) >= 2, 120, "the job to restart after the Python worker was killed")
        producer.join(120)
        assert done.is_set()
    finally:
        stop.set()

    # The examples topic as it stands, and the committed ledger covering it.
    example_offsets = [o for o, _ in records(bootstrap, topics.training_examples, until=lambda r: len(r) >= len(examples))]
    assert len(example_offsets) == len(examples)
    def committed_ledger():
        entries = records(bootstrap, topics.training_ledger, until=lambda r: len(r) >= CHUNKS, timeout_s=5)
        return entries if len(entries) >= CHUNKS else None

    ledger = [json.loads(v) for _, v in wait_for(committed_ledger, 300, "every chunk in the committed ledger")]
    assert [entry["chunk"] for entry in ledger] == list(range(1, CHUNKS + 1))  # none lost, none twice
    trained = [o for entry in ledger for first, last in entry["offsets"]["0"] for o in range(first, last + 1)]
    assert trained == example_offsets  # every example exactly once, in offset order
    assert sum(e["trained"] + e["held_out"] for e in ledger) == len(examples)
    assert not any(e["skipped"] for e in ledger)

    # The last version has learned everything; its weights are those of an uninterrupted run.
    final = wait_for(lambda: next((v for v in reversed([json.loads(v) for _, v in records(
        bootstrap, topics.model_versions, timeout_s=5)]) if v["examples_consumed"] == len(examples)), None),
        120, "a version that has learned every example")
    assert final["trained_through"] == {"0": example_offsets[-1] + 1}

    replay_cfg = dataclasses.replace(cfg, job=dataclasses.replace(cfg.job, model_store=str(tmp_path / "replay")))
    replay = TrainingSession(replay_cfg)
    replay.load(None)
    replay.consume([(0, offset, dict(example)) for offset, example in zip(example_offsets, examples)], now_ms=0)
    assert replay.chunks_trained == CHUNKS and replay.chunks.pending_count() == 0
    export_onnx(replay.trainer, tmp_path / "replay-onnx", version=0, model=MODEL)

    ours = onnx_weights(Path(urlparse(final["onnx_uri"]).path))
    theirs = onnx_weights(tmp_path / "replay-onnx" / "model.onnx")
    assert ours.keys() == theirs.keys() and ours
    for name in ours:
        assert np.max(np.abs(ours[name] - theirs[name]), initial=0.0) <= 1e-6, name
    rows = published_rows(bootstrap, topics.model_deltas, final["version"])
    replay_rows = {(d.table, d.key): d.vector for d in replay.trainer.changed_rows()}
    assert rows.keys() == replay_rows.keys() and len(rows) > 500
    worst = max(float(np.max(np.abs(rows[k] - replay_rows[k]))) for k in rows)
    assert worst <= 1e-6, worst
