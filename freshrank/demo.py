"""`freshrank demo` (`make demo`): the whole loop on this machine, then a ranking answered.

Starts Kafka and Flink, submits the online-training job, produces generated events in the
background, starts serving, waits for the first published model version and asks serving to
rank a result page. Everything keeps running (the web UI stays up) until `make down`.
"""
from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from freshrank.config import FreshrankConfig
from freshrank.stack import FlinkCluster, Stack, StackError, submit_split
from freshrank.topics import read_topic, topic_sizes


def _cli(args, *rest: str) -> list[str]:
    cmd = [sys.executable, "-m", "freshrank.cli"]
    if args.config:
        cmd += ["--config", args.config]
    return cmd + list(rest)


def _http_json(url: str, payload: dict | None = None, timeout: float = 5.0) -> dict:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def _first_version(cfg: FreshrankConfig, timeout_s: float, say, since_ms: int) -> dict | None:
    """The first version committed at or after since_ms (the state of an earlier run stays on the
    topics until `make clean`); says every 15 s how far the stream got."""
    from confluent_kafka import Consumer
    consumer = Consumer({"bootstrap.servers": cfg.kafka.bootstrap, "group.id": f"freshrank-demo-{time.monotonic_ns()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    consumer.subscribe([cfg.kafka.topics.model_versions])
    deadline = time.monotonic() + timeout_s
    next_report = time.monotonic() + 15
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error() and msg.timestamp()[1] >= since_ms:
                return json.loads(msg.value())
            if time.monotonic() >= next_report:
                next_report += 15
                say(_progress(cfg))
    finally:
        consumer.close()
    return None


def _progress(cfg: FreshrankConfig) -> str:
    topics = cfg.kafka.topics
    try:
        sizes = topic_sizes(cfg)
    except Exception as exc:  # progress is informative only; the wait goes on
        return f"waiting (topic sizes unavailable: {exc})"
    return (f"waiting: {sizes.get(topics.events, 0):,} events in, {sizes.get(topics.dlq, 0):,} dead letters, "
            f"{sizes.get(topics.training_examples, 0):,} training examples, "
            f"{sizes.get(topics.training_ledger, 0):,} chunks trained")


def _sample_page(cfg: FreshrankConfig) -> dict | None:
    """A real impression from the stream, turned into a rank request."""
    for _, value in read_topic(cfg.kafka.bootstrap, cfg.kafka.topics.events, timeout_s=10, committed_only=False):
        try:
            event = json.loads(value)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("type") == "impression" and event.get("items"):
            return {"user_id": event["user_id"], "query": event.get("query", ""),
                    "device": event.get("device"), "platform": event.get("platform"),
                    "candidates": [{k: item.get(k) for k in ("item_id", "category", "brand", "price")}
                                   for item in event["items"]]}
    return None


def run_demo(cfg: FreshrankConfig, args) -> int:
    started, started_ms = time.monotonic(), int(time.time() * 1000)

    def say(text: str) -> None:
        print(f"[{time.monotonic() - started:5.0f} s] {text}", flush=True)

    stack, flink = Stack(cfg), FlinkCluster(cfg)
    running = [j["jid"] for j in flink.rest("/jobs/overview").get("jobs", [])
               if j["state"] == "RUNNING"] if flink.ready() else []
    stack.up(wait_for_flink=False)
    # Events flow while Flink starts and the job is submitted (a minute or more on 2 busy cores):
    # the job then finds them waiting, and since event time is wall time, the click windows of
    # the first impressions have already closed when it reads them, so negatives come at once.
    stack.spawn("producer", _cli(args, "produce", "-n", "0", "--rate", str(args.rate)))
    say(f"Kafka is up; producing {args.rate:,.0f} events/s in the background")
    submitting = None
    if not running:
        # Two jobs, so that the feature stage and the trainer each have a core, their own
        # checkpoints and restarts, and the feature stage its own state backend. Each `flink run`
        # starts a JVM and plans for ~20 s before it talks to the cluster, so they start now,
        # while the cluster does (its REST client retries until the JobManager answers).
        submitting = ThreadPoolExecutor(1).submit(
            submit_split, flink, ["--config", args.config] if args.config else [])
    flink.wait_ready()
    say("Flink is up")
    if running:
        say(f"job(s) already running: {', '.join(running)}")
    else:
        for stages, job_id in submitting.result():
            say(f"job submitted ({stages}): {job_id}")
    stack.spawn("serving", _cli(args, "serve"))
    say(f"serving started; waiting for the first model version (up to {args.timeout:.0f} s) ...")
    version = _first_version(cfg, args.timeout, say, started_ms)
    if version is None:
        raise StackError(f"no model version within {args.timeout:.0f} s: see the job in "
                         f"http://localhost:{cfg.stack.flink_rest_port} and .stack/flink/log")
    say(f"model version {version['version']} published: "
        f"{version['onnx_uri']} (sha256 {version['sha256'][:12]}..., {version['delta_rows']} embedding rows)")
    print("  metrics: " + json.dumps(version.get("metrics", {})))

    serving = f"http://{cfg.serving.host}:{cfg.serving.port}"
    page = _sample_page(cfg)
    deadline = time.monotonic() + 60
    ranking = None
    while page and time.monotonic() < deadline:
        try:
            ranking = _http_json(f"{serving}/rank", page)
            break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1)  # serving still starting, or no version loaded yet (503)
    if ranking is None:
        raise StackError("serving did not answer a ranking within 60 s: see .stack/logs/serving.log")
    print(f"ranking from serving (model {ranking.get('model')} v{ranking.get('version')}) "
          f"for user {page['user_id']} query {page['query']!r}:")
    for i, item in enumerate(ranking.get("items", [])[:10], 1):
        print(f"  {i:2d}. {item['item_id']:10} p_click={item['p_click']:.4f}")
    print(f"\nFlink web UI: http://localhost:{cfg.stack.flink_rest_port}/#/job/running   serving: {serving}/healthz")
    print("everything keeps running (events keep flowing, versions keep coming); `make down` stops it all.")
    return 0
