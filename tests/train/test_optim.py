"""Weight decay applies to kernels/matrices only, never to BatchNorm parameters or biases."""

from __future__ import annotations

from nas.train import TrainConfig, param_groups
from nas.train.optim import build_optimizer
from tests.train.fakes import make_model


def test_weight_decay_groups_exclude_bn_and_biases() -> None:
    model = make_model()
    groups = {g["name"]: g for g in build_optimizer(model, TrainConfig(epochs=1, weight_decay=1e-3)).param_groups}
    decayed = {id(p) for p in groups["decay"]["params"]}
    exempt = {id(p) for p in groups["no_decay"]["params"]}
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[i] for i in decayed) == ["features.0.weight", "head.weight"]
    assert sorted(names[i] for i in exempt) == ["features.1.bias", "features.1.weight", "head.bias"]
    assert groups["decay"]["weight_decay"] == 1e-3 and groups["no_decay"]["weight_decay"] == 0.0
    assert all(g["nesterov"] and g["momentum"] == 0.9 for g in groups.values())


def test_frozen_parameters_are_left_out() -> None:
    model = make_model()
    model.head.weight.requires_grad_(False)
    params = [p for g in param_groups(model, 1e-4) for p in g["params"]]  # type: ignore[attr-defined]
    assert all(p is not model.head.weight for p in params) and len(params) == 4
