"""Architecture as data: frozen, validated specs for blocks and whole networks.

A network is ``stem -> blocks -> head -> classifier``:

* :class:`StemSpec`: one ``k x k`` convolution + BN + activation on the input image.
* :class:`BlockSpec`: an inverted residual (``ir``, MobileNetV2/V3), a CSE block (``cse``,
  the CSE paper's bottleneck whose 1x1 projection is replaced by channel-wise squeeze and
  excitation) or a skip block (``skip``, NAS-Bench-Macro's candidate 0: the identity where the
  shapes allow it, else a 1x1 convolution + BN). An ``ir``/``cse`` block has an expansion 1x1
  convolution exactly when ``mid_ch != in_ch``.
* :class:`HeadSpec`: ``conv`` (1x1 conv + BN + act to ``width`` channels, MobileNetV2),
  ``dw`` (depthwise 3x3 conv with channel multiplier ``width / in``, the CSE paper's Table 1
  "depthwise conv2d 1280"), or ``none``; then global average pooling and a linear classifier.

Every spec validates itself on creation and raises :class:`~nas.errors.SpecError` naming the
field, the value received and what is allowed. ``to_dict``/``from_dict`` give the canonical
JSON form (see :mod:`nas.arch.serialize`).
"""

from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, fields
from typing import Any

from nas.errors import SpecError

__all__ = [
    "BLOCK_TYPES",
    "KERNELS",
    "STRIDES",
    "ACTIVATIONS",
    "HEAD_KINDS",
    "StemSpec",
    "BlockSpec",
    "HeadSpec",
    "ArchSpec",
    "conv_out_size",
    "skip_block",
    "SKIP_KERNEL",
    "MAX_INPUT_SIZE",
    "MAX_CHANNELS",
    "MAX_BLOCKS",
    "MAX_CSE_WEIGHTS",
    "MAX_CLASSES",
    "over_limit",
]

BLOCK_TYPES: tuple[str, ...] = ("ir", "cse", "skip")
#: The one kernel value of a ``skip`` block (its convolution, where it has one, is 1x1).
SKIP_KERNEL = 1
KERNELS: tuple[int, ...] = (3, 5, 7)
STEM_KERNELS: tuple[int, ...] = (1, 3, 5, 7)
STRIDES: tuple[int, ...] = (1, 2)
#: ``relu`` is ReLU6 (MobileNetV2's choice); ``hswish`` is x * ReLU6(x + 3) / 6 (MobileNetV3).
ACTIVATIONS: tuple[str, ...] = ("relu", "hswish")
HEAD_KINDS: tuple[str, ...] = ("conv", "dw", "none")

# Size limits. Far above any real network, so that they never refuse a meaningful one, and low
# enough that a typo (``depth: [1, 99999999]``, ``channels: 100000000``) is refused at once instead
# of hanging a sampler or failing in the allocator. They bound each size, not a network's memory:
# a network near several limits at once can still be too large for a machine. Specs, compact
# strings, architecture JSON and search spaces all check them (search_spaces/README.md, Limits).
#: Input resolution (pixels per side). EfficientNet-B7 takes 600.
MAX_INPUT_SIZE = 4096
#: Channels anywhere: input, stem, block outputs, hidden (expanded) widths, CSE hidden units, head.
#: EfficientNet-B7's widest layer has 3,840 (640 x 6); MobileNetV2's head 1,280.
MAX_CHANNELS = 16384
#: Blocks in a network (a stage's depth, a compact string's repeats, all stages together).
#: EfficientNet-B7 has 55, MobileNetV2 17.
MAX_BLOCKS = 1024
#: Weights of each of a CSE unit's two FC layers (positions x hidden units): 2**27 is 0.5 GB of float32,
#: far above any real network (a 32x32 CIFAR block at reduction 1: 2**20).
MAX_CSE_WEIGHTS = 2**27
#: Classes. ImageNet-21k has 21,841.
MAX_CLASSES = 100_000


def over_limit(value: int, limit: int, what: str) -> str | None:
    """Why ``value`` is refused (``"N is above the limit of LIMIT WHAT ..."``), or None when within ``limit``."""
    if value <= limit:
        return None
    return f"{value} is above the limit of {limit} {what}{_LIMIT_NOTE}"


_LIMIT_NOTE = " (far above any real network; see search_spaces/README.md#limits)"


def conv_out_size(size: int, stride: int) -> int:
    """Spatial size after a 'same'-padded (k // 2) odd-kernel convolution with ``stride``."""
    return (size - 1) // stride + 1


def _where(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _check_int(where: str, name: str, value: Any, *, minimum: int = 1, allowed: tuple[int, ...] | None = None,
               maximum: tuple[int, str] | None = None) -> None:
    """``maximum``: (limit, what it counts) for the sizes bounded by the MAX_* limits."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{_where(where, name)}: expected an integer, got {value!r}")
    if allowed is not None and value not in allowed:
        raise SpecError(f"{_where(where, name)}: expected one of {list(allowed)}, got {value}")
    if value < minimum:
        raise SpecError(f"{_where(where, name)}: expected an integer >= {minimum}, got {value}")
    why = over_limit(value, *maximum) if maximum is not None else None
    if why:
        raise SpecError(f"{_where(where, name)}: {why}")


_CHANNELS = (MAX_CHANNELS, "channels")


def _check_choice(where: str, name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SpecError(f"{_where(where, name)}: expected one of {list(allowed)}, got {value!r}")


def _from_mapping(cls: type, data: Any, where: str) -> Any:
    """Build a flat spec dataclass from a mapping, rejecting unknown and missing keys."""
    if not isinstance(data, dict):
        raise SpecError(f"{where or cls.__name__}: expected an object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SpecError(f"{where or cls.__name__}: unknown key(s) {unknown}; allowed: {sorted(known)}")
    required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
    missing = sorted(required - set(data))
    if missing:
        raise SpecError(f"{where or cls.__name__}: missing key(s) {missing}")
    return cls(**data)


@dataclass(frozen=True)
class StemSpec:
    """First convolution: ``kernel x kernel``, ``stride``, ``out_ch`` channels, BN, activation."""

    out_ch: int
    kernel: int = 3
    stride: int = 1
    act: str = "relu"

    def __post_init__(self) -> None:
        _check_int("stem", "out_ch", self.out_ch, maximum=_CHANNELS)
        _check_int("stem", "kernel", self.kernel, allowed=STEM_KERNELS)
        _check_int("stem", "stride", self.stride, allowed=STRIDES)
        _check_choice("stem", "act", self.act, ACTIVATIONS)

    def to_dict(self) -> dict[str, Any]:
        return {"act": self.act, "kernel": self.kernel, "out_ch": self.out_ch, "stride": self.stride}

    @classmethod
    def from_dict(cls, data: Any, where: str = "stem") -> StemSpec:
        return _from_mapping(cls, data, where)


@dataclass(frozen=True)
class BlockSpec:
    """One inverted-residual (``ir``), CSE (``cse``) or skip (``skip``) block.

    ``mid_ch`` is the expanded (hidden) width; the block has a 1x1 expansion convolution
    exactly when ``mid_ch != in_ch`` (MobileNetV2's t = 1 blocks have none). ``se`` adds a
    MobileNetV3 squeeze-excite after the depthwise convolution. ``cse_reduction`` and
    ``cse_cap`` are required for ``cse`` blocks and must be ``None`` for the others.

    A ``skip`` block is the identity when its output has its input's shape (stride 1 and
    ``in_ch == out_ch``: no parameters, no operation), otherwise a 1x1 convolution with the
    block's stride, no bias, and BatchNorm, no activation (NAS-Bench-Macro's candidate 0).
    It has no hidden width, depthwise kernel, squeeze-excite or activation, so those fields
    are pinned to one value each, so that a network has exactly one canonical JSON and hash:
    ``mid_ch == in_ch``, ``kernel == 1`` (:data:`SKIP_KERNEL`, the size of its convolution),
    ``se`` false, ``act`` ``"relu"`` and no CSE fields. :func:`skip_block` builds one.
    """

    type: str
    in_ch: int
    out_ch: int
    mid_ch: int
    kernel: int = 3
    stride: int = 1
    se: bool = False
    act: str = "relu"
    cse_reduction: int | None = None
    cse_cap: int | None = None

    def __post_init__(self) -> None:
        w = "block"
        _check_choice(w, "type", self.type, BLOCK_TYPES)
        _check_int(w, "in_ch", self.in_ch, maximum=_CHANNELS)
        _check_int(w, "out_ch", self.out_ch, maximum=_CHANNELS)
        _check_int(w, "mid_ch", self.mid_ch, maximum=_CHANNELS)
        _check_int(w, "stride", self.stride, allowed=STRIDES)
        if self.type == "skip":
            self._check_skip()
            return
        _check_int(w, "kernel", self.kernel, allowed=KERNELS)
        if not isinstance(self.se, bool):
            raise SpecError(f"block.se: expected true or false, got {self.se!r}")
        _check_choice(w, "act", self.act, ACTIVATIONS)
        if self.type == "cse":
            if self.cse_reduction is None or self.cse_cap is None:
                raise SpecError("block: a 'cse' block needs cse_reduction and cse_cap (integers >= 1)")
            _check_int(w, "cse_reduction", self.cse_reduction)
            _check_int(w, "cse_cap", self.cse_cap, maximum=(MAX_CHANNELS, "hidden units"))
        elif self.cse_reduction is not None or self.cse_cap is not None:
            raise SpecError("block: cse_reduction/cse_cap are only allowed on 'cse' blocks, "
                            f"got them on an '{self.type}' block")

    def _check_skip(self) -> None:
        """The pinned fields of a skip block (see the class doc); each error names the field and its one value."""
        pinned: tuple[tuple[str, Any, Any], ...] = (
            ("mid_ch", self.mid_ch, self.in_ch), ("kernel", self.kernel, SKIP_KERNEL), ("se", self.se, False),
            ("act", self.act, "relu"), ("cse_reduction", self.cse_reduction, None), ("cse_cap", self.cse_cap, None))
        for name, value, expected in pinned:
            # type() too: True == 1 and 1.0 == 1 would pass '==' and give another canonical JSON and hash.
            if type(value) is not type(expected) or value != expected:
                must = f"equal in_ch ({expected})" if name == "mid_ch" else f"be {json.dumps(expected)}"
                raise SpecError(f"block.{name}: a 'skip' block has no {_SKIP_LACKS[name]}; {name} must {must}, "
                                f"got {value!r}")

    @property
    def has_expansion(self) -> bool:
        return self.mid_ch != self.in_ch

    @property
    def residual(self) -> bool:
        """Whether the output has the input's shape (stride 1, ``in_ch == out_ch``) and carries the input through:
        ``ir``/``cse`` blocks then add their input (the shortcut); a ``skip`` block then *is* the identity."""
        return self.stride == 1 and self.in_ch == self.out_ch

    @property
    def is_identity(self) -> bool:
        """A skip block whose shapes match: no parameters, no operation, no part of a latency table."""
        return self.type == "skip" and self.residual

    @property
    def expand_ratio(self) -> float:
        return self.mid_ch / self.in_ch

    def cse_hidden(self, out_resolution: int) -> int:
        """Hidden units of the CSE unit's reduce FC: ``max(HW // r, cap)``."""
        assert self.type == "cse" and self.cse_reduction and self.cse_cap
        return max(out_resolution * out_resolution // self.cse_reduction, self.cse_cap)

    def to_dict(self) -> dict[str, Any]:
        return {
            "act": self.act, "cse_cap": self.cse_cap, "cse_reduction": self.cse_reduction,
            "in_ch": self.in_ch, "kernel": self.kernel, "mid_ch": self.mid_ch,
            "out_ch": self.out_ch, "se": self.se, "stride": self.stride, "type": self.type,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "block") -> BlockSpec:
        try:
            return _from_mapping(cls, data, where)
        except SpecError as exc:
            msg = str(exc)
            raise SpecError(msg if msg.startswith(where) else f"{where}: {msg}") from None


_SKIP_LACKS = {"mid_ch": "hidden width", "kernel": "depthwise kernel (its convolution is 1x1)",
               "se": "squeeze-excite", "act": "activation", "cse_reduction": "CSE unit", "cse_cap": "CSE unit"}


def skip_block(*, in_ch: int, out_ch: int, stride: int = 1) -> BlockSpec:
    """The canonical ``skip`` block from ``in_ch`` to ``out_ch`` channels (see :class:`BlockSpec`)."""
    return BlockSpec(type="skip", in_ch=in_ch, out_ch=out_ch, mid_ch=in_ch, kernel=SKIP_KERNEL, stride=stride)


@dataclass(frozen=True)
class HeadSpec:
    """Feature head before global pooling and the linear classifier."""

    kind: str = "conv"
    width: int = 1280
    act: str = "relu"

    def __post_init__(self) -> None:
        _check_choice("head", "kind", self.kind, HEAD_KINDS)
        _check_choice("head", "act", self.act, ACTIVATIONS)
        if self.kind == "none":
            # The integer 0 only: False or 0.0 would pass '== 0' and give another canonical JSON and hash.
            if isinstance(self.width, bool) or not isinstance(self.width, int) or self.width != 0:
                raise SpecError(f"head.width: a 'none' head has width 0, got {self.width!r}")
            if self.act != "relu":
                raise SpecError(f"head.act: a 'none' head has no activation; leave it at 'relu', got {self.act!r}")
        else:
            _check_int("head", "width", self.width, maximum=_CHANNELS)

    def to_dict(self) -> dict[str, Any]:
        return {"act": self.act, "kind": self.kind, "width": self.width}

    @classmethod
    def from_dict(cls, data: Any, where: str = "head") -> HeadSpec:
        return _from_mapping(cls, data, where)


def _check_block_count(count: int) -> None:
    if count > MAX_BLOCKS:
        raise SpecError(f"arch.blocks: {count} blocks, above the limit of {MAX_BLOCKS} blocks{_LIMIT_NOTE}")


@dataclass(frozen=True)
class ArchSpec:
    """A whole network. Channel consistency across blocks is checked on creation."""

    input_size: int
    in_ch: int
    stem: StemSpec
    blocks: tuple[BlockSpec, ...]
    head: HeadSpec
    num_classes: int

    def __post_init__(self) -> None:
        _check_int("arch", "input_size", self.input_size, minimum=8, maximum=(MAX_INPUT_SIZE, "pixels"))
        _check_int("arch", "in_ch", self.in_ch, maximum=_CHANNELS)
        _check_int("arch", "num_classes", self.num_classes, minimum=2, maximum=(MAX_CLASSES, "classes"))
        for name, value, cls in (("stem", self.stem, StemSpec), ("head", self.head, HeadSpec)):
            if not isinstance(value, cls):
                raise SpecError(f"arch.{name}: expected a {cls.__name__}, got {type(value).__name__}")
        if not isinstance(self.blocks, tuple):
            try:
                object.__setattr__(self, "blocks", tuple(self.blocks))
            except TypeError:
                raise SpecError(f"arch.blocks: expected a sequence of BlockSpec, got {type(self.blocks).__name__}") \
                    from None
        if not self.blocks:
            raise SpecError("arch.blocks: a network needs at least one block")
        _check_block_count(len(self.blocks))
        prev, prev_name = self.stem.out_ch, "stem.out_ch"
        for i, block in enumerate(self.blocks):
            if not isinstance(block, BlockSpec):
                raise SpecError(f"arch.blocks[{i}]: expected a BlockSpec, got {type(block).__name__}")
            if block.in_ch != prev:
                raise SpecError(f"blocks[{i}].in_ch: expected {prev} (= {prev_name}), got {block.in_ch}")
            prev, prev_name = block.out_ch, f"blocks[{i}].out_ch"
        self._check_cse_sizes()
        if self.head.kind == "dw" and self.head.width % prev:
            raise SpecError(f"head.width: a 'dw' head needs a multiple of the last block's {prev} "
                            f"channels, got {self.head.width}")
        if self.final_resolution < 1:  # pragma: no cover - conv_out_size never reaches 0
            raise SpecError("arch: the strides reduce the input below 1x1")

    def _check_cse_sizes(self) -> None:
        """A CSE unit's FC layers grow with its resolution squared: bounded, as channels are, so that a typo is one
        error here instead of an allocation failure (or an out-of-memory kill) when the network is built."""
        for i, (block, res) in enumerate(zip(self.blocks, self.block_resolutions())):
            if block.type != "cse":
                continue
            out_res = conv_out_size(res, block.stride)
            hidden, positions = block.cse_hidden(out_res), out_res * out_res
            if hidden > MAX_CHANNELS or positions * hidden > MAX_CSE_WEIGHTS:
                by_cap = hidden == block.cse_cap  # the cap, not the reduction, sets the hidden units
                raise SpecError(
                    f"blocks[{i}].{'cse_cap' if by_cap else 'cse_reduction'}: at {out_res}x{out_res} this CSE block "
                    f"has {hidden} hidden units and {positions} x {hidden} = {positions * hidden} weights per FC "
                    f"layer, above the limits of {MAX_CHANNELS} hidden units and {MAX_CSE_WEIGHTS} weights"
                    f"{_LIMIT_NOTE}; {'lower cse_cap' if by_cap else 'raise cse_reduction'} (hidden units = "
                    f"{out_res}x{out_res} // cse_reduction, at least cse_cap) or lower the resolution")

    def __hash__(self) -> int:
        """The fields' hash, worked out once: a spec is the key of many caches (the latency table's
        predictions, ``arch_hash``, costs), and hashing every block at every lookup was a tenth of a
        search scored by a table. Not pickled (string hashes differ between processes)."""
        known = self.__dict__.get("_hash")
        if known is None:
            known = hash((self.input_size, self.in_ch, self.stem, self.blocks, self.head, self.num_classes))
            object.__setattr__(self, "_hash", known)
        return known

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}

    # ----------------------------------------------------------------- derived values
    def block_resolutions(self) -> tuple[int, ...]:
        """Input resolution (H == W) of every block."""
        res = conv_out_size(self.input_size, self.stem.stride)
        out = []
        for block in self.blocks:
            out.append(res)
            res = conv_out_size(res, block.stride)
        return tuple(out)

    @property
    def final_resolution(self) -> int:
        last = self.blocks[-1]
        return conv_out_size(self.block_resolutions()[-1], last.stride)

    @property
    def last_ch(self) -> int:
        return self.blocks[-1].out_ch

    @property
    def feature_ch(self) -> int:
        """Channels entering the classifier."""
        return self.last_ch if self.head.kind == "none" else self.head.width

    def replace_blocks(self, blocks: tuple[BlockSpec, ...]) -> ArchSpec:
        return ArchSpec(self.input_size, self.in_ch, self.stem, tuple(blocks), self.head, self.num_classes)

    # ----------------------------------------------------------------- canonical dict
    def to_dict(self) -> dict[str, Any]:
        return {
            "blocks": [b.to_dict() for b in self.blocks],
            "format": "nas.arch/1",
            "head": self.head.to_dict(),
            "in_ch": self.in_ch,
            "input_size": self.input_size,
            "num_classes": self.num_classes,
            "stem": self.stem.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Any) -> ArchSpec:
        if not isinstance(data, dict):
            raise SpecError(f"arch: expected a JSON object, got {type(data).__name__}")
        known = {"blocks", "format", "head", "in_ch", "input_size", "num_classes", "stem"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"arch: unknown key(s) {unknown}; allowed: {sorted(known)}")
        missing = sorted(known - {"format"} - set(data))
        if missing:
            raise SpecError(f"arch: missing key(s) {missing}")
        fmt = data.get("format", "nas.arch/1")
        if fmt != "nas.arch/1":
            raise SpecError(f"arch.format: expected 'nas.arch/1', got {fmt!r}")
        raw_blocks = data["blocks"]
        if not isinstance(raw_blocks, list):
            raise SpecError(f"arch.blocks: expected a list, got {type(raw_blocks).__name__}")
        _check_block_count(len(raw_blocks))
        blocks = tuple(BlockSpec.from_dict(b, where=f"blocks[{i}]") for i, b in enumerate(raw_blocks))
        return cls(
            input_size=data["input_size"], in_ch=data["in_ch"], stem=StemSpec.from_dict(data["stem"]),
            blocks=blocks, head=HeadSpec.from_dict(data["head"]), num_classes=data["num_classes"],
        )
