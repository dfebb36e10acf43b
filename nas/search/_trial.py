"""One trial, start to end: ask the study, record the proposed network, evaluate it, tell the result.

:meth:`TrialRunner.run` returns a :class:`TrialOutcome` for every way a trial can end, so the
search loop reads what happened from its return value:

* ``finished``: told COMPLETE, PRUNED (stopped early, or over ``--skip-over`` x the budget) or
  FAIL (``surplus``: another worker made it the N+1-th trial);
* ``taken over``: another worker declared the trial stale (this one was stopped or suspended past
  ``--grace``), failed it and queued its retry; this worker's result is dropped.

An exception from the evaluation (or Ctrl-C) fails the trial and propagates; after Ctrl-C the
trial's retry is queued first, so the re-run evaluates it again. A Ctrl-C while the trial is created or
its outcome written is held until that write is done (:func:`nas.interrupt.ctrl_c_deferred`): during
the creation, it then interrupts the trial like one during the evaluation; during the outcome's write,
the outcome is kept and the search stops at its next check. Pressing again does not wait.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from nas.arch import arch_cost, arch_hash, to_compact
from nas.errors import SearchError
from nas.interrupt import check_interrupt, ctrl_c_deferred
from nas.latency import LatencyEstimator
from nas.search._arch_index import ArchIndex
from nas.search._proposer import Proposal, replay
from nas.search._storage import enqueue_retry, fail_stale, heartbeat, is_surplus, new_trial, retried
from nas.search.evaluator import AccuracyEvaluator
from nas.search.objective import Objective
from nas.search.record import (DIVERGED, DUPLICATE, DUPLICATE_DIVERGED, DUPLICATE_PRUNED, OVER_BUDGET, PRUNED,
                               TRAINED, Description, TrialRecord, TrialWriter, hash_of, records_of)
from nas.space import SearchSpace

if TYPE_CHECKING:
    from nas.search.runner import SearchConfig

__all__ = ["TrialRunner", "TrialOutcome"]


@dataclass(frozen=True)
class TrialOutcome:
    number: int
    trial: FrozenTrial | None  # as told; None when another worker took the trial over

    @property
    def taken_over(self) -> bool:
        return self.trial is None


class _Surplus(Exception):
    """This trial would exceed --trials (another worker got there first)."""


class _TakenOver(Exception):
    """Another worker failed this trial as stale (no heartbeat for --grace seconds) and queued its retry."""


class _Unstored:
    """A trial not stored yet (:meth:`TrialRunner._run_unstored`): keeps what its evaluation reports."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.intermediate_values: dict[int, float] = {}

    def report(self, value: float, step: int) -> None:
        self.intermediate_values[step] = float(value)

    def should_prune(self) -> bool:
        raise AssertionError("an evaluation that reports once is never asked to stop early")


def _not_a_number(number: int, told: FrozenTrial | None) -> SearchError:
    record = TrialRecord.from_trial(told) if told is not None else None
    return SearchError(f"trial {number}: the objective is not a number (accuracy "
                       f"{record.val_acc if record else None}, latency "
                       f"{record.latency_ms if record else None} ms); check --w and --latency-ms")


class TrialRunner:
    def __init__(self, study: optuna.Study, storage: BaseStorage, config: SearchConfig, space: SearchSpace,
                 estimator: LatencyEstimator, evaluator: AccuracyEvaluator, objective: Objective, worker: str) -> None:
        self.study, self.storage, self.config, self.space = study, storage, config, space
        self.estimator, self.evaluator, self.objective, self.worker = estimator, evaluator, objective, worker
        self._study_id = storage.get_study_id_from_name(study.study_name)
        self.index = ArchIndex()  # the search loop updates it with every read of the study

    @property
    def _at_once(self) -> bool:
        """An evaluation that trains nothing and reports once: never stopped early (see :meth:`_run_unstored`)."""
        return not self.evaluator.trains and (self.evaluator.epochs == 1 or not self.config.prune)

    # ------------------------------------------------------------------ the trial's life
    def run(self, proposal: Proposal, trials: Sequence[FrozenTrial], *, alone: bool = False,
            waiting: int | None = None) -> TrialOutcome:
        """Run the next trial: a waiting one (a retry, the warm start) keeps its network, a new one takes ``proposal``.

        ``trials``: the study as read just before ``proposal`` was made; ``alone``: no other worker
        uses the study (none shares its storage, none has a trial running). Then a new trial is
        created with its parameters and description in one write (a trial's dozens of separate
        writes were most of a quick search's time in SQLite), and its twins are looked for in
        ``trials`` instead of reading the study again. An evaluator that trains nothing and reports
        once (a table's or a supernet's score) goes further: the trial is stored only when it is
        finished, in that one write (:meth:`_run_unstored`). ``waiting``: how many of ``trials`` wait
        (None: counted here).
        """
        latency = None
        if waiting is None:
            waiting = sum(t.state == TrialState.WAITING for t in trials)
        if alone and not waiting and self._at_once:
            return self._run_unstored(proposal, trials)
        check_interrupt()  # one swallowed while the proposal was made: no trial created (or taken) for nothing
        trial: optuna.Trial | None = None
        try:
            # A Ctrl-C between the trial's creation and this handling would leave it RUNNING, and the
            # re-run would wait --grace for it: held until the check after the creation.
            with ctrl_c_deferred():
                if alone and not waiting:
                    trial, latency = self._create(proposal)
                else:
                    with warnings.catch_warnings():  # "heartbeat is supposed to be used with Study.optimize": see heartbeat()
                        warnings.simplefilter("ignore")
                        trial = self.study.ask()
                writer = TrialWriter(trial)
            check_interrupt()
            with heartbeat(self.storage, trial._trial_id):
                values = self._evaluate(trial, writer, proposal, latency, None if not alone else trials)
                # A Ctrl-C that a finalizer swallowed during the evaluation (PyTorch frees tensors at any
                # point) interrupts this trial like any other Ctrl-C during it: failed, its retry queued.
                check_interrupt()
            if all(math.isfinite(v) for v in values):
                return self._tell(trial, values=values)
        # TrialPruned, _Surplus and _TakenOver come from the evaluation: the trial exists.
        except optuna.TrialPruned:
            assert trial is not None
            return self._tell(trial, state=TrialState.PRUNED)
        except _Surplus:
            assert trial is not None
            return self._tell(trial, state=TrialState.FAIL)
        except _TakenOver:
            assert trial is not None
            return TrialOutcome(trial.number, None)
        except optuna.exceptions.UpdateFinishedTrialError:
            # a write after another worker failed the trial as stale between two checks: taken over too
            assert trial is not None
            if self.storage.get_trial(trial._trial_id).state == TrialState.RUNNING:
                raise
            return TrialOutcome(trial.number, None)
        except KeyboardInterrupt:
            if trial is not None:  # (None: a second Ctrl-C during the creation; then retried after --grace)
                told = self._tell(trial, state=TrialState.FAIL).trial
                if told is not None and told.state == TrialState.FAIL and not retried(self.study, trial.number):
                    enqueue_retry(self.study, told)  # another worker may have queued it already
            raise
        except BaseException:
            if trial is not None:
                self._tell(trial, state=TrialState.FAIL)
            raise
        assert trial is not None  # the try ends here only after an evaluation that was not a number
        told = self._tell(trial, state=TrialState.FAIL).trial
        raise _not_a_number(trial.number, told)

    def _run_unstored(self, proposal: Proposal, trials: Sequence[FrozenTrial]) -> TrialOutcome:
        """Evaluate ``proposal`` first, then store the trial finished, with everything, in one write.

        For a worker alone on its study whose evaluator trains nothing and reports once (a table's
        or a supernet's score): nothing can stop the evaluation early and no other worker can take
        the trial over, so it needs no running state, heartbeat or separate writes (they were most
        of such a search's time in SQLite). Interrupted before the write, it leaves nothing behind;
        the re-run proposes it again. Workers meant to share a study use ``--storage``: a second
        process started on the same run directory without it sees no running trial of this one,
        so both may count themselves alone, finish one trial each beyond ``--trials`` and score a
        network twice.
        """
        pending = _Unstored(len(trials))  # alone: the study's next trial number
        writer = TrialWriter(None)
        description = self._description(proposal, True)
        writer.describe(description, worker=self.worker)
        state, values = TrialState.COMPLETE, None
        try:
            values = self._evaluate(pending, writer, proposal, description.latency_ms, trials)
        except optuna.TrialPruned:
            state = TrialState.PRUNED
        check_interrupt()  # a Ctrl-C a finalizer swallowed meanwhile: nothing stored, as for any Ctrl-C here
        if values is not None and not all(math.isfinite(v) for v in values):
            state, values = TrialState.FAIL, None
        template = new_trial(
            state, values=values, params=proposal.params, distributions=proposal.distributions,
            user_attrs=writer.attrs, intermediate_values=pending.intermediate_values,
            constraints={"latency": description.latency_ms - self.config.budget_ms})
        with ctrl_c_deferred():  # a Ctrl-C during the write: the finished result is kept, then the search stops
            told = self.storage.get_trial(self.storage.create_new_trial(self._study_id, template_trial=template))
        if state == TrialState.FAIL:
            raise _not_a_number(told.number, told)
        return TrialOutcome(told.number, told)

    def _tell(self, trial: optuna.Trial, *, values: tuple[float, ...] | None = None,
              state: TrialState | None = None) -> TrialOutcome:
        """Store the trial's outcome. A Ctrl-C meanwhile is held until it is stored (a finished result is
        kept, nothing is left RUNNING); the search loop's next check stops the search."""
        with ctrl_c_deferred():
            told = self.study.tell(trial, values=values, state=state, skip_if_finished=True)
        expected = state or TrialState.COMPLETE
        if told.state != expected and told.state == TrialState.FAIL:  # failed as stale by another worker meanwhile
            return TrialOutcome(trial.number, None)
        return TrialOutcome(trial.number, told)

    def _check_alive(self, trial: optuna.Trial | _Unstored) -> None:
        """Stop a trial that other workers declared stale: this worker was stopped or suspended past --grace.

        Its retry is queued, so finishing it would train the same network twice.
        """
        if isinstance(trial, _Unstored):  # nobody else can see it
            return
        if self.storage.get_trial(trial._trial_id).state != TrialState.RUNNING:
            raise _TakenOver(f"trial {trial.number} was declared stale by another worker and is retried")

    # ------------------------------------------------------------------ the network
    def _network(self, trial: optuna.Trial, proposal: Proposal) -> tuple[Proposal, bool]:
        """The trial's network and whether it is the proposal; records the parameters the trial lacks.

        A waiting trial (a retry, the warm start) brings its parameters: stored ones, or fixed by
        ``enqueue_trial``. A retry of a trial killed while its parameters were being written lacks
        some: they come from the proposal.
        """
        frozen = self.storage.get_trial(trial._trial_id)
        own = {**frozen.system_attrs.get("fixed_params", {}), **frozen.params}
        if not own:
            chosen, fresh = proposal, True
        else:
            arch, params, distributions = replay(self.space, {**proposal.params, **own})
            chosen = Proposal(params, distributions, arch, self.estimator.latency_ms(arch), 0, False)
            fresh = False
        for name, distribution in chosen.distributions.items():
            if name not in frozen.params:
                self.storage.set_trial_param(trial._trial_id, name, distribution.to_internal_repr(chosen.params[name]),
                                             distribution)
        return chosen, fresh

    def _description(self, proposal: Proposal, fresh: bool) -> Description:
        pred = self.estimator.predict(proposal.arch)
        cost = arch_cost(proposal.arch)
        return Description(
            hash=arch_hash(proposal.arch), arch=proposal.arch.to_dict(), compact=to_compact(proposal.arch),
            latency_ms=pred.total_ms, latency_parts=[[p.name, round(p.ms, 6), p.source] for p in pred.parts],
            latency_interpolated=len(pred.interpolated), params=cost.params, macs=cost.macs,
            blocks=len(proposal.arch.blocks), budget_ms=self.config.budget_ms,
            proposal={"attempts": proposal.attempts, "repaired": proposal.repaired} if fresh else None,
            sampler_attrs=proposal.sampler_attrs if fresh else None)

    def _describe(self, trial: optuna.Trial, writer: TrialWriter, proposal: Proposal, fresh: bool) -> float:
        description = self._description(proposal, fresh)
        writer.describe(description, worker=self.worker)
        with warnings.catch_warnings():  # a retried trial inherits the (same) constraint: Optuna warns
            warnings.simplefilter("ignore")
            trial.set_constraint("latency", description.latency_ms - self.config.budget_ms)
        return description.latency_ms

    def _create(self, proposal: Proposal) -> tuple[optuna.Trial, float]:
        """A new RUNNING trial holding ``proposal``'s parameters, description and constraint: one write."""
        description = self._description(proposal, True)
        template = new_trial(
            TrialState.RUNNING, params=proposal.params, distributions=proposal.distributions,
            user_attrs={**description.to_attrs(), "worker": self.worker},
            constraints={"latency": description.latency_ms - self.config.budget_ms})
        trial_id = self.storage.create_new_trial(self._study_id, template_trial=template)
        return optuna.Trial(self.study, trial_id), description.latency_ms

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self, trial: optuna.Trial | _Unstored, writer: TrialWriter, proposal: Proposal, described: float | None,
                  trials: Sequence[FrozenTrial] | None) -> tuple[float, ...]:
        """``described``: the latency of a trial created with ``proposal``'s description (:meth:`_create`);
        ``trials``: the study's other trials when no other worker can add any (else they are read)."""
        s = self.config
        if described is not None:
            network, latency = proposal, described
        else:
            assert isinstance(trial, optuna.Trial), "an unstored trial comes described"
            if is_surplus(self.study, trial.number, s.n_trials):
                writer.surplus()
                raise _Surplus(f"trial {trial.number} is beyond --trials {s.n_trials}")
            network, fresh = self._network(trial, proposal)
            latency = self._describe(trial, writer, network, fresh)
        if latency > s.skip_over * s.budget_ms:
            writer.status(OVER_BUDGET)
            raise optuna.TrialPruned(f"{latency:.3f} ms is over {s.skip_over:g} x the budget: not trained")

        twin = self._wait_for_twin(arch_hash(network.arch), trial.number, trials)
        if twin is not None:
            self._check_alive(trial)  # the wait may have outlasted --grace
            return self._reuse(trial, writer, twin, latency)

        accs: list[float] = []

        def report(epoch: int, acc: float) -> None:
            self._check_alive(trial)
            accs.append(acc)
            writer.epoch(accs)
            self.objective.report(trial, epoch=epoch, accuracy=acc, latency_ms=latency, budget_ms=s.budget_ms)
            if epoch == self.evaluator.epochs or not s.prune:  # fully evaluated: stopping now would discard it
                return
            reason = self.objective.should_stop(trial, epoch=epoch, accuracy=acc, latency_ms=latency,
                                                peers=lambda: records_of(self.study.get_trials(deepcopy=False)))
            if reason is not None:
                writer.status(PRUNED)
                raise optuna.TrialPruned(reason)

        start = time.perf_counter()
        try:
            ev = self.evaluator.evaluate(network.arch, report=report)
        except _TakenOver:
            raise  # the trial is another worker's now: nothing more is written to it
        except BaseException:
            writer.wall(time.perf_counter() - start)  # stopped early, or interrupted
            raise
        writer.wall(time.perf_counter() - start)
        writer.result(TRAINED if ev.status == "completed" else ev.status, ev.acc_per_epoch, accuracy=ev.accuracy,
                      message=ev.message)
        self._check_alive(trial)
        return self.objective.values(ev.accuracy, latency, s.budget_ms)

    # ------------------------------------------------------------------ the same network again
    def _same_arch(self, digest: str, number: int, trials: Sequence[FrozenTrial] | None) -> list[TrialRecord]:
        if trials is None:  # other workers may have added some
            trials = self.study.get_trials(deepcopy=False)
        if trials is self.index.source:
            same: Sequence[FrozenTrial] = self.index.with_hash(digest)
        else:
            same = [t for t in trials if hash_of(t) == digest]
        return [t for t in records_of(t for t in same if t.number != number) if t.status != OVER_BUDGET]

    def _wait_for_twin(self, digest: str, number: int, trials: Sequence[FrozenTrial] | None,
                       timeout_s: float = 3600) -> TrialRecord | None:
        """A finished trial of the same architecture, waiting while another worker evaluates it."""
        deadline = time.monotonic() + timeout_s
        while True:
            twins = self._same_arch(digest, number, trials)
            done = [t for t in twins if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and t.acc_per_epoch]
            if done:
                return min(done, key=lambda t: t.number)
            running = [t for t in twins if t.state == TrialState.RUNNING and t.number < number]
            if not running or time.monotonic() > deadline:
                return None
            time.sleep(2.0)
            fail_stale(self.study, self.storage, grace_s=self.config.grace_s,
                       shared=self.config.storage_url is not None)

    def _reuse(self, trial: optuna.Trial | _Unstored, writer: TrialWriter, twin: TrialRecord,
               latency: float) -> tuple[float, ...]:
        acc = twin.acc_per_epoch[-1]
        if twin.status == DIVERGED:  # its accuracy is an earlier epoch's: never a winner
            writer.duplicate(twin, DUPLICATE_DIVERGED)
            return self.objective.values(acc, latency, self.config.budget_ms)
        if twin.state == TrialState.PRUNED:
            writer.duplicate(twin, DUPLICATE_PRUNED)
            for epoch, epoch_acc in enumerate(twin.acc_per_epoch, 1):
                self.objective.report(trial, epoch=epoch, accuracy=epoch_acc, latency_ms=latency,
                                      budget_ms=self.config.budget_ms)
            raise optuna.TrialPruned(f"same architecture as trial {twin.number}, which was stopped early")
        writer.duplicate(twin, DUPLICATE)
        return self.objective.values(acc, latency, self.config.budget_ms)

