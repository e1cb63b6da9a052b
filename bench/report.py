"""Shared plumbing for `python -m bench.<name> [--quick] [--json PATH]`: arguments, table, JSON."""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args(name: str, description: str, extra=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m bench.{name}", description=description)
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run (smoke test)")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / f"{name}.json",
                        help=f"where to write the figures (default bench/results/{name}.json)")
    if extra:
        extra(parser)
    return parser.parse_args()


def write_report(name: str, path: Path, figures: dict, rows: list[tuple[str, str]]) -> None:
    """Print a readable table and write the figures (plus the machine they came from) as JSON."""
    width = max(len(label) for label, _ in rows)
    print(f"\n{name}")
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    document = {"benchmark": name, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform()},
                **figures}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    print(f"  (figures written to {path})")
