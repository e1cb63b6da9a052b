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

from freshrank.config import FreshrankConfig
from freshrank.stack import FlinkCluster, Stack, StackError
from freshrank.topics import read_topic


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


def _first_version(cfg: FreshrankConfig, timeout_s: float) -> dict | None:
    for _, value in read_topic(cfg.kafka.bootstrap, cfg.kafka.topics.model_versions,
                               timeout_s=timeout_s, until=lambda n: n >= 1):
        return json.loads(value)
    return None


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
    started = time.monotonic()
    stack = Stack(cfg)
    stack.up()
    flink = FlinkCluster(cfg)
    running = [j for j in flink.rest("/jobs/overview").get("jobs", []) if j["state"] == "RUNNING"]
    if running:
        print(f"job already running: {running[0]['jid']}")
    else:
        job_id = flink.submit(["--config", args.config] if args.config else [])
        print(f"job submitted: {job_id}")
    stack.spawn("producer", _cli(args, "produce", "-n", "0", "--rate", str(args.rate)))
    stack.spawn("serving", _cli(args, "serve"))
    print(f"producing events in the background; waiting for the first model version "
          f"(up to {args.timeout:.0f} s) ...")
    version = _first_version(cfg, args.timeout)
    if version is None:
        raise StackError(f"no model version within {args.timeout:.0f} s: see the job in "
                         f"http://localhost:{cfg.stack.flink_rest_port} and .stack/flink/log")
    print(f"model version {version['version']} published after {time.monotonic() - started:.0f} s: "
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
