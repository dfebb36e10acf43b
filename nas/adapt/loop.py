"""The NetAdapt loop (MobileNetV3's variant), resumable after every iteration.

Iteration i: the latency goal is ``max(L - delta_i, budget)`` with
``delta_i = delta * L_0 * decay**i`` (``delta`` = 1 % by default, as in MobileNetV3).
Every proposal (:mod:`nas.adapt.proposals`) inherits the parent's weights, is fine-tuned for
``T`` steps on the training split and evaluated on the validation split. The kept proposal
maximises ``dAcc / |dLatency|`` against the parent (``rule="ratio"``), or has the highest
accuracy (``rule="accuracy"``, NetAdapt's original rule). Ties go to the larger latency cut,
then to the earlier proposal. The loop ends when the predicted latency is within budget; the
result is then fine-tuned for ``final_epochs`` (checkpointed every epoch).

When no proposal can cut ``delta_i`` (a large delta, or near the smallest widths where the
remaining cuts are small), the iteration is *relaxed*: its cut is halved until some proposal
meets it (at most 10 times, then any cut at all will do); ``relaxed`` = 1 and ``goal_ms`` in
``history.csv`` record it. Only when nothing lowers the predicted latency any more does the
run stop short of the budget (``status="unreachable"``), keeping the closest network found.

Files in ``out_dir``: ``state.json`` (the commit point of each iteration), ``current.pt``,
``history.csv`` (one row per proposal: the iteration's goal, predicted latency, accuracy after
T steps, dAcc, dLatency, ratio, whether it was kept, and which parts' latencies were
interpolated rather than measured), and at the end ``arch.json``, ``weights.pt``,
``adapt.png``, ``summary.md`` and ``finetune-<arch hash>/`` (metrics and checkpoint of the
final fine-tuning; named by the network, so continuing a stopped run with a larger
``--max-iterations`` fine-tunes its new result afresh). Re-running the same command on the same ``out_dir`` continues after the last
finished iteration.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from nas.adapt.inherit import inherit_state
from nas.adapt.proposals import Proposal, floor_arch, generate_proposals
from nas.arch import ArchSpec, arch_hash, build_model, save_arch, to_compact
from nas.atomic import atomic_path, atomic_write_json, atomic_write_text
from nas.errors import NASError
from nas.latency import LatencyEstimator
from nas.train.config import epochs_text
from nas.train.weights import atomic_torch_save, read_torch_file
from nas.write_errors import save_figure, storing

__all__ = ["AdaptSettings", "AdaptResult", "select_proposal", "adapt", "HISTORY_FIELDS", "RULES"]

RULES = ("ratio", "accuracy")
HISTORY_FIELDS = ["iteration", "proposal", "kind", "goal_ms", "relaxed", "latency_ms", "accuracy", "d_latency_ms",
                  "d_accuracy", "ratio", "chosen", "interpolated", "arch"]
#: A relaxed iteration halves its cut up to this many times, then accepts any cut of at least _MIN_CUT_MS.
_RELAX_HALVINGS = 10
_MIN_CUT_MS = 1e-6


@dataclass(frozen=True)
class AdaptSettings:
    budget_ms: float
    delta: float = 0.01
    delta_decay: float = 1.0
    steps: int = 50
    lr: float = 0.01
    batch_size: int = 64
    final_epochs: int = 5
    final_lr: float = 0.02
    rule: str = "ratio"
    allow_cse: bool = False
    allow_drop: bool = False
    cse_reduction: int = 16
    cse_cap: int = 16
    max_iterations: int = 500
    seed: int = 0
    device: str = "auto"
    #: training images the BatchNorm statistics are re-estimated from before each accuracy (0: off);
    #: T fine-tuning steps are too few for running averages to forget the parent's statistics
    bn_recalibration: int = 512

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise NASError(f"--rule: expected one of {list(RULES)}, got {self.rule!r}")
        if not self.budget_ms > 0:
            raise NASError(f"--latency-ms: expected a positive budget, got {self.budget_ms}")
        if not 0 < self.delta < 1:
            raise NASError(f"--delta: expected a fraction in (0, 1) of the starting latency, got {self.delta}")
        if not 0 < self.delta_decay <= 1:
            raise NASError(f"--delta-decay: expected a factor in (0, 1], got {self.delta_decay}")
        if self.steps < 1:
            raise NASError(f"--steps: expected at least 1 fine-tuning step per proposal, got {self.steps}")
        if self.final_epochs < 0:
            raise NASError(f"--final-epochs: expected 0 (no final fine-tuning) or more, got {self.final_epochs}")
        if self.batch_size < 1:
            raise NASError(f"--batch-size: expected a positive batch size, got {self.batch_size}")
        if not (self.lr > 0 and self.final_lr > 0):
            raise NASError(f"--lr / --final-lr: expected positive learning rates, got {self.lr} / {self.final_lr}")
        if self.bn_recalibration < 0:
            raise NASError(f"--bn-recalibration: expected 0 (off) or a number of images, got {self.bn_recalibration}")
        if self.max_iterations < 1:
            raise NASError(f"--max-iterations: expected at least 1, got {self.max_iterations}")
        if self.cse_reduction < 1 or self.cse_cap < 1:
            raise NASError(f"--cse-reduction / --cse-cap: expected positive integers, got {self.cse_reduction} / "
                           f"{self.cse_cap}")
        if self.seed < 0:
            raise NASError(f"--seed: expected a non-negative integer, got {self.seed}")

    def fingerprint(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("device")
        d.pop("final_epochs")
        d.pop("final_lr")
        d.pop("max_iterations")
        return d


@dataclass(frozen=True)
class AdaptResult:
    status: str  # met | already_met | unreachable
    arch: ArchSpec
    latency_ms: float
    accuracy: float
    start_latency_ms: float
    start_accuracy: float
    iterations: int
    message: str
    out_dir: Path

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "arch": to_compact(self.arch), "latency_ms": self.latency_ms,
                "accuracy": self.accuracy, "start_latency_ms": self.start_latency_ms,
                "start_accuracy": self.start_accuracy, "iterations": self.iterations, "message": self.message,
                "out_dir": str(self.out_dir)}


def select_proposal(parent_acc: float, parent_latency: float, results: Sequence[tuple[float, float]],
                    rule: str = "ratio") -> int:
    """Index of the kept proposal among ``results = [(accuracy, latency), ...]`` (see module doc)."""
    if not results:
        raise ValueError("no proposals to select from")

    def key(i: int) -> tuple[float, float, int]:
        acc, lat = results[i]
        cut = parent_latency - lat
        score = (acc - parent_acc) / abs(cut) if rule == "ratio" and cut != 0 else acc
        return (score, cut, -i)

    return max(range(len(results)), key=key)


class _Run:
    """The on-disk state of one adapt run (resumable)."""

    def __init__(self, out_dir: Path, settings: AdaptSettings) -> None:
        self.dir = out_dir
        self.settings = settings
        self.state_path = out_dir / "state.json"
        self.history_path = out_dir / "history.csv"

    def load(self) -> dict[str, Any] | None:
        state = read_state(self.state_path)
        if state is None:
            return None
        check_resume_settings(self.state_path, state, self.settings.fingerprint())
        return state

    def history(self, upto: int) -> list[dict[str, str]]:
        return read_history(self.history_path, upto)

    def commit(self, state: dict[str, Any], weights: dict[str, torch.Tensor], rows: list[dict[str, Any]]) -> None:
        """Weights, then history, then state.json: a crash in between is undone on resume."""
        atomic_torch_save(weights, self.dir / "current.pt")
        commit_history(self.history_path, self.state_path, state, rows)


def _finetune(arch: ArchSpec, state: dict[str, torch.Tensor], splits: Any, s: AdaptSettings, *, epochs: int = 1,
              steps: int | None = None, lr: float | None = None, out_dir: Path | None = None,
              progress: bool = False) -> tuple[float, dict[str, torch.Tensor]]:
    from nas.train import TrainConfig, train_model

    model = build_model(arch)
    model.load_state_dict(state)
    config = TrainConfig(epochs=epochs, batch_size=s.batch_size, lr=lr or s.lr, steps_per_epoch=steps,
                         warmup_epochs=0.0, seed=s.seed, device=s.device, bn_recalibration=s.bn_recalibration)
    result = train_model(model, splits, config, out_dir=out_dir, progress=progress)
    return float(result.final_val_acc), {k: v.detach().cpu() for k, v in model.state_dict().items()}


def _accuracy(arch: ArchSpec, state: dict[str, torch.Tensor], splits: Any, s: AdaptSettings) -> float:
    from nas.train import evaluate

    model = build_model(arch)
    model.load_state_dict(state)
    _, acc = evaluate(model, splits.val, mean=splits.mean, std=splits.std, device=s.device,
                      recalibrate_on=splits.train, recalibrate_images=s.bn_recalibration)
    return float(acc)


def adapt(arch: ArchSpec, weights: dict[str, torch.Tensor], estimator: LatencyEstimator, splits: Any,
          settings: AdaptSettings, out_dir: str | os.PathLike, *, progress: bool = True,
          log: Callable[[str], None] = print) -> AdaptResult:
    """Run (or resume) NetAdapt from the trained ``arch``/``weights`` down to ``settings.budget_ms``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = _Run(out, settings)
    s = settings
    state = run.load()
    if state is not None and state.get("start_arch") != arch_hash(arch):
        raise NASError(f"{run.state_path}: this folder holds an adapt run that started from another network "
                       f"({state.get('start_arch', '?')[:12]}, not {arch_hash(arch)[:12]}); re-run with its original "
                       "--arch to resume it, or choose another --out")
    if state is not None:
        check_resume_latency(run.state_path, state, estimator, arch)
    if state is None:
        start = estimator.predict(arch)
        start_acc = _accuracy(arch, weights, splits, s)
        state = {"settings": s.fingerprint(), "start_arch": arch_hash(arch), "iteration": 0, "arch": arch.to_dict(),
                 "latency_ms": start.total_ms, "accuracy": start_acc, "start_latency_ms": start.total_ms,
                 "start_accuracy": start_acc, "interpolated": list(_interpolated(start)), "status": "running"}
        run.commit(state, weights, [])
    else:
        log(f"resuming {out}: {state['iteration']} iteration(s) already done")
        weights = read_torch_file(out / "current.pt", what="adapt state file")
    current = ArchSpec.from_dict(state["arch"])
    start_lat = state["start_latency_ms"]
    if state["iteration"] == 0 and state["latency_ms"] <= s.budget_ms:
        return _finish(run, state, current, weights, splits, s, "already_met",
                       f"the network's predicted {state['latency_ms']:.3f} ms already meets the budget "
                       f"{s.budget_ms:.3f} ms; nothing to adapt (the original network is written to {out})",
                       progress=progress, log=log, finetune=False)
    floor_ms = estimator.latency_ms(floor_arch(current, allow_drop=s.allow_drop))
    if floor_ms > s.budget_ms:
        log(f"warning: with every width at its minimum the network is predicted at {floor_ms:.3f} ms, above the "
            f"budget {s.budget_ms:.3f} ms; measured tables are not monotone in width, so the budget may still be "
            "reachable, and if it is not, NetAdapt stops at the closest network it finds")

    while state["latency_ms"] > s.budget_ms and state["iteration"] < s.max_iterations:
        i = state["iteration"]
        delta = s.delta * start_lat * s.delta_decay ** i
        goal, relaxed = max(state["latency_ms"] - delta, s.budget_ms), False
        proposals = _proposals(current, estimator, goal, s)
        cut = state["latency_ms"] - goal
        for halving in range(_RELAX_HALVINGS + 1):
            if proposals:
                break
            cut = cut / 2 if halving < _RELAX_HALVINGS else _MIN_CUT_MS
            goal, relaxed = state["latency_ms"] - cut, True
            proposals = _proposals(current, estimator, goal, s)
        if not proposals:
            return _finish(run, state, current, weights, splits, s, "unreachable",
                           _unreachable_message(state["latency_ms"], s, floor_ms), progress=progress, log=log)
        if relaxed:
            wanted = state["latency_ms"] - max(state["latency_ms"] - delta, s.budget_ms)
            log(f"iteration {i + 1}: no proposal cuts {wanted:.3f} ms; relaxed to a cut of {cut:.4f} ms")
        results: list[tuple[float, float]] = []
        states: list[dict[str, torch.Tensor]] = []
        bar = tqdm(proposals, desc=f"iteration {i + 1}: {state['latency_ms']:.3f} -> {goal:.3f} ms",
                   disable=not progress, leave=False)
        for p in bar:
            child_state = inherit_state(current, weights, p.arch, p.block_map, seed=s.seed)
            acc, tuned = _finetune(p.arch, child_state, splits, s, steps=s.steps)
            results.append((acc, p.latency_ms))
            states.append(tuned)
        k = select_proposal(state["accuracy"], state["latency_ms"], results, s.rule)
        rows = [_row(i + 1, p, acc, state, j == k, goal, relaxed)
                for j, (p, (acc, _)) in enumerate(zip(proposals, results))]
        chosen: Proposal = proposals[k]
        current, weights = chosen.arch, states[k]
        state = {**state, "iteration": i + 1, "arch": current.to_dict(), "latency_ms": chosen.latency_ms,
                 "accuracy": results[k][0], "interpolated": list(chosen.interpolated)}
        run.commit(state, weights, rows)
        log(f"iteration {i + 1}: {chosen.description}: {chosen.latency_ms:.3f} ms, val acc {results[k][0]:.4f} "
            f"({len(proposals)} proposals)")
    if state["latency_ms"] > s.budget_ms:
        return _finish(run, state, current, weights, splits, s, "unreachable",
                       f"stopped after --max-iterations {s.max_iterations} at {state['latency_ms']:.3f} ms, above "
                       f"the budget {s.budget_ms:.3f} ms; the closest network is written (raise --max-iterations and "
                       "re-run the same command to continue)", progress=progress, log=log)
    return _finish(run, state, current, weights, splits, s, "met",
                   f"reached {state['latency_ms']:.3f} ms <= budget {s.budget_ms:.3f} ms in {state['iteration']} "
                   "iterations", progress=progress, log=log)


def _interpolated(prediction: Any) -> tuple[str, ...]:
    return tuple(p.name for p in prediction.parts if p.source == "interpolated")


def _proposals(arch: ArchSpec, estimator: LatencyEstimator, goal: float, s: AdaptSettings) -> list[Proposal]:
    return generate_proposals(arch, estimator, goal_ms=goal, allow_cse=s.allow_cse, allow_drop=s.allow_drop,
                              cse_reduction=s.cse_reduction, cse_cap=s.cse_cap)


def _unreachable_message(latency_ms: float, s: AdaptSettings, floor_ms: float) -> str:
    kinds = "hidden, group and head widths" + (" and repeated blocks" if s.allow_drop else "")
    hints = [flag for flag, on in (("--allow-drop", s.allow_drop), ("--allow-cse", s.allow_cse)) if not on]
    hint = f"enable {' / '.join(hints)}, or " if hints else ""
    return (f"budget {s.budget_ms:.3f} ms not reached: no proposal lowers the predicted latency below "
            f"{latency_ms:.3f} ms any more (the {kinds} have shrunk as far as they can; the smallest reachable "
            f"network was estimated at {floor_ms:.3f} ms); the closest network found ({latency_ms:.3f} ms) is written. "
            f"To meet the budget, {hint}raise --latency-ms to at least {latency_ms:.3f}, or start from a smaller "
            "network")


def _damaged(path: Path, why: object) -> NASError:
    return NASError(f"{path}: not a readable adapt {path.stem} ({why}); it was changed outside nas: choose another "
                    f"--out, or delete {path.parent} to start again")


#: The options behind stored settings whose names are not options (the refusal of a resume).
#: Any other setting ``x_y`` is the option ``--x-y``.
_OPTIONS = {"budget_ms": "--latency-ms",
            "mode": "--supernet (the folder holds a NetAdapt run of the other kind, with or without a supernet)"}

#: Settings stored since a later version: a run that began before does not have them and resumes unchecked.
ADDED_SETTINGS = frozenset({"scoring_device"})  # 2026-12-06


def check_resume_settings(state_path: Path, state: dict[str, Any], fingerprint: dict[str, Any],
                          options: dict[str, str] | None = None) -> None:
    """Refuse to resume the run of ``state_path`` with settings other than those it stored, naming the options.
    Every setting either side has is compared, except one of :data:`ADDED_SETTINGS` that the run lacks."""
    saved = state["settings"]
    keys = [*fingerprint, *(k for k in saved if k not in fingerprint)]
    diff = [k for k in keys if saved.get(k) != fingerprint.get(k) and not (k in ADDED_SETTINGS and k not in saved)]
    if diff:
        names = {**_OPTIONS, **(options or {})}
        shown = [f"{k}: {names.get(k, '--' + k.replace('_', '-'))}" for k in diff]
        raise NASError(f"{state_path}: this adapt run was started with other settings ({'; '.join(shown)}); "
                       "re-run with the original settings to resume it, or choose another --out")


def check_resume_latency(state_path: Path, state: dict[str, Any], estimator: LatencyEstimator,
                         start: ArchSpec) -> None:
    """Refuse to resume the run of ``state_path`` with a latency table that predicts its start network otherwise
    than when it began: its stored latencies and the ones predicted next would come from different measurements
    (another device's table, this one re-measured or re-fitted, or missing parts measured that were interpolated).
    Entries added meanwhile for parts the start network does not use count only where they move an interpolation
    of one of its parts."""
    now, was = estimator.latency_ms(start), float(state["start_latency_ms"])
    if not math.isclose(now, was, rel_tol=1e-9, abs_tol=1e-12):
        raise NASError(f"{state_path}: --target predicts {now:.4f} ms for the network this adapt run started from, "
                       f"the run recorded {was:.4f} ms: another table (or this one re-measured or re-fitted), or "
                       "another --on-missing; re-run with the original --target and --on-missing to resume it, or "
                       "choose another --out")


def read_state(path: Path) -> dict[str, Any] | None:
    """An adapt run's ``state.json`` (None when it does not exist yet); a damaged one is one clear error."""
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as exc:
        raise _damaged(path, type(exc).__name__) from None
    if not isinstance(state, dict) or not isinstance(state.get("settings"), dict):
        raise _damaged(path, "expected an object with 'settings'")
    return state


def read_history(path: Path, upto: int) -> list[dict[str, str]]:
    """The rows of ``history.csv`` up to iteration ``upto`` (none when it does not exist yet)."""
    if not path.exists():
        return []
    try:
        with open(path, newline="") as f:
            return [r for r in csv.DictReader(f) if int(r["iteration"]) <= upto]
    except (OSError, ValueError, KeyError, TypeError, csv.Error) as exc:
        raise _damaged(path, f"{type(exc).__name__}: {exc}") from None


def write_state(path: Path, state: dict[str, Any]) -> None:
    """``state.json``, the commit point of an iteration, atomically; a failed write is one clear error."""
    with storing(path):
        atomic_write_json(path, state)


def write_summary(path: Path, lines: list[str]) -> None:
    """``summary.md``, atomically; a failed write is one clear error."""
    with storing(path):
        atomic_write_text(path, "\n".join(lines))


def commit_history(history_path: Path, state_path: Path, state: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """``history.csv`` (the rows before ``state``'s iteration, then ``rows``), then ``state.json``: rows of an
    iteration whose state was not written are dropped on resume."""
    old = read_history(history_path, state["iteration"] - 1)
    with storing(history_path), atomic_path(history_path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_FIELDS)
        writer.writeheader()
        writer.writerows(old)
        writer.writerows(rows)
    write_state(state_path, state)


def _row(iteration: int, p: Proposal, acc: float, parent: dict[str, Any], chosen: bool, goal: float,
         relaxed: bool) -> dict[str, Any]:
    d_lat = p.latency_ms - parent["latency_ms"]
    d_acc = acc - parent["accuracy"]
    return {"iteration": iteration, "proposal": p.description, "kind": p.kind, "goal_ms": round(goal, 6),
            "relaxed": int(relaxed), "latency_ms": round(p.latency_ms, 6), "accuracy": round(acc, 6),
            "d_latency_ms": round(d_lat, 6), "d_accuracy": round(d_acc, 6),
            "ratio": round(d_acc / abs(d_lat), 6) if d_lat else "", "chosen": int(chosen),
            "interpolated": ";".join(p.interpolated), "arch": to_compact(p.arch)}


def _finish(run: _Run, state: dict[str, Any], arch: ArchSpec, weights: dict[str, torch.Tensor], splits: Any,
            s: AdaptSettings, status: str, message: str, *, progress: bool, log: Callable[[str], None],
            finetune: bool = True) -> AdaptResult:
    out = run.dir
    accuracy = state["accuracy"]
    if finetune and s.final_epochs > 0 and state["iteration"] > 0:
        log(f"final fine-tuning: {epochs_text(s.final_epochs)}")
        accuracy, weights = _finetune(arch, weights, splits, s, epochs=s.final_epochs, lr=s.final_lr,
                                      out_dir=out / f"finetune-{arch_hash(arch)}", progress=progress)
    save_arch(arch, out / "arch.json")
    atomic_torch_save(weights, out / "weights.pt")
    state = {**state, "status": status, "final_accuracy": accuracy, "message": message}
    write_state(run.state_path, state)
    _plot(run, state)
    _summary(run, state, arch)
    log(message)
    return AdaptResult(status, arch, state["latency_ms"], accuracy, state["start_latency_ms"], state["start_accuracy"],
                       state["iteration"], message, out)


def _plot(run: _Run, state: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = run.history(state["iteration"])
    fig, ax = plt.subplots(figsize=(6, 4))
    if rows:
        ax.scatter([float(r["latency_ms"]) for r in rows], [float(r["accuracy"]) for r in rows], s=8, color="0.7",
                   label="proposals (after T fine-tuning steps)")
    chosen = [r for r in rows if r["chosen"] == "1"]
    xs = [state["start_latency_ms"]] + [float(r["latency_ms"]) for r in chosen]
    ys = [state["start_accuracy"]] + [float(r["accuracy"]) for r in chosen]
    ax.plot(xs, ys, "o-", color="tab:blue", ms=4, label="kept proposal per iteration")
    if state.get("final_accuracy") is not None and state["iteration"]:
        ax.scatter([state["latency_ms"]], [state["final_accuracy"]], marker="*", s=120, color="tab:red",
                   label="after final fine-tuning", zorder=5)
    ax.axvline(run.settings.budget_ms, color="k", ls=":", lw=1, label="budget")
    ax.invert_xaxis()
    ax.set_xlabel("predicted latency (ms)")
    ax.set_ylabel("validation accuracy")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, run.dir / "adapt.png")


def _summary(run: _Run, state: dict[str, Any], arch: ArchSpec) -> None:
    lines = ["# NetAdapt summary", "", f"- status: {state['status']}: {state['message']}",
             f"- budget: {run.settings.budget_ms:.3f} ms; rule: {run.settings.rule}; delta {run.settings.delta:.2%} "
             f"of the start latency per iteration (decay {run.settings.delta_decay:g}); T = {run.settings.steps} "
             "fine-tuning steps per proposal",
             f"- start: {state['start_latency_ms']:.3f} ms, val acc {state['start_accuracy']:.4f}",
             f"- end: {state['latency_ms']:.3f} ms after {state['iteration']} iterations, val acc "
             f"{state['accuracy']:.4f} before / {state['final_accuracy']:.4f} after final fine-tuning",
             f"- latency of the final network: {_sources(state)}", "",
             f"    {to_compact(arch)}", "",
             f"Files: history.csv, arch.json, weights.pt, adapt.png, finetune-{arch_hash(arch)}/", ""]
    write_summary(run.dir / "summary.md", lines)


def _sources(state: dict[str, Any]) -> str:
    parts = state.get("interpolated") or []
    if not parts:
        return "every part's latency is in the table (measured)"
    return (f"interpolated for {', '.join(parts)} (no table entry; estimated from measured entries of the same "
            "kind), the other parts measured")
