"""How much GPU memory a job needs, from the table bench/qwen_gpu.py measures, and the check before a job.

The table (JSON) lists, per configuration, the bytes a job allocates on top of what is resident when it
starts (peak allocated during the job minus allocated before it):

    {"version": 1, "device": "NVIDIA H100 80GB HBM3",
     "entries": [{"resolution": 640, "layers": 4, "dtype": "bfloat16", "offload": false,
                  "quantization": "none", "job_bytes": 1234567890}, ...]}
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from services.common.errors import FailedPrecondition, ResourceExhausted

GIB = 1024**3

MEASURED_TABLE = Path(__file__).with_name("memory_table.json")
"""The table bench/qwen_gpu.py measured on an NVIDIA H200 (docs/benchmarks.md), shipped as the default.

A job's allocations depend on the model and the job, not the card, so it holds on other CUDA GPUs too;
measure again for another torch or diffusers release."""
NO_TABLE = "none"
"""The qwen_memory_table value that turns the free-memory check off."""


def table_path(setting: str) -> Path | None:
    """The memory table a qwen_memory_table setting names: empty is MEASURED_TABLE, "none" is no table."""
    if setting == NO_TABLE:
        return None
    return Path(setting) if setting else MEASURED_TABLE


@dataclass(frozen=True)
class MemoryEntry:
    """One measured configuration."""

    resolution: int
    layers: int
    dtype: str
    offload: bool
    quantization: str
    job_bytes: int


@dataclass(frozen=True)
class MemoryTable:
    """Measured job memory by resolution x layers, for each dtype / offload / quantization setting."""

    entries: tuple[MemoryEntry, ...]
    device: str = ""

    @classmethod
    def load(cls, path: str | Path) -> MemoryTable:
        """Reads a table written by bench/qwen_gpu.py; raises FailedPrecondition if it is unreadable."""
        try:
            data = json.loads(Path(path).read_text())
            entries = tuple(
                MemoryEntry(
                    resolution=int(item["resolution"]),
                    layers=int(item["layers"]),
                    dtype=str(item["dtype"]),
                    offload=bool(item["offload"]),
                    quantization=str(item.get("quantization", "none")),
                    job_bytes=int(item["job_bytes"]),
                )
                for item in data["entries"]
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise FailedPrecondition(f"the qwen memory table {str(path)!r} cannot be read: {error}") from None
        return cls(entries, str(data.get("device", "")))

    def job_bytes(self, resolution: int, layers: int, dtype: str, offload: bool, quantization: str) -> int | None:
        """Bytes a job needs, or None when the table has nothing for this resolution and setting.

        Between measured layer counts: linear interpolation. Above them: linear extrapolation from the two
        largest, or with one measurement, scaled by the number of latent frames (layers + 2). Below them:
        the smallest measurement (memory grows with layers, so this errs on the safe side).
        """
        points = sorted(
            (entry.layers, entry.job_bytes)
            for entry in self.entries
            if (entry.resolution, entry.dtype, entry.offload, entry.quantization)
            == (resolution, dtype, offload, quantization)
        )
        if not points:
            return None
        measured = dict(points)
        if layers in measured:
            return measured[layers]
        below = [point for point in points if point[0] < layers]
        above = [point for point in points if point[0] > layers]
        if not below:
            return above[0][1]
        if above:
            (x0, y0), (x1, y1) = below[-1], above[0]
        elif len(points) >= 2:
            (x0, y0), (x1, y1) = points[-2], points[-1]
        else:
            x0, y0 = points[0]
            return round(y0 * (layers + 2) / (x0 + 2))
        return round(y0 + (y1 - y0) * (layers - x0) / (x1 - x0))


def check_memory(needed: int | None, headroom: float, available: int, what: str) -> None:
    """Raises ResourceExhausted when `needed` x `headroom` bytes are more than `available`."""
    if needed is None or needed * headroom <= available:
        return
    raise ResourceExhausted(
        f"{what} needs about {needed * headroom / GIB:.1f} GiB of free GPU memory and "
        f"{available / GIB:.1f} GiB are free; retry later, or ask for fewer layers or resolution 640"
    )


def cuda_available_bytes(device: str) -> Callable[[], int]:
    """Bytes a new job can allocate on `device`: free on the card plus what torch holds cached but unused."""
    import torch

    def available() -> int:
        free, _total = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)

    return available
