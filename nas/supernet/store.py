"""A supernet directory: what ``nas supernet train --out DIR`` writes and everything else reads.

==================  ===========================================================================
``supernet.json``   written first: format, the space file's text and digest, input size, the data
                    it is trained on (``argument``: the ``--data`` given, absolute; source,
                    fingerprint, split settings, mean/std), the sandwich settings
                    (the rest of the training settings are in ``checkpoint.pt``'s config)
``checkpoint.pt``   the shared training loop's checkpoint after every epoch (``model`` is the
                    supernet's state dict; read with ``torch.load(weights_only=True)``)
``metrics.csv``     one row per epoch (the largest sub-network's validation accuracy)
``metrics.json``    written when the training ends
==================  ===========================================================================

The space travels inside ``supernet.json``, so a supernet directory is usable on its own; a search
that names a space file as well is refused when the two differ (:func:`check_same_space`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nas.atomic import atomic_write_json
from nas.errors import NASError, SupernetError
from nas.space import SearchSpace, parse_space
from nas.supernet.model import Supernet
from nas.train.checkpoint import CHECKPOINT_NAME, read_checkpoint, sha256_file
from nas.train.weights import state_dict_mismatch

__all__ = ["INFO_NAME", "FORMAT", "LoadedSupernet", "write_info", "read_info", "load_supernet", "check_same_space",
           "supernet_splits", "check_table_space"]

INFO_NAME = "supernet.json"
FORMAT = "nas-supernet/1"
_MAX_INFO_BYTES = 10_000_000


@dataclass(frozen=True)
class LoadedSupernet:
    supernet: Supernet
    space: SearchSpace
    info: dict[str, Any]
    epochs: int  # epochs trained so far
    directory: Path
    weights: str = ""  # SHA-256 of the checkpoint file

    @property
    def fingerprint(self) -> str:
        """Identifies these weights: the space digest, the data fingerprint, the epochs trained and the
        checkpoint's digest (a supernet trained again as long on the same data has other weights)."""
        return (f"{self.space.digest[:12]}-{self.info.get('data', {}).get('fingerprint', '?')}-e{self.epochs}"
                f"-w{self.weights[:12]}")


def write_info(directory: Path, *, space_text: str, space: SearchSpace, data: dict[str, Any],
               settings: dict[str, Any]) -> Path:
    """Write ``supernet.json`` (atomically)."""
    return atomic_write_json(directory / INFO_NAME, {
        "format": FORMAT, "space": {"name": space.name, "digest": space.digest, "file": Path(space.source).name,
                                    "yaml": space_text},
        "input_size": space.input_size, "data": data, "settings": settings})


def read_info(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """``DIR/supernet.json``, checked; one :class:`SupernetError` naming the file and the field otherwise."""
    directory = Path(directory)
    path = directory / INFO_NAME
    if not directory.is_dir():
        raise SupernetError(f"{directory}: no such supernet directory; train one with "
                            f"'nas supernet train --space S --out {directory}'")
    try:
        if path.stat().st_size > _MAX_INFO_BYTES:
            raise SupernetError(f"{path}: {path.stat().st_size} bytes, far too large for a supernet description")
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SupernetError(f"{path}: missing: {directory} is not a supernet directory (made by "
                            f"'nas supernet train --out {directory}')") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SupernetError(f"{path}: not a readable supernet description ({type(exc).__name__}); "
                            f"train the supernet again into a new directory") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        got = info.get("format") if isinstance(info, dict) else type(info).__name__
        raise SupernetError(f"{path}: format: expected {FORMAT!r}, got {got!r}")
    space = info.get("space")
    if not isinstance(space, dict) or not isinstance(space.get("yaml"), str):
        raise SupernetError(f"{path}: space.yaml: expected the space file's text, got {type(space).__name__}")
    if not isinstance(info.get("data"), dict):
        raise SupernetError(f"{path}: data: expected an object describing the training data")
    return info


def _space_of(info: dict[str, Any], path: Path) -> SearchSpace:
    try:
        data = yaml.safe_load(info["space"]["yaml"])
        return parse_space(data, source=info["space"].get("file") or str(path))
    except yaml.YAMLError:
        raise SupernetError(f"{path}: space.yaml: not valid YAML; train the supernet again") from None
    except NASError as exc:
        raise SupernetError(f"{path}: space.yaml: {exc}") from None


def load_supernet(directory: str | os.PathLike[str], *, device: str = "cpu") -> LoadedSupernet:
    """The supernet in ``directory`` with its latest weights (the checkpoint after the last finished epoch)."""
    directory = Path(directory)
    info = read_info(directory)
    space = _space_of(info, directory / INFO_NAME)
    ckpt_path = directory / CHECKPOINT_NAME
    if not ckpt_path.exists():
        raise SupernetError(f"{ckpt_path}: missing: the supernet in {directory} has not finished an epoch yet; "
                            f"run 'nas supernet train' on it (it resumes)")
    checkpoint = read_checkpoint(ckpt_path)
    supernet = Supernet(space)
    why = state_dict_mismatch(supernet, checkpoint["model"])
    if why is not None:
        raise SupernetError(f"{ckpt_path}: does not fit the supernet of the space in {INFO_NAME} ({why})")
    supernet.load_state_dict(checkpoint["model"])
    supernet.eval()
    return LoadedSupernet(supernet.to(device), space, info, int(checkpoint["epoch"]), directory,
                          sha256_file(ckpt_path))


def check_same_space(loaded: LoadedSupernet, space: SearchSpace, *, what: str) -> None:
    """Refuse ``space`` (e.g. a table's or a ``--space`` file's) unless it is the supernet's."""
    if space.digest != loaded.space.digest:
        raise SupernetError(f"{what}: space '{space.name}' ({space.source}, digest {space.digest[:12]}) is not the "
                            f"space the supernet in {loaded.directory} was trained on ('{loaded.space.name}', digest "
                            f"{loaded.space.digest[:12]}); train a supernet of this space, or use a table of that one")


def supernet_splits(loaded: LoadedSupernet, data: str | None = None, *, cache_dir: str | None = None,
                    progress: bool = False) -> Any:
    """The supernet's data split as it was trained (same validation fraction, seed and subset), so that the
    images a sub-network is scored on are ones the supernet never trained on. ``data`` (default: the
    ``--data`` it was trained with) may name the same data elsewhere; other data is refused."""
    from nas.data import load_dataset

    saved = loaded.info["data"]
    source = data if data is not None else saved.get("argument")
    if not isinstance(source, str):
        raise SupernetError(f"{loaded.directory / INFO_NAME}: data.argument: missing; give the data it was trained "
                            f"on with --data")
    splits = load_dataset(source, input_size=loaded.space.input_size, val_fraction=saved.get("val_fraction", 0.1),
                          seed=saved.get("seed", 0), subset=saved.get("subset"), cache_dir=cache_dir,
                          progress=progress)
    from nas.supernet.train import data_fingerprint

    if data_fingerprint(splits) != saved.get("fingerprint"):
        raise SupernetError(f"--data {source}: not the data the supernet in {loaded.directory} was trained on "
                            f"({saved.get('source')}): its training and validation images differ, so scores "
                            f"would mix seen and unseen images; give that data (or train a supernet on this one)")
    return splits


def check_table_space(table: Any, loaded: LoadedSupernet, target: str | os.PathLike[str]) -> None:
    """Refuse a latency table (``--target``) built for another space than the supernet's."""
    if table.space_digest != loaded.space.digest:
        space = table.metadata.get("space") or {}
        raise SupernetError(
            f"--target {target}: metadata.space: the table was built for space '{space.get('name')}' (digest "
            f"{str(table.space_digest)[:12]}), the supernet in {loaded.directory} was trained on "
            f"'{loaded.space.name}' (digest {loaded.space.digest[:12]}); use a table of the supernet's space "
            f"(nas lut build --space SPACE.yaml) or a supernet trained on the table's space")
