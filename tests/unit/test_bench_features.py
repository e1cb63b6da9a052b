"""bench.features reports the median of its pairs of runs."""
from __future__ import annotations

from bench.features import MEDIAN_FIGURES, summarize


def pair(examples_per_s, state_bytes, cpu_ms):
    figures = {key: 1.0 for key in MEDIAN_FIGURES}
    figures.update(users=1_000_000, n=60_000, generator={"distinct_users": 5},
                   examples_per_s=examples_per_s, state_bytes=state_bytes, cpu_ms_per_event=cpu_ms)
    return figures


def test_each_figure_is_the_median_over_the_pairs():
    pairs = [pair(20_000.0, 300e6, 0.2), pair(40_000.0, 250e6, 0.16), pair(25_000.0, 280e6, 0.19)]
    figures = summarize(pairs)
    assert (figures["examples_per_s"], figures["state_bytes"], figures["cpu_ms_per_event"]) == (25_000.0, 280e6, 0.19)
    assert figures["pairs"] == pairs and figures["n"] == 60_000


def test_a_pair_without_a_rate_is_left_out_of_that_median_only():
    figures = summarize([pair(None, 300e6, 0.2), pair(30_000.0, 250e6, 0.1), pair(20_000.0, None, 0.3)])
    assert figures["examples_per_s"] == 25_000.0
    assert figures["state_bytes"] == 275e6
    assert figures["cpu_ms_per_event"] == 0.2
    assert summarize([pair(None, None, 0.2)])["examples_per_s"] is None
