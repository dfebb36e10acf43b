"""Search-space files: YAML format, validation and the in-memory :class:`SearchSpace`.

Format (see ``search_spaces/README.md`` for a commented example)::

    name: mobilenet_cse_cifar
    input: {size: 32, channels: 3}
    classes: 10
    stem: {channels: 32, kernel: 3, stride: 1, activation: relu}
    head: {kind: conv, width: 1280, activation: relu}
    defaults:                      # per-block choices; every stage may override any of them
      type: [ir, cse]              # ir, cse or skip
      expansion: [1, 2, 3, 4, 6]
      kernel: [3, 5, 7]
      se: [false, true]
      activation: [relu, hswish]
      cse_reduction: [16]          # used by cse blocks only
      cse_cap: [16]
    stages:
      - {channels: 16, stride: 1, depth: [1, 1], choices: {expansion: [1]}}
      - {channels: 24, stride: 1, depth: [1, 2]}
      - channels: 32
        stride: 2
        depth: 2
        candidates: [{type: skip}, {type: ir, expansion: 3, kernel: 3}, {type: ir, expansion: 6, kernel: 5}]

A stage's blocks choose in one of two forms:

* **choices** (the cross product): every block chooses each key independently from its
  option list: the stage's ``choices`` where it gives the key, else ``defaults``. A ``skip``
  block (``type: [ir, skip]``) has no other options, so its expansion, kernel, SE, activation
  and CSE options are not asked, as the CSE options are not asked for ``ir`` blocks; a key is
  needed only when a type that uses it is listed.
* **candidates** (FBNet, ProxylessNAS, NAS-Bench-Macro): every block is one of the listed
  preset blocks. A candidate is a mapping of the same keys with *one value each*
  (``{type: ir, expansion: 3, kernel: 3}``). A key it omits comes from ``defaults`` only when
  ``defaults`` gives that key exactly one option; otherwise the candidate must name it (the
  error names ``stages[i].candidates[j].KEY``). A ``{type: skip}`` candidate takes no other
  key; only ``cse`` candidates take ``cse_reduction``/``cse_cap``. Two candidates that are the
  same block are refused. A stage has ``choices`` or ``candidates``, never both, and
  ``defaults`` may be left out when every stage lists candidates. Each candidate has a
  readable label (:attr:`Candidate.label`: ``skip``, ``ir_e3_k3``, ``ir_e6_k5_se_hs``,
  ``cse_e2_k3_rd16_cap16``), the value of its position's one categorical parameter
  (``s{i}.b{j}.op``, see :mod:`nas.space.sample`).

Errors name the file and the key path (``stages[2].choices.kernel``,
``stages[1].candidates[2].kernel``) and say what is allowed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nas.arch.spec import (
    ACTIVATIONS,
    BLOCK_TYPES,
    HEAD_KINDS,
    KERNELS,
    MAX_BLOCKS,
    MAX_CHANNELS,
    MAX_CSE_WEIGHTS,
    MAX_CLASSES,
    MAX_INPUT_SIZE,
    STRIDES,
    conv_out_size,
    over_limit,
)
from nas.errors import SpaceError, shown

__all__ = ["BlockChoices", "Candidate", "StageSpace", "SearchSpace", "load_space", "parse_space", "CHOICE_KEYS"]

CHOICE_KEYS: tuple[str, ...] = ("type", "expansion", "kernel", "se", "activation", "cse_reduction", "cse_cap")
#: The keys a block of each type uses (a skip block uses none but its type).
_USED_KEYS: dict[str, tuple[str, ...]] = {"ir": CHOICE_KEYS[:5], "cse": CHOICE_KEYS, "skip": ("type",)}


@dataclass(frozen=True)
class BlockChoices:
    """The option lists of a block position in the cross-product form; a key neither the stage nor ``defaults``
    gives (allowed where no listed type uses it, e.g. the kernel of a stage of skips) is ``()``."""

    type: tuple[str, ...]
    expansion: tuple[int, ...]
    kernel: tuple[int, ...]
    se: tuple[bool, ...]
    activation: tuple[str, ...]
    cse_reduction: tuple[int, ...]
    cse_cap: tuple[int, ...]


@dataclass(frozen=True)
class Candidate:
    """One preset block of a candidate list: ``skip`` (every other field ``None``) or an ``ir``/``cse`` block
    with every option fixed (the CSE fields only on ``cse``)."""

    type: str
    expansion: int | None = None
    kernel: int | None = None
    se: bool | None = None
    activation: str | None = None
    cse_reduction: int | None = None
    cse_cap: int | None = None

    @property
    def label(self) -> str:
        """``skip``, or ``{type}_e{expansion}_k{kernel}`` + ``_se`` (SE on) + ``_hs`` (h-swish) + ``_rd{r}_cap{n}``
        (cse): the compact string's tokens, so distinct candidates have distinct labels."""
        if self.type == "skip":
            return "skip"
        label = f"{self.type}_e{self.expansion}_k{self.kernel}" + ("_se" if self.se else "")
        label += "_hs" if self.activation == "hswish" else ""
        return label + (f"_rd{self.cse_reduction}_cap{self.cse_cap}" if self.type == "cse" else "")


@dataclass(frozen=True)
class StageSpace:
    """One stage: its blocks choose from ``choices`` (the cross product) or from ``candidates``, never both
    (``choices`` is ``None`` exactly when ``candidates`` is not empty)."""

    channels: int
    stride: int
    min_depth: int
    max_depth: int
    choices: BlockChoices | None
    candidates: tuple[Candidate, ...] = ()

    @functools.cached_property  # a search draws thousands of blocks of a stage (a frozen dataclass: fields unchanged)
    def labels(self) -> tuple[str, ...]:
        """The candidates' labels, in the file's order."""
        return tuple(cand.label for cand in self.candidates)

    @functools.cached_property
    def _by_label(self) -> dict[str, Candidate]:
        return dict(zip(self.labels, self.candidates))

    def candidate(self, label: str) -> Candidate:
        """The candidate with this label (``KeyError`` when none has it, as a parameter dict lacking a key)."""
        return self._by_label[label]


@dataclass(frozen=True)
class SearchSpace:
    name: str
    input_size: int
    in_ch: int
    num_classes: int
    stem_ch: int
    stem_kernel: int
    stem_stride: int
    stem_act: str
    head_kind: str
    head_width: int
    head_act: str
    stages: tuple[StageSpace, ...]
    source: str  # file path or "<string>"
    digest: str  # sha256 of the canonical content (comments and formatting do not count)

    def stage_resolutions(self) -> tuple[int, ...]:
        """Input resolution of each stage's first block."""
        res = conv_out_size(self.input_size, self.stem_stride)
        out = []
        for stage in self.stages:
            out.append(res)
            res = conv_out_size(res, stage.stride)
        return tuple(out)


_CHANNELS = (MAX_CHANNELS, "channels")
_BLOCKS = (MAX_BLOCKS, "blocks")


def _stage_expansions(stage: StageSpace, key: str) -> list[tuple[str, int]]:
    """``(key path, expansion)`` of every expansion a block of ``stage`` may use."""
    if stage.choices is not None:
        types = set(stage.choices.type)
        return [(f"{key}.choices.expansion", e) for e in stage.choices.expansion] if types - {"skip"} else []
    return [(f"{key}.candidates[{j}].expansion", c.expansion) for j, c in enumerate(stage.candidates)
            if c.expansion is not None]


#: Block configurations one stage may offer (the cross product of its option lists, or its candidates): the
#: table builder and the samplers go through them all. The shipped spaces offer at most 120.
MAX_BLOCK_OPTIONS = 4096


def _check_block_options(r: _Reader, stage: StageSpace, key: str) -> None:
    if stage.choices is None:
        count, where = len(stage.candidates), f"{key}.candidates"
    else:
        c, where = stage.choices, f"{key}.choices"
        per_type = {"skip": 1, "ir": len(c.expansion) * len(c.kernel) * len(c.se) * len(c.activation)}
        per_type["cse"] = per_type["ir"] * len(c.cse_reduction) * len(c.cse_cap)
        count = sum(per_type[t] for t in c.type)
    if count > MAX_BLOCK_OPTIONS:
        raise r.fail(where, f"the stage offers {count} block configurations, above the limit of {MAX_BLOCK_OPTIONS} "
                            "(far above any real network; see search_spaces/README.md#limits); give fewer options")


def _check_cse_sizes(r: _Reader, stage: StageSpace, key: str, res: int) -> None:
    """The largest CSE unit a stage can produce (its blocks all output ``res`` x ``res``) within the limits of
    :meth:`nas.arch.ArchSpec` (hidden units, FC weights), named by the option that makes it."""
    if stage.choices is not None:
        options = [(f"{key}.choices", r_, cap) for r_ in stage.choices.cse_reduction
                   for cap in stage.choices.cse_cap] if "cse" in stage.choices.type else []
    else:
        options = [(f"{key}.candidates[{j}]", c.cse_reduction, c.cse_cap)
                   for j, c in enumerate(stage.candidates) if c.type == "cse"]
    for where, reduction, cap in options:
        hidden = max(res * res // reduction, cap)
        if hidden > MAX_CHANNELS or res * res * hidden > MAX_CSE_WEIGHTS:
            by_cap = cap >= res * res // reduction  # the cap, not the reduction, sets the hidden units
            raise r.fail(f"{where}.{'cse_cap' if by_cap else 'cse_reduction'}",
                         f"a CSE block at {res}x{res} with cse_reduction {reduction} and cse_cap {cap} has {hidden} "
                         f"hidden units and {res * res * hidden} weights per FC layer, above the limits of "
                         f"{MAX_CHANNELS} hidden units and {MAX_CSE_WEIGHTS} weights (far above any real network; see "
                         f"search_spaces/README.md#limits); {'lower cse_cap' if by_cap else 'raise cse_reduction'}, "
                         "or lower input.size")


def _check_hidden_widths(r: _Reader, stages: list[StageSpace], stem_ch: int) -> None:
    """Every hidden width a space can produce (expansion x input channels) within :data:`MAX_CHANNELS`."""
    prev = stem_ch
    for i, stage in enumerate(stages):
        widest = max(prev, stage.channels) if stage.max_depth > 1 else prev
        for where, expansion in _stage_expansions(stage, f"stages[{i}]"):
            if expansion * widest > MAX_CHANNELS:
                raise r.fail(where, f"{expansion} x {widest} input channels = {expansion * widest} hidden channels, "
                                    f"above the limit of {MAX_CHANNELS} channels (far above any real network; see "
                                    f"search_spaces/README.md#limits)")
        prev = stage.channels


class _Reader:
    """Walks the parsed YAML, producing errors that name the file and key path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, why: str) -> SpaceError:
        return SpaceError(f"{self.source}: {key}: {why}")

    def mapping(self, data: Any, key: str, allowed: set[str], required: set[str]) -> dict[str, Any]:
        if not isinstance(data, dict):
            if data is None and not key:
                raise self.fail("(top level)", "the file is empty; expected a mapping with the keys "
                                               f"{sorted(required)} (see search_spaces/README.md)")
            raise self.fail(key or "(top level)", f"expected a mapping, got {type(data).__name__}")
        unknown = sorted(set(map(str, data)) - allowed)
        if unknown:
            raise self.fail(f"{key}.{unknown[0]}" if key else unknown[0],
                            f"unknown key; allowed keys here: {sorted(allowed)}")
        missing = sorted(required - set(data))
        if missing:
            raise self.fail(key or "(top level)", f"missing required key {missing[0]!r}")
        return data

    def integer(self, value: Any, key: str, minimum: int = 1, allowed: tuple[int, ...] | None = None,
                maximum: tuple[int, str] | None = None) -> int:
        """``maximum``: (limit, what it counts), one of the size limits of :mod:`nas.arch.spec`."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected an integer, got {shown(value)}")
        if allowed is not None and value not in allowed:
            raise self.fail(key, f"expected one of {list(allowed)}, got {value}")
        if value < minimum:
            raise self.fail(key, f"expected an integer >= {minimum}, got {value}")
        why = over_limit(value, *maximum) if maximum is not None else None
        if why:
            raise self.fail(key, why)
        return value

    def word(self, value: Any, key: str, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            raise self.fail(key, f"expected one of {list(allowed)}, got {shown(value)}")
        return str(value)

    def value(self, item: Any, where: str, kind: str) -> Any:
        """One value of the choice key ``kind``."""
        if kind == "type":
            return self.word(item, where, BLOCK_TYPES)
        if kind == "activation":
            return self.word(item, where, ACTIVATIONS)
        if kind == "kernel":
            return self.integer(item, where, allowed=KERNELS)
        if kind == "se":
            if not isinstance(item, bool):
                raise self.fail(where, f"expected true or false, got {shown(item)}")
            return item
        if kind in ("cse_cap", "expansion"):  # hidden units; expansion x input channels is checked per stage
            return self.integer(item, where, maximum=_CHANNELS)
        return self.integer(item, where)

    def options(self, value: Any, key: str, kind: str) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise self.fail(key, f"expected a list of options, got {shown(value)}")
        if not value:
            raise self.fail(key, "the list of options is empty; give at least one")
        out = [self.value(item, f"{key}[{i}]", kind) for i, item in enumerate(value)]
        if len(set(out)) != len(out):
            raise self.fail(key, f"repeated options in {shown(value)}")
        return tuple(out)

    def candidates(self, raw: Any, key: str, defaults: dict[str, tuple[Any, ...]]) -> tuple[Candidate, ...]:
        """A stage's ``candidates`` list (grammar in the module doc); ``key`` is ``stages[i].candidates``."""
        if not isinstance(raw, list) or not raw:
            raise self.fail(key, f"expected a non-empty list of candidate blocks, e.g. [{{type: skip}}, "
                                 f"{{type: ir, expansion: 3, kernel: 3}}], got {shown(raw)}")
        out: list[Candidate] = []
        for j, item in enumerate(raw):
            where = f"{key}[{j}]"
            given = self.mapping(item, where, set(CHOICE_KEYS), set())
            for name, value in given.items():
                if isinstance(value, (list, dict)):
                    raise self.fail(f"{where}.{name}", f"expected one value, got {shown(value)}; a candidate is one block "
                                                       "(list one candidate per value instead)")
            kind = self.value(given["type"], f"{where}.type", "type") if "type" in given else \
                self._from_defaults(where, "type", defaults)
            if kind == "skip":
                extra = [name for name in CHOICE_KEYS if name in given and name != "type"]
                if extra:
                    raise self.fail(f"{where}.{extra[0]}", "a 'skip' candidate takes no other keys: a skip block has "
                                                           "no expansion, kernel, squeeze-excite, activation or CSE "
                                                           "options")
            elif kind == "ir" and ("cse_reduction" in given or "cse_cap" in given):
                name = "cse_reduction" if "cse_reduction" in given else "cse_cap"
                raise self.fail(f"{where}.{name}", "only 'cse' candidates take CSE options; remove it, or make the "
                                                   "candidate {type: cse, ...}")
            values = {name: self.value(given[name], f"{where}.{name}", name) if name in given
                      else self._from_defaults(where, name, defaults) for name in _USED_KEYS[kind][1:]}
            cand = Candidate(type=kind, **values)
            if cand in out:
                first = out.index(cand)
                raise self.fail(where, f"the same block as {key}[{first}] ({cand.label}); list each candidate once")
            out.append(cand)
        return tuple(out)

    def _from_defaults(self, where: str, name: str, defaults: dict[str, tuple[Any, ...]]) -> Any:
        """An omitted candidate key: the one option of ``defaults.NAME``, else an error naming the key."""
        options = defaults.get(name)
        if options is not None and len(options) == 1:
            return options[0]
        why = (f"'defaults.{name}' has {len(options)} options {list(options)}, so the candidate must name its own"
               if options is not None else f"there is no 'defaults.{name}' with one option to take it from")
        raise self.fail(f"{where}.{name}", f"missing; {why}")


def parse_space(data: Any, *, source: str = "<string>") -> SearchSpace:
    r = _Reader(source)
    top = r.mapping(data, "", {"name", "description", "input", "classes", "stem", "head", "defaults", "stages"},
                    {"name", "input", "classes", "stem", "head", "stages"})
    if not isinstance(top["name"], str) or not top["name"]:
        raise r.fail("name", f"expected a non-empty string, got {shown(top['name'])}")
    if isinstance(top.get("description"), (dict, list)):  # free text: a mapping or list is a mistake
        raise r.fail("description", f"expected free text (a string; quote it), got {shown(top['description'])}")
    inp = r.mapping(top["input"], "input", {"size", "channels"}, {"size", "channels"})
    input_size = r.integer(inp["size"], "input.size", minimum=8, maximum=(MAX_INPUT_SIZE, "pixels"))
    in_ch = r.integer(inp["channels"], "input.channels", maximum=_CHANNELS)
    classes = r.integer(top["classes"], "classes", minimum=2, maximum=(MAX_CLASSES, "classes"))
    stem = r.mapping(top["stem"], "stem", {"channels", "kernel", "stride", "activation"}, {"channels"})
    head = r.mapping(top["head"], "head", {"kind", "width", "activation"}, {"kind"})
    head_kind = r.word(head["kind"], "head.kind", HEAD_KINDS)
    head_width = 0 if head_kind == "none" else r.integer(head.get("width"), "head.width", maximum=_CHANNELS)
    head_act = r.word(head.get("activation", "relu"), "head.activation", ACTIVATIONS)
    if head_kind == "none" and head_act != "relu":
        raise r.fail("head.activation", f"a 'none' head has no activation; remove it, got {shown(head_act)}")
    if head_kind == "none" and "width" in head:
        raise r.fail("head.width", f"a 'none' head has no width (the classifier reads the last stage's channels); "
                                   f"remove it, got {shown(head['width'])}")

    defaults_raw = r.mapping(top.get("defaults", {}), "defaults", set(CHOICE_KEYS), set())
    defaults = {k: r.options(v, f"defaults.{k}", k) for k, v in defaults_raw.items()}

    stages_raw = top["stages"]
    if not isinstance(stages_raw, list) or not stages_raw:
        raise r.fail("stages", "expected a non-empty list of stages")
    stages: list[StageSpace] = []
    resolutions: list[int] = []  # each stage's output resolution
    res = conv_out_size(input_size, r.integer(stem.get("stride", 1), "stem.stride", allowed=STRIDES))
    for i, raw in enumerate(stages_raw):
        key = f"stages[{i}]"
        st = r.mapping(raw, key, {"channels", "stride", "depth", "choices", "candidates"},
                       {"channels", "stride", "depth"})
        channels = r.integer(st["channels"], f"{key}.channels", maximum=_CHANNELS)
        stride = r.integer(st["stride"], f"{key}.stride", allowed=STRIDES)
        if stride == 2 and res < 2:
            raise r.fail(f"{key}.stride", f"stride 2 would downsample a {res}x{res} feature map "
                                          f"(input {input_size}); use stride 1 or a larger input size")
        res = conv_out_size(res, stride)
        resolutions.append(res)
        depth = st["depth"]
        if isinstance(depth, int) and not isinstance(depth, bool):
            depth = [depth, depth]
        if not (isinstance(depth, list) and len(depth) == 2):
            raise r.fail(f"{key}.depth", f"expected [min, max] or one integer, got {shown(st['depth'])}")
        lo = r.integer(depth[0], f"{key}.depth[0]", maximum=_BLOCKS)
        hi = r.integer(depth[1], f"{key}.depth[1]", maximum=_BLOCKS)
        if hi < lo:
            raise r.fail(f"{key}.depth", f"max depth {hi} is below min depth {lo}")
        if "candidates" in st:
            if "choices" in st:
                raise r.fail(f"{key}.candidates", "a stage takes either 'choices' (every combination of option "
                                                  "lists) or 'candidates' (a list of preset blocks), not both")
            cands = r.candidates(st["candidates"], f"{key}.candidates", defaults)
            stages.append(StageSpace(channels, stride, lo, hi, None, cands))
            continue
        own = r.mapping(st.get("choices", {}), f"{key}.choices", set(CHOICE_KEYS), set())
        merged: dict[str, tuple[Any, ...]] = dict(defaults)
        merged.update({k: r.options(v, f"{key}.choices.{k}", k) for k, v in own.items()})
        needed = {k for kind in merged.get("type", ("ir",)) for k in _USED_KEYS[kind]} | {"type"}
        missing = [k for k in CHOICE_KEYS if k in needed and k not in merged]
        if missing:
            raise r.fail(f"{key}.choices", f"no options for {missing[0]!r} (set it under 'defaults' or here)")
        unused = {k: () for k in CHOICE_KEYS if k not in merged}  # e.g. no kernel for a stage of skip blocks only
        stages.append(StageSpace(channels, stride, lo, hi, BlockChoices(**{**merged, **unused})))

    for i, stage in enumerate(stages):
        _check_cse_sizes(r, stage, f"stages[{i}]", resolutions[i])
        _check_block_options(r, stage, f"stages[{i}]")
    deepest = sum(stage.max_depth for stage in stages)
    if deepest > MAX_BLOCKS:
        raise r.fail("stages", f"the stages' maximum depths add up to {deepest} blocks, above the limit of "
                               f"{MAX_BLOCKS} blocks (far above any real network; see search_spaces/README.md#limits)")
    stem_ch = r.integer(stem["channels"], "stem.channels", maximum=_CHANNELS)
    _check_hidden_widths(r, stages, stem_ch)
    last = stages[-1].channels
    if head_kind == "dw" and head_width % last:
        raise r.fail("head.width", f"a 'dw' head needs a multiple of the last stage's {last} channels, got "
                                   f"{head_width}; e.g. {last * max(1, round(head_width / last))}")

    canonical = json.dumps(data, sort_keys=True, default=str)
    return SearchSpace(
        name=top["name"], input_size=input_size, in_ch=in_ch, num_classes=classes,
        stem_ch=stem_ch,
        stem_kernel=r.integer(stem.get("kernel", 3), "stem.kernel", allowed=(1, 3, 5, 7)),
        stem_stride=stem.get("stride", 1),
        stem_act=r.word(stem.get("activation", "relu"), "stem.activation", ACTIVATIONS),
        head_kind=head_kind, head_width=head_width, head_act=head_act,
        stages=tuple(stages), source=source, digest=hashlib.sha256(canonical.encode()).hexdigest(),
    )


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _refuse_repeated_keys(root: yaml.Node) -> None:
    """Refuse a key given twice in one mapping (PyYAML keeps the last one silently).

    Checked on the composed nodes, before anything is constructed, so that merged keys (``<<: *x``)
    may still be overridden, as YAML intends, however the anchors are nested.
    """
    seen_nodes: set[int] = set()
    todo = [root]
    while todo:
        node = todo.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[tuple[str, str]] = set()
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                    key = (key_node.tag, key_node.value)
                    if key in keys:
                        raise yaml.constructor.ConstructorError(
                            "while constructing a mapping", node.start_mark,
                            f"found key {key_node.value!r} twice; keep one", key_node.start_mark)
                    keys.add(key)
                todo += [key_node, value_node]
        elif isinstance(node, yaml.SequenceNode):
            todo += node.value


def _safe_load_unique(text: str) -> Any:
    """``yaml.safe_load``, with a key given twice in one mapping refused."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_repeated_keys(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_space(path: str | os.PathLike) -> SearchSpace:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpaceError(f"{path}: cannot read search-space file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise SpaceError(f"{path}: not a text file (not UTF-8); expected a search-space YAML file") from None
    try:
        data = _safe_load_unique(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SpaceError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    except ValueError as exc:  # e.g. int() refuses a number of more than sys.get_int_max_str_digits() digits
        why = "a number has too many digits" if "digits" in str(exc) else str(exc)
        raise SpaceError(f"{path}: not a usable search-space file ({why})") from None
    except RecursionError:
        raise SpaceError(f"{path}: not a usable search-space file (nested too deeply)") from None
    return parse_space(data, source=str(path))
