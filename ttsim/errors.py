"""Typed errors raised by ttsim.

Every error a user can provoke with bad input derives from :class:`TtsimError`; the CLI turns
any of them into one clear message and exit status 2 (docs/architecture.md, "Errors"). The class
names follow the fault taxonomy of Tenstorrent's functional simulator so that CI logs stay
greppable.
"""


class TtsimError(Exception):
    """Base class of every user-facing ttsim error (exit status 2)."""


class ConfigurationError(TtsimError):
    """An op config, device name, program name or override is invalid."""


class UnsupportedFunctionality(TtsimError):
    """A valid request that the chosen program or device cannot run."""


class L1OverflowError(TtsimError):
    """Allocations on a core exceed the usable L1 budget."""


class CBRequestError(TtsimError):
    """A kernel asked a circular buffer for more pages than it holds, or misused it."""


class KernelAPIError(TtsimError):
    """A kernel misuses the kernel API the way a port from tt-metal C++ slips: a kernel that is
    not a generator function, a blocking call not run with ``yield from``, a CB push beyond its
    free pages or a pop beyond the pages waited for, DST used outside its tile_regs handshake."""


class DeadlockError(TtsimError):
    """The simulation ended with kernels still blocked."""


class SimulationLimitError(TtsimError):
    """The simulated-time guard stopped a runaway run."""


class NumericsError(TtsimError):
    """An output failed its numerical check against the reference."""
