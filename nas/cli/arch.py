"""``nas arch show`` and ``nas arch sample``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nas.arch import (
    ArchSpec,
    arch_cost,
    arch_hash,
    block_cost,
    head_cost,
    resolve_arch,
    save_arch,
    stem_cost,
    to_compact,
)
from nas.cli._args import non_negative_int
from nas.cli._output import format_table, print_json
from nas.errors import ConfigError
from nas.space import load_space, random_arch

__all__ = ["register", "ARCH_HELP"]

ARCH_HELP = ("a reference name (mobilenetv2-cifar, cse-mix-cifar, cse-only-cifar; '@0.5' scales the width), "
             "an architecture JSON file, or a compact string such as 'in32x3-stem_k3_s1_c32_re-ir_e6_k3_s1_c24_re-"
             "head_c1280_re-cls10'")


#: Kernel size of each head kind's feature layer ('none': pooling and the classifier only).
_HEAD_KERNELS: dict[str, int] = {"conv": 1, "dw": 3}


def arch_rows(arch: ArchSpec) -> list[dict[str, Any]]:
    rows = [{"layer": "stem", "kind": f"conv{arch.stem.kernel}x{arch.stem.kernel}", "in": arch.in_ch,
             "mid": "", "out": arch.stem.out_ch, "k": arch.stem.kernel, "s": arch.stem.stride, "se": "",
             "act": arch.stem.act, "res": arch.input_size,
             **vars(stem_cost(arch.stem, in_ch=arch.in_ch, input_size=arch.input_size))}]
    for i, (b, res) in enumerate(zip(arch.blocks, arch.block_resolutions())):
        if b.type == "skip":  # no hidden width, SE or activation; a kernel only where it has a convolution
            rows.append({"layer": f"block{i}", "kind": "skip(identity)" if b.is_identity else "skip(conv1x1)",
                         "in": b.in_ch, "mid": "", "out": b.out_ch, "k": "" if b.is_identity else b.kernel,
                         "s": b.stride, "se": "", "act": "", "res": res, **vars(block_cost(b, resolution=res))})
            continue
        kind = b.type if b.type == "ir" else f"cse(r{b.cse_reduction},cap{b.cse_cap})"
        rows.append({"layer": f"block{i}", "kind": kind, "in": b.in_ch, "mid": b.mid_ch, "out": b.out_ch,
                     "k": b.kernel, "s": b.stride, "se": "yes" if b.se else "no", "act": b.act, "res": res,
                     **vars(block_cost(b, resolution=res))})
    rows.append(_head_row(arch))
    return rows


def _head_row(arch: ArchSpec) -> dict[str, Any]:
    """The head: its feature layer (``mid`` is its width) then pooling and the linear classifier (``out``)."""
    head = arch.head
    kernel = _HEAD_KERNELS.get(head.kind)
    kind = "pool+fc" if kernel is None else f"{head.kind}{kernel}x{kernel}+pool+fc"
    return {"layer": "head", "kind": kind, "in": arch.last_ch, "mid": head.width if kernel else "",
            "out": arch.num_classes, "k": kernel or "", "s": 1 if kernel else "", "se": "",
            "act": head.act if kernel else "", "res": arch.final_resolution,
            **vars(head_cost(head, in_ch=arch.last_ch, resolution=arch.final_resolution,
                             num_classes=arch.num_classes))}


def describe(arch: ArchSpec) -> dict[str, Any]:
    cost = arch_cost(arch)
    return {"hash": arch_hash(arch), "compact": to_compact(arch), "params": cost.params, "macs": cost.macs,
            "layers": arch_rows(arch), "arch": arch.to_dict()}


def print_arch(arch: ArchSpec) -> None:
    info = describe(arch)
    keys = ["layer", "kind", "in", "mid", "out", "k", "s", "se", "act", "res", "params", "macs"]
    print(format_table(keys, [[row[k] for k in keys] for row in info["layers"]]))
    print(f"\nparameters {info['params']:,}   MACs {info['macs']:,}   hash {info['hash']}")
    print(f"compact: {info['compact']}")


def _show(args: argparse.Namespace) -> int:
    arch = resolve_arch(args.arch)
    if args.json:
        print_json(describe(arch))
    else:
        print_arch(arch)
    return 0


def _check_output(path: str) -> Path:
    """Refuse an ``-o`` that is a directory or lies under a file, before any work is done."""
    target = Path(path)
    try:
        is_dir = target.is_dir()
        blocker = next((p for p in target.parents if p.exists() and not p.is_dir()), None)
    except OSError as exc:  # a name too long, a parent that cannot be read
        raise ConfigError(f"-o/--output {target}: cannot be used ({exc.strerror or exc}); choose another path") \
            from None
    if is_dir:
        raise ConfigError(f"-o/--output {target}: is a directory; pass a file path, e.g. {target / 'arch.json'}")
    if blocker is not None:
        raise ConfigError(f"-o/--output {target}: cannot be written, {blocker} is a file, not a directory; "
                          "choose a path in an existing or new directory")
    return target


def _sample(args: argparse.Namespace) -> int:
    if args.output:
        _check_output(args.output)
    space = load_space(args.space)
    arch = random_arch(space, args.seed)
    if args.output:
        try:
            save_arch(arch, args.output)
        except OSError as exc:
            raise ConfigError(f"-o/--output {args.output}: cannot write the architecture "
                              f"({exc.strerror or exc}); choose a writable path") from None
    if args.json:
        print_json(describe(arch))
    else:
        print_arch(arch)
        if args.output:
            print(f"wrote {args.output}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("arch", help="inspect and sample architectures",
                       description="Inspect architectures (block table, parameters, MACs) and sample them from a space.")
    asub = p.add_subparsers(dest="arch_command", metavar="ACTION", required=True)
    show = asub.add_parser("show", help="print an architecture's blocks, parameters and MACs",
                           description="Print an architecture's blocks, parameters and multiply-adds.")
    show.add_argument("arch", metavar="ARCH", help=ARCH_HELP)
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=_show)
    sample = asub.add_parser("sample", help="sample a random architecture from a search space",
                             description="Sample a random architecture from a search-space file (seeded).")
    sample.add_argument("--space", required=True, metavar="FILE", help="search-space YAML file")
    sample.add_argument("--seed", type=non_negative_int, default=0, help="random seed, >= 0 (default 0)")
    sample.add_argument("-o", "--output", metavar="FILE", help="also write the architecture JSON here")
    sample.add_argument("--json", action="store_true", help="machine-readable output")
    sample.set_defaults(func=_sample)
