"""Reading and writing the tool's files: text read with one-line errors, and atomic writes.

Every file the tool writes (tables, run files, checkpoints, exports, plots) goes through
:func:`atomic_write`: the content is written to a temporary name beside the target, flushed to disk,
and renamed over it, so an interrupted or failed write leaves the old file as it was, and a reader
never sees half a file. A failure of the file system (permission, full disk, a missing directory) is
raised as one :class:`FileWriteError` line naming the target, with the temporary file removed.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import FileWriteError, InputError


def read_text(path: str | Path, what: str = "file", error: type[InputError] = InputError) -> str:
    """A text file's content, or `error` with one line saying why it cannot be read."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"no such {what}: {path}") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


#: The largest JSON file the tool reads (latency tables are about 100 KB, measurement files less).
MAX_JSON_BYTES = 64 << 20


def read_json(path: str | Path, what: str = "file", error: type[InputError] = InputError, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """A JSON file's content, or `error` with one line saying why it cannot be read (missing, too large,
    malformed, or holding a number Python will not convert)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise error(f"no such {what}: {path}") from None
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}") from None
    if size > max_bytes:
        raise error(f"{path}: {size:,} bytes, more than the {max_bytes:,} a {what} may hold")
    text = read_text(path, what, error)
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise error(f"{path}: {exc.args[0]!r} is given twice in one object of the {what}; keep one") from None
    except json.JSONDecodeError as exc:
        raise error(f"{path}: corrupted or truncated {what} (malformed JSON at line {exc.lineno}: {exc.msg})") from None
    except (ValueError, RecursionError) as exc:  # an integer of thousands of digits, or nesting past the limit
        raise error(f"{path}: not a valid {what} ({str(exc)[:120]})") from None


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice (json keeps the last silently)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def write_failure(path: str | Path, exc: OSError) -> FileWriteError:
    """The one-line error for an OSError while writing `path`."""
    reason = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
    return FileWriteError(f"cannot write {path}: {reason}")


def atomic_write(path: str | Path, write: Callable[[Path], Any], *, mode: int = 0o644) -> Path:
    """Call ``write(tmp)`` on a temporary path beside `path` (same suffix, so writers that choose a
    format by suffix still do), fsync it, and rename it over `path`. Returns `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.partial{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_failure(path, exc) from None
    except RuntimeError as exc:
        tmp.unlink(missing_ok=True)
        if _is_write_failure(exc):  # torch.save's writer reports a refused write as a RuntimeError
            raise FileWriteError(f"cannot write {path}: {_space_left(path)}") from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _is_write_failure(exc: RuntimeError) -> bool:
    text = str(exc)
    return "PytorchStreamWriter" in text or "file write failed" in text or "inline_container" in text


def _space_left(path: Path) -> str:
    """Why a write failed, as far as can be told afterwards."""
    try:
        free = shutil.disk_usage(path.parent if str(path.parent) else ".").free
    except OSError:
        return "writing failed"
    return "the disk is full" if free < 64 << 20 else "writing failed (the file system refused it; is a size limit set?)"


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) atomically; see :func:`atomic_write`."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` atomically; see :func:`atomic_write`."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_dir(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` to build a directory (a Core ML package) beside `path`, then swap it in: the
    old directory is removed only once the new one is in place, and put back if the swap fails."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    old = path.with_name(f".{path.stem}.old{path.suffix}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(tmp)
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        try:
            os.replace(tmp, path)
        except OSError:
            if old.exists() and not path.exists():
                os.replace(old, path)
            raise
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise write_failure(path, exc) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return path


def check_writable(path: str | Path, what: str = "output", *, directory: bool = False) -> Path:
    """Refuse, before any work, an output path whose directory is missing or not writable, or that is
    a directory itself unless `directory` (the output is one, e.g. a Core ML package): FileWriteError,
    one line. Returns the path."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir() and not directory:
        raise FileWriteError(f"cannot write {what} {path}: it is a directory")
    if not parent.is_dir():
        raise FileWriteError(f"cannot write {what} {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise FileWriteError(f"cannot write {what} {path}: permission denied")
    return path


__all__ = [
    "read_text",
    "atomic_write",
    "atomic_write_text",
    "atomic_write_bytes",
    "atomic_write_dir",
    "check_writable",
    "write_failure",
]
