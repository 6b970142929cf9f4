"""Process memory for the runtime summaries: resident set size now and at its peak, and what the
lazily loaded Y-Decoder adds at the first decode (VL-JEPA decodes only when text is needed, so a
stream that rarely decodes should not hold the decoder from the start).
"""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

import numpy as np

_STATM = Path("/proc/self/statm")


def rss_mb() -> float | None:
    """Resident set size of this process now, MB (None where /proc is not available, e.g. macOS)."""
    try:
        return int(_STATM.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MB: Linux's VmHWM (this address space's own
    high-water mark; ru_maxrss survives exec, so a process started by a larger one would report the
    parent's peak), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6  # bytes on macOS, KiB on Linux


class FirstCallMemory:
    """A backend wrapper that records the RSS just before and just after the first call of `method`
    (for `y_decoder_prefill`: the lazy load of the Y-Decoder plus its first run)."""

    def __init__(self, backend, method: str = "y_decoder_prefill"):
        self.backend, self.contract, self.method = backend, backend.contract, method
        self.name = getattr(backend, "name", type(backend).__name__)
        self.before_mb: float | None = None
        self.after_mb: float | None = None
        self.called = False

    def run(self, method: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if method != self.method or self.called:
            return self.backend.run(method, inputs)
        self.called, self.before_mb = True, rss_mb()
        outputs = self.backend.run(method, inputs)
        self.after_mb = rss_mb()
        return outputs

    def format(self) -> str:
        """One line for the summary."""
        if not self.called:
            return "no decode ran"
        if self.before_mb is None or self.after_mb is None:
            return "RSS at the first decode: not measurable on this platform"
        return (f"RSS {self.before_mb:.1f} -> {self.after_mb:.1f} MB at the first decode "
                f"({self.after_mb - self.before_mb:+.1f} MB)")
