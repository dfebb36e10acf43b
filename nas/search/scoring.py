"""How a search scores its trials: proxy training, an accuracy table or a supernet (built by ``nas.search.job``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nas.search.evaluator import AccuracyEvaluator, ProxySettings

__all__ = ["Scoring", "SUPERNET_TRIALS", "SUPERNET_SAMPLER", "DEFAULT_TRIALS"]


@dataclass(frozen=True)
class Scoring:
    """The evaluator of a search and what its outputs say about it."""

    evaluator: AccuracyEvaluator
    fingerprint: dict[str, Any]  # what a resumed study must share
    header: dict[str, str]  # for summary.md
    line: str  # for the console
    splits: Any = None  # the data (proxy training and supernet scoring)
    proxy: ProxySettings | None = None  # proxy training only
    note: str | None = None  # how the images are converted for the network (nas.data.formats), for the console

#: Defaults of a search scored by a supernet (a score takes seconds, not minutes of training).
SUPERNET_TRIALS = 2000
SUPERNET_SAMPLER = "evolution"
#: Validation images a supernet search scores on when the split is larger (its best are re-scored on the whole
#: split): the rule ``benchmarks/supernet_regret.py`` measured; a score's time grows with the images.
SUPERNET_VAL_IMAGES = 1000
#: Trials of a search without a supernet, unless --trials says otherwise.
DEFAULT_TRIALS = 20
