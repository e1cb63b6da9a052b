"""Ranking metrics in numpy: AUC, log-loss, calibration."""

from __future__ import annotations

import numpy as np

_EPS = 1e-7


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Rank-based ROC AUC (Mann-Whitney U); ties share their average rank.

    Returns NaN when the labels hold a single class, where AUC is undefined.
    """
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores).ravel()
    if not np.issubdtype(scores.dtype, np.floating):
        scores = scores.astype(np.float64)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores)  # ties are grouped by value below, so any sort order works
    sorted_scores = scores[order]
    # Average rank of each run of equal scores: runs start where the score changes.
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], scores.size]
    run_rank = (starts + ends + 1) / 2.0  # 1-based mean of ranks start+1 .. end
    ranks = np.repeat(run_rank, ends - starts)
    positive_rank_sum = ranks[labels[order]].sum()
    return float((positive_rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def logloss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean binary cross-entropy, with probabilities clipped to [1e-7, 1 - 1e-7]."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    if y.size == 0:
        return float("nan")
    p = np.clip(np.asarray(probabilities, dtype=np.float64).ravel(), _EPS, 1.0 - _EPS)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def calibration(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean prediction / mean label: 1.0 is calibrated, NaN when there is no positive."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    mean_label = y.mean() if y.size else 0.0
    if mean_label == 0.0:
        return float("nan")
    return float(np.mean(np.asarray(probabilities, dtype=np.float64)) / mean_label)
