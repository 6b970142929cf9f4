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

# by the /proc/cpuinfo line that lists a processor's extensions: "flags" on x86, "Features" on Arm
SIMD_FLAGS = {"flags": ("avx2", "avx512f"), "Features": ("asimd", "sve")}  # fp32 kernels' vector widths
INT8_DOT_FLAGS = {"flags": ("avx_vnni", "avx512_vnni", "amx_int8"), "Features": ("asimddp", "i8mm")}
FLAG_NAMES = {"asimddp": "asimddp (SDOT)", "i8mm": "i8mm (SMMLA)"}  # Arm's names for the instructions


def _fields(cpuinfo: Path) -> tuple[dict[str, str], int, str | None]:
    """The first value of every field of a /proc/cpuinfo (the first core's), its core count, and which
    key lists the extensions ("flags", "Features"; None without cpuinfo: macOS, Windows)."""
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    fields = {}
    for line in lines:
        if ":" in line:
            key, value = line.split(":", 1)
            fields.setdefault(key.strip(), value.strip())
    return (fields, sum(line.startswith("processor") for line in lines),
            next((k for k in INT8_DOT_FLAGS if k in fields), None))


def int8_dot_product(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, bool] | None:
    """This processor's int8 dot-product extensions, present (True) or absent (False): AVX-VNNI,
    AVX512-VNNI and AMX on x86, SDOT and I8MM on Arm. None when there is no cpuinfo."""
    fields, _, key = _fields(cpuinfo)
    return {f: f in fields[key].split() for f in INT8_DOT_FLAGS[key]} if key else None


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """This machine's processor (vendor name, family/model, the SIMD extensions the kernels pick from,
    the int8 dot-product extensions present and absent), core count and OS, for reports: "AMD EPYC"
    alone names several generations, and int8 kernels are 2-4x faster with VNNI than without."""
    fields, cores, key = _fields(cpuinfo)
    model = fields.get("model name") or platform.processor() or platform.machine()
    dot = int8_dot_product(cpuinfo)
    if key is None:
        simd, int8 = "SIMD unknown", "int8 dot product unknown (no /proc/cpuinfo)"
    else:
        flags = fields[key].split()
        simd = ", ".join(f for f in SIMD_FLAGS[key] if f in flags) or "none of " + "/".join(SIMD_FLAGS[key])
        present = ", ".join(FLAG_NAMES.get(f, f) for f, have in dot.items() if have) or "none"
        absent = ", ".join(FLAG_NAMES.get(f, f) for f, have in dot.items() if not have) or "none"
        int8 = f"int8 dot product: {present}; without {absent}"
    family = f"family {fields['cpu family']} model {fields.get('model')}; " if "cpu family" in fields else ""
    return f"{model} ({family}{simd}; {int8}; {cores or '?'} cores), {platform.platform()}"


def gpu_name() -> str | None:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else None


def describe() -> dict:
    """The machine and tools as a report's JSON records them."""
    return {"cpu": cpu_name(), "int8_dot_product": int8_dot_product(), "gpu": gpu_name(),
            "tools": tool_versions(),
            "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
