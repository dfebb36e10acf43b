"""Hardware-aware search: Optuna over a space, latency from a table, accuracy from an evaluator.

Modules (the private ones, with a leading underscore, are not part of the interface):

* :mod:`~nas.search.job`          ``nas search`` end to end (:class:`SearchJob`)
* :mod:`~nas.search.runner`       the search loop (:class:`SearchConfig`, :func:`run_search`)
* :mod:`~nas.search.record`       what a trial stores (:class:`TrialRecord`, the status constants)
* :mod:`~nas.search.objective`    what is optimised (:class:`Objective`: reward, pareto)
* :mod:`~nas.search.evaluator`    the accuracy side (:class:`AccuracyEvaluator`, proxy training)
* :mod:`~nas.search.reward`       MnasNet's reward
* :mod:`~nas.search.budget`       the space's fastest network and the default budget
* :mod:`~nas.search.confirm`      choosing the winner on more seeds
* :mod:`~nas.search.outputs`      the run directory's files
* :mod:`~nas.search.adapt_phase`  ``--adapt``: NetAdapt after the search
* :mod:`~nas.search.scoring`      how trials are scored (proxy, accuracy table or supernet), defaults
* :mod:`~nas.search.on_supernet`  ``--supernet``: scoring with a trained supernet (:mod:`nas.supernet`)
* :mod:`~nas.search.specialize`   several ``--target`` tables: one search per device, the cross table
* ``_progress`` (progress lines), ``_proposer`` (latency-screened proposals), ``_trial`` (one trial's life), ``_storage`` (studies,
  heartbeats, retries), ``_early_stop`` (pruning rules), ``_chooser``, ``_baselines``
"""

from nas.search._baselines import BASELINE_ALPHAS, evaluate_baselines
from nas.search._early_stop import LatencyBandHalving, MinPeersPruner
from nas.search.budget import DEFAULT_BUDGET_FRACTION, Budget, check_budget, default_budget, extreme_arch
from nas.search.confirm import Confirmation, run_confirmation
from nas.search.evaluator import AccuracyEvaluator, Evaluation, ProxyEvaluator, ProxySettings
from nas.search.job import SearchJob, cpu_threads, default_run_dir, run_search_job
from nas.search.objective import OBJECTIVES, Objective, ParetoObjective, RewardObjective, get_objective
from nas.search.outputs import best_trial, feasible_trials, front, trials_frame, write_outputs, write_trials_csv
from nas.search.record import TrialRecord, read_records
from nas.search.reward import HARD, SOFT, RewardSpec, mnasnet_reward
from nas.search.runner import SAMPLERS, SearchConfig, open_study, run_search

__all__ = [
    "BASELINE_ALPHAS", "evaluate_baselines",
    "DEFAULT_BUDGET_FRACTION", "Budget", "check_budget", "default_budget", "extreme_arch",
    "Confirmation", "run_confirmation",
    "LatencyBandHalving", "MinPeersPruner",
    "AccuracyEvaluator", "Evaluation", "ProxyEvaluator", "ProxySettings",
    "best_trial", "feasible_trials", "front", "trials_frame", "write_outputs", "write_trials_csv",
    "OBJECTIVES", "Objective", "ParetoObjective", "RewardObjective", "get_objective",
    "TrialRecord", "read_records",
    "HARD", "SOFT", "RewardSpec", "mnasnet_reward",
    "SAMPLERS", "SearchConfig", "open_study", "run_search",
    "SearchJob", "cpu_threads", "default_run_dir", "run_search_job",
]
