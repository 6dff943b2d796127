"""Op configs: the validated description of one depthwise conv2d run, loaded from YAML.

A config names the op, the device preset, the input-data seed, the conv itself (:class:`ConvSpec`)
and, optionally, the measured device-kernel duration the simulation is compared against. Scalars
are strict (a quoted ``"3"`` is not an int, ``yes`` is not a count) so that typos in hand-written
YAML fail loudly; YAML lists become tuples. :func:`load_config` turns every problem into one line
of a :class:`~ttsim.errors.ConfigurationError` that names the file, the dotted key and the value.
"""

# No ``from __future__ import annotations``: pydantic would then compile and evaluate every
# field's annotation string when each model class is built, a share of every run's start-up.
import copy
import os
import reprlib
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator
from pydantic_core import PydanticCustomError

from ttsim.bounded_yaml import (MAX_YAML_DEPTH, check_bounded, load_yaml, parse_config_text, read_config_text,
                                short_text)
from ttsim.errors import ConfigurationError

MAX_INT = 2**32 - 1
"""Largest integer a config field takes: tt-metal's tensor shapes and runtime args are uint32_t
(tt_metal/api/tt-metalium/shape.hpp). What a device can hold is checked once its preset is
loaded (:mod:`ttsim.limits`); this bound keeps the arithmetic before that check small."""
MAX_SET_BYTES = 1 << 16
"""Largest ``--set KEY=VALUE`` text (bytes)."""
MAX_NAME = 200
"""Longest op name or device name (characters)."""
MAX_ERROR_LINES = 10
"""Most problems a ConfigurationError lists, one line each."""

PositiveInt = Annotated[int, Field(strict=True, ge=1, le=MAX_INT)]
NonNegativeInt = Annotated[int, Field(strict=True, ge=0, le=MAX_INT)]

Activation = Literal["none", "relu", "relu6", "silu", "gelu"]
DataFormat = Literal["bfloat16", "bfloat8_b"]
MemoryLayout = Literal["height_sharded", "block_sharded", "width_sharded"]
MathFidelity = Literal["LoFi", "HiFi2", "HiFi3", "HiFi4"]
OutputLayout = Literal["tile", "row_major"]

FIELD_ERROR = "conv_shape"
"""Error type of the model validators: its message is shown as is, at ``loc + ctx['field']``."""


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output extent (pixels) of one spatial dim, as in PyTorch and tt-metal (no ceil mode)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


class ConvSpec(BaseModel):
    """A depthwise 2D convolution (groups = in channels = out channels) and its device options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch: PositiveInt = Field(description="Images per batch, N (count).")
    input_height: PositiveInt = Field(description="Input image height, H (pixels).")
    input_width: PositiveInt = Field(description="Input image width, W (pixels).")
    channels: PositiveInt = Field(description="Channels C = groups = output channels (count).")
    kernel: tuple[PositiveInt, PositiveInt] = Field(description="Kernel (kh, kw) (pixels).")
    stride: tuple[PositiveInt, PositiveInt] = Field(description="Stride (sh, sw) (pixels).")
    dilation: tuple[PositiveInt, PositiveInt] = Field(description="Dilation (dh, dw) (pixels).")
    padding: tuple[NonNegativeInt, NonNegativeInt] = Field(
        description="Zero padding (ph, pw) on each side of H and W (pixels)."
    )
    bias: Annotated[bool, Field(strict=True)] = Field(
        description="Whether a per-channel bias is added."
    )
    activation: Activation = Field(description="Activation applied after the bias.")
    dtype: DataFormat = Field(
        description="Output data format; input activations are always bfloat16 row-major sticks."
    )
    weights_dtype: DataFormat = Field(description="Data format of the weights and bias in DRAM.")
    memory_layout: MemoryLayout = Field(description="Sharding of activations across the core grid.")
    math_fidelity: MathFidelity = Field(
        description="FPU math fidelity (number of multiplier passes)."
    )
    output_layout: OutputLayout = Field(default="tile", description="Layout of the output tensor.")

    @model_validator(mode="after")
    def _check_shape(self) -> "ConvSpec":
        """Reject convs with an empty output and block-float outputs that are not tiled."""
        dims = (("height", self.input_height, 0), ("width", self.input_width, 1))
        for dim, size, i in dims:
            k, s, p, d = self.kernel[i], self.stride[i], self.padding[i], self.dilation[i]
            if conv_output_size(size, k, s, p, d) < 1:
                extent = d * (k - 1) + 1
                raise PydanticCustomError(
                    FIELD_ERROR,
                    f"dilated kernel {dim} {extent} (kernel {k}, dilation {d}) exceeds the padded "
                    f"input {dim} {size + 2 * p} (input_{dim} {size} + 2 * padding {p}); "
                    f"the output {dim} would be 0",
                    {"field": "kernel"},
                )
        if self.dtype == "bfloat8_b" and self.output_layout != "tile":
            raise PydanticCustomError(
                FIELD_ERROR,
                f"dtype bfloat8_b requires output_layout 'tile', got {self.output_layout!r}",
                {"field": "output_layout"},
            )
        return self


class Measured(BaseModel):
    """Hardware measurements of the op, used only to compare against the simulation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    classic_device_kernel_duration_ns: (
        Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)] | None
    ) = Field(
        default=None,
        description="Tracy DEVICE KERNEL DURATION of the classic (matmul-path) conv (ns).",
    )


class CBOverride(BaseModel):
    """A circular buffer's size set by hand (kernel authors' what-ifs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pages: PositiveInt = Field(description="Page count of the CB (page size stays the program's).")


class ProgramOptions(BaseModel):
    """Overrides every program accepts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cb: dict[str, CBOverride] = Field(
        default_factory=dict, description="Page counts by CB name, e.g. {in_cb: {pages: 4}}.")
    core_grid: tuple[PositiveInt, PositiveInt] | None = Field(
        default=None, description="Largest core grid [x, y] the program may use (<= the device's).")

    def cb_pages(self) -> dict[str, int]:
        """The page counts set by hand, by CB name."""
        return {name: cb.pages for name, cb in self.cb.items()}


class OpConfig(BaseModel):
    """One op to simulate: the conv, the device it runs on and its input data.

    Besides these keys a config has one optional section per registered program (``classic:``,
    ``pool:``, ...), validated by that program's options model: :func:`load_config` validates
    with :func:`config_model`, this class extended by a field per program. Read a section with
    :meth:`options`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    """``defer_build``: configs are validated by :func:`config_model`'s subclass, never by this
    class, so its validator is not built at import (the subclass builds its own when first used)."""

    name: Annotated[str, Field(strict=True, min_length=1, max_length=MAX_NAME)] = Field(
        description="Op name (free text)."
    )
    device: Annotated[str, Field(strict=True, min_length=1, max_length=MAX_NAME)] = Field(
        default="wormhole_b0", description="Device preset name."
    )
    seed: NonNegativeInt = Field(default=0, description="Seed of the random input data.")
    count: PositiveInt = Field(
        default=1, description="Times the layer occurs in its model (a suite's totals weigh it by this).")
    source: Annotated[str, Field(strict=True, min_length=3)] | None = Field(
        default=None, description="Where the layer's parameters come from (public file path, commit).")
    conv: ConvSpec = Field(description="The convolution.")
    measured: Measured = Field(default=Measured(), description="Hardware measurements, if any.")

    def options(self, program: str) -> ProgramOptions:
        """The validated ``program:`` section (the program's defaults when the config has none)."""
        import ttsim.programs.registry as registry

        section = getattr(self, program, None)
        return section if isinstance(section, ProgramOptions) else registry.options_model(program)()


_MODELS: dict[tuple, type[OpConfig]] = {}


def config_model() -> type[OpConfig]:
    """:class:`OpConfig` with one optional section per registered program, each validated by the
    program's options model (so unknown keys in ``classic:`` fail as ``unknown key 'classic.x'``)."""
    import ttsim.programs.registry as registry

    models = registry.options_models()
    key = tuple(models.items())
    if key not in _MODELS:
        fields: dict[str, Any] = {
            name: (model, Field(default_factory=model, description=f"Overrides for the {name} program."))
            for name, model in models.items()}
        _MODELS[key] = create_model("OpConfig", __base__=OpConfig, __module__=__name__, **fields)
    return _MODELS[key]


def load_config(source: str | os.PathLike[str] | dict[str, Any], overrides: list[str] | None = None,
                label: str | None = None) -> OpConfig:
    """Load and validate an op config from a YAML file path or an already-parsed mapping.

    ``overrides`` are ``KEY=VALUE`` strings with dotted keys into the config (``--set``), VALUE
    parsed as YAML (``conv.kernel=[5,5]``, ``pool.cb.in_cb.pages=4``); they are validated like
    the file. Raises ConfigurationError with one line per problem, each prefixed by the file
    name (or ``label``, by default ``<dict>``, for a mapping); no yaml or pydantic exception escapes.
    """
    if isinstance(source, dict):
        label = short_text(label, 200) if isinstance(label, str) else "<dict>"
        check_bounded(source, label)
        data = copy.deepcopy(source)
    elif isinstance(source, (str, os.PathLike)) and isinstance(os.fspath(source), str):
        path = os.fspath(source)
        label = short_text(path, 200)
        data = parse_config_text(read_config_text(path, label), label)
    else:
        raise ConfigurationError(
            f"config: expected a path (str or os.PathLike) or a mapping, got {type(source).__name__}")
    if not isinstance(overrides, (list, tuple, type(None))) or not all(
            isinstance(o, str) for o in overrides or []):
        raise ConfigurationError(f"{label}: overrides: expected a list of 'KEY=VALUE' strings")
    if not isinstance(data, dict):
        got = "an empty document" if data is None else f"a {type(data).__name__}"
        raise ConfigurationError(f"{label}: top level must be a mapping of keys, got {got}")
    for override in overrides or []:
        _apply_override(data, override, label)
    try:
        return config_model().model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        lines = [f"{label}: {_describe(err)}" for err in errors[:MAX_ERROR_LINES]]
        if len(errors) > MAX_ERROR_LINES:
            lines.append(f"{label}: ... and {len(errors) - MAX_ERROR_LINES} more problems")
        raise ConfigurationError("\n".join(lines)) from None


def _apply_override(data: dict[str, Any], override: str, label: str) -> None:
    """Set ``a.b.c=VALUE`` in the raw config mapping (creating mappings on the way)."""
    if len(override) > MAX_SET_BYTES:
        raise ConfigurationError(
            f"{label}: --set {_short_repr(override)}: longer than {MAX_SET_BYTES:,} characters")
    key, sep, text = override.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise ConfigurationError(f"{label}: --set {_short_repr(override)}: expected KEY=VALUE with a dotted KEY")
    key = short_text(key, 80)
    if len(parts) > MAX_YAML_DEPTH:
        raise ConfigurationError(f"{label}: --set {key}: more than {MAX_YAML_DEPTH} dotted parts")
    _check_key(parts, label)
    value = load_yaml(text, f"{label}: --set {key}") if text.strip() else None
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigurationError(f"{label}: --set {key}: '{'.'.join(parts[:i + 1])}' is not a mapping")
        node = child
    node[parts[-1]] = value
    check_bounded(data, label)


def _submodel(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The config section a field holds (or None for a value), and whether it is a mapping of
    free names to sections (``cb: {<name>: {...}}``)."""
    if get_origin(annotation) is dict:
        value = get_args(annotation)[1]
        return (value if isinstance(value, type) and issubclass(value, BaseModel) else None), True
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate, False
    return None, False


def _check_key(parts: list[str], label: str) -> None:
    """Reject a ``--set`` key the config schema does not have, with the message a config file
    with that key gets (:func:`_unknown_key`)."""
    section: type[BaseModel] | None = config_model()
    i = 0
    while section is not None and i < len(parts):
        if parts[i] not in section.model_fields:
            raise ConfigurationError(f"{label}: {_unknown_key(parts[:i + 1])}")
        section, free_names = _submodel(section.model_fields[parts[i]].annotation)
        i += 2 if free_names else 1  # a free name (a CB's) is checked by the program that has it


def _section_at(parts: list[str]) -> type[BaseModel] | None:
    """The config section at a dotted path of known keys (free names skipped), or None."""
    section: type[BaseModel] | None = config_model()
    i = 0
    while section is not None and i < len(parts):
        field = section.model_fields.get(parts[i])
        if field is None:
            return None
        section, free_names = _submodel(field.annotation)
        i += 2 if free_names else 1
    return section if i == len(parts) else None


def _unknown_key(parts: list[str]) -> str:
    """'unknown key 'a.b'' and the closest known key of that section (difflib), or its keys when
    none is close."""
    import difflib  # only a mistyped key needs it: not imported on every run

    message = f"unknown key {'.'.join(parts)!r}"
    section = _section_at(parts[:-1])
    if section is None:
        return message
    fields = list(section.model_fields)
    close = difflib.get_close_matches(parts[-1], fields, n=1)
    if close:
        return f"{message} (did you mean {'.'.join([*parts[:-1], close[0]])!r}?)"
    where = f" of {'.'.join(parts[:-1])}" if len(parts) > 1 else ""
    return f"{message} (known keys{where}: {', '.join(fields)})"






def _describe(err: Any) -> str:
    """One line for a pydantic error: dotted key path, what is wrong and the offending value."""
    loc = list(err["loc"])
    ctx = err.get("ctx") or {}
    if err["type"] == FIELD_ERROR:
        loc.append(ctx["field"])
        return f"{_dotted(loc)}: {err['msg']}"
    if err["type"] == "extra_forbidden":
        if all(isinstance(part, str) for part in loc):
            return _unknown_key(loc)
        return f"unknown key {_dotted(loc)!r}"
    if err["type"] == "missing" and isinstance(loc[-1], int):
        return f"{_dotted(loc[:-1])}: expected a list of 2 values [height, width]"
    if err["type"] == "missing":
        return f"{_dotted(loc)}: missing required key"
    if err["type"] in ("tuple_type", "too_long"):
        got = _short_repr(err["input"])
        return f"{_dotted(loc)}: expected a list of 2 values [height, width] (got {got})"
    return f"{_dotted(loc)}: {err['msg']} (got {_short_repr(err['input'])})"


def _dotted(loc: list[Any]) -> str:
    """Render a pydantic location as 'conv.kernel[0]'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            part = short_text(str(part), 60)
            out += f".{part}" if out else part
    return out or "<top level>"


class _BoundedRepr(reprlib.Repr):
    """reprlib with integers bounded before they are formatted (repr of a huge int is slow or
    raises) and every container cut after a few items and levels."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.maxstring = self.maxother = self.maxlong = limit
        self.maxlevel = 3

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 200:
            return f"<int of ~{int(x.bit_length() * 0.30103) + 1} digits>"
        return super().repr_int(x, level)


def _short_repr(value: Any, limit: int = 60) -> str:
    """A repr() of a bad value built from a bounded representation (never the whole value) and
    cut to ``limit`` characters, so that an error stays one readable line."""
    text = _BoundedRepr(limit).repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
