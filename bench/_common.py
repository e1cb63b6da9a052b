"""Shared plumbing of the `python -m bench.<name> [--quick] [--json PATH]` benchmarks."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
from pathlib import Path
from typing import Any, Sequence

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args(name: str, description: str, extra: Sequence[tuple[str, dict]] = ()
               ) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m bench.{name}", description=description)
    parser.add_argument("--quick", action="store_true", help="smaller run, for CI and smoke tests")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / f"{name}.json",
                        help=f"where to write the result (default bench/results/{name}.json)")
    for flag, options in extra:
        parser.add_argument(flag, **options)
    return parser.parse_args()


def machine() -> dict[str, Any]:
    """What the numbers were measured on, including how busy the machine was."""
    import torch

    return {
        "python": platform.python_version(), "torch": torch.__version__,
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(), "load_average": list(os.getloadavg()),
    }


def descendant_cpu_ticks(exclude: set[int]) -> dict[int, tuple[str, int]]:
    """Command name and CPU ticks (utime + stime) of every process below this one: the JVM that
    runs a MiniCluster and its Python workers (`exclude`: e.g. the Kafka broker, when started here)."""
    from freshrank.stack import descendants
    ticks = {}
    for pid in descendants(os.getpid(), exclude):
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue  # exited meanwhile
        fields = text[text.rindex(")") + 2:].split()  # proc(5) fields 3..: state, ppid, ...
        ticks[pid] = (text[text.index("(") + 1:text.rindex(")")], int(fields[11]) + int(fields[12]))
    return ticks


def write_json(result: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_json_safe(result), indent=2, sort_keys=True) + "\n")
    return path


def write_report(name: str, path: Path, figures: dict[str, Any], rows: Sequence[tuple[str, str]]) -> None:
    """Print labelled figures as a two-column table and write them, with the machine, as JSON."""
    width = max(len(label) for label, _ in rows)
    print(f"\n{name}")
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    write_json({"benchmark": name, "machine": machine(), **figures}, path)
    print(f"  (figures written to {path})")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.rjust(w) if i else c.ljust(w)
                        for i, (c, w) in enumerate(zip(row, widths))))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
