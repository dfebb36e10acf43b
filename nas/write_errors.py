"""A file that cannot be written (full disk, read-only folder, no permission) as one user error.

Everything stored is written atomically (:mod:`nas.atomic`): into a temporary file beside the
target, then renamed onto it, and the temporary file is removed when the write fails. So when a
write fails, the file it would have replaced is intact and nothing half-written is left. What
remains is to say so in one line instead of a traceback: :func:`storing` turns the ``OSError``
of a write (and the ``RuntimeError`` ``torch.save`` raises for one, ``[enforce fail at
inline_container.cc] unexpected pos``) into a :class:`~nas.errors.NASError` naming the file,
the reason and the free space, which the CLI prints with exit status 2.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nas.errors import NASError

__all__ = ["storing", "write_error", "save_figure"]


def _free_space(path: Path) -> str:
    for folder in (path.parent, *path.parent.parents):
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            continue
        return f"{free / 1e6:,.0f} MB free there" if free >= 1e6 else f"{free:,} bytes free there"
    return "free space unknown"


def write_error(path: str | os.PathLike[str], exc: BaseException) -> NASError:
    """The one-line error for a failed write of ``path``."""
    target = Path(path)
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"
    return NASError(f"{target}: cannot write it ({reason}; {_free_space(target)}); what was stored before is "
                    f"intact. Free some space (or make the folder writable) and re-run the same command")


@contextmanager
def storing(path: str | os.PathLike[str], *, torch_save: bool = False) -> Iterator[None]:
    """Turn a failed write of ``path`` in the block into :func:`write_error`; ``torch_save``: also the
    ``RuntimeError`` of ``torch.save`` (which it raises for a full disk instead of an ``OSError``)."""
    caught: tuple[type[BaseException], ...] = (OSError, RuntimeError) if torch_save else (OSError,)
    try:
        yield
    except caught as exc:
        raise write_error(path, exc) from None


def save_figure(fig: Any, path: str | os.PathLike[str], *, dpi: int = 120) -> None:
    """Save a matplotlib figure atomically (a failed write is one :class:`NASError`), then close it."""
    import matplotlib.pyplot as plt

    from nas.atomic import atomic_path

    try:
        with storing(path), atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi)
    finally:
        plt.close(fig)
