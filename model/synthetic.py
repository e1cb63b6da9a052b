"""Small synthetic training examples (docs/contracts.md shape) for tests and the throughput bench.

Stationary, Zipf-distributed ids with a learnable click rule (user-item affinity, position bias,
item CTR feature). Not a stream simulator: for drift, new items and realistic traffic use
freshrank.datagen.
"""

from __future__ import annotations

import numpy as np

_WORDS = ("red", "blue", "shoe", "shirt", "phone", "case", "lamp", "desk", "cheap", "pro",
          "mini", "max", "wool", "steel", "kids", "men", "women", "gift", "set", "new")
_DEVICES = ("mobile", "desktop", "tablet")
_PLATFORMS = ("ios", "android", "web")


def make_examples(n: int, seed: int = 0, n_users: int = 100_000, n_items: int = 50_000,
                  start_ms: int = 1_700_000_000_000, span_ms: int = 3_600_000,
                  zipf_a: float = 1.2) -> list[dict]:
    """`n` labelled examples in event-time order over `span_ms` starting at `start_ms`."""
    rng = np.random.default_rng(seed)
    users = (rng.zipf(zipf_a, n) - 1) % n_users
    items = (rng.zipf(zipf_a, n) - 1) % n_items
    ts = start_ms + np.sort(rng.integers(0, span_ms, n))
    position = rng.integers(1, 21, n)
    # Hidden taste: user and item factors derived from the ids, so they are learnable per id.
    user_factor = np.sin(users * 12.9898) * 1.5
    item_factor = np.cos(items * 78.233) * 1.5
    item_ctr = 1.0 / (1.0 + np.exp(-(item_factor - 2.0)))
    logit = -2.0 + user_factor * item_factor - 0.08 * position + 2.0 * item_ctr
    click = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    purchase = click & (rng.random(n) < 0.2 + 0.1 * (item_factor > 0))
    n_tokens = rng.integers(0, 4, n)
    words = rng.integers(0, len(_WORDS), (n, 3))
    price = np.round(np.exp(rng.normal(3.0, 1.0, n)), 2)
    impressions = rng.poisson(30.0, n).astype(float)
    clicks = rng.binomial(impressions.astype(int), item_ctr).astype(float)
    user_clicks = rng.poisson(2.0, (n, 5)).astype(float)
    qi_ctr = np.clip(item_ctr + rng.normal(0.0, 0.05, n), 0.0, 1.0)
    hours = (ts // 3_600_000) % 24
    # Drawn last, so the columns above stay what they were before these four fields existed.
    user_more = rng.poisson(1.0, (n, 4)).astype(float)

    columns = [a.tolist() for a in (users, items, ts, position, price, hours, user_clicks,
                                    impressions, clicks, item_ctr, qi_ctr, click, purchase, user_more)]
    examples = []
    for i, (u, it, t, pos, pr, hr, uc, imp, ck, ctr, qi, c, p, um) in enumerate(zip(*columns)):
        examples.append({
            "example_id": f"e{seed}-{i}:{pos}", "model": "default", "ts": t,
            "user_id": f"u{u}", "item_id": f"i{it}",
            "query": " ".join(_WORDS[w] for w in words[i, :n_tokens[i]]),
            "category": f"c{it % 50}", "brand": f"b{it % 200}",
            "device": _DEVICES[u % 3], "platform": _PLATFORMS[(u // 3) % 3],
            "position": pos, "price": pr, "hour": hr,
            "u_click_5m": uc[0], "u_click_1h": uc[1], "u_click_24h": uc[2], "u_cart_1h": uc[3],
            "u_purchase_24h": uc[4], "u_cart_5m": um[0], "u_cart_24h": um[1], "u_purchase_5m": um[2],
            "u_purchase_1h": um[3], "u_last_category": f"c{(it + u) % 50}" if um[0] else "",
            "i_impr_1h": imp, "i_click_1h": ck, "i_ctr_1h": ctr,
            "qi_ctr_24h": qi, "click": int(c), "purchase": int(p),
        })
    return examples


def batches(examples: list[dict], size: int) -> list[list[dict]]:
    return [examples[i:i + size] for i in range(0, len(examples), size)]
