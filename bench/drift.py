"""Does learning incrementally pay off on a drifting stream?

    python -m bench.drift [--quick] [--json PATH] [--days N] [--batch-size B] [--seed S]

The stream is freshrank.datagen (the generator behind `freshrank produce`): users' interests
drift, item quality and category popularity drift, new items keep arriving. One model learns
from every micro-batch (prequentially: each batch is scored before it is learned); a copy of it
is frozen at the end of day 1 and only predicts from then on. Both are scored on the same
batches of days 2..N; the AUC is the click AUC over all those examples pooled.
"""

from __future__ import annotations

import time
from typing import Iterator

import numpy as np

from bench._common import machine, parse_args, print_table, write_json
from freshrank.datagen import DAY_MS, EventGenerator, GeneratorConfig
from model.config import ModelConfig, TrainerConfig
from model.metrics import auc, logloss
from model.trainer import Trainer

TARGET_AUC_GAIN = 0.01


def day_batches(generator: EventGenerator, days: int, batch_size: int
                ) -> Iterator[tuple[int, list[dict]]]:
    """(day, micro-batch) in event-time order; a batch never straddles two days."""
    start = generator.config.start_ms
    batch: list[dict] = []
    batch_day = 0
    for example in generator.examples():
        day = (example["ts"] - start) // DAY_MS
        if batch and (day != batch_day or len(batch) == batch_size):
            yield batch_day, batch
            batch = []
        if day >= days:
            return
        batch_day = day
        batch.append(example)
    if batch:
        yield batch_day, batch


def main() -> None:
    args = parse_args("drift", __doc__.split("\n\n")[0], extra=[
        ("--days", {"type": int, "default": None, "help": "simulated days (default 6, quick 4)"}),
        ("--batch-size", {"type": int, "default": 1024, "help": "examples per micro-batch"}),
        ("--seed", {"type": int, "default": 0, "help": "generator and model seed"}),
    ])
    days = args.days or (4 if args.quick else 6)
    if days < 2:
        raise SystemExit("--days must be >= 2 (day 1 trains, days 2..N are scored)")
    per_day = 50_000 if args.quick else 150_000
    generator = EventGenerator(GeneratorConfig(seed=args.seed, examples_per_sim_day=per_day))
    incremental = Trainer(ModelConfig(seed=args.seed), TrainerConfig())
    frozen: Trainer | None = None
    scored: dict[str, list[np.ndarray]] = {"day": [], "label": [], "incremental": [], "frozen": []}
    started = time.perf_counter()
    examples = 0
    for day, batch in day_batches(generator, days, args.batch_size):
        if day >= 1:
            if frozen is None:  # end of day 1: freeze an exact copy
                frozen = Trainer.restore(incremental.snapshot())
            scored["day"].append(np.full(len(batch), day + 1))
            scored["label"].append(np.array([e["click"] for e in batch]))
            scored["incremental"].append(incremental.predict(batch)[:, 0])
            scored["frozen"].append(frozen.predict(batch)[:, 0])
        incremental.step(batch)
        examples += len(batch)
    elapsed = time.perf_counter() - started
    if frozen is None:
        raise SystemExit("the stream ended before day 2")
    day_of, labels = np.concatenate(scored["day"]), np.concatenate(scored["label"])
    predictions = {k: np.concatenate(scored[k]) for k in ("incremental", "frozen")}

    per_day_rows = []
    for day in range(2, days + 1):
        mask = day_of == day
        per_day_rows.append({
            "day": day, "n": int(mask.sum()), "click_rate": float(labels[mask].mean()),
            **{f"auc_{k}": auc(labels[mask], p[mask]) for k, p in predictions.items()},
            **{f"logloss_{k}": logloss(labels[mask], p[mask]) for k, p in predictions.items()},
        })
    print_table(["day", "examples", "AUC incremental", "AUC frozen", "log-loss incr.",
                 "log-loss frozen"],
                [(r["day"], r["n"], r["auc_incremental"], r["auc_frozen"],
                  r["logloss_incremental"], r["logloss_frozen"]) for r in per_day_rows])
    result = {
        "auc_incremental": auc(labels, predictions["incremental"]),
        "auc_frozen": auc(labels, predictions["frozen"]),
        "logloss_incremental": logloss(labels, predictions["incremental"]),
        "logloss_frozen": logloss(labels, predictions["frozen"]),
        "scored_examples": int(labels.size),
        "days": days, "examples_per_sim_day": per_day, "batch_size": args.batch_size,
        "seed": args.seed, "per_day": per_day_rows, "quick": args.quick,
        "wall_s": elapsed, "examples": examples, "counters": incremental.counters(),
        "model": incremental.model_config.to_dict(), "trainer": incremental.config.to_dict(),
        "machine": machine(),
    }
    result["auc_gain"] = result["auc_incremental"] - result["auc_frozen"]
    result["target_auc_gain"] = TARGET_AUC_GAIN
    result["target_met"] = result["auc_gain"] >= TARGET_AUC_GAIN
    print(f"\ndays 2..{days}: AUC incremental {result['auc_incremental']:.4f}, frozen after "
          f"day 1 {result['auc_frozen']:.4f}, gain {result['auc_gain']:+.4f} "
          f"(target >= {TARGET_AUC_GAIN}); {examples:,} examples in {elapsed:.0f} s")
    print(f"wrote {write_json(result, args.json)}")


if __name__ == "__main__":
    main()
