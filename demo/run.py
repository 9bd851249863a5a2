"""Run the example for three time steps; report which results were computed or loaded."""

import numpy as np

from deathstar.tasks import analyze

arr = np.random.default_rng(42).normal(size=1000)
for dt in [0.1, 0.3, 0.5]:
    task = analyze(arr=arr, dt=dt, nbins=20, reason="quick start demo")
    μ, σ, p = task.run()
    how = f"computed, record {task.record_label}" if task.record_label else "loaded from disk"
    print(f"dt={dt}: μ={μ:+.4f} σ={σ:.4f} p={p:.3f}  ({how})")
