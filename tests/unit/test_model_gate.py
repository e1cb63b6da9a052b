import numpy as np
import pytest

from model.gate import Gate

RNG = np.random.default_rng(0)
LABELS = (RNG.random(5000) < 0.1).astype(float)
GOOD = np.clip(0.1 + 0.3 * (LABELS - 0.1) + RNG.normal(0, 0.05, 5000), 0.01, 0.99)
NOISE = np.clip(0.1 + RNG.normal(0, 0.05, 5000), 0.01, 0.99)


def test_first_version_must_rank_better_than_chance():
    gate = Gate(min_examples=1000)
    accepted = gate.evaluate(GOOD, None, LABELS)
    assert accepted.accepted and "better than chance" in accepted.reason
    assert accepted.metrics["candidate_auc"] >= gate.min_first_auc
    # A constant score and random scores give no ordering: nothing to ship.
    assert not gate.evaluate(np.full(5000, 0.5), None, LABELS).accepted
    assert not gate.evaluate(NOISE, None, LABELS).accepted
    # A cold model ranks well before it is calibrated: ranking decides, log-loss is reported.
    miscalibrated = gate.evaluate(0.5 + 0.5 * (GOOD - 0.1), None, LABELS)  # same order, near 0.5
    assert miscalibrated.accepted
    assert miscalibrated.metrics["candidate_logloss"] > miscalibrated.metrics["baseline_logloss"]
    with pytest.raises(ValueError):
        Gate(min_first_auc=0.4)


def test_candidate_within_limits_replaces_live():
    decision = Gate().evaluate(GOOD, NOISE, LABELS)
    assert decision.accepted
    assert decision.metrics["candidate_auc"] > decision.metrics["live_auc"]


def test_candidate_losing_auc_or_logloss_is_rejected():
    auc_drop = Gate().evaluate(NOISE, GOOD, LABELS)
    assert not auc_drop.accepted and "AUC drops" in auc_drop.reason
    # Same ranking (same AUC), but badly calibrated: only log-loss catches it.
    shifted = np.clip(GOOD * 3.0, 0.0, 0.99)
    logloss_rise = Gate().evaluate(shifted, GOOD, LABELS)
    assert not logloss_rise.accepted and "log-loss rises" in logloss_rise.reason


def test_too_few_examples_keeps_the_live_model():
    decision = Gate(min_examples=10_000).evaluate(GOOD, NOISE, LABELS)
    assert not decision.accepted and "not enough evidence" in decision.reason
    no_click = Gate(min_examples=10).evaluate(GOOD[:100], None, np.zeros(100))
    assert not no_click.accepted


def test_accepts_two_column_predictions_and_checks_lengths():
    both = np.stack([GOOD, GOOD], axis=1)
    assert Gate().evaluate(both, NOISE, LABELS).accepted
    with pytest.raises(ValueError):
        Gate().evaluate(GOOD[:10], NOISE, LABELS)
    with pytest.raises(ValueError):
        Gate(max_auc_drop=-1)
