"""Training throughput of the incremental trainer, next to a plain PyTorch peer.

    python -m bench.trainer [--quick] [--json PATH] [--batch-sizes 1024,4096] [--threads 1,2]
                            [--no-keep-freed-memory]

Both models are the default ModelConfig (9 embedding fields of dim 16, DeepFM MLP (64, 32), two
heads) and learn from the same stream, one micro-batch per step, prequential metrics included.
Streams: "datagen" is freshrank.datagen (the generator behind `freshrank produce`) with 200k
users and 50k items plus 500 new items an hour (the headline); "longtail" (full run only) is a
harsher synthetic Zipf(1.1) stream over 500k users and 100k items where about half of the user
and item ids of a batch are new or not yet admitted (model/synthetic.py).

The peer is what one would write first: one nn.Embedding(sparse=True) per field behind a plain
dict id map, an EmbeddingBag for query tokens, SparseAdam for the embeddings and Adam for the
same dense network.

Two timings per model: from example dicts (encode included: what the Flink operator sees) and
from pre-encoded batches. Rounds alternate between the models so that a busy neighbour on a
shared machine slows both alike; the median round is reported (and the best). The headline
(`examples_per_s` in the JSON, against the 150,000 examples/s target) is ours from example dicts,
datagen stream, micro-batch 4096, at the better of the thread counts; `ratio` divides it by the
peer's figure from dicts.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench._common import machine, parse_args, print_table, write_json
from freshrank.datagen import EventGenerator, GeneratorConfig
from model.config import ModelConfig, TrainerConfig
from model.features import EncodedBatch, FeatureSpec, encode
from model.metrics import auc, logloss
from model.network import RankingNetwork
from model.synthetic import batches, make_examples
from model.trainer import Trainer

HEADLINE_BATCH = 4096
HEADLINE_STREAM = "datagen"
TARGET_EXAMPLES_PER_S = 150_000
DATAGEN = dict(seed=7, n_users=200_000, n_items_initial=50_000, new_items_per_hour=500.0)
LONGTAIL = dict(seed=7, n_users=500_000, n_items=100_000, zipf_a=1.1, span_ms=6 * 3_600_000)
PEER_VOCAB = {"user_id": 1 << 18, "item_id": 1 << 18}  # other id fields: 4096 rows


def make_stream(name: str, n: int) -> list[dict]:
    if name == "datagen":
        return list(EventGenerator(GeneratorConfig(**DATAGEN)).examples(n))
    return make_examples(n, **LONGTAIL)


class PeerDeepFM:
    """The plain baseline: nn.Embedding(sparse=True) + SparseAdam, same dense network."""

    def __init__(self, config: ModelConfig) -> None:
        self.spec = FeatureSpec.from_config(config)
        self.vocab = [PEER_VOCAB.get(f, 4096) for f in self.spec.sparse_fields]
        self.ids: list[dict[str, int]] = [{} for _ in self.spec.sparse_fields]
        dim = config.embedding_dim
        self.embeddings = nn.ModuleList(nn.Embedding(vocab, dim, sparse=True)
                                        for vocab in self.vocab)
        self.tokens = nn.EmbeddingBag(config.token_buckets, dim, mode="mean", sparse=True)
        for table in list(self.embeddings) + [self.tokens]:
            nn.init.normal_(table.weight, std=config.init_std)
        self.network = RankingNetwork(self.spec.num_fields, dim, self.spec.num_dense,
                                      config.hidden_sizes, normalizer_horizon=1_000_000)
        sparse = list(self.embeddings.parameters()) + list(self.tokens.parameters())
        self.sparse_optimizer = torch.optim.SparseAdam(sparse, lr=1e-2)
        self.dense_optimizer = torch.optim.Adam(self.network.parameters(), lr=1e-3)

    def step(self, batch: Sequence[dict] | EncodedBatch) -> float:
        enc = batch if isinstance(batch, EncodedBatch) else encode(batch, self.spec)
        columns = []
        for ids, vocab, keys in zip(self.ids, self.vocab, enc.sparse_keys):
            index = [ids.setdefault(k, len(ids) % vocab) for k in keys]
            columns.append(torch.tensor(index, dtype=torch.int64))
        parts = [emb(col) for emb, col in zip(self.embeddings, columns)]
        parts.append(self.tokens(torch.from_numpy(enc.token_buckets),
                                 torch.from_numpy(enc.token_offsets[:-1])))
        dense = torch.from_numpy(enc.dense)
        logits = self.network(torch.stack(parts, dim=1), dense)
        targets = torch.from_numpy(np.stack([enc.click, enc.purchase], axis=1))
        loss = F.binary_cross_entropy_with_logits(logits, targets)
        p_click = torch.sigmoid(logits[:, 0].detach()).numpy()
        auc(enc.click, p_click), logloss(enc.click, p_click)  # same prequential work as ours
        self.sparse_optimizer.zero_grad()
        self.dense_optimizer.zero_grad()
        loss.backward()
        self.sparse_optimizer.step()
        self.dense_optimizer.step()
        self.network.normalizer.update(dense)
        return float(loss.detach())


def timed_rounds(steps: dict[str, Callable], inputs: dict[str, list], rounds: int,
                 per_round: int) -> dict[str, list[float]]:
    """examples/s of each step function per round, the functions taking turns each round."""
    rates: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(rounds):
        for name, step in steps.items():
            data = inputs[name]
            chunk = [data[(r * per_round + i) % len(data)] for i in range(per_round)]
            n = sum(len(b) if isinstance(b, list) else b.size for b in chunk)
            start = time.perf_counter()
            for b in chunk:
                step(b)
            rates[name].append(n / (time.perf_counter() - start))
    return rates


def run(stream: list[dict], stream_name: str, batch_size: int, threads: int, quick: bool,
        keep_freed_memory: bool = True) -> dict:
    torch.set_num_threads(threads)
    rounds, per_round = (3, 4) if quick else (5, 6)
    chunks = batches(stream, batch_size)
    config = ModelConfig()
    ours = Trainer(config, TrainerConfig(keep_freed_memory=keep_freed_memory))
    peer = PeerDeepFM(config)
    encoded = [encode(b, ours.spec) for b in chunks]
    warmup = len(chunks) // 2  # fill the tables first: measure the steady state
    for b in encoded[:warmup]:
        ours.step(b)
        peer.step(b)
    steps = {"ours/dicts": ours.step, "peer/dicts": peer.step,
             "ours/encoded": ours.step, "peer/encoded": peer.step}
    inputs = {"ours/dicts": chunks[warmup:], "peer/dicts": chunks[warmup:],
              "ours/encoded": encoded[warmup:], "peer/encoded": encoded[warmup:]}
    rates = timed_rounds(steps, inputs, rounds, per_round)
    encode_rate = timed_rounds({"encode": lambda b: encode(b, ours.spec)},
                               {"encode": chunks}, rounds, per_round)["encode"]
    memory = [t.memory_bytes() for t in ours.tables.values()]
    live_rows = sum(m["live_rows"] for m in memory) + len(memory)  # + default rows
    total_bytes = sum(m["tensors"] + m["arrays"] + m["index"] for m in memory)
    return {
        "stream": stream_name, "batch_size": batch_size, "threads": threads,
        "median": {k: statistics.median(v) for k, v in rates.items()},
        "best": {k: max(v) for k, v in rates.items()},
        "encode_examples_per_s": statistics.median(encode_rate),
        "bytes_per_row": total_bytes / live_rows,
        "memory": {
            "live_rows": live_rows,
            "tensor_bytes": sum(m["tensors"] for m in memory),
            "bookkeeping_bytes": sum(m["arrays"] for m in memory),
            "index_bytes": sum(m["index"] for m in memory),
            "allocated_rows": sum(m["allocated_rows"] for m in memory),
            "bytes_per_row_vector_and_slot": 4 * config.embedding_dim + 4,
        },
        "counters": ours.counters(),
        "recent_metrics": ours.recent_metrics(),
    }


def main() -> None:
    args = parse_args("trainer", __doc__.split("\n\n")[0], extra=[
        ("--batch-sizes", {"default": None, "help": "comma-separated micro-batch sizes"}),
        ("--threads", {"default": None, "help": "comma-separated torch thread counts "
                                                  "(default: 1 and torch's default)"}),
        ("--no-keep-freed-memory", {"action": "store_true",
                                    "help": "leave glibc's malloc trimming on (process-wide, "
                                            "both models; see TrainerConfig.keep_freed_memory)"}),
    ])
    sizes = ([int(s) for s in args.batch_sizes.split(",")] if args.batch_sizes
             else [HEADLINE_BATCH] if args.quick else [1024, HEADLINE_BATCH])
    threads = ([int(t) for t in args.threads.split(",")] if args.threads
               else sorted({1, torch.get_num_threads()}))
    streams = [HEADLINE_STREAM] if args.quick else [HEADLINE_STREAM, "longtail"]
    n_examples = max(sizes) * (12 if args.quick else 40)
    before = machine()
    runs = []
    for name in streams:
        stream = make_stream(name, n_examples)
        runs += [run(stream, name, size, t, args.quick, not args.no_keep_freed_memory)
                 for size in sizes for t in threads]
    headline_runs = [r for r in runs if r["stream"] == HEADLINE_STREAM
                     and r["batch_size"] == (HEADLINE_BATCH if HEADLINE_BATCH in sizes
                                             else sizes[-1])]
    headline = max(headline_runs, key=lambda r: r["median"]["ours/dicts"])
    rows = []
    for r in runs:
        for mode in ("dicts", "encoded"):
            ours, peer = r["median"][f"ours/{mode}"], r["median"][f"peer/{mode}"]
            note = "headline" if r is headline and mode == "dicts" else ""
            rows.append((r["stream"], r["batch_size"], r["threads"], mode, ours,
                         r["best"][f"ours/{mode}"], peer, ours / peer, note))
    print_table(["stream", "batch", "threads", "input", "ours ex/s (median)", "ours (best)",
                 "peer ex/s", "ratio", ""], rows)
    print("input: 'dicts' = example dicts, encode included (what the Flink operator feeds the "
          "trainer; the headline), 'encoded' = pre-encoded batches")
    print(f"\nheadline ({headline['stream']}, batch {headline['batch_size']}, "
          f"{headline['threads']} thread(s)): {headline['median']['ours/dicts']:,.0f} "
          f"examples/s from dicts (target {TARGET_EXAMPLES_PER_S:,}); encode alone "
          f"{headline['encode_examples_per_s']:,.0f} examples/s; memory per embedding row "
          f"{headline['bytes_per_row']:.0f} bytes ({headline['memory']['live_rows']:,} rows)")
    result = {
        "examples_per_s": headline["median"]["ours/dicts"],
        "examples_per_s_encoded": headline["median"]["ours/encoded"],
        "peer_examples_per_s": headline["median"]["peer/dicts"],
        "peer_examples_per_s_encoded": headline["median"]["peer/encoded"],
        "ratio": headline["median"]["ours/dicts"] / headline["median"]["peer/dicts"],
        "ratio_encoded": (headline["median"]["ours/encoded"]
                          / headline["median"]["peer/encoded"]),
        "encode_examples_per_s": headline["encode_examples_per_s"],
        "bytes_per_row": headline["bytes_per_row"],
        "batch_size": headline["batch_size"],
        "threads": headline["threads"],
        "stream": headline["stream"],
        "target_examples_per_s": TARGET_EXAMPLES_PER_S,
        "target_met": headline["median"]["ours/dicts"] >= TARGET_EXAMPLES_PER_S,
        "keep_freed_memory": not args.no_keep_freed_memory,
        "model": ModelConfig().to_dict(),
        "streams": {"datagen": DATAGEN, "longtail": LONGTAIL},
        "quick": args.quick,
        "runs": runs,
        "machine_before": before,
        "machine_after": machine(),
    }
    print(f"wrote {write_json(result, args.json)}")


if __name__ == "__main__":
    main()
