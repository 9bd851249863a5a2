"""Parameter sweeps (:class:`ParamColl`, :func:`expand`) and seed streams (:class:`SeedGenerator`).

A ParamColl field may be ``expand([...])`` or ``expand(scipy.stats.norm(0, 1))``, or a nested
ParamColl or dataclass holding such markers; ``outer()`` (Cartesian product) and ``inner()``
(zip) give lazy, sliceable :class:`Sweep` s of plain dicts for ``task(**params)``. A
ParamColl is also a mapping of its fields and a valid task input (digested from its
definition). ``Seeds(entropy).data(key...)`` gives an int seed (or a tuple of them) from a
named ``SeedSequence`` stream. Draws and seeds are keyed through sha256 (never ``hash()``),
so they agree in every process and on every machine. scipy is needed only to rebuild a
stored distribution. See ``docs/sweeps.md``.
"""

from .expand import Expand, expand
from .paramcoll import ParamColl, Sweep
from .seeds import SeedGenerator, SeedStream, stable_int

__all__ = ["Expand", "ParamColl", "SeedGenerator", "SeedStream", "Sweep", "expand", "stable_int"]
