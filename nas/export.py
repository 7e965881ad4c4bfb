"""Writing found architectures out: the architecture file, or a standalone PyTorch module."""

from __future__ import annotations

import os
from pathlib import Path

from search_spaces import Arch

from .errors import BadInput

FORMATS = ("yaml", "pt")


def export(arch: Arch, fmt: str, out: str | Path) -> dict:
    """Write `arch` as `fmt` to `out`; return what was written (path, format, bytes, params)."""
    if fmt not in FORMATS:
        raise BadInput(f"unknown export format {fmt!r} (accepted: {', '.join(FORMATS)})")
    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise BadInput(f"cannot write {out}: directory {parent} does not exist")
    if out.is_dir():
        raise BadInput(f"cannot write {out}: it is a directory")
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise BadInput(f"cannot write {out}: permission denied")

    import supernet

    params = supernet.count(arch).params
    tmp = out.with_name(f".{out.stem}.partial{out.suffix}")  # same suffix: Arch.save picks JSON by it
    try:
        if fmt == "yaml":
            arch.save(tmp)
        else:
            import torch

            torch.save(supernet.SubNet(arch).eval(), tmp)
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BadInput(f"cannot write {out}: {exc.strerror or exc}") from None
    return {"path": str(out), "format": fmt, "bytes": out.stat().st_size, "params": params}
