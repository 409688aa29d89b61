"""What the CLI's inputs expand into: one job per image file, and one per image member of each ZIP.

ZIPs get the same checks as at the gateway (services.common.zip_batch): a ZIP that cannot be used
is refused whole, members that are not images are skipped with a reason, and nothing in a ZIP
is written to disk by its own name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from services.common.zip_batch import ZipLimits, ZipRefused, is_zip, open_zip_batch


@dataclass(frozen=True)
class Input:
    """One job of a run."""

    label: str  # in messages: the path, or "posters.zip/summer.png" for a member of a ZIP
    filename: str  # the job's file name
    stem: str  # its output folder's name when a run has several jobs
    read: Callable[[], bytes]  # its bytes (InvalidInput for a corrupt ZIP member)


@dataclass
class Expansion:
    """The jobs of a run, and what was left out with why (one line each)."""

    inputs: list[Input] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # ZIPs that could not be used: the run fails
    skipped: list[str] = field(default_factory=list)  # members that are not (safe) images: only reported
    rejected: list[dict] = field(default_factory=list)  # the same, for batch.json: {"filename", "error", "detail"}
    zipped: bool = False  # a ZIP was among the inputs


def expand_inputs(paths: Sequence[Path], limits: ZipLimits, stack: contextlib.ExitStack) -> Expansion:
    """The jobs `paths` stand for, in order; opened ZIPs stay open until `stack` closes."""
    expansion = Expansion()
    for path in paths:
        if not is_zip(path.name, None):
            expansion.inputs.append(Input(str(path), path.name, path.stem, path.read_bytes))
            continue
        expansion.zipped = True
        handle = stack.enter_context(path.open("rb"))
        try:
            archive = stack.enter_context(open_zip_batch(handle, path.stat().st_size, path.name, limits))
        except ZipRefused as error:
            expansion.refused.append(f"{path}: rejected: {error.detail}")
            expansion.rejected.append({"filename": path.name, "error": error.code, "detail": error.detail})
            continue
        for item in archive.skipped:
            expansion.skipped.append(f"{path}: skipped {item.detail}")
            expansion.rejected.append({"filename": item.name, "error": item.code, "detail": item.detail})
        for member in archive.images:
            read = partial(archive.read, member)
            expansion.inputs.append(Input(f"{path}/{member.name}", member.filename, Path(member.filename).stem, read))
    return expansion


def output_dirs(inputs: Sequence[Input], root: Path) -> list[Path]:
    """Where each job's files go: `root` for a single job, else root/<stem>, with -2, -3... on repeated stems."""
    if len(inputs) == 1:
        return [root]
    used: set[str] = set()
    dirs = []
    for item in inputs:
        name, count = item.stem, 1
        while name in used:
            count += 1
            name = f"{item.stem}-{count}"
        used.add(name)
        dirs.append(root / name)
    return dirs
