"""What every command-line program shares: its --help format, Ctrl-C at start-up, known library noise.

- `HelpFormatter`: argparse's defaults in --help, shown once and only when true. argparse's
  ArgumentDefaultsHelpFormatter appends "(default: None)" to a flag whose help already explains
  its default ("(default: the preset's shipped weights) (default: None)"), and "(default: False)"
  to every switch.
- `exits_quietly_on_interrupt`: Ctrl-C while a program loads its model is a user's decision, not a
  crash: status 130 (the shell's convention for SIGINT) and one short line instead of a traceback.
- `quiet_known_library_noise` and `without_known_noise`: the exact lines torchao, torch and
  ExecuTorch print on every run here (CUDA kernels this CPU build cannot load, a pytree
  deprecation inside torchao, cpuinfo probing files an x86 machine does not have) are dropped;
  any other message of those libraries, including new ones, still shows.

Standard library only (no torch).
"""

from __future__ import annotations

import argparse
import functools
import logging
import re
import sys
import warnings
from collections.abc import Callable


def add_model_arguments(parser: argparse.ArgumentParser, default: str = "default",
                        preset_help: str = "model preset") -> None:
    """--preset NAME or --config FILE.json, wherever a model is chosen (resolved by
    edge_vljepa.config.resolve_config, the one place that decides)."""
    from pathlib import Path

    from edge_vljepa.config import PRESETS
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--preset", choices=list(PRESETS), default=None,
                       help=f"{preset_help} (default: {default})")
    group.add_argument("--config", type=Path, metavar="FILE.json",
                       help="a model config instead of a preset: JSON of the ModelConfig dataclasses' fields "
                            "(e.g. written by python -m edge_vljepa.weights inspect --write-config); fields "
                            "left out take the paper's values")


INTERRUPTED = 130  # exit status after Ctrl-C (128 + SIGINT)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """ArgumentDefaultsHelpFormatter without the untrue or doubled defaults: nothing is appended when
    the default is None or False (the help says what happens then) or the help already names it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if action.default in (None, False) or "(default" in help_text:
            return help_text
        return super()._get_help_string(action)


def exits_quietly_on_interrupt(main: Callable[..., int]) -> Callable[..., int]:
    """Wrap a CLI `main`: Ctrl-C outside its own handling (e.g. while loading) exits with status 130."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return INTERRUPTED

    return wrapper


# logger name -> the exact messages (regular expressions over the formatted message) to drop
KNOWN_NOISE = {
    "torchao": [r"Failed to load \S+/torchao/_C_(mxfp8|cutlass_90a)\S*\.so: Could not load this library: "
                r"\S+\.so"],
    "torch.utils._pytree": [r"<enum '\w+'> is an Enum subclass and is now natively supported by "
                            r"torch.compile as an opaque value type\. Calling register_constant\(\) on Enum "
                            r"subclasses is deprecated and will be an error in a future release\."],
}


# lines ExecuTorch's runtime writes to sys.stderr while loading a program (its threadpool's cpuinfo)
KNOWN_RUNTIME_LOG = [
    r"\[cpuinfo_utils\.cpp:\d+\] Reading file /sys/\S+",
    r"\[cpuinfo_utils\.cpp:\d+\] Failed to open midr file /sys/\S+",
    r"\[cpuinfo_utils\.cpp:\d+\] CPU info and manual query on # of cpus dont match\.",
]


def without_known_noise(log: str) -> str:
    """`log` without the lines of KNOWN_RUNTIME_LOG."""
    patterns = [re.compile(p) for p in KNOWN_RUNTIME_LOG]
    return "".join(line for line in log.splitlines(keepends=True)
                   if not any(p.fullmatch(line.rstrip("\n")) for p in patterns))


class _DropKnown(logging.Filter):
    def __init__(self, patterns: list[str]):
        super().__init__()
        self.patterns = [re.compile(p) for p in patterns]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(p.fullmatch(message) for p in self.patterns)


def quiet_known_library_noise() -> None:
    """Install the filters of KNOWN_NOISE (idempotent); call before importing torchao or executorch."""
    # ExecuTorch's Python bindings warn on import that their API is experimental
    warnings.filterwarnings("ignore", module=r"executorch\.",
                            message=r"This API is experimental and subject to change without notice\.")
    for name, patterns in KNOWN_NOISE.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropKnown) for f in logger.filters):
            logger.addFilter(_DropKnown(patterns))
