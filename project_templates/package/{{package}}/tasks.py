"""Tasks of this project: typed pure functions, results cached and runs recorded."""

from typing import Tuple

import numpy as np

from smttask import RecordedTask
from smttask.typing import Array


@RecordedTask
def analyze(arr: Array, dt: float, nbins: int) -> Tuple[float, float, float]:
    """Mean rate, spread, and the share of samples in the fullest histogram bin."""
    hist, _ = np.histogram(arr, bins=nbins)
    μ = float(np.mean(arr) / dt)
    σ = float(np.std(arr) / dt)
    p = float(hist.max() / len(arr))
    return (μ, σ, p)
