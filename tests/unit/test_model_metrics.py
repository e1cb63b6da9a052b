import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.metrics import auc, calibration, logloss


def brute_force_auc(labels, scores):
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=2, max_size=40))
def test_auc_equals_pairwise_definition_with_ties(pairs):
    labels = [y for y, _ in pairs]
    scores = [s / 5.0 for _, s in pairs]  # few distinct values: many ties
    if all(labels) or not any(labels):
        assert math.isnan(auc(np.array(labels), np.array(scores)))
    else:
        assert auc(np.array(labels), np.array(scores)) == pytest.approx(
            brute_force_auc(labels, scores), abs=1e-12)


def test_auc_perfect_inverted_and_constant():
    y = np.array([0, 0, 1, 1])
    assert auc(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert auc(y, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert auc(y, np.full(4, 0.3)) == 0.5


def test_auc_single_class_is_nan():
    assert math.isnan(auc(np.zeros(10), np.random.rand(10)))
    assert math.isnan(auc(np.ones(10), np.random.rand(10)))


def test_logloss_matches_formula_and_clips():
    y = np.array([1, 0, 1])
    p = np.array([0.9, 0.2, 0.6])
    expected = -np.mean([math.log(0.9), math.log(0.8), math.log(0.6)])
    assert logloss(y, p) == pytest.approx(expected)
    assert math.isfinite(logloss(np.array([1, 0]), np.array([0.0, 1.0])))  # clipped, not inf


def test_calibration_is_mean_prediction_over_rate():
    assert calibration(np.array([1, 0, 0, 0]), np.full(4, 0.5)) == pytest.approx(2.0)
    assert math.isnan(calibration(np.zeros(4), np.full(4, 0.5)))
