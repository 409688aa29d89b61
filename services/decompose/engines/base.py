"""The interface every decomposition engine implements."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np

from services.common.layers import Layer
from services.common.options import JobOptions

ProgressCallback = Callable[[int, int], None]
"""Called with (step, total) as the engine works."""

CancelCheck = Callable[[], bool]
"""Returns True once the job is cancelled; engines check it between steps."""


class Engine(Protocol):
    """Splits an RGB image into layers ordered bottom to top."""

    name: str
    version: str

    def decompose(
        self,
        image: np.ndarray,
        options: JobOptions,
        on_progress: ProgressCallback,
        is_cancelled: CancelCheck,
    ) -> Iterator[Layer]:
        """Yields layers bottom (background, index 0) to top for an (H, W, 3) uint8 RGB image.

        Each layer's rgba is the straight-alpha crop of its bbox. Raises
        services.common.errors.Cancelled when is_cancelled() turns True.
        """
        ...
