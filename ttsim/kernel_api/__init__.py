"""The kernel API: what a kernel may call, named as in tt-metal.

Kernels are generator functions taking one context argument. Calls that can block on another
kernel (``cb_reserve_back``, ``cb_wait_front``, ``noc_semaphore_wait``) return generators, run
with ``yield from`` (one never run is a :class:`~ttsim.errors.KernelAPIError`); every other call
is a plain call that charges its cost to the calling RISC's clock.
"""

from ttsim.kernel_api.common_values import INVALID, TILE_H, TILE_W, VALID
from ttsim.kernel_api.compute import ComputeContext
from ttsim.kernel_api.dataflow import DataflowContext, McastAddr, NocAddr, TensorAccessor

__all__ = ["ComputeContext", "DataflowContext", "INVALID", "McastAddr", "NocAddr", "TILE_H", "TILE_W",
           "TensorAccessor", "VALID"]
