"""Does ``search_spaces/nas_bench_macro.yaml`` build NAS-Bench-Macro's networks? Parameters and FLOPs, all 6,561.

For every key of the benchmark's file (``"02012100"``: one candidate index per layer), the network of
the key (:func:`nas.space.keys.key_to_arch`) is compared with the file's figures:

* ``params``: our parameter count (:func:`nas.arch.arch_cost`: weights, BN's affine weight and bias,
  the classifier's bias; no convolution has a bias) must equal the file's exactly;
* ``flops``: our multiply-adds (convolutions and the classifier, at each layer's output size; nothing
  element-wise) against the file's FLOPs, which the benchmark's ``utils.count_FLOPs`` computed. How it
  counts is explained in the results file (``FLOPS_RULE`` below), and any difference is reported per key.

It also counts how many distinct functions the keys name: keys that differ only in where a stage's
stride-1 identities sit build the same computation (the benchmark's README calls them replicates).

Results: ``benchmarks/results/macro_space.{md,json}``. Seconds, no training, no timing:

    python benchmarks/macro_space.py [--file ../shared/benchmarks/nas-bench-macro/nas-bench-macro_cifar10.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from nas.arch import arch_cost, to_compact
from nas.latency import arch_parts
from nas.space import load_space
from nas.space.keys import key_to_arch

from _common import REPO, SHARED, machine, publish  # beside this script

SPACE = REPO / "search_spaces" / "nas_bench_macro.yaml"
BENCHMARK = SHARED / "benchmarks" / "nas-bench-macro" / "nas-bench-macro_cifar10.json"
EXAMPLES = ("00000000", "11111111", "22222222", "02012100", "00011110")

FLOPS_RULE = """\
How the file counts FLOPs (the benchmark's `utils.count_FLOPs`; this script does not run it): it walks the
model's modules in the order they were registered and adds, for every `nn.Conv2d`,
`in_channels * out_channels * H_out * W_out // groups * k * k`, and for every `nn.Linear`,
`in_features * out_features`. Nothing else counts: not BatchNorm, not the activations, not the
pooling, not the residual additions, not the classifier's bias. So its "FLOPs" are multiply-adds
(one per weight and output position), not 2x that.

Its one quirk is how it knows `H_out`: it does not run the network, it keeps one running size for
the whole model, starting at 32x32, and every convolution it meets in registration order updates it
with `(size + 2 * padding - kernel) // stride + 1`. That is right for these networks, because every
convolution lies on the one path through the network and is registered in the order it runs (stem;
per layer its 1x1 expansion, depthwise and projection, or a skip's 1x1 stride-2 convolution; the
1x1 head), and an identity layer, which has no convolution, leaves the size as it is, as the
identity does. (A shortcut convolution registered before its branch, or two parallel branches, would
be counted at a wrong size; these networks have neither.) The integer division by `groups` before
multiplying by the kernel area loses nothing either: `groups` is 1 or, for a depthwise convolution,
equal to both channel counts.

Our multiply-adds (`nas.arch.cost`) follow the same convention: convolutions and fully connected
layers, at each layer's true output size, nothing element-wise. So the file's FLOPs should equal our
MACs key for key, with no correction. (Run once during development on the benchmark's own model,
`count_FLOPs` and a parameter sum reproduced the file's `flops` and `params` for the keys tried.)"""

DIFFERENCES = """\
Differences from the benchmark's networks (its `model.py`):

* activation: our `relu` is ReLU6 (MobileNetV2's), the benchmark's is plain ReLU, in the stem, the
  inverted residuals and the head. Same parameters and multiply-adds; on the CPU backends the two
  cost practically the same (one clip vs one max). An accuracy measured with ReLU6 is not exactly
  the benchmark's.
* initialisation: our builder's (Kaiming normal fan-out for convolutions, N(0, 0.01) for the
  classifier), not PyTorch's defaults that the benchmark's script kept. Not part of the architecture.
* nothing else: no biases in convolutions on either side, BN after every convolution, the skip's
  1x1 stride-2 convolution + BN without activation, hidden width = expansion x input width, linear
  bottleneck, residual when stride 1 and widths match, 1x1 head to 1280 + BN + ReLU, global average
  pooling, linear classifier with bias. Hence the exact parameter counts."""


def analyse(data: dict[str, Any]) -> dict[str, Any]:
    """Our parameters and MACs for every key of the benchmark's ``data``, against its ``params`` and ``flops``."""
    space = load_space(SPACE)
    rows = []
    functions: Counter[tuple[str, ...]] = Counter()
    for key in sorted(data):
        arch = key_to_arch(space, key)
        cost = arch_cost(arch)
        rows.append({"key": key, "params": cost.params, "file_params": data[key]["params"], "macs": cost.macs,
                     "file_flops": data[key]["flops"]})
        functions[tuple(p.signature for p in arch_parts(arch))] += 1  # identities are no parts
    param_diff = [r["params"] - r["file_params"] for r in rows]
    flops_diff = [r["macs"] - r["file_flops"] for r in rows]
    return {
        "space": str(SPACE.relative_to(REPO)), "space_digest": space.digest, "keys": len(rows),
        "params_equal": sum(d == 0 for d in param_diff), "params_max_abs_diff": max(map(abs, param_diff)),
        "flops_equal": sum(d == 0 for d in flops_diff), "flops_max_abs_diff": max(map(abs, flops_diff)),
        "params_range": [min(r["params"] for r in rows), max(r["params"] for r in rows)],
        "macs_range": [min(r["macs"] for r in rows), max(r["macs"] for r in rows)],
        "distinct_functions": len(functions), "largest_replicate_group": max(functions.values()),
        "mismatches": [r for r in rows if r["params"] != r["file_params"] or r["macs"] != r["file_flops"]],
        "examples": [{**next(r for r in rows if r["key"] == key), "arch": to_compact(key_to_arch(space, key))}
                     for key in EXAMPLES if key in data],
    }


def report(res: dict[str, Any]) -> str:
    a = res["analysis"]
    n = a["keys"]
    lines = [
        "# NAS-Bench-Macro: our networks against the benchmark's file", "",
        f"Every key of `{res['config']['file']}` ({n:,} networks) built from `{a['space']}` "
        f"(`nas.space.keys.key_to_arch`) and counted by `nas.arch.arch_cost`.", "",
        "| check | keys that agree | largest difference |", "|---|---:|---:|",
        f"| parameters: ours vs the file's `params` | {a['params_equal']:,} of {n:,} | {a['params_max_abs_diff']:,} |",
        f"| multiply-adds: ours vs the file's `flops` | {a['flops_equal']:,} of {n:,} | {a['flops_max_abs_diff']:,} |",
        "",
        f"Parameters {a['params_range'][0]:,} to {a['params_range'][1]:,}; multiply-adds {a['macs_range'][0]:,} to "
        f"{a['macs_range'][1]:,}. The {n:,} keys build {a['distinct_functions']:,} distinct computations (keys that "
        f"differ only in where a stage's stride-1 identities sit; the largest group has "
        f"{a['largest_replicate_group']} keys).", "",
        "| key | parameters (ours = file) | multiply-adds (ours = file's FLOPs) | compact string |", "|---|---:|---:|---|",
    ]
    for r in a["examples"]:
        same = "" if (r["params"], r["macs"]) == (r["file_params"], r["file_flops"]) else " (file: differs)"
        lines.append(f"| `{r['key']}` | {r['params']:,} | {r['macs']:,}{same} | `{r['arch']}` |")
    if a["mismatches"]:
        lines += ["", f"{len(a['mismatches']):,} of {n:,} keys disagree; the first ones:", ""]
        lines += [f"* `{r['key']}`: params {r['params']} vs {r['file_params']}, MACs {r['macs']} vs {r['file_flops']}"
                  for r in a["mismatches"][:10]]
    else:
        lines += ["", "Every key agrees exactly in both: the file's FLOPs are our multiply-adds, "
                      "`flops(key) = macs(key)` for all keys."]
    lines += ["", FLOPS_RULE, "", DIFFERENCES, "", f"Machine: {res['machine']}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--file", type=Path, default=BENCHMARK, help="the benchmark's JSON file (default: %(default)s)")
    args = p.parse_args(argv)
    try:
        data = json.loads(args.file.read_text())
    except OSError as exc:
        raise SystemExit(f"{args.file}: cannot read the benchmark's file ({exc.strerror})") from None
    try:
        shown = str(Path("..") / args.file.resolve().relative_to(REPO.parent))  # as the repository sees it
    except ValueError:
        shown = str(args.file)
    res = {"config": {"file": shown}, "analysis": analyse(data), "machine": machine()}
    publish("macro_space", report(res), res)
    return 0 if not res["analysis"]["mismatches"] else 1


if __name__ == "__main__":
    sys.exit(main())
