"""The supernet: sub-networks equal their extracted networks, the sharing rules, refusals, the sandwich step."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from nas.arch import build_model
from nas.errors import SupernetError
from nas.space import load_space, random_arch
from nas.supernet import (SandwichSettings, Supernet, SupernetEvaluator, SupernetTrainJob, load_supernet,
                          run_supernet_train, sandwich_loss)
from nas.supernet.store import INFO_NAME
from tests.conftest import REPO, TINY_SPACE, write_space

SPACES = sorted(p for p in (REPO / "search_spaces").iterdir() if p.suffix in (".yaml", ".yml"))
MACRO = REPO / "search_spaces" / "nas_bench_macro.yaml"
SKIP_SPACE = REPO / "tests" / "latency" / "skip_space.yaml"


def _scrambled(space_path: Path) -> Supernet:
    """A supernet whose BatchNorm statistics are not the identity (so slicing them is checked too)."""
    torch.manual_seed(0)
    supernet = Supernet(load_space(space_path))
    for m in supernet.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return supernet.eval()


@pytest.mark.parametrize("path", [*SPACES, TINY_SPACE, SKIP_SPACE], ids=lambda p: p.stem)
def test_every_sub_network_equals_its_extracted_network(path: Path) -> None:
    supernet = _scrambled(path)
    space = supernet.space
    archs = [supernet.largest, supernet.smallest, *(random_arch(space, s) for s in range(3))]
    x = torch.randn(2, space.in_ch, space.input_size, space.input_size)
    with torch.no_grad():
        for arch in archs:
            extracted = supernet.extract(arch).eval()
            assert type(extracted) is type(build_model(arch))
            torch.testing.assert_close(supernet(x, arch), extracted(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("seed", [3, 5, 11])
def test_train_mode_outputs_and_gradients_equal_the_extracted_network(seed: int) -> None:
    supernet = _scrambled(TINY_SPACE).train()
    arch = random_arch(supernet.space, seed)
    extracted = supernet.extract(arch).train()
    x = torch.randn(8, 3, supernet.space.input_size, supernet.space.input_size)
    out, ref = supernet(x, arch), extracted(x)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
    out.square().sum().backward()
    ref.square().sum().backward()
    # every parameter's gradient lands on its slice of the shared tensors: the supernet's gradients, read
    # through the same slicing as its weights, are the extracted network's
    grads = copy.deepcopy(supernet)
    for p, shared in zip(grads.parameters(), supernet.parameters(), strict=True):
        p.data = shared.grad.clone() if shared.grad is not None else torch.zeros_like(shared)
    sliced = grads.sub_state(arch)
    names = [name for name, _ in extracted.named_parameters()]
    assert any(".body." in name for name in names) and len(names) > 10
    kinds = {b.type for b in arch.blocks} | ({"se"} if any(b.se for b in arch.blocks) else set())
    assert kinds >= {"ir", "cse"} and (seed != 11 or "se" in kinds), kinds  # seed 11 also has squeeze-excite
    for name, p in extracted.named_parameters():
        torch.testing.assert_close(sliced[name], p.grad, rtol=1e-4, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}")
    # the running statistics went to the shared buffers, as the extracted network's went to its own
    torch.testing.assert_close(supernet.stem[1].running_mean, extracted.stem[1].running_mean)


def test_sharing_rules_first_channels_and_centre_of_the_largest_kernel() -> None:
    supernet = _scrambled(TINY_SPACE)
    space = supernet.space
    archs = [random_arch(space, s) for s in range(60)]
    seen = 0
    for a in archs:
        for b in archs:
            # the same position holding two ir blocks: the smaller one's tensors are the larger one's first/centre
            pa, pb = supernet.place(a), supernet.place(b)
            for i, (ia, ib) in enumerate(zip(pa, pb)):
                ba, bb = a.blocks[i], b.blocks[i]
                if ia != ib or ba.type != "ir" or bb.type != "ir" or ba.se != bb.se or (ba.mid_ch == ba.in_ch) \
                        or (bb.mid_ch == bb.in_ch) or ba.mid_ch > bb.mid_ch or ba.kernel > bb.kernel:
                    continue
                sa, sb = supernet.sub_state(a), supernet.sub_state(b)
                expand_a, expand_b = sa[f"blocks.{i}.body.0.0.weight"], sb[f"blocks.{i}.body.0.0.weight"]
                torch.testing.assert_close(expand_a, expand_b[: ba.mid_ch])
                dw_a, dw_b = sa[f"blocks.{i}.body.1.0.weight"], sb[f"blocks.{i}.body.1.0.weight"]
                off = (bb.kernel - ba.kernel) // 2
                torch.testing.assert_close(dw_a, dw_b[: ba.mid_ch, :, off:off + ba.kernel, off:off + ba.kernel])
                seen += 1
    assert seen > 5


def _leading(big: torch.Tensor, small: torch.Tensor, *, kernel: bool) -> torch.Tensor:
    """``small``'s shape cut from ``big``: the first entries of every dimension, the centre of a kernel's."""
    index = []
    for d, (n, m) in enumerate(zip(big.shape, small.shape)):
        off = (n - m) // 2 if kernel and d >= 2 else 0
        index.append(slice(off, off + m))
    return big[tuple(index)]


def test_every_block_kind_uses_the_first_units_of_the_larger_ones_tensors(tmp_path: Path) -> None:
    """Within one position and block layout (type, SE, an expansion layer or not), a smaller block's every tensor
    (expansion, depthwise, SE with its squeeze units, projection, CSE hidden units, BatchNorm) is the leading part
    of a larger one's, the centre of a depthwise kernel."""
    def wider(data: dict[str, Any]) -> None:
        data["defaults"]["expansion"] = [1, 3, 6]  # two widths of blocks with an expansion layer
        data["defaults"]["cse_reduction"] = [2, 4]  # two numbers of CSE hidden units

    supernet = _scrambled(write_space(tmp_path, TINY_SPACE, wider))
    with torch.no_grad():
        for p in supernet.parameters():  # every entry distinct (biases start at zero), so any other cut shows
            p.uniform_(-1.0, 1.0)
    archs = [random_arch(supernet.space, s) for s in range(40)]
    seen: set[str] = set()
    for a in archs:
        for b in archs:
            sa, sb = supernet.sub_state(a), supernet.sub_state(b)
            for i, (ia, ib) in enumerate(zip(supernet.place(a), supernet.place(b))):
                ba, bb = a.blocks[i], b.blocks[i]
                if ia != ib or (ba.type, ba.se, ba.mid_ch == ba.in_ch) != (bb.type, bb.se, bb.mid_ch == bb.in_ch):
                    continue
                keys = [k for k in sa if k.startswith(f"blocks.{i}.") and sa[k].dim() > 0]
                assert keys and all(k in sb and sa[k].dim() == sb[k].dim() for k in keys)
                if any(m > n for k in keys for m, n in zip(sa[k].shape, sb[k].shape)):
                    continue  # b is not the larger one in every tensor (the pair is seen the other way round)
                for k in keys:
                    kernel = sa[k].dim() == 4 and sa[k].shape[1] == 1  # a depthwise filter bank (mid, 1, k, k)
                    torch.testing.assert_close(sa[k], _leading(sb[k], sa[k], kernel=kernel), rtol=0, atol=0)
                    if sa[k].shape != sb[k].shape:
                        part = "kernel" if kernel else "cse-linear" if sa[k].dim() == 2 else "units"
                        seen.add(f"{ba.type}{'+se' if ba.se else ''}:{part}")
    assert {"ir:units", "ir:kernel", "ir+se:units", "cse:units", "cse:kernel", "cse+se:units",
            "cse:cse-linear"} <= seen, seen


def test_no_state_is_switched_between_calls() -> None:
    supernet = _scrambled(TINY_SPACE)
    a, b = random_arch(supernet.space, 1), random_arch(supernet.space, 2)
    x = torch.randn(2, 3, supernet.space.input_size, supernet.space.input_size)
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    with torch.no_grad():
        first = supernet(x, a)
        supernet(x, b)
        again = supernet(x, a)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert all(torch.equal(before[k], v) for k, v in supernet.state_dict().items())


def test_a_network_outside_the_space_is_refused_in_one_line() -> None:
    supernet = Supernet(load_space(TINY_SPACE))  # kernels 3 and 5, expansions 1 and 3
    with pytest.raises(SupernetError, match="not a network of this supernet"):
        supernet.place(random_arch(load_space(MACRO), 0))  # another skeleton
    arch = random_arch(supernet.space, 0)
    last = arch.blocks[-1]
    k7 = replace(last, type="ir", kernel=7, se=False, cse_reduction=None, cse_cap=None)
    with pytest.raises(SupernetError, match=rf"its block {len(arch.blocks) - 1} .* fits no block position"):
        supernet.place(arch.replace_blocks((*arch.blocks[:-1], k7)))
    with pytest.raises(SupernetError, match="input size is 64"):
        supernet.place(replace(arch, input_size=64))
    one_more = arch.replace_blocks((*arch.blocks, replace(last, in_ch=last.out_ch, stride=1)))
    with pytest.raises(SupernetError, match="fits no block position"):  # the last stage has depth 1
        supernet.place(one_more)


def test_the_sandwich_step_trains_largest_smallest_and_reproducible_random_ones() -> None:
    space = load_space(TINY_SPACE)
    torch.manual_seed(0)
    supernet = Supernet(space).train()
    loss_fn = sandwich_loss(space, SandwichSettings(random_subnets=2), seed=0, label_smoothing=0.0)
    x, y = torch.randn(8, 3, space.input_size, space.input_size), torch.randint(0, 10, (8,))
    parts = loss_fn(supernet, x, y, 5)
    logits, loss = next(parts)  # the largest network's, on the labels
    assert logits.shape == (8, space.num_classes) and loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()  # as the loop does, before the next sub-network runs
    rest = list(parts)
    assert len(rest) == 3  # the smallest and 2 random ones
    supernet.zero_grad(set_to_none=True)
    rest[0][1].backward()
    # every block type the smallest network uses got a gradient (it was trained on the largest one's predictions)
    for index, spec in zip(supernet.place(supernet.smallest), supernet.smallest.blocks, strict=True):
        grads = [p.grad for p in supernet.blocks[index][spec.type].parameters()]
        assert not grads or any(g is not None and g.abs().sum() > 0 for g in grads)
    # the random sub-networks are a function of (seed, step): the same step gives the same losses
    torch.manual_seed(1)
    same = sandwich_loss(space, SandwichSettings(random_subnets=2), seed=0, label_smoothing=0.0)

    def summed(step: int) -> torch.Tensor:
        with torch.no_grad():
            return torch.stack([part_loss for _, part_loss in same(supernet.eval(), x, y, step)]).sum()

    other_step = summed(6)
    assert torch.equal(summed(5), summed(5))
    assert not torch.equal(summed(5), other_step)
    with pytest.raises(SupernetError, match="--random-subnets"):
        SandwichSettings(random_subnets=-1)


def test_the_supernet_directory_and_its_refusals(tiny_supernet: Path, tmp_path: Path) -> None:
    loaded = load_supernet(tiny_supernet)
    assert loaded.epochs == 2 and loaded.space.name == load_space(TINY_SPACE).name
    with pytest.raises(SupernetError, match="no such supernet directory"):
        load_supernet(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SupernetError, match="supernet.json: missing"):
        load_supernet(empty)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / INFO_NAME).write_text(json.dumps({"format": "something else"}))
    with pytest.raises(SupernetError, match="format: expected"):
        load_supernet(bad)
    # the same description without a checkpoint: not trained yet
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / INFO_NAME).write_text((tiny_supernet / INFO_NAME).read_text())
    with pytest.raises(SupernetError, match="has not finished an epoch"):
        load_supernet(fresh)
    # a checkpoint of another space's supernet
    info = json.loads((tiny_supernet / INFO_NAME).read_text())
    info["space"]["yaml"] = MACRO.read_text()
    (fresh / INFO_NAME).write_text(json.dumps(info))
    (fresh / "checkpoint.pt").write_bytes((tiny_supernet / "checkpoint.pt").read_bytes())
    with pytest.raises(SupernetError, match="does not fit the supernet"):
        load_supernet(fresh)


def test_training_into_a_directory_of_another_space_is_refused(tiny_supernet: Path) -> None:
    job = SupernetTrainJob(space=str(MACRO), data="digits", out=str(tiny_supernet), epochs=1, subset=300)
    with pytest.raises(SupernetError, match="holds a supernet trained with another space"):
        run_supernet_train(job, progress=False, log=lambda _m: None)


def test_the_evaluator_is_deterministic_and_refuses_outsiders(tiny_supernet: Path) -> None:
    from nas.data import load_dataset

    loaded = load_supernet(tiny_supernet)
    data = loaded.info["data"]
    splits = load_dataset("digits", input_size=loaded.space.input_size, val_fraction=data["val_fraction"],
                          seed=data["seed"], subset=data["subset"], cache_dir=None, progress=False)
    archs = [random_arch(loaded.space, s) for s in range(3)]
    first = [SupernetEvaluator(loaded, splits).evaluate(a).accuracy for a in archs]
    again = [SupernetEvaluator(load_supernet(tiny_supernet), splits).evaluate(a).accuracy for a in archs]
    assert first == again
    evaluator = SupernetEvaluator(loaded, splits)
    assert not evaluator.trains and evaluator.evaluate(archs[0]) is evaluator.evaluate(archs[0])  # cached
    assert evaluator.reseeded(1).fingerprint != evaluator.fingerprint
    with pytest.raises(SupernetError, match="not a network"):
        evaluator.evaluate(random_arch(load_space(MACRO), 0))
