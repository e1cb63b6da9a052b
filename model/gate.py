"""Publication gate: does a candidate version score well enough to replace the live one?"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from model.metrics import auc, logloss


@dataclass(frozen=True)
class GateDecision:
    accepted: bool
    reason: str
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Gate:
    """Compares click predictions of a candidate and the live model on the same labelled examples.

    With a live model, the candidate is accepted unless its AUC is more than `max_auc_drop` below
    the live AUC or its log-loss more than `max_logloss_rise` (absolute, nats) above the live
    log-loss. AUC is skipped when the labels hold a single class.

    Without a live model (the first version), the candidate is accepted when it beats the
    constant-CTR baseline (predicting the evaluation set's click rate) on log-loss: a model that
    does not beat that is worse than serving nothing learned.

    Fewer than `min_examples` examples, or no click among them, is not enough evidence either way:
    the candidate is rejected and the live model (if any) stays.
    """

    max_auc_drop: float = 0.005
    max_logloss_rise: float = 0.01
    min_examples: int = 1000

    def __post_init__(self) -> None:
        if self.max_auc_drop < 0 or self.max_logloss_rise < 0:
            raise ValueError("max_auc_drop and max_logloss_rise must be >= 0, got "
                             f"{self.max_auc_drop} and {self.max_logloss_rise}")
        if self.min_examples < 1:
            raise ValueError(f"min_examples must be >= 1, got {self.min_examples}")

    def evaluate(self, candidate_predictions: np.ndarray, live_predictions: np.ndarray | None,
                 labels: np.ndarray) -> GateDecision:
        """Predictions are p_click [n] or [n, 2] (click column first); labels are clicks [n]."""
        y = np.asarray(labels, dtype=np.float64).ravel()
        candidate = _click_column(candidate_predictions)
        if candidate.shape != y.shape:
            raise ValueError(f"{candidate.shape[0]} candidate predictions for {y.size} labels")
        metrics = {"n": float(y.size), "click_rate": float(y.mean()) if y.size else math.nan,
                   "candidate_auc": auc(y, candidate), "candidate_logloss": logloss(y, candidate)}
        if y.size < self.min_examples or not y.any():
            return GateDecision(False, f"not enough evidence: {y.size} examples "
                                f"({int(y.sum())} clicks), need {self.min_examples} with a click",
                                metrics)
        if live_predictions is None:
            baseline = logloss(y, np.full_like(y, y.mean()))
            metrics["baseline_logloss"] = baseline
            if metrics["candidate_logloss"] < baseline:
                return GateDecision(True, "first version: beats the constant-CTR baseline "
                                    f"({metrics['candidate_logloss']:.5f} < {baseline:.5f})",
                                    metrics)
            return GateDecision(False, "first version: does not beat the constant-CTR baseline "
                                f"({metrics['candidate_logloss']:.5f} >= {baseline:.5f})", metrics)

        live = _click_column(live_predictions)
        if live.shape != y.shape:
            raise ValueError(f"{live.shape[0]} live predictions for {y.size} labels")
        metrics["live_auc"], metrics["live_logloss"] = auc(y, live), logloss(y, live)
        auc_drop = metrics["live_auc"] - metrics["candidate_auc"]
        logloss_rise = metrics["candidate_logloss"] - metrics["live_logloss"]
        metrics["auc_drop"], metrics["logloss_rise"] = auc_drop, logloss_rise
        if not math.isnan(auc_drop) and auc_drop > self.max_auc_drop:
            return GateDecision(False, f"AUC drops by {auc_drop:.5f} > {self.max_auc_drop}",
                                metrics)
        if logloss_rise > self.max_logloss_rise:
            return GateDecision(False, f"log-loss rises by {logloss_rise:.5f} > "
                                f"{self.max_logloss_rise}", metrics)
        return GateDecision(True, f"AUC change {-auc_drop:+.5f}, log-loss change "
                            f"{logloss_rise:+.5f} within limits", metrics)


def _click_column(predictions: np.ndarray) -> np.ndarray:
    p = np.asarray(predictions, dtype=np.float64)
    return p[:, 0] if p.ndim == 2 else p.ravel()
