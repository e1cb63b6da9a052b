"""Loading one published model file: verify its sha256, open it in onnxruntime, check its I/O.

The bytes are read once and the same bytes are hashed and loaded, so a file replaced between
the check and the load can never be served under the old checksum.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import unquote, urlparse

import numpy as np
import onnxruntime as ort

from model.features import FeatureSpec
from udfs.imputation import RunningStats

INPUT_NAMES = ("sparse_emb", "dense")
OUTPUT_NAMES = ("p_click", "p_purchase")


class ModelFileError(Exception):
    """A published model cannot be served: missing, corrupted, or not the contracted graph."""


def preferred_providers() -> list[str]:
    """CUDA first when this onnxruntime build has it, CPU always as the fallback."""
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def path_of_uri(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise ModelFileError(f"only file:// model URIs are supported, got {uri!r}")
    if parsed.netloc not in ("", "localhost"):
        raise ModelFileError(f"file URI names a remote host {parsed.netloc!r}: {uri!r}")
    return Path(unquote(parsed.path))


@dataclass(frozen=True)
class OnnxModel:
    """An onnxruntime session over the dense part of one version, plus what its meta.json says."""

    session: ort.InferenceSession
    spec: FeatureSpec
    imputation: RunningStats  # empty statistics (imputing the default price) when not published
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def predict(self, sparse_emb: np.ndarray, dense: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(p_click [B], p_purchase [B]) for float32 inputs [B, F, D] and [B, N]."""
        p_click, p_purchase = self.session.run(
            list(OUTPUT_NAMES), {"sparse_emb": sparse_emb, "dense": dense})
        return p_click.reshape(-1), p_purchase.reshape(-1)


def load_onnx_model(onnx_uri: str, sha256: str, spec: Mapping[str, Any] | None = None,
                    providers: list[str] | None = None) -> OnnxModel:
    """Load a version's model.onnx (and the meta.json beside it) after checking its sha256.

    `spec` is the feature spec from the version record; meta.json's spec is used when the record
    has none, and both must agree when both are there.
    """
    path = path_of_uri(onnx_uri)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != str(sha256).lower():
        raise ModelFileError(f"sha256 mismatch for {path}: record says {sha256}, file has {actual}")
    meta = _read_meta(path.with_name("meta.json"))
    feature_spec = _spec_of(spec, meta.get("spec"), path)
    try:
        session = ort.InferenceSession(data, providers=providers or preferred_providers())
    except Exception as exc:  # onnxruntime raises its own exception types for bad graphs
        raise ModelFileError(f"onnxruntime cannot load {path}: {exc}") from None
    _check_io(session, feature_spec, path)
    imputation = meta.get("imputation")
    try:
        stats = RunningStats.from_dict(imputation) if imputation is not None else RunningStats()
    except ValueError as exc:
        raise ModelFileError(f"{path.with_name('meta.json')}: bad imputation statistics: {exc}") from None
    return OnnxModel(session, feature_spec, stats, meta)


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"cannot read {path}: {exc}") from None


def _spec_of(from_record: Mapping[str, Any] | None, from_meta: Mapping[str, Any] | None,
             path: Path) -> FeatureSpec:
    specs = []
    for source, data in (("version record", from_record), ("meta.json", from_meta)):
        if data is None:
            continue
        try:
            specs.append(FeatureSpec.from_dict(data))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{source} of {path} has a malformed feature spec: {exc!r}") from None
    if not specs:
        raise ModelFileError(f"no feature spec for {path}: neither the version record nor meta.json has one")
    if len(specs) == 2 and specs[0] != specs[1]:
        raise ModelFileError(f"the version record and meta.json of {path} disagree on the feature spec")
    return specs[0]


def _check_io(session: ort.InferenceSession, spec: FeatureSpec, path: Path) -> None:
    inputs = {i.name: i.shape for i in session.get_inputs()}
    outputs = {o.name for o in session.get_outputs()}
    if set(inputs) != set(INPUT_NAMES) or not set(OUTPUT_NAMES) <= outputs:
        raise ModelFileError(f"{path}: expected inputs {INPUT_NAMES} and outputs {OUTPUT_NAMES}, "
                             f"got inputs {sorted(inputs)} and outputs {sorted(outputs)}")
    expected = {"sparse_emb": [spec.num_fields, spec.embedding_dim], "dense": [spec.num_dense]}
    for name, dims in expected.items():
        fixed = inputs[name][1:]
        if len(fixed) != len(dims) or any(isinstance(a, int) and a != b for a, b in zip(fixed, dims)):
            raise ModelFileError(f"{path}: input {name} has shape {inputs[name]}, the feature spec "
                                 f"needs [batch, {', '.join(map(str, dims))}]")
