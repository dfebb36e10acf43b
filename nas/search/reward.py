"""Objectives: MnasNet's latency-aware reward, and the soft/hard constraint presets."""

from __future__ import annotations

import math
from dataclasses import dataclass

from nas.errors import SearchError

__all__ = ["RewardSpec", "mnasnet_reward", "SOFT", "HARD"]


@dataclass(frozen=True)
class RewardSpec:
    """``ACC * (LAT / T) ** w`` with ``w = alpha`` if ``LAT <= T`` else ``beta`` (MnasNet)."""

    alpha: float = -0.07
    beta: float = -0.07

    def __post_init__(self) -> None:
        if not (math.isfinite(self.alpha) and math.isfinite(self.beta) and self.alpha <= 0 and self.beta <= 0):
            raise SearchError(f"--w: expected an exponent <= 0 such as -0.07 (MnasNet) or -0.15 (MobileNetV3): a "
                              f"positive one rewards slower networks; got alpha={self.alpha}, beta={self.beta}")

    @property
    def name(self) -> str:
        if (self.alpha, self.beta) == (0.0, -1.0):
            return "hard (alpha 0, beta -1)"
        return f"soft (alpha {self.alpha:g}, beta {self.beta:g})"


SOFT = RewardSpec(-0.07, -0.07)
HARD = RewardSpec(0.0, -1.0)


def mnasnet_reward(accuracy: float, latency_ms: float, budget_ms: float, spec: RewardSpec = SOFT) -> float:
    w = spec.alpha if latency_ms <= budget_ms else spec.beta
    return accuracy * (latency_ms / budget_ms) ** w
