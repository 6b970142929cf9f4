"""Output paths, checked before any work: the one place every CLI asks whether it may write there.

A user's mistake with an output path used to surface after minutes of work, as a traceback, or not
at all: `--events clip.mp4` truncated the input video to 0 bytes, an existing events file or
report was overwritten without a word, a missing or read-only folder failed at the very end. Each
check here raises `OutputError` with one line naming the path and what to do; CLIs print it and
exit 2 (bad input) before they load a model.

Standard library only (no torch).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


class OutputError(ValueError):
    """An output path that cannot or must not be written; the message says why and what to do."""


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same file (hard links and symlinks included), or would."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist: compare where they would be
        return a.resolve() == b.resolve()


def _check_not_an_input(path: Path, inputs: Iterable[Path | None], flag: str) -> None:
    for source in inputs:
        if source is not None and _same_file(path, Path(source)):
            raise OutputError(f"{flag} {path} is the input {source}: writing it would destroy the input; "
                              "choose another output path")


def _check_writable_dir(folder: Path, flag: str, create: bool) -> None:
    """`folder` exists and is a writable directory, or (create) its nearest existing ancestor is."""
    existing = folder
    while create and not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.exists():
        raise OutputError(f"{flag}: the folder {folder} does not exist; create it or choose another path")
    if not existing.is_dir():
        raise OutputError(f"{flag}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{flag}: the folder {existing} is not writable; choose another path")


def check_output_file(path: Path, *, inputs: Iterable[Path | None] = (), force: bool = False,
                      flag: str = "--out") -> Path:
    """A file the command will create: not an input, not a directory, not an existing file unless
    `force`, in an existing writable folder. Returns `path`."""
    path = Path(path)
    _check_not_an_input(path, inputs, flag)
    if path.is_dir():
        raise OutputError(f"{flag} {path} is a directory; give a file path")
    if path.exists() and not force:
        raise OutputError(f"{flag} {path} exists; choose another path or pass --force to overwrite it")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{flag} {path} is not writable")
    _check_writable_dir(path.parent, flag, create=False)
    return path


def check_output_dir(folder: Path, files: Iterable[str] = (), *, inputs: Iterable[Path | None] = (),
                     force: bool = True, flag: str = "--out") -> Path:
    """A folder the command will write `files` into (created with its parents if needed): not a
    file, writable, none of `files` an input, and none of them existing unless `force`."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{flag} {folder} exists and is a file, not a folder")
    _check_writable_dir(folder, flag, create=True)
    for name in files:
        _check_not_an_input(folder / name, inputs, flag)
        if (folder / name).exists() and not force:
            raise OutputError(f"{flag} {folder} already holds {name}; choose another folder or pass --force "
                              "to overwrite it")
    return folder
