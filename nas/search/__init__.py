"""Hardware-aware search: Optuna over a space, latency from a table, accuracy from proxy training."""

from nas.search.baselines import BASELINE_ALPHAS, evaluate_baselines
from nas.search.budget import DEFAULT_BUDGET_FRACTION, Budget, check_budget, default_budget, extreme_arch
from nas.search.confirm import Confirmation, run_confirmation
from nas.search.early_stop import LatencyBandHalving, MinPeersPruner
from nas.search.evaluator import AccuracyEvaluator, Evaluation, ProxyEvaluator, ProxySettings
from nas.search.job import SearchJob, cpu_threads, default_run_dir, run_search_job
from nas.search.outputs import best_trial, feasible_trials, front, trials_frame, write_outputs, write_trials_csv
from nas.search.reward import HARD, SOFT, RewardSpec, mnasnet_reward
from nas.search.runner import OBJECTIVES, SAMPLERS, SearchConfig, open_study, run_search

__all__ = [
    "BASELINE_ALPHAS", "evaluate_baselines",
    "DEFAULT_BUDGET_FRACTION", "Budget", "check_budget", "default_budget", "extreme_arch",
    "Confirmation", "run_confirmation",
    "LatencyBandHalving", "MinPeersPruner",
    "AccuracyEvaluator", "Evaluation", "ProxyEvaluator", "ProxySettings",
    "best_trial", "feasible_trials", "front", "trials_frame", "write_outputs", "write_trials_csv",
    "HARD", "SOFT", "RewardSpec", "mnasnet_reward",
    "OBJECTIVES", "SAMPLERS", "SearchConfig", "open_study", "run_search",
    "SearchJob", "cpu_threads", "default_run_dir", "run_search_job",
]
