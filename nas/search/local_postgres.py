"""A throwaway PostgreSQL server for trying a shared study on one machine (and for this project's tests
and benchmarks): ``initdb`` and ``pg_ctl`` into a temporary directory, reached over a Unix socket there
(no TCP port), stopped and deleted on exit.

>>> from nas.search.local_postgres import temporary_postgres
>>> with temporary_postgres() as url:   # postgresql+psycopg://postgres@/postgres?host=/tmp/nas-pg-...
...     nas.search("efficientformerv2-tiny", "params=2.5M", storage=url, trials=50)

PostgreSQL's server tools refuse to run as root; as root they run as the ``postgres`` user (which
Debian's ``postgresql`` package creates) through ``runuser``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import BadInput


def server_binary(name: str) -> str | None:
    """`name` (``initdb``, ``pg_ctl``) on PATH or in Debian's versioned directory, newest first."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    return str(versions[-1]) if versions else None


def unavailable_reason() -> str | None:
    """Why a temporary server cannot start here, or None when it can."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return 'the PostgreSQL driver is not installed (pip install "nas-mobile-vit[postgres]")'
    if not server_binary("initdb") or not server_binary("pg_ctl"):
        return "PostgreSQL's server binaries (initdb, pg_ctl) are not installed (Debian: apt-get install postgresql)"
    if os.geteuid() == 0 and not shutil.which("runuser"):
        return "running as root without runuser: PostgreSQL must run as another user"
    return None


def _run(argv: list[str]) -> None:
    tool = Path(argv[0]).name
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise BadInput(f"{tool} failed: {lines[-1] if lines else f'exit status {done.returncode}'}")


@contextmanager
def temporary_postgres(max_connections: int = 100) -> Iterator[str]:
    """Start a server, yield its SQLAlchemy URL (database ``postgres``, user ``postgres``, no password),
    stop it (immediately: nothing in it is kept) and remove its files."""
    reason = unavailable_reason()
    if reason:
        raise BadInput(f"cannot start a temporary PostgreSQL server: {reason}")
    initdb, pg_ctl = server_binary("initdb"), server_binary("pg_ctl")
    base = Path(tempfile.mkdtemp(prefix="nas-pg-"))
    data = base / "data"
    try:
        if os.geteuid() == 0:
            shutil.chown(base, "postgres")
        _run([str(initdb), "-A", "trust", "-U", "postgres", "-D", str(data)])
        # fsync off: a throwaway server loses nothing that matters in a crash, and commits are 10x faster
        options = f"-k {base} -c listen_addresses='' -c max_connections={max_connections} -c fsync=off"
        _run([str(pg_ctl), "-o", options, "-l", str(base / "log"), "-w", "start", "-D", str(data)])
        try:
            yield f"postgresql+psycopg://postgres@/postgres?host={base}"
        finally:
            _run([str(pg_ctl), "-m", "immediate", "-w", "stop", "-D", str(data)])
    finally:
        shutil.rmtree(base, ignore_errors=True)


__all__ = ["temporary_postgres", "unavailable_reason", "server_binary"]
