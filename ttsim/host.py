"""Host API: describe a program (CBs, semaphores, kernels, runtime args) and run it on a device.

Mirrors tt-metal's ``CreateCircularBuffer`` / ``CreateSemaphore`` / ``CreateKernel`` /
``SetRuntimeArgs`` / ``EnqueueProgram``. Running a program allocates its CBs in every core's
L1, launches one SimPy process per kernel per core (staggered as the GO messages are), runs the
clock until every kernel has finished, detects deadlocks and runaway runs, and returns the
profiler's view of the op.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Generator, Mapping

import simpy

from ttsim.cb import CBConfig, CircularBuffer
from ttsim.device.core import Risc
from ttsim.device.device import Device, L1Buffer
from ttsim.device.profiler import CBRecord, KernelZone, OpProfile
from ttsim.errors import CBRequestError, ConfigurationError, DeadlockError, KernelAPIError
from ttsim.kernel_api.base import KernelContext
from ttsim.kernel_api.compute import ComputeContext
from ttsim.kernel_api.dataflow import DataflowContext
from ttsim.split_run import SplitOutcome, step_until_split, summarize

XY = tuple[int, int]
KernelFunction = Callable[[Any], Generator]

DEFAULT_MAX_CYCLES = 200_000_000
"""Simulated-time guard: no op of interest runs for 0.2 s of device time."""


@dataclass(frozen=True)
class CBSpec:
    """A CB created on a set of cores, optionally aliasing an L1 buffer."""

    cores: tuple[XY, ...]
    config: CBConfig
    buffer: L1Buffer | None = None


@dataclass(frozen=True)
class KernelSpec:
    """A kernel placed on a set of cores and a RISC ("compute" means TRISC0-2)."""

    name: str
    function: KernelFunction
    cores: tuple[XY, ...]
    risc: Risc | str
    compile_args: Mapping[str, Any]
    runtime_args: Mapping[XY, Mapping[str, Any]]
    noc: int = 0
    math_fidelity: str = "HiFi4"
    fp32_dest_acc: bool = False


@dataclass
class Program:
    """Everything a device op needs on the device side."""

    op_code: str
    cbs: list[CBSpec] = field(default_factory=list)
    kernels: list[KernelSpec] = field(default_factory=list)
    semaphores: list[tuple[tuple[XY, ...], int]] = field(default_factory=list)
    requests: list[tuple[str, int, int, str]] = field(default_factory=list)
    """(kernel, CB index, pages, call) the kernels are known to make, checked before launch."""

    def create_circular_buffer(self, cores: list[XY], config: CBConfig,
                               buffer: L1Buffer | None = None) -> int:
        """Create a CB on ``cores``; with ``buffer`` it aliases that tensor buffer."""
        self.cbs.append(CBSpec(tuple(cores), config, buffer))
        return config.index

    def declare_cb_request(self, kernel: str, cb_index: int, pages: int, call: str) -> None:
        """Record that ``kernel`` will ask CB ``cb_index`` for ``pages`` pages in ``call``, so an
        undersized CB is reported when the program is built rather than mid-run."""
        self.requests.append((kernel, cb_index, pages, call))

    def create_semaphore(self, cores: list[XY], initial_value: int = 0) -> int:
        """Create a semaphore on ``cores``; returns its id."""
        self.semaphores.append((tuple(cores), initial_value))
        return len(self.semaphores) - 1

    def create_kernel(self, name: str, function: KernelFunction, cores: list[XY],
                      risc: Risc | str, compile_args: Mapping[str, Any],
                      runtime_args: Mapping[XY, Mapping[str, Any]] | None = None, noc: int = 0,
                      math_fidelity: str = "HiFi4", fp32_dest_acc: bool = False) -> None:
        """Place kernel ``function`` (a generator function taking the kernel context) on
        ``cores``; rejects a plain function, which SimPy could not run as a process."""
        if not inspect.isgeneratorfunction(function):
            x, y = cores[0]
            raise KernelAPIError(
                f"kernel '{name}' for core ({x},{y}) (and {len(cores) - 1} more cores): "
                f"{getattr(function, '__qualname__', function)!s} is not a generator function: a kernel "
                "runs its blocking calls with 'yield from ctx.cb_wait_front(...)' (a kernel without "
                "any blocking call still needs one 'yield from ()')")
        self.kernels.append(KernelSpec(name, function, tuple(cores), risc, compile_args,
                                       runtime_args or {}, noc, math_fidelity, fp32_dest_acc))

    def cb_table(self) -> list[CBSpec]:
        return sorted(self.cbs, key=lambda spec: spec.config.index)


def _check_requests(program: Program) -> None:
    """Reject a CB that cannot serve a request a kernel is known to make, before anything runs:
    larger than the CB, or not dividing it (tt-metal's wrap rule: the pages pushed or popped over
    one cycle of the CB must add up to its size, so a request never straddles the end)."""
    by_index = {spec.config.index: spec for spec in program.cbs}
    for kernel, index, pages, call in program.requests:
        spec = by_index[index]
        held = spec.config.num_pages
        if pages <= held and held % pages == 0:
            continue
        x, y = spec.cores[0]
        need = "at least" if pages > held else "a multiple of"
        raise CBRequestError(
            f"kernel '{kernel}' will call {call}(CB {index} '{spec.config.name}', {pages}) on core "
            f"({x},{y}) (and {len(spec.cores) - 1} more cores) but the CB holds {held} pages of "
            f"{spec.config.page_size} B: it needs {need} {pages} pages")


def _allocate(device: Device, program: Program) -> None:
    _check_requests(program)
    for spec in program.cb_table():
        for xy in spec.cores:
            core = device.core(xy)
            if spec.config.index in core.cbs:
                raise ConfigurationError(f"CB index {spec.config.index} created twice on core {core.name}")
            if spec.buffer is not None:
                address = spec.buffer.address(xy)
                if spec.config.total_size > spec.buffer.size_per_core:
                    raise ConfigurationError(
                        f"CB {spec.config.index} '{spec.config.name}' ({spec.config.total_size} B) is "
                        f"larger than the buffer '{spec.buffer.name}' it aliases "
                        f"({spec.buffer.size_per_core} B)")
            else:
                address = core.l1.allocate_cb(spec.config.name, spec.config.total_size)
            core.cbs[spec.config.index] = CircularBuffer(device.env, spec.config, address, core.name)
    for semaphore_id, (cores, initial) in enumerate(program.semaphores):
        for xy in cores:
            device.core(xy).write_word(device.semaphore_address(semaphore_id), initial)


def _make_context(device: Device, kernel: KernelSpec, xy: XY, deadline: float,
                  traced: bool, numerics: bool) -> KernelContext:
    core = device.core(xy)
    runtime = kernel.runtime_args.get(xy, {})
    context: KernelContext
    if kernel.risc == "compute":
        context = ComputeContext(device, core, kernel.name, kernel.compile_args, runtime,
                                 kernel.math_fidelity, kernel.fp32_dest_acc, numerics)
    else:
        context = DataflowContext(device, core, kernel.name, Risc(kernel.risc), kernel.compile_args,
                                  runtime, kernel.noc)
    context.deadline = deadline
    if traced:
        context.trace = []
    return context


def _kernel_process(env: simpy.Environment, delay: float, make: Callable[[], KernelContext],
                    kernel: KernelSpec, live: dict[simpy.Process, KernelContext],
                    zones: list[KernelZone]):
    if delay > 0:
        yield env.timeout(delay)
    context = make()
    live[env.active_process] = context
    yield from kernel.function(context)
    yield from context.finish()
    for risc, end in context.zone_ends().items():
        zones.append(KernelZone(context.core.logical, risc, kernel.name, context.start_time, end))


def run_program(device: Device, program: Program, max_cycles: int = DEFAULT_MAX_CYCLES,
                launch_gap_cycles: float = 0.0, trace: bool = False,
                trace_cores: Collection[XY] | None = None, numerics: bool = True,
                split: bool = False) -> OpProfile:
    """Run ``program`` to completion and return its profile.

    With ``trace``, the profile also holds timeline events (stalls, busy op groups, CB
    occupancy) of ``trace_cores`` (every core when None). With ``numerics`` false, compute
    kernels charge every call's cycles but compute no tile values (``timing_only`` runs; no cost
    depends on a value, so the profile is the same). With ``split`` (and no ``trace``), the run
    finishes in two processes once its halves of cores stop meeting, when that is exact
    (ttsim/split_run.py); the profile and every L1 byte are the serial run's.

    Raises :class:`DeadlockError` if kernels are still blocked when nothing else can happen, and
    :class:`SimulationLimitError` if the op runs past ``max_cycles``.
    """
    env = device.env
    _allocate(device, program)
    l1_used = max((device.core(xy).l1.used_bytes for k in program.kernels for xy in k.cores), default=0)
    traced = (set(trace_cores) if trace_cores is not None else set(device.cores)) if trace else set()
    counters: list[tuple[XY, str, float, int]] = []
    for xy in traced:
        for cb in device.core(xy).cbs.values():
            cb.trace = lambda occupancy, t, name=cb.name, xy=xy: counters.append((xy, name, t, occupancy))
    stagger = device.spec.chip.launch_stagger_cycles_per_core.value
    launch_order = {xy: i for i, xy in enumerate(sorted({xy for k in program.kernels for xy in k.cores},
                                                        key=lambda c: (c[1], c[0])))}
    deadline = env.now + launch_gap_cycles + max_cycles
    zones: list[KernelZone] = []
    live: dict[simpy.Process, KernelContext] = {}
    """The context of every kernel process that has started, by process."""
    processes = []
    for kernel in program.kernels:
        for xy in kernel.cores:
            delay = launch_gap_cycles + launch_order[xy] * stagger
            make = (lambda k=kernel, c=xy: _make_context(device, k, c, deadline, c in traced, numerics))
            processes.append(env.process(_kernel_process(env, delay, make, kernel, live, zones)))
    outcome = _run_kernels(device, program, env.all_of(processes), live, processes, zones,
                           split and not traced)
    if outcome is None:  # the pushes not scheduled (ttsim/cb.py): SimPy has passed them all
        for xy in launch_order:
            for cb in device.core(xy).cbs.values():
                cb.apply_all_unscheduled()
    summaries = outcome.summaries if outcome else [summarize(context) for context in live.values()]
    profile = OpProfile(program.op_code, device.spec.clock_mhz)
    profile.zones = sorted(outcome.zones if outcome else zones, key=lambda z: (z.core[1], z.core[0], z.risc.value))
    for summary in summaries:
        for risc, end in summary.ends.items():
            key = (summary.core, risc)
            stalls = {reason: cycles for reason, cycles in sorted(summary.stalls[risc].items())}
            profile.blocked[key] = stalls
            profile.busy[key] = summary.busy[risc] if summary.busy is not None \
                else end - summary.start_time - sum(stalls.values())
        if summary.trace is not None:
            profile.events.extend((summary.core, risc, name, start, end)
                                  for risc, name, start, end in summary.trace)
    profile.counters = counters
    profile.cbs = _cb_records(device, program)
    profile.l1_used_bytes = l1_used
    profile.l1_budget_bytes = device.spec.l1.usable_bytes
    device.free_program_cbs()
    return profile


def _run_kernels(device: Device, program: Program, done: simpy.Event,
                 live: dict[simpy.Process, KernelContext], processes: list[simpy.Process],
                 zones: list[KernelZone], split: bool) -> SplitOutcome | None:
    """Step SimPy until ``done`` (every kernel process finished) is processed, exactly as
    ``env.run(until=done)`` does, but reading SimPy's own signals instead of the text of the
    error ``run`` turns them into: :class:`~simpy.core.EmptySchedule` means every unfinished
    kernel waits on an event nothing will trigger (a deadlock), and the ``RuntimeError`` SimPy
    raises for a yielded non-event is blamed on the active process if its kernel had just made
    a blocking call (``yield`` written for ``yield from``). With ``split``, one attempt is made
    to finish in two processes (its merged outcome is returned); otherwise None."""
    env = device.env
    done.callbacks.append(simpy.core.StopSimulation.callback)
    try:
        if split:
            outcome = step_until_split(device, live, processes, zones)
            if outcome is not None:
                return outcome
        env.step_forever()
    except simpy.core.StopSimulation:
        return None
    except simpy.core.EmptySchedule:
        _reach_sync_points(device, live.values())
        raise DeadlockError(_deadlock_message(device, program, live.values())) from None
    except RuntimeError as exc:
        context = live.get(env.active_process)  # type: ignore[arg-type]
        error = context.yielded_error() if context is not None else None
        if error is None:
            raise
        raise error from exc


def _cb_records(device: Device, program: Program) -> list[CBRecord]:
    records = []
    for spec in program.cb_table():
        for xy in spec.cores:
            cb = device.core(xy).cbs[spec.config.index]
            s = cb.stats
            records.append(CBRecord(xy, spec.config.index, spec.config.name, cb.address,
                                    spec.config.page_size, spec.config.num_pages,
                                    s.producer.blocked_cycles, s.consumer.blocked_cycles,
                                    s.pages_pushed, s.pages_popped, s.max_occupancy,
                                    spec.config.globally_allocated))
    return records


def _reach_sync_points(device: Device, live: Collection[KernelContext]) -> None:
    """Let the clock reach the last sync point of the CBs' early waiters and the semaphores' early
    watchers and the last of the CBs' unscheduled publications (ttsim/cb.py), as their timeouts
    would have: with nothing left to happen, each waiter would have found its pages (its word)
    missing there and waited, each publication would have been made (applied here), and the
    deadlock is reported at that cycle."""
    times = [time for context in live for cb in context.core.cbs.values()
             for time in (*cb.sync_points(), cb.apply_all_unscheduled())]
    times += [time for context in live for time in context.core.sync_points()]  # semaphore watchers
    if times and max(times) > device.env._now:
        device.env._now = max(times)


def _deadlock_message(device: Device, program: Program, live: Collection[KernelContext]) -> str:
    lines = [f"deadlock in {program.op_code} at cycle {device.env.now:,.0f}: kernels still blocked:"]
    blocked_cores = set()
    for context in live:
        if context.blocked_on is not None:
            lines.append(f"  {context.where}: waiting in {context.blocked_on()}")
            blocked_cores.add(context.core.logical)
    lines.append("CB occupancy on those cores (pages pushed and not popped / pages):")
    for xy in sorted(blocked_cores, key=lambda c: (c[1], c[0])):
        core = device.core(xy)
        cbs = ", ".join(f"{cb.config.index}:{cb.name} {cb.occupancy()}/{cb.num_pages}"
                        for _, cb in sorted(core.cbs.items()))
        lines.append(f"  core {core.name}: {cbs}")
    return "\n".join(lines)
