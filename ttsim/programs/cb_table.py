"""Building a program's CB table: indices in creation order, zero-page CBs skipped, and the page
counts a config overrides by CB name (``<program>.cb.<name>.pages``)."""

from __future__ import annotations

from ttsim.cb import CBConfig
from ttsim.device.device import L1Buffer
from ttsim.errors import ConfigurationError
from ttsim.formats import DataFormat
from ttsim.host import Program

XY = tuple[int, int]


class CBTableBuilder:
    """Creates the CBs of one program on ``cores``, applying page-count overrides."""

    def __init__(self, program: Program, cores: list[XY], overrides: dict[str, int], key: str) -> None:
        self.program = program
        self.cores = cores
        self.overrides = dict(overrides)
        self.key = key
        self.index: dict[str, int] = {}
        self._next = 0

    def add(self, name: str, page_size: int, pages: int, fmt: DataFormat,
            buffer: L1Buffer | None = None) -> None:
        """Create CB ``name`` (unless it has no pages); ``buffer`` makes it alias that buffer."""
        if name in self.overrides:
            if pages <= 0:
                raise ConfigurationError(
                    f"{self.key}.cb.{name}: CB '{name}' is not used in this configuration")
            if buffer is not None:
                raise ConfigurationError(
                    f"{self.key}.cb.{name}: CB '{name}' aliases the tensor buffer '{buffer.name}'; its "
                    f"size is the tensor's and cannot be overridden")
            pages = self.overrides.pop(name)
        if pages <= 0:
            return
        config = CBConfig(self._next, name, page_size, pages, fmt, buffer is not None)
        self.index[name] = self.program.create_circular_buffer(self.cores, config, buffer)
        self._next += 1

    def pages(self, name: str) -> int:
        """Page count CB ``name`` was created with (overrides applied); 0 if it was not created."""
        index = self.index.get(name)
        if index is None:
            return 0
        return next(spec.config.num_pages for spec in self.program.cbs if spec.config.index == index)

    def finish(self) -> dict[str, int]:
        """CB indices by name; rejects overrides that named no CB of this program."""
        if self.overrides:
            unknown = ", ".join(sorted(self.overrides))
            raise ConfigurationError(
                f"{self.key}.cb: no CB named {unknown} in this program; its CBs are "
                f"{', '.join(self.index)}")
        return self.index

    def request(self, kernel: str, name: str, pages: int, call: str) -> None:
        """Declare a request a kernel will make (checked against the CB before launch)."""
        if name in self.index:
            self.program.declare_cb_request(kernel, self.index[name], pages, call)
