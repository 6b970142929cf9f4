"""The machine a figure was measured on: processor, SIMD extensions, threads, tool versions.

Every benchmark and experiment report names its machine with these (int8 kernels are 2-4x faster
with VNNI than without, and "AMD EPYC" alone names several generations), and sets one thread count
for every runtime in the process.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch

from runtimes.artifact import tool_versions
from runtimes.backends import set_threads  # noqa: F401  (here for the benchmarks, which import it from here)

SIMD_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")  # what int8 and fp32 kernels use


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """This machine's processor (vendor name, family/model, the SIMD extensions the kernels pick from),
    core count and OS, for reports: "AMD EPYC" alone names several generations, and int8 kernels are
    2-4x faster with VNNI than without."""
    info = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []

    def field(name: str) -> str | None:
        return next((ln.split(":", 1)[1].strip() for ln in info if ln.split(":")[0].strip() == name), None)

    model = field("model name") or platform.processor() or platform.machine()
    flags = set((field("flags") or "").split())
    simd = ", ".join(f for f in SIMD_FLAGS if f in flags) or "none of " + "/".join(SIMD_FLAGS)
    family = f"family {field('cpu family')} model {field('model')}; " if field("cpu family") else ""
    return (f"{model} ({family}{simd}; {sum(ln.startswith('processor') for ln in info) or '?'} cores), "
            f"{platform.platform()}")


def gpu_name() -> str | None:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else None


def describe() -> dict:
    """The machine and tools as a report's JSON records them."""
    return {"cpu": cpu_name(), "gpu": gpu_name(), "tools": tool_versions(),
            "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
