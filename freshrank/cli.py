"""`freshrank` console command: up, down, status, produce, run, serve, demo."""
from __future__ import annotations

import argparse
import json
import sys
import os

from freshrank.config import REPO_ROOT, ConfigError, FreshrankConfig, load_config
from freshrank.stack import FlinkCluster, Stack, StackError, submit_split


def _cmd_up(cfg: FreshrankConfig, args) -> int:
    Stack(cfg).up(flink=not args.kafka_only)
    print(f"ready: kafka on localhost:{cfg.stack.kafka_port}, Flink web UI on http://localhost:{cfg.stack.flink_rest_port}")
    return 0


def _cmd_down(cfg: FreshrankConfig, args) -> int:
    Stack(cfg).down()
    return 0


def _cmd_status(cfg: FreshrankConfig, args) -> int:
    status = Stack(cfg).status()
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    kafka, flink = status["kafka"], status["flink"]
    print(f"kafka   {'up' if kafka['ready'] else 'down':5} {kafka['bootstrap']}  pid {kafka['pid'] or '-'}")
    print(f"flink   {'up' if flink['ready'] else 'down':5} {flink['ui']}  pids {flink['pids'] or '-'}")
    for job in flink["jobs"]:
        print(f"  job {job['id']}  {job['state']:10} {job['name']}")
    if kafka["ready"]:
        from freshrank.topics import topic_sizes
        for topic, size in topic_sizes(cfg).items():
            print(f"  topic {topic:32} {size:>10,} records")
    return 0


def _cmd_produce(cfg: FreshrankConfig, args) -> int:
    from freshrank.produce import produce
    produce(cfg, n=args.n, rate=args.rate, seed=args.seed, malformed_share=args.malformed,
            duplicate_share=args.duplicates, realtime=not args.simulated_time)
    return 0


def _cmd_run(cfg: FreshrankConfig, args) -> int:
    flink = FlinkCluster(cfg)
    job_args = ["--config", args.config] if args.config else []
    submitted = submit_split(flink, job_args) if args.split else [("all", flink.submit(job_args))]
    for stages, job_id in submitted:
        print(f"submitted job {job_id} ({stages}): "
              f"http://localhost:{cfg.stack.flink_rest_port}/#/job/running/{job_id}/overview")
    return 0


def _cmd_serve(cfg: FreshrankConfig, args) -> int:
    from serving.server import serve_forever
    serve_forever(cfg)
    return 0


def _cmd_demo(cfg: FreshrankConfig, args) -> int:
    from freshrank.demo import run_demo
    return run_demo(cfg, args)


DEMO_CONFIG = REPO_ROOT / "stack" / "demo.toml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="freshrank", description=__doc__)
    parser.add_argument("--config", help="TOML config file (default: $FRESHRANK_CONFIG, else built-in defaults)")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start Kafka (KRaft) and a Flink cluster, create the topics")
    up.add_argument("--kafka-only", action="store_true", help="start only the broker")
    up.set_defaults(func=_cmd_up)
    sub.add_parser("down", help="stop everything `up`, `run` and `serve` started").set_defaults(func=_cmd_down)
    status = sub.add_parser("status", help="what is running, jobs, topic sizes")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=_cmd_status)
    produce = sub.add_parser("produce", help="send generated behaviour events to Kafka")
    produce.add_argument("-n", type=int, default=50_000, help="number of records (default 50,000; 0 = forever)")
    produce.add_argument("--rate", type=float, default=2_000.0, help="records per second (default 2,000; 0 = as fast as possible)")
    produce.add_argument("--seed", type=int, default=7)
    produce.add_argument("--malformed", type=float, default=0.01, help="share of malformed records (default 0.01)")
    produce.add_argument("--duplicates", type=float, default=0.01, help="share of duplicated records (default 0.01)")
    produce.add_argument("--simulated-time", action="store_true",
                         help="keep the generator's own clock instead of stamping events with wall-clock time")
    produce.set_defaults(func=_cmd_produce)
    run = sub.add_parser("run", help="submit the online-training job to the Flink cluster")
    run.add_argument("--split", action="store_true",
                     help="two jobs, features and training, each with its own state backend "
                          "(job.features_state_backend for the first) and restarts")
    run.set_defaults(func=_cmd_run)
    sub.add_parser("serve", help="run the ranking server (HTTP) that follows published versions").set_defaults(func=_cmd_serve)
    demo = sub.add_parser("demo", help="up + run + produce + serve, then show a published version and a ranking")
    demo.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for the first version")
    demo.add_argument("--rate", type=float, default=50.0,
                      help="events per second produced in the background (default 50: the job keeps up with it "
                           "on 2 shared cores, and the backlog that waits for the job at start stays small: "
                           "the trainer's first checkpoints carry that backlog, which at 100/s once took 58 s)")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo" and not args.config and not os.environ.get("FRESHRANK_CONFIG"):
            args.config = str(DEMO_CONFIG)
        cfg = load_config(args.config)
        return args.func(cfg, args)
    except (ConfigError, StackError) as exc:
        print(f"freshrank: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
