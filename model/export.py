"""Publishing the dense part of the model as ONNX, with its meta.json (docs/contracts.md)."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any, Mapping

import torch

from model.network import ProbabilityHeads
from model.trainer import Trainer

ONNX_OPSET = 17
INPUT_NAMES = ("sparse_emb", "dense")
OUTPUT_NAMES = ("p_click", "p_purchase")


def export_onnx(trainer: Trainer, out_dir: str | Path, version: int, model: str = "default",
                metrics: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Write `model.onnx` and `meta.json` into `out_dir`; returns the meta dict.

    Metrics default to the trainer's recent prequential metrics. The graph takes `sparse_emb`
    float32 [B, F, D] and raw `dense` float32 [B, N] and returns `p_click`, `p_purchase` [B].
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "model.onnx"
    spec = trainer.spec
    module = ProbabilityHeads(copy.deepcopy(trainer.network).to("cpu")).eval()
    example = (torch.zeros(2, spec.num_fields, spec.embedding_dim),
               torch.zeros(2, spec.num_dense))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            module, example, str(onnx_path), input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES), opset_version=ONNX_OPSET, dynamo=False,
            dynamic_axes={name: {0: "batch"} for name in INPUT_NAMES + OUTPUT_NAMES})
    meta = {
        "model": model,
        "version": version,
        "created_ms": int(time.time() * 1000),
        "sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
        "spec": spec.to_dict(),
        "tables": list(spec.table_names),
        "inputs": {"sparse_emb": ["batch", spec.num_fields, spec.embedding_dim],
                   "dense": ["batch", spec.num_dense]},
        "outputs": list(OUTPUT_NAMES),
        "opset": ONNX_OPSET,
        "metrics": finite_or_none(dict(metrics) if metrics is not None
                                   else trainer.recent_metrics()),
        "counters": trainer.counters(),
    }
    text = json.dumps(meta, indent=2, sort_keys=True)
    (out / "meta.json").write_text(text)
    return json.loads(text)  # exactly what is on disk (lists, not tuples)


def finite_or_none(metrics: dict[str, float]) -> dict[str, float | None]:
    # JSON has no NaN: an undefined metric (e.g. AUC of a single-class window) becomes null.
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in metrics.items()}
