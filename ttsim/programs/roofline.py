"""A lower bound on the DEVICE KERNEL DURATION of a depthwise conv op (and of its halo op), from
the device preset alone: the minimum work the op needs on the core grid a program chose, per
engine, in cycles. docs/roofline.md gives the formulas and what they assume is unavoidable.

Per engine, for the busiest core (the most real outputs x channels):

* unpack: every output datum needs its ``kh * kw`` input datums in SrcA (an element-wise
  product uses a SrcA datum for one output only), each read from L1 as the bfloat16 the op's
  input is, at one unpacker's rate (weights can stay in SrcB: not counted). A program that
  quantizes the activations to bfloat8_b first changes the op's precision and is not bounded by
  this term (docs/roofline.md);
* fpu: one ELWMUL pass per fidelity phase per tap per 1024 output datums (the fewest FPU cycles
  per useful multiply: a matmul against diagonal weights wastes 31 of its 32 columns);
* sfpu: the activation's SFPU cost per 1024 output datums (relu and relu6 are free in the packer);
* pack: the output bytes at the packer's rate;
* weights: the compact weights (one value per tap and channel) over the core's NoC NIU, and all
  of them out of the DRAM banks.

The bound is the slowest engine (the engines run concurrently). The launch skew over the grid
is not added: the busiest core need not be the last one launched. The halo op's bound is the
busiest core's halo buffer bytes written through both NoCs' NIUs.
"""

from __future__ import annotations

from dataclasses import dataclass

from ttsim.config import ConvSpec
from ttsim.device.spec import DeviceSpec
from ttsim.formats import TILE_ELEMENTS, DataFormat, tile_size_bytes
from ttsim.programs.parallel import ParallelConfig
from ttsim.programs.sliding_window import ConvGeometry, HaloCoreConfig

FIDELITY_PHASES = {"LoFi": 1, "HiFi2": 2, "HiFi3": 3, "HiFi4": 4}
PACKER_ACTIVATIONS = ("none", "relu", "relu6")
"""Activations the packer's ReLU stage applies at no cost (none needs nothing)."""


@dataclass(frozen=True)
class Roofline:
    """Lower bound of one op on one grid: cycles per engine; the bound is the largest."""

    engines: dict[str, float]

    @property
    def binding(self) -> str:
        """The engine that sets the bound."""
        return max(self.engines, key=self.engines.get)

    @property
    def bound_cycles(self) -> float:
        return max(self.engines.values())

    def achieved(self, duration_cycles: float) -> float:
        """Fraction of the roofline a simulated duration reaches (1.0 = at the bound)."""
        return self.bound_cycles / duration_cycles if duration_cycles else 0.0

    def as_dict(self, clock_mhz: float) -> dict:
        return {"bound_cycles": self.bound_cycles, "bound_ns": self.bound_cycles * 1000.0 / clock_mhz,
                "binding_engine": self.binding, "engine_cycles": dict(self.engines)}


def _busiest(pc: ParallelConfig, halo: list[HaloCoreConfig], channels: int) -> tuple[int, int]:
    """(output sticks, real channels) of the core with the most output datums."""
    real_c = [min(pc.channels_per_core, channels - j * pc.channels_per_core) for j in range(pc.num_cores_c)]
    best = max(range(pc.num_cores_nhw), key=lambda i: halo[i].num_outputs)
    return halo[best].num_outputs, max(real_c)


def conv_roofline(spec: ConvSpec, geom: ConvGeometry, pc: ParallelConfig, halo: list[HaloCoreConfig],
                  device: DeviceSpec) -> Roofline:
    """The depthwise conv op's lower bound on grid ``pc`` (formulas in the module docstring)."""
    c = device.compute
    outputs, channels = _busiest(pc, halo, geom.channels)
    taps = geom.kh * geom.kw
    out_datums = outputs * channels
    bf16 = tile_size_bytes(DataFormat.BFLOAT16) / TILE_ELEMENTS
    unpack_bytes = taps * out_datums * bf16
    tiles = out_datums / TILE_ELEMENTS
    sfpu = 0.0 if spec.activation in PACKER_ACTIVATIONS else tiles * c.sfpu_tile_cycles.value[spec.activation]
    out_bytes = out_datums * tile_size_bytes(DataFormat(spec.dtype)) / TILE_ELEMENTS
    weight_bytes = taps * tile_size_bytes(DataFormat(spec.weights_dtype)) / TILE_ELEMENTS
    noc, dram = device.noc, device.dram
    engines = {
        "unpack": unpack_bytes / c.unpack_bytes_per_cycle.value,
        "fpu": taps * tiles * c.eltwise_mul_tile_cycles_per_phase.value * FIDELITY_PHASES[spec.math_fidelity],
        "sfpu": sfpu,
        "pack": out_bytes / c.pack_bytes_per_cycle.value,
        "weights": max(weight_bytes * channels / noc.niu_bytes_per_cycle.value,
                       weight_bytes * geom.channels / (dram.num_banks.value * dram.bank_bytes_per_cycle.value)),
    }
    return Roofline(engines)


def halo_roofline(pc: ParallelConfig, halo: list[HaloCoreConfig], device: DeviceSpec) -> Roofline:
    """The halo op's lower bound: the busiest core's halo buffer written through both NoCs."""
    longest = max(h.length for h in halo)
    noc = device.noc
    rate = noc.num_nocs.value * noc.niu_bytes_per_cycle.value
    return Roofline({"noc": longest * pc.channels_per_core * 2 / rate})
