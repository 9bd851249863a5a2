"""Executors run the planned jobs of a batch: :mod:`.local` (a pool of worker processes
here) and :mod:`.slurm` (SLURM job arrays). Each imports :mod:`smttask.jobs`, never
:mod:`smttask.batch`."""
