"""The machine a table is measured on, and whether a table's latencies can hold on this one."""

from __future__ import annotations

import os
import platform

#: Backends whose latencies belong to the CPU they ran on (a table of them is wrong on another CPU model).
CPU_BACKENDS = ("torch", "torchscript", "onnxruntime")


def host_description() -> str:
    """``CPU model, N logical CPUs, OS release``, as a measured table records its host."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def cpu_models(hosts: str) -> set[str]:
    """The CPU models named in a table's ``provenance.host`` (one, or several ``;``-separated for a table
    measured on a Ray cluster's nodes)."""
    return {part.split(",")[0].strip() for part in hosts.split(";") if part.strip()}


def host_mismatch(backend: str, provenance: dict, device: str) -> str | None:
    """A one-line notice when a table measured with a CPU backend was measured on another CPU model than
    this host's: the same table validated on an Intel Xeon after an AMD EPYC build was off by 42%."""
    if provenance.get("kind") not in ("measured", "fitted") or backend not in CPU_BACKENDS or not provenance.get("host"):
        return None
    recorded, here = cpu_models(str(provenance["host"])), cpu_models(host_description())
    if here & recorded:
        return None
    return (
        f"table {device!r} was measured on {', '.join(sorted(recorded))}, and this host is {', '.join(here)}: its "
        f"latencies do not hold here (build one for this host: nas lut build --device NAME --backend {backend})"
    )


__all__ = ["CPU_BACKENDS", "host_description", "cpu_models", "host_mismatch"]
