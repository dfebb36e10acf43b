"""A restricted unpickler for CIFAR "python batches" files.

``pickle.load`` executes whatever callables a file names, so unpickling a downloaded file
is running downloaded code. A pickle can only reach a callable through ``find_class``
(the ``GLOBAL``/``STACK_GLOBAL``/``INST``/``OBJ`` opcodes all go through it), so
:class:`BatchUnpickler` overrides it with an allow-list of exactly what a CIFAR batch needs:

* ``numpy.core.multiarray._reconstruct`` (how numpy < 2 names it, and how the original
  files, written with Python 2, name it) or ``numpy._core.multiarray._reconstruct``
  (numpy >= 2), plus ``numpy.ndarray`` and ``numpy.dtype``: array reconstruction
  (pickle protocols 2 to 4);
* ``_codecs.encode``: how Python 3 writes ``bytes`` at protocol 2 (the raw array buffer).

Everything else (``os.system``, ``builtins.eval``, ``subprocess.Popen``, ...) is refused
with a :class:`~nas.errors.DataError` naming the file and the global, before anything runs.
The allowed names resolve to the objects imported here, never through ``importlib``, so the
module names in the file cannot make us import anything. Persistent ids are refused too
(the base class does that already).
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import DataError

__all__ = ["BatchUnpickler", "load_batch_file"]

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]

_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class BatchUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only the globals a CIFAR batch needs."""

    def __init__(self, file: io.BufferedIOBase, *, path: Path) -> None:
        # encoding="bytes": the original files come from Python 2, whose str become bytes.
        super().__init__(file, encoding="bytes")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            allowed = ", ".join(sorted(f"{m}.{n}" for m, n in _ALLOWED))
            raise DataError(
                f"{self._path}: refusing to unpickle the global {module}.{name}: a CIFAR batch file "
                f"only needs {allowed}, so this file is not a CIFAR batch and may run code if loaded. "
                "Re-download the dataset from its official source."
            ) from None


def load_batch_file(path: Path) -> Any:
    """Unpickle ``path`` with :class:`BatchUnpickler`; any failure becomes one DataError naming the file."""
    try:
        with open(path, "rb") as handle:
            return BatchUnpickler(handle, path=path).load()
    except DataError:
        raise
    except OSError as exc:
        raise DataError(
            f"{path}: cannot read this CIFAR batch file ({exc.strerror or exc}). Check the file's permissions."
        ) from None
    except Exception as exc:  # UnpicklingError, EOFError, ValueError, TypeError... from a damaged stream
        raise DataError(
            f"{path}: not a readable CIFAR batch pickle ({type(exc).__name__}: {exc}); the file is truncated "
            "or damaged. Re-download or re-extract cifar-10-python.tar.gz."
        ) from None
