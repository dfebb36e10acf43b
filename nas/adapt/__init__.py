"""NetAdapt: shrink a trained network onto a latency budget, choosing by dAcc / |dLatency|."""

from nas.adapt.inherit import channel_importance, inherit_state
from nas.adapt.layout import channel_layout, group_ids
from nas.adapt.loop import RULES, AdaptResult, AdaptSettings, adapt, select_proposal
from nas.adapt.proposals import PROPOSAL_KINDS, Proposal, generate_proposals

__all__ = [
    "channel_importance", "inherit_state", "channel_layout", "group_ids",
    "RULES", "AdaptResult", "AdaptSettings", "adapt", "select_proposal",
    "PROPOSAL_KINDS", "Proposal", "generate_proposals",
]
