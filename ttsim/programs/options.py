"""The config sections of the built-in programs (``classic:``, ``pool:``, ``depthwise:``): their
options models, apart from the builders.

Validating any config needs every program's section model, while a run builds only the programs
it runs: here the models cost no program's kernels or host module. The registry knows each
built-in program's model from this module (``registry.BUILTIN_PROGRAMS``) until the program's
own module is imported.
"""

# No ``from __future__ import annotations``: pydantic would then compile and evaluate every
# field's annotation string when each model class is built, a share of every run's start-up.
from typing import Annotated, Any

from pydantic import Field, StrictBool, model_validator
from pydantic_core import PydanticCustomError

from ttsim.config import FIELD_ERROR, NonNegativeInt, PositiveInt, ProgramOptions


class ClassicOptions(ProgramOptions):
    """The config's ``classic:`` section: CB and grid overrides, and the block-config overrides
    of tt-metal's ``Conv2dConfig``."""

    act_block_h_override: NonNegativeInt = Field(
        default=0, description="Act block height in sticks (a multiple of 32); 0 = whole shard.")
    enable_act_double_buffer: StrictBool = Field(
        default=False, description="Two act blocks in flight (ACT CB x2).")
    enable_weights_double_buffer: StrictBool = Field(
        default=False, description="Two weight blocks in flight (WEIGHTS CB x2).")
    split_reader: StrictBool | None = Field(
        default=None, description="Force the HS split reader on/off; null = tt-metal's heuristic.")
    out_subblock: tuple[PositiveInt, PositiveInt] | None = Field(
        default=None, description="Output subblock [h, w] in tiles; null = tt-metal's heuristic.")
    full_inner_dim: StrictBool = Field(
        default=False, description="Block sharded: the act block spans the whole window (kh kernel rows, "
                                   "act_block_w = C_core*kw*kh) instead of one kernel row.")

    @model_validator(mode="after")
    def _check_override(self) -> "ClassicOptions":
        if self.act_block_h_override % 32:
            raise PydanticCustomError(
                FIELD_ERROR, "act_block_h_override must be a multiple of 32, got {value}",
                {"value": self.act_block_h_override, "field": "act_block_h_override"})
        return self


class PoolOptions(ProgramOptions):
    """The config's ``pool:`` section: the CB and grid overrides every program accepts, and the
    branch's TODO fixes, each usable alone (docs/depthwise.md, the ablation)."""

    sfpu_valid_row: StrictBool = Field(
        default=False, description="Run the SFPU activation on faces 0-1 only (VectorMode::R), where the one "
                                   "valid output row lives, instead of the whole tile.")
    packer_relu: StrictBool = Field(
        default=False, description="relu / relu6 in the packer's ReLU stage instead of on the SFPU.")
    dst_batch: Annotated[int, Field(strict=True, ge=1)] = Field(
        default=1, description="Output sticks per phase: the products of this many sticks fill DST 8 tiles "
                               "at a time, and the multiply / reduce configuration switches once per batch.")
    fused_mul_reduce: StrictBool = Field(
        default=False, description="Multiply by the weights inside the reduce (custom LLK "
                                   "mul_reduce_tile_math): no products CB round trip.")
    minimal_reconfig: StrictBool = Field(
        default=False, description="Drop per-stick reconfiguration that does not change anything (data "
                                   "format reconfigs between bfloat16 CBs, per-stick uninits).")

    def kernel_options(self) -> dict[str, Any]:
        """The switches as the compute kernel's compile-time argument."""
        return {name: getattr(self, name) for name in (
            "sfpu_valid_row", "packer_relu", "dst_batch", "fused_mul_reduce", "minimal_reconfig")}


class DepthwiseOptions(ProgramOptions):
    """The config's ``depthwise:`` section: the CB and grid overrides every program accepts, and
    the program's design switches (docs/depthwise.md)."""

    split_reader: StrictBool = Field(
        default=True, description="Gather the taps with two readers (BRISC on NoC0, NCRISC on NoC1), "
                                  "alternate taps each; false: BRISC gathers every tap.")
    packer_relu: StrictBool = Field(
        default=True, description="relu / relu6 in the packer's ReLU stage (free); false: on the SFPU.")
    sfpu_on_pack: StrictBool = Field(
        default=True, description="Issue silu / gelu from the pack thread (silu_tile_pack), overlapping the "
                                  "next block's multiplies; false: from the math thread (silu_tile).")
    srcb_reuse: StrictBool = Field(
        default=False, description="Custom LLK mul_tiles_srcb_held: unpack a tap's weights into SrcB once per "
                                   "DST chunk and pick each block's rows with the SrcB row counter "
                                   "(C_core <= 896); false: tt-metal's mul_tiles unpacks both operands.")
