"""NetAdapt: shrink a trained network onto a latency budget, choosing by dAcc / |dLatency|.

:func:`run_adapt_job` (with :class:`AdaptJob` and :class:`AdaptSettings`) is the entry point
of ``nas adapt`` and of ``nas search --adapt``; :func:`adapt` is the loop itself.

``nas adapt --supernet``: :mod:`nas.adapt.supernet_job` (entry point), :mod:`nas.adapt.supernet_loop` (the loop,
proposals scored by a supernet instead of fine-tuned) and :mod:`nas.adapt.space_proposals` (proposals that
stay inside the supernet's space); imported on use, as they import :mod:`nas.supernet`.
"""

from nas.adapt.inherit import channel_importance, inherit_state
from nas.adapt.job import AdaptJob, load_start_weights, run_adapt_job
from nas.adapt.layout import channel_layout, group_ids
from nas.adapt.loop import HISTORY_FIELDS, RULES, AdaptResult, AdaptSettings, adapt, select_proposal
from nas.adapt.proposals import PROPOSAL_KINDS, Proposal, floor_arch, generate_proposals

__all__ = [
    "channel_importance", "inherit_state", "channel_layout", "group_ids",
    "RULES", "HISTORY_FIELDS", "AdaptResult", "AdaptSettings", "adapt", "select_proposal",
    "PROPOSAL_KINDS", "Proposal", "generate_proposals", "floor_arch",
    "AdaptJob", "run_adapt_job", "load_start_weights",
]
