"""Per-record feature definitions shared by the job's SQL, serving and the generator.

The smoothed CTR shrinks an item's click rate towards a Beta prior: (clicks + a) / (impressions
+ a + b) with a / (a + b) = 5% and a + b = 20 impressions of evidence. An item never shown reads
as the prior instead of 0/0, and one lucky click does not read as a CTR of 1.0.
"""
from __future__ import annotations

CTR_PRIOR = 0.05
CTR_PRIOR_STRENGTH = 20.0
CTR_PRIOR_CLICKS = CTR_PRIOR * CTR_PRIOR_STRENGTH  # the prior's pseudo-clicks (1.0)


def smoothed_ctr(clicks: float, impressions: float) -> float:
    return (clicks + CTR_PRIOR_CLICKS) / (impressions + CTR_PRIOR_STRENGTH)
