import pytest
import torch

from model.config import ModelConfig, TrainerConfig
from model.trainer import resolve_device


@pytest.mark.parametrize("kwargs, message", [
    ({"embedding_dim": 0}, "embedding_dim"),
    ({"admit_after": 0}, "admit_after"),
    ({"expire_after_ms": 0}, "expire_after_ms"),
    ({"capacity": 0}, "capacity"),
    ({"eviction": "random"}, "eviction"),
    ({"token_buckets": 1}, "token_buckets"),
    ({"hidden_sizes": (16, 0)}, "hidden_sizes"),
    ({"table_capacity": (("nope", 5),)}, "unknown table"),
    ({"dense_fields": ("price", "user_id")}, "both dense and sparse"),
    ({"sparse_fields": ("user_id", "user_id")}, "distinct"),
])
def test_model_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"sparse_lr": 0}, "sparse_lr"),
    ({"dense_lr": -1}, "dense_lr"),
    ({"accumulation_steps": 0}, "accumulation_steps"),
    ({"max_grad_norm": 0}, "max_grad_norm"),
    ({"anchor_l2": -0.1}, "anchor_l2"),
    ({"slot_reset": "sometimes"}, "slot_reset"),
    ({"sparse_accumulator_decay": 1.5}, "sparse_accumulator_decay"),
    ({"device": "tpu"}, "device"),
    ({"adam_betas": (0.9, 1.0)}, "adam_betas"),
])
def test_trainer_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainerConfig(**kwargs)


def test_configs_round_trip_through_dicts():
    mc = ModelConfig(embedding_dim=8, table_capacity=(("hour", 24),), hidden_sizes=(4, 2))
    tc = TrainerConfig(adam_betas=(0.8, 0.9), max_grad_norm=None)
    assert ModelConfig.from_dict(mc.to_dict()) == mc
    assert TrainerConfig.from_dict(tc.to_dict()) == tc
    assert mc.capacity_of("hour") == 24 and mc.capacity_of("user_id") == mc.capacity
    assert mc.table_names[-1] == "query"


def test_auto_device_falls_back_to_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
