"""Declarative search spaces: load and validate YAML files, sample and enumerate architectures."""

from nas.space.sample import (
    BlockSlot,
    Chooser,
    LeaningChooser,
    RandomChooser,
    block_slots,
    candidate_block,
    enumerate_blocks,
    leaning_arch,
    make_block,
    random_arch,
    sample_arch,
    space_skeleton,
)
from nas.space.schema import CHOICE_KEYS, BlockChoices, Candidate, SearchSpace, StageSpace, load_space, parse_space

__all__ = [
    "CHOICE_KEYS", "BlockChoices", "Candidate", "SearchSpace", "StageSpace", "load_space", "parse_space",
    "BlockSlot", "Chooser", "RandomChooser", "LeaningChooser", "leaning_arch", "block_slots", "enumerate_blocks",
    "make_block", "candidate_block",
    "random_arch", "sample_arch", "space_skeleton",
]
