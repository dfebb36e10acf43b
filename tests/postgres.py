"""Start a real, throw-away PostgreSQL server on loopback for the distributed-search tests.

The server binaries come from the system (``initdb``/``pg_ctl`` on PATH or under
``/usr/lib/postgresql/*/bin``; ``.ci/run`` installs Debian's ``postgresql`` package). initdb
refuses to run as root, so as root the server runs as the ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["postgres_server", "find_pg_bin"]


def find_pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield an SQLAlchemy URL of a fresh PostgreSQL server; stop and delete it afterwards."""
    pg_bin = find_pg_bin()
    if pg_bin is None:
        raise RuntimeError("PostgreSQL server binaries not found: install Debian's 'postgresql' package "
                           "(.ci/run does) or put initdb/pg_ctl on PATH")
    root = Path(tempfile.mkdtemp(prefix="nas-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()
    run = dict(check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    subprocess.run([*prefix, str(pg_bin / "initdb"), "-D", str(data), "-U", "nas", "--auth=trust", "-E", "UTF8"],
                   **run)  # type: ignore[call-overload]
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=50 -c fsync=off"
    subprocess.run([*prefix, str(pg_bin / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w",
                    "start"], **run)  # type: ignore[call-overload]
    try:
        yield f"postgresql://nas@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        shutil.rmtree(root, ignore_errors=True)
