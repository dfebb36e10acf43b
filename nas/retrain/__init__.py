"""Retraining a search run's winners with a final recipe, exporting them, and reporting.

* :mod:`~nas.retrain.recipe`      the ``full`` and ``short`` recipes
* :mod:`~nas.retrain.source`      reading a run directory and choosing its winners
* :mod:`~nas.retrain.data`        the final training data (train + validation) and the test split
* :mod:`~nas.retrain.model`       train / resume, test, save and export one network
* :mod:`~nas.retrain.latency`     predicted and measured latency on the run's table
* :mod:`~nas.retrain.references`  the reference networks and their cache
* :mod:`~nas.retrain.chance`      results at chance level (flagged, never compared)
* :mod:`~nas.retrain.results`     ``retrain/results.csv``
* :mod:`~nas.retrain.report`      ``report.md`` / ``report.png`` from stored results
* :mod:`~nas.retrain.job`         ``nas retrain`` end to end
"""

from nas.retrain.data import FinalSplits, final_splits
from nas.errors import RetrainError
from nas.retrain.job import RetrainJob, data_tag, run_retrain
from nas.retrain.latency import LatencyProbe
from nas.retrain.model import read_trained, train_and_export
from nas.retrain.recipe import RECIPES, Recipe, make_recipe
from nas.retrain.references import DEFAULT_REFERENCES, default_reference_cache, fit_problem, reference_folder
from nas.retrain.report import build_report
from nas.retrain.results import COLUMNS, collect_results, read_results, results_path, write_results
from nas.retrain.source import Candidate, SearchRun, load_search_run, select_winners

__all__ = [
    "Recipe", "RECIPES", "make_recipe",
    "Candidate", "SearchRun", "load_search_run", "select_winners",
    "FinalSplits", "final_splits",
    "train_and_export", "read_trained",
    "LatencyProbe",
    "DEFAULT_REFERENCES", "fit_problem", "default_reference_cache", "reference_folder",
    "COLUMNS", "collect_results", "write_results", "read_results", "results_path",
    "build_report",
    "RetrainJob", "run_retrain", "data_tag",
    "RetrainError",
]
