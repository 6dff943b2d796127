"""The registry of conv programs: everything the rest of ttsim knows about a program is its
:class:`ProgramDefinition`.

``ttsim run --program``, the config's per-program sections (``classic:``, ``pool:``), ``ttsim
compare``, ``ttsim check`` and its goldens, ``ttsim sweep`` and the JSON / CSV reports all iterate
:func:`names` and look programs up with :func:`get`; none of them names a program.

Adding a program = its kernels + one program module + one registration. The program module
ends with::

    register(ProgramDefinition(name="mine", op_code="MyConvOp", options_model=MyOptions,
                               channel_align=32, build=build, report=report,
                               description="what it is, in a few words"))

A program of your own is registered when its module is imported (import it before ``ttsim.run``
or the CLI parses a config); a built-in one also gets one line in :data:`BUILTIN_PROGRAMS` so that
it is known with ttsim, its options model in ttsim/programs/options.py. A built-in program's module
(its builder, host code and kernels) is imported the first time :func:`get` or
:func:`definitions` needs it; validating a config needs only the options models
(:func:`options_models`), so a run of one program imports that program's module alone.
docs/architecture.md walks through an example.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ttsim.config import ConvSpec, OpConfig, ProgramOptions
from ttsim.device.device import Device, L1Buffer
from ttsim.errors import ConfigurationError
from ttsim.programs.built import BuiltConv
from ttsim.programs.options import ClassicOptions, DepthwiseOptions, PoolOptions
from ttsim.programs.parallel import ParallelConfig
from ttsim.programs.sliding_window import ConvGeometry, HaloCoreConfig
from ttsim.results import TensorDesc

BUILTIN_PROGRAMS: dict[str, tuple[str, type[ProgramOptions]]] = {
    "classic": ("ttsim.programs.classic_conv", ClassicOptions),
    "pool": ("ttsim.programs.depthwise_pool", PoolOptions),
    "depthwise": ("ttsim.programs.depthwise", DepthwiseOptions),
}
"""Built-in program name -> (the module that registers it, its options model), in run order
(``--program all``)."""

RESERVED_NAMES = frozenset({"all", "name", "device", "seed", "count", "source", "conv", "measured"})
"""Not program names: ``all`` selects every program; the others are the config's own keys."""

_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


@dataclass(frozen=True)
class ConvSetup:
    """What the host has prepared when a conv program is built: the halo op has run and its
    output (the padded input windows, per core) sits in ``halo_buffer``."""

    device: Device
    conv: ConvSpec
    geom: ConvGeometry
    pc: ParallelConfig
    """Core grid and shards, from ``determine_parallel_config`` with the program's channel alignment."""
    halo: list[HaloCoreConfig]
    halo_buffer: L1Buffer
    weight: np.ndarray
    """[C, 1, kh, kw] float32, as the user gave them (the program rounds them to its format)."""
    bias: np.ndarray | None


@dataclass(frozen=True)
class ProgramReport:
    """What a program adds to its conv op's report: the tensors it reads besides the halo output
    (weights, then bias; the ops perf CSV's INPUT_1.. columns) and its internals for ``details``."""

    inputs: list[TensorDesc]
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProgramDefinition:
    """One conv program: how to configure it, build it and report it."""

    name: str
    """Program name: ``--program NAME``, the config section ``NAME:``, the ``program`` of its results."""
    op_code: str
    """OP CODE of its conv op (the Program it builds carries the same)."""
    options_model: type[ProgramOptions]
    """Pydantic model of the config section ``NAME:`` (a ProgramOptions, so ``cb`` and ``core_grid`` work)."""
    channel_align: int
    """Channels per core are a multiple of this (channels)."""
    build: Callable[[ConvSetup, Any], BuiltConv]
    """``build(setup, options) -> BuiltConv``: the program wired to the device, not yet run."""
    report: Callable[[ConvSetup, Any], ProgramReport]
    """``report(setup, built) -> ProgramReport``: its report tensors and details (no timing)."""
    description: str = ""
    split_runs: bool = True
    """Whether ``jobs`` > 1 may finish its conv op in two processes (ttsim/split_run.py; exact
    either way). False for a program whose cores keep meeting until late in the op (classic
    conv's per-block weight multicasts): there a split comes too late to pay for itself."""


_REGISTRY: dict[str, ProgramDefinition] = {}
_unloaded = set(BUILTIN_PROGRAMS)
"""Built-in programs whose module has not been imported yet (each registers itself when it is)."""


def register(definition: ProgramDefinition) -> ProgramDefinition:
    """Add a program; returns it. Raises ConfigurationError for a bad or already used name (a
    built-in program's name belongs to its module, imported or not)."""
    name = definition.name
    if not _NAME.match(name) or name in RESERVED_NAMES or hasattr(OpConfig, name):
        raise ConfigurationError(
            f"program name {name!r}: expected lower-case letters, digits and '_', neither one of "
            f"{', '.join(sorted(RESERVED_NAMES))} nor an attribute of OpConfig")
    if name in _REGISTRY:
        raise ConfigurationError(f"program {name!r} is already registered (by {_REGISTRY[name].build.__module__})")
    if name in _unloaded and definition.build.__module__ != BUILTIN_PROGRAMS[name][0]:
        raise ConfigurationError(f"program {name!r} is already registered (by {BUILTIN_PROGRAMS[name][0]})")
    if not issubclass(definition.options_model, ProgramOptions):
        raise ConfigurationError(f"program {name!r}: options_model must derive from ttsim.config.ProgramOptions")
    if name in _unloaded and definition.options_model is not BUILTIN_PROGRAMS[name][1]:
        raise ConfigurationError(f"program {name!r}: options_model must be {BUILTIN_PROGRAMS[name][1].__name__}, "
                                 "the built-in program's (BUILTIN_PROGRAMS)")
    if definition.channel_align < 1:
        raise ConfigurationError(f"program {name!r}: channel_align must be >= 1, got {definition.channel_align}")
    _REGISTRY[name] = definition
    _unloaded.discard(name)
    return definition


def unregister(name: str) -> None:
    """Remove a program registered with :func:`register` (tests use it to clean up)."""
    if name in _unloaded:
        get(name)  # a built-in program's module is imported first: it cannot register it again later
    if name not in _REGISTRY:
        raise ConfigurationError(f"program {name!r} is not registered")
    del _REGISTRY[name]


def names() -> tuple[str, ...]:
    """Every registered program: the built-in ones in :data:`BUILTIN_PROGRAMS` order, then the
    others in registration order. This is the run order of ``--program all``. Imports no
    program module."""
    builtin = [name for name in BUILTIN_PROGRAMS if name in _REGISTRY or name in _unloaded]
    return (*builtin, *(name for name in _REGISTRY if name not in BUILTIN_PROGRAMS))


def get(name: str) -> ProgramDefinition:
    """The definition of program ``name`` (importing a built-in program's module the first time);
    ConfigurationError listing the programs otherwise."""
    if name in _unloaded:
        importlib.import_module(BUILTIN_PROGRAMS[name][0])
    if name not in _REGISTRY:
        raise ConfigurationError(f"unknown program {name!r}; available: {', '.join((*names(), 'all'))}")
    return _REGISTRY[name]


def definitions() -> tuple[ProgramDefinition, ...]:
    """Every registered definition in :func:`names` order (every built-in program's module imported)."""
    return tuple(get(name) for name in names())


def options_models() -> dict[str, type[ProgramOptions]]:
    """The options model of every registered program, in :func:`names` order, without importing
    a built-in program's module (a config's sections are validated by these)."""
    return {name: options_model(name) for name in names()}


def options_model(name: str) -> type[ProgramOptions]:
    """The model of program ``name``'s config section (a built-in program's module stays unimported)."""
    if name in _unloaded:
        return BUILTIN_PROGRAMS[name][1]
    return get(name).options_model
