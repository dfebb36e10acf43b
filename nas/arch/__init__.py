"""Architectures as data: specs, canonical JSON, compact strings, builder, costs, references."""

from nas.arch.builder import Network, build_block, build_head, build_model, build_stem, init_weights
from nas.arch.compact import parse_compact, to_compact
from nas.arch.cost import Cost, arch_cost, block_cost, count_params, head_cost, stem_cost
from nas.arch.fold import fold_batchnorm
from nas.arch.reference import REFERENCE_NAMES, reference_arch, width_multiplier
from nas.arch.resolve import resolve_arch
from nas.arch.serialize import arch_hash, from_json, load_arch_file, save_arch, to_json
from nas.arch.spec import (
    ACTIVATIONS,
    BLOCK_TYPES,
    KERNELS,
    SKIP_KERNEL,
    STRIDES,
    ArchSpec,
    BlockSpec,
    HeadSpec,
    StemSpec,
    conv_out_size,
    skip_block,
)

__all__ = [
    "ACTIVATIONS", "BLOCK_TYPES", "KERNELS", "SKIP_KERNEL", "STRIDES",
    "ArchSpec", "BlockSpec", "HeadSpec", "StemSpec", "conv_out_size", "skip_block",
    "Network", "build_model", "build_stem", "build_block", "build_head", "init_weights", "fold_batchnorm",
    "to_compact", "parse_compact", "to_json", "from_json", "arch_hash", "save_arch", "load_arch_file",
    "Cost", "arch_cost", "block_cost", "stem_cost", "head_cost", "count_params",
    "REFERENCE_NAMES", "reference_arch", "width_multiplier", "resolve_arch",
]
