"""Ground truth: score every trial from a file of measured accuracies instead of training it.

``nas search --accuracy-table FILE`` judges a search where the right answer is known: a
benchmark that trained every network of a space (NAS-Bench-Macro trained each of its 6,561
networks three times) gives each trial its real accuracy in microseconds, so a search strategy
can be scored exactly, hundreds of times over.

The file (JSON; NAS-Bench-Macro's ``nas-bench-macro_cifar10.json`` is one)::

    {"02012100": {"test_acc": [89.47, 88.95, 89.17], "mean_acc": 89.20, ...}, ...}

* the key: the network's benchmark key in the search space (:mod:`nas.space.keys`: one digit per
  block position, the index of its candidate in the space file), so the space must be a
  candidate-list space with fixed depths;
* ``test_acc``: the accuracy in percent of each training seed (at least one), each in [0, 100];
* ``mean_acc`` (optional): their mean, recomputed when absent; other fields are ignored.

A trial scores ``value="seed"`` (the default, ``--accuracy-table-value seed``): one recorded
seed, so the real seed-to-seed noise stays; or ``"mean"``: the mean over the seeds, a noiseless
evaluator. The seed is chosen reproducibly from the run's seed and the network:
``(h(key) + seed) mod n`` for the ``n`` recorded seeds, with ``h`` a hash of the key. So the
search's own result (``--seed s``) and its confirmations (``s + 1``, ``s + 2``, see
``--confirm-seeds``) take different recorded seeds, and with three seeds the mean over all three
is the table's mean. ``noise`` (benchmarks only) replaces the recorded seeds with the mean plus
Gaussian noise of that many points, seeded by the seed and the key: an evaluator of known quality.
Accuracies are reported as fractions (89.47 % -> 0.8947), as training reports them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas._json import refuse_repeated_keys
from nas.arch import ArchSpec
from nas.errors import AccuracyTableError, SpaceError
from nas.search.evaluator import AccuracyEvaluator, Evaluation, Report
from nas.space import SearchSpace
from nas.space.keys import arch_to_key, key_positions

__all__ = ["AccuracyTable", "TableEvaluator", "load_accuracy_table", "TABLE_VALUES", "MAX_TABLE_BYTES"]

TABLE_VALUES = ("seed", "mean")
#: Files larger than this are refused unread (NAS-Bench-Macro's is 1.2 MB).
MAX_TABLE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class AccuracyTable:
    """Per benchmark key, the recorded accuracies (fractions, one per training seed)."""

    path: str
    space_name: str
    entries: dict[str, tuple[float, ...]]
    digest: str  # sha256 of the file's bytes

    def accuracies(self, key: str) -> tuple[float, ...]:
        try:
            return self.entries[key]
        except KeyError:
            raise AccuracyTableError(f"{self.path}: no entry for network {key!r}; the table holds {len(self.entries)} "
                                     f"networks of space '{self.space_name}' (is it the space's table?)") from None

    def mean(self, key: str) -> float:
        return statistics.fmean(self.accuracies(key))


def _read(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_TABLE_BYTES + 1)
    except FileNotFoundError:
        raise AccuracyTableError(f"--accuracy-table {path}: no such file; expected a JSON file of measured accuracies "
                                 "(e.g. ../shared/benchmarks/nas-bench-macro/nas-bench-macro_cifar10.json)") from None
    except OSError as exc:
        raise AccuracyTableError(f"--accuracy-table {path}: cannot read ({exc.strerror})") from None
    if len(raw) > MAX_TABLE_BYTES:
        raise AccuracyTableError(f"{path}: larger than {MAX_TABLE_BYTES // 2**20} MiB; not an accuracy table")
    return raw


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value <= 100:
        raise AccuracyTableError(f"{where}: expected an accuracy in percent (a number from 0 to 100), got {value!r}")
    return float(value)


def load_accuracy_table(path: str | os.PathLike, space: SearchSpace) -> AccuracyTable:
    """Read and check an accuracy table for ``space`` (see the module doc for the format)."""
    path = Path(path)
    raw = _read(path)
    source = str(path)
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=refuse_repeated_keys(
            lambda key: AccuracyTableError(f"{source}: key {key!r} is given twice; keep one")))
    except UnicodeDecodeError as exc:
        raise AccuracyTableError(f"{source}: not a JSON accuracy table: byte {exc.start} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise AccuracyTableError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno}); expected "
                                 '{"KEY": {"test_acc": [percent, ...]}, ...}') from None
    except (ValueError, RecursionError) as exc:
        raise AccuracyTableError(f"{source}: not a usable accuracy table ({type(exc).__name__})") from None
    if not isinstance(data, dict) or not data:
        raise AccuracyTableError(f"{source}: expected a non-empty JSON object of benchmark keys, "
                                 f'{{"KEY": {{"test_acc": [percent, ...]}}, ...}}, got {type(data).__name__}')
    try:
        positions = len(key_positions(space))
    except SpaceError as exc:
        raise AccuracyTableError(f"--accuracy-table needs a space whose networks have benchmark keys: {exc}") from None
    entries: dict[str, tuple[float, ...]] = {}
    for key, entry in data.items():
        where = f"{source}: {key!r}"
        if len(key) != positions or not key.isascii() or not key.isdigit():
            raise AccuracyTableError(f"{where}: expected a key of {positions} digits (one per block position of space "
                                     f"'{space.name}'); is this the table of another space?")
        if not isinstance(entry, dict) or "test_acc" not in entry:
            raise AccuracyTableError(f"{where}: expected an object with 'test_acc' (accuracy in percent per training "
                                     f"seed), got {entry!r:.80}")
        accs = entry["test_acc"]
        if not isinstance(accs, list) or not accs:
            raise AccuracyTableError(f"{where}.test_acc: expected a non-empty list of accuracies in percent, "
                                     f"got {accs!r:.80}")
        values = [_number(a, f"{where}.test_acc[{i}]") for i, a in enumerate(accs)]
        if "mean_acc" in entry and abs(_number(entry["mean_acc"], f"{where}.mean_acc") - statistics.fmean(values)) > 1e-3:
            raise AccuracyTableError(f"{where}.mean_acc: {entry['mean_acc']} is not the mean of test_acc "
                                     f"({statistics.fmean(values):.4f}); fix one of them")
        entries[key] = tuple(v / 100 for v in values)
    return AccuracyTable(source, space.name, entries, hashlib.sha256(raw).hexdigest())


def _key_hash(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")


class TableEvaluator(AccuracyEvaluator):
    """Scores a network with its accuracy from an :class:`AccuracyTable` (see the module doc)."""

    def __init__(self, table: AccuracyTable, space: SearchSpace, *, value: str = "seed", seed: int = 0,
                 noise: float = 0.0) -> None:
        if value not in TABLE_VALUES:
            raise AccuracyTableError(f"--accuracy-table-value: expected one of {list(TABLE_VALUES)}, got {value!r}")
        if not (math.isfinite(noise) and noise >= 0):
            raise AccuracyTableError(f"noise: expected a standard deviation >= 0 in points, got {noise}")
        self.table, self.space, self.value, self.seed, self.noise = table, space, value, seed, noise
        self._keys: dict[ArchSpec, str] = {}  # a search asks again for the networks it confirms or repeats

    @property
    def epochs(self) -> int:
        return 1

    @property
    def trains(self) -> bool:
        return False

    @property
    def fingerprint(self) -> str:
        noise = f":noise{self.noise:g}" if self.noise else ""
        return f"accuracy-table:{self.table.digest[:12]}:{self.value}{noise}"

    def reseeded(self, seed: int) -> TableEvaluator:
        return TableEvaluator(self.table, self.space, value=self.value, seed=seed, noise=self.noise)

    def key(self, arch: ArchSpec) -> str:
        key = self._keys.get(arch)
        if key is None:
            try:
                key = self._keys[arch] = arch_to_key(self.space, arch)
            except SpaceError as exc:
                raise AccuracyTableError(f"--accuracy-table {self.table.path}: {exc}") from None
        return key

    def true_accuracy(self, arch: ArchSpec) -> float:
        """The table's mean accuracy of ``arch`` (what a search is judged by)."""
        return self.table.mean(self.key(arch))

    def score(self, key: str) -> float:
        accs = self.table.accuracies(key)
        if self.noise:
            rng = np.random.default_rng([self.seed, _key_hash(key)])
            return statistics.fmean(accs) + float(rng.normal(0.0, self.noise / 100))
        if self.value == "mean":
            return statistics.fmean(accs)
        return accs[(_key_hash(key) + self.seed) % len(accs)]

    def evaluate(self, arch: ArchSpec, *, report: Report | None = None) -> Evaluation:
        acc = self.score(self.key(arch))
        if report is not None:
            report(1, acc)
        return Evaluation(acc, (acc,), "completed", 0.0)

    def describe(self) -> str:
        how = f"mean + Gaussian noise of {self.noise:g} points" if self.noise else \
            ("one recorded seed per evaluation" if self.value == "seed" else "the mean over the recorded seeds")
        return f"accuracy table {self.table.path} ({len(self.table.entries)} networks; {how})"

