"""Ranking one result page: request -> training-shaped examples -> model -> sorted candidates.

Serving builds the same example dicts the trainer learns from (docs/contracts.md) and encodes
them with model.features.encode, so both sides compute features by the same code. Request fields
are cleaned by the validator's own readers (udfs.fields), so a query or a label is normalised
exactly as it was in the events the model learned from.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from serving.online_features import ONLINE_FIELDS, OnlineFeatures
from serving.registry import LiveModel, ModelRegistry, NoLiveModel
from udfs.config import ValidationConfig
from udfs.fields import FieldError, read_id, read_integer, read_label, read_number, read_price, read_query

HOUR_MS = 3_600_000


class RankingError(Exception):
    """A request that cannot be ranked; `status` is the HTTP status to answer with."""

    status = 500


class BadRequest(RankingError):
    status = 400


class ModelUnavailable(RankingError):
    status = 503


@dataclass(frozen=True)
class PageRequest:
    """A validated, cleaned rank request."""

    request_id: str
    user_id: str
    query: str
    device: str
    platform: str
    ts: int
    candidates: tuple[dict[str, Any], ...]


class Ranker:
    """Scores candidates with the live model version.

    score = (1 - purchase_weight) * p_click + purchase_weight * p_purchase
    """

    def __init__(self, registry: ModelRegistry, features: OnlineFeatures, *,
                 purchase_weight: float = 0.0, validation: ValidationConfig | None = None,
                 clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        if not 0.0 <= purchase_weight <= 1.0:
            raise ValueError(f"purchase_weight must be in [0, 1], got {purchase_weight}")
        self.registry = registry
        self.features = features
        self.purchase_weight = purchase_weight
        self.limits = validation or ValidationConfig()
        self._clock_ms = clock_ms

    def rank(self, request: Mapping[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        page = self.parse(request)
        try:
            with self.registry.acquire() as model:
                p_click, p_purchase = self.predict(model, self.examples(page, model))
                name, version = model.name, model.version
        except NoLiveModel as exc:
            raise ModelUnavailable(str(exc)) from None
        scores = (1.0 - self.purchase_weight) * p_click + self.purchase_weight * p_purchase
        order = np.argsort(-scores, kind="stable")  # ties keep the request's order
        items = [{"item_id": page.candidates[i]["item_id"], "score": float(scores[i]),
                  "p_click": float(p_click[i]), "p_purchase": float(p_purchase[i]),
                  "request_position": i + 1} for i in order.tolist()]
        return {"request_id": page.request_id, "model": name, "version": version, "items": items,
                "latency_ms": round((time.perf_counter() - started) * 1000, 3)}

    # ------------------------------------------------------------------ steps (public for tests)
    def parse(self, request: Mapping[str, Any]) -> PageRequest:
        if not isinstance(request, Mapping):
            raise BadRequest("the request must be a JSON object")
        limits = self.limits
        try:
            user_id = read_id(request.get("user_id"), "user_id", limits.max_id_len, required=True)
            query = read_query(request.get("query"), "query", limits.max_query_len, required=False)
            device = read_label(request.get("device"), "device", limits.max_string_len)
            platform = read_label(request.get("platform"), "platform", limits.max_string_len)
            ts = request.get("ts")
            ts = self._clock_ms() if ts is None else read_integer(ts, "ts")
            request_id = read_id(request.get("request_id"), "request_id", limits.max_id_len,
                                 required=False) or uuid.uuid4().hex
            raw_candidates = request.get("candidates")
            if not isinstance(raw_candidates, list) or not raw_candidates:
                raise BadRequest("candidates must be a non-empty list")
            if len(raw_candidates) > limits.max_items:
                raise BadRequest(f"{len(raw_candidates)} candidates, at most {limits.max_items}")
            candidates = tuple(self._candidate(c, f"candidates[{i}]")
                               for i, c in enumerate(raw_candidates))
        except FieldError as exc:
            raise BadRequest(exc.detail) from None
        return PageRequest(request_id, user_id, query or "", device or "", platform or "", ts,
                           candidates)

    def _candidate(self, raw: Any, path: str) -> dict[str, Any]:
        if not isinstance(raw, Mapping):
            raise BadRequest(f"{path} must be an object")
        limits = self.limits
        candidate = {
            "item_id": read_id(raw.get("item_id"), f"{path}.item_id", limits.max_id_len, required=True),
            "category": read_label(raw.get("category"), f"{path}.category", limits.max_string_len) or "",
            "brand": read_label(raw.get("brand"), f"{path}.brand", limits.max_string_len) or "",
            "price": read_price(raw.get("price"), f"{path}.price"),
        }
        # Other numbers a candidate carries may fill dense fields that no online topic serves;
        # `examples` keeps those the model reads, the rest default to 0.0. An online field
        # (qi_ctr_24h included) always comes from the online features, never from the request.
        candidate["extra"] = {name: read_number(value, f"{path}.{name}")
                              for name, value in raw.items()
                              if name not in candidate and name not in ONLINE_FIELDS
                              and type(value) in (int, float)}
        return candidate

    def examples(self, page: PageRequest, model: LiveModel) -> list[dict[str, Any]]:
        """One example dict per candidate, in the training-example shape."""
        user = self.features.user_features(page.user_id, page.ts)
        stats = model.onnx.imputation
        request_fields = set(model.spec.dense_fields) - ONLINE_FIELDS - {"price"}
        hour = (page.ts // HOUR_MS) % 24
        examples = []
        for slot, candidate in enumerate(page.candidates, start=1):
            price = candidate["price"]
            if price is None:  # as the trainer's session imputes a missing price
                price = stats.typical_price(candidate["category"] or None)
            extra = candidate["extra"]
            examples.append({
                "example_id": f"{page.request_id}:{slot}", "model": model.name, "ts": page.ts,
                "user_id": page.user_id, "item_id": candidate["item_id"], "query": page.query,
                "category": candidate["category"], "brand": candidate["brand"],
                "device": page.device, "platform": page.platform,
                "position": slot, "price": float(price), "hour": hour,
                **user, **self.features.item_features(candidate["item_id"], page.ts),
                **self.features.query_item_features(page.query, candidate["item_id"], page.ts),
                **{name: extra.get(name, 0.0) for name in request_fields},
            })
        return examples

    @staticmethod
    def predict(model: LiveModel, examples: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """(p_click, p_purchase) of the examples under `model`: encode, embed, run the graph."""
        batch = model.spec.encode(examples)
        sparse_emb = model.embeddings.lookup(batch, model.spec)
        return model.onnx.predict(sparse_emb, batch.dense)
