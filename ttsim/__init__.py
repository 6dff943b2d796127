"""ttsim: a cycle-approximate simulator of Tenstorrent Tensix devices.

Not to be confused with Tenstorrent's functional simulator of the same name or with the
``ttsim`` package inside tenstorrent/polaris: this one is a SimPy timing model that runs
tt-metal style reader / compute / writer kernels and reports DEVICE KERNEL DURATION.

Python API: ``ttsim.run(config_or_path, program="all", device=None)`` returns one
:class:`~ttsim.results.OpResult` per device op (per program: the halo op, then the conv op),
for every registered program (``ttsim.programs.registry.names()``) as ``ttsim run`` does, or for
the one named.
"""

from ttsim.results import OpResult
from ttsim.simulate import run

from ttsim.version import __version__
__all__ = ["OpResult", "run", "__version__"]
