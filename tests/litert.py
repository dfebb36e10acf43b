"""LiteRT tests need the optional ``[litert]`` extra (litert-torch, ai-edge-litert).

Without it a test module calling :func:`require_litert` is skipped, with the reason, on a developer's machine;
in CI (``CI`` or ``NAS_REQUIRE_LITERT`` set, as ``.ci/run`` sets them) its collection fails instead, so the
LiteRT tests can never be skipped there unnoticed.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

__all__ = ["litert_installed", "require_litert"]


def litert_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("litert_torch", "ai_edge_litert"))


def require_litert() -> None:
    """Call at module level: skip the module without the extra, or fail in CI."""
    if litert_installed():
        return
    why = 'needs the [litert] extra (pip install -e ".[litert]")'
    if os.environ.get("NAS_REQUIRE_LITERT") or os.environ.get("CI"):
        pytest.fail(f"{why}, which CI must have installed (.ci/run installs it)", pytrace=False)
    pytest.skip(why, allow_module_level=True)
