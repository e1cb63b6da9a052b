"""The dense part of the ranking model: what is exported to ONNX.

DeepFM-style with two heads. Inputs are one embedding per sparse field, `sparse_emb [B, F, D]`,
and the raw dense features, `dense [B, N]`; the module normalises the dense features itself
(signed log1p, then running mean/variance kept as buffers), so serving feeds raw values.
"""

from __future__ import annotations

import torch
from torch import nn

_VARIANCE_FLOOR = 1e-4
_CLIP = 8.0  # normalised values beyond this many standard deviations carry no extra signal


class DenseNormalizer(nn.Module):
    """Signed log1p, then standardisation by running statistics.

    Counts and prices are heavy tailed, hence the log. Statistics are updated by the trainer,
    only from batches it accepts (`update`), never implicitly in `forward`, so a rejected batch
    leaves the model untouched. The example count stops at `horizon`, which turns the running
    average into an exponential one over about `horizon` examples and lets it follow drift.
    """

    def __init__(self, num_features: int, horizon: int) -> None:
        super().__init__()
        self.horizon = horizon
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("var", torch.ones(num_features))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    @staticmethod
    def transform(x: torch.Tensor) -> torch.Tensor:
        return torch.sign(x) * torch.log1p(torch.abs(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (self.transform(x) - self.mean) / torch.sqrt(self.var + _VARIANCE_FLOOR)
        return torch.clamp(z, -_CLIP, _CLIP)

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        z = self.transform(x.to(self.mean.dtype))
        n_batch = z.shape[0]
        if n_batch == 0:
            return
        batch_mean = z.mean(dim=0)
        batch_var = z.var(dim=0, unbiased=False)
        n_old = float(min(self.count.item(), self.horizon))
        total = n_old + n_batch
        # Chan et al. merge of two (count, mean, variance) summaries.
        delta = batch_mean - self.mean
        self.mean += delta * (n_batch / total)
        self.var.copy_((self.var * n_old + batch_var * n_batch
                        + delta.pow(2) * (n_old * n_batch / total)) / total)
        self.count.fill_(min(total, float(self.horizon)))


class RankingNetwork(nn.Module):
    """DeepFM with a click head and a purchase head; returns logits [B, 2].

    Deep part: an MLP over the concatenated field embeddings and normalised dense features.
    FM part: the bi-interaction vector 0.5 * ((sum_f v_f)^2 - sum_f v_f^2), whose components sum
    to the FM second-order term; each head weighs it (and the dense features, the first-order
    part) itself.
    """

    def __init__(self, num_fields: int, embedding_dim: int, num_dense: int,
                 hidden_sizes: tuple[int, ...], normalizer_horizon: int,
                 initial_rates: tuple[float, float] = (0.03, 0.003)) -> None:
        super().__init__()
        self.num_fields, self.embedding_dim, self.num_dense = num_fields, embedding_dim, num_dense
        self.normalizer = DenseNormalizer(num_dense, normalizer_horizon)
        layers: list[nn.Module] = []
        width = num_fields * embedding_dim + num_dense
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.mlp = nn.Sequential(*layers)
        self.heads = nn.Linear(width + embedding_dim + num_dense, 2)
        # Start each head at its base rate's log-odds: a fresh model then predicts ~3% clicks
        # instead of 50%, and its first versions are not spent unlearning the bias.
        with torch.no_grad():
            self.heads.bias.copy_(torch.logit(torch.tensor(initial_rates, dtype=torch.float32)))

    def forward(self, sparse_emb: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        x = self.normalizer(dense)
        summed = sparse_emb.sum(dim=1)
        bi_interaction = 0.5 * (summed * summed - (sparse_emb * sparse_emb).sum(dim=1))
        deep = self.mlp(torch.cat([sparse_emb.flatten(1), x], dim=1))
        return self.heads(torch.cat([deep, bi_interaction, x], dim=1))


class ProbabilityHeads(nn.Module):
    """The exported graph: (sparse_emb, dense) -> (p_click [B], p_purchase [B])."""

    def __init__(self, network: RankingNetwork) -> None:
        super().__init__()
        self.network = network

    def forward(self, sparse_emb: torch.Tensor, dense: torch.Tensor):
        probabilities = torch.sigmoid(self.network(sparse_emb, dense))
        return probabilities[:, 0], probabilities[:, 1]
