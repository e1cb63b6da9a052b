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

    Without a live model (the first version), the candidate is accepted when it ranks the held-out
    examples better than chance by a margin: AUC >= `min_first_auc`. What serving has without a
    model is no ordering at all (a constant score, AUC 0.5), so that is the bar a ranker must
    clear. Log-loss against the constant-CTR baseline is reported, not required: that baseline
    knows the evaluation set's own click rate, and a cold model, which still starts from its prior
    rate after a few thousand examples, loses to it long after it ranks well (docs/model.md).
    From then on calibration is guarded, since no candidate may lose log-loss to the live one.

    Fewer than `min_examples` examples, or no click among them, is not enough evidence either way:
    the candidate is rejected and the live model (if any) stays.
    """

    max_auc_drop: float = 0.005
    max_logloss_rise: float = 0.01
    min_examples: int = 1000
    min_first_auc: float = 0.55

    def __post_init__(self) -> None:
        if self.max_auc_drop < 0 or self.max_logloss_rise < 0:
            raise ValueError("max_auc_drop and max_logloss_rise must be >= 0, got "
                             f"{self.max_auc_drop} and {self.max_logloss_rise}")
        if self.min_examples < 1:
            raise ValueError(f"min_examples must be >= 1, got {self.min_examples}")
        if not 0.5 <= self.min_first_auc <= 1:
            raise ValueError(f"min_first_auc must be in [0.5, 1], got {self.min_first_auc}")

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
            metrics["baseline_logloss"] = logloss(y, np.full_like(y, y.mean()))
            first_auc = metrics["candidate_auc"]
            if not math.isnan(first_auc) and first_auc >= self.min_first_auc:
                return GateDecision(True, f"first version: ranks better than chance (AUC {first_auc:.5f} "
                                    f">= {self.min_first_auc})", metrics)
            return GateDecision(False, f"first version: AUC {first_auc:.5f} < {self.min_first_auc}", metrics)

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
