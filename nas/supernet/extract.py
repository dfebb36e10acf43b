"""``nas supernet extract``: one sub-network of a trained supernet as an ordinary weights file.

The sub-network is extracted (:meth:`~nas.supernet.Supernet.extract`), its BatchNorm statistics are
re-estimated on training images of the supernet's own data split (:func:`~nas.supernet.calibrated_subnet` on
:func:`~nas.supernet.store.supernet_splits`: dataset, subset, validation fraction and seed from
``supernet.json``; other data is refused), and it is scored on that split's validation images, which the
supernet never trained on. Written: the state dict (``nas export --weights`` and ``nas train --init`` take it)
and the architecture beside it (``model.pt`` -> ``model.arch.json``, for ``nas export --arch``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from nas.arch import ArchSpec, arch_hash, resolve_arch, save_arch, to_compact
from nas.errors import SupernetError
from nas.supernet.evaluate import SupernetScoring, calibrated_subnet
from nas.supernet.store import INFO_NAME, LoadedSupernet, load_supernet, supernet_splits
from nas.train.checkpoint import CHECKPOINT_NAME, MID_EPOCH_NAME
from nas.train.weights import save_weights
from nas.write_errors import storing

__all__ = ["arch_file_for", "extract_subnet"]


def arch_file_for(weights: Path) -> Path:
    """``model.pt`` -> ``model.arch.json`` (the architecture file written beside a weights file)."""
    return weights.with_name(f"{weights.stem if weights.suffix else weights.name}.arch.json")


def _check_output(output: Path, loaded: LoadedSupernet) -> None:
    if output.is_dir():
        raise SupernetError(f"-o/--output {output}: is a directory; give a weights file path, e.g. "
                            f"{output / 'model.pt'}")
    blocker = next((p for p in output.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise SupernetError(f"-o/--output {output}: cannot be written, {blocker} is a file, not a directory")
    for own in (loaded.directory / CHECKPOINT_NAME, loaded.directory / MID_EPOCH_NAME, loaded.directory / INFO_NAME):
        for path in (output, arch_file_for(output)):
            if (path.exists() and own.exists() and os.path.samefile(path, own)) or \
                    (path.name == own.name and path.parent.resolve() == own.parent.resolve()):
                raise SupernetError(f"-o/--output {output}: would overwrite the supernet's own {own}; choose a path "
                                    f"outside {loaded.directory}'s files, e.g. {output.with_name('model.pt')}")


def extract_subnet(directory: str | os.PathLike[str], arch_text: str, output: str | os.PathLike[str], *,
                   scoring: SupernetScoring | None = None, data: str | None = None, device: str = "cpu",
                   progress: bool = False) -> dict[str, Any]:
    """Write ``arch_text``'s sub-network of the supernet in ``directory`` to ``output`` (see the module doc)."""
    scoring = scoring if scoring is not None else SupernetScoring()
    loaded = load_supernet(directory)
    arch: ArchSpec = resolve_arch(arch_text)
    loaded.supernet.place(arch, what=f"--arch {arch_text}")
    out = Path(output)
    _check_output(out, loaded)
    splits = supernet_splits(loaded, data, progress=progress)
    with torch.no_grad():
        model, loss, acc = calibrated_subnet(loaded, arch, splits, scoring, device=device)
    with storing(out.parent):
        out.parent.mkdir(parents=True, exist_ok=True)
    save_weights(model, out)
    arch_path = save_arch(arch, arch_file_for(out))
    return {"weights": str(out), "arch": str(arch_path), "arch_hash": arch_hash(arch), "compact": to_compact(arch),
            "supernet": str(loaded.directory), "epochs_trained": loaded.epochs, "val_acc": acc, "val_loss": loss,
            "val_images": len(splits.val) if scoring.val_images is None else min(scoring.val_images, len(splits.val)),
            "calibration_images": min(scoring.calibration_images, len(splits.train)), "data": splits.source}
