"""Bounded reading of the YAML files a user hands ttsim (op configs, sweep and suite files, device
preset files): a regular file of bounded size, parsed by PyYAML's SafeLoader with a nesting-depth
limit, an integer-length limit and a bound on the values once aliases are expanded, every problem a
one-line :class:`~ttsim.errors.ConfigurationError` naming the file.

Below both the config models and the device layer, so that a preset file of one's own is read
with the same limits as a config (a hostile or mistaken file never hangs or exhausts the loader).
"""

from __future__ import annotations

import os
import stat
from typing import Any

import yaml

from ttsim.errors import ConfigurationError

MAX_CONFIG_BYTES = 1 << 20
"""Largest YAML file read (bytes); the seed configs are under 1 KiB, a device preset ~15 KiB."""
MAX_YAML_DEPTH = 32
"""Deepest nesting of YAML collections (and of dotted ``--set`` keys); a config nests 4 deep."""
MAX_YAML_NODES = 10_000
"""Most values (scalars and collections) in a YAML document with every alias expanded."""
MAX_INT_DIGITS = 100
"""Longest integer literal the YAML loader converts (characters)."""


def read_config_text(path: str, label: str, kind: str = "config file") -> str:
    """The text of a YAML file (``kind`` names it in errors): a regular file of at most
    MAX_CONFIG_BYTES, UTF-8.

    The file is checked with ``os.stat`` before it is opened (a FIFO or a device never blocks
    the loader) and opened with O_NONBLOCK in case it was swapped since; only MAX_CONFIG_BYTES
    + 1 bytes are ever read.
    """
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigurationError(f"{label}: not a regular file ({_file_kind(info.st_mode)})")
        if info.st_size > MAX_CONFIG_BYTES:
            raise ConfigurationError(
                f"{label}: {kind} of {info.st_size:,} B exceeds the limit of {MAX_CONFIG_BYTES:,} B")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ConfigurationError(f"{label}: not a regular file")
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigurationError(f"{label}: {kind} not found") from None
    except OSError as exc:
        raise ConfigurationError(f"{label}: cannot read {kind}: {exc.strerror or exc}") from None
    except ValueError as exc:  # e.g. an embedded NUL byte in the path
        raise ConfigurationError(f"{label}: cannot read {kind}: {exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigurationError(f"{label}: {kind} exceeds the limit of {MAX_CONFIG_BYTES:,} B")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"{label}: cannot read {kind}: not UTF-8 ({exc.reason} at byte {exc.start})") from None


def parse_config_text(text: str, label: str) -> Any:
    """Parse config YAML with bounded depth, integer length and (alias-expanded) size."""
    data = load_yaml(text, label)
    check_bounded(data, label)
    return data


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "a special file")


class _YamlLimitError(yaml.MarkedYAMLError):
    """A YAML document beyond one of the loader's limits (not a syntax error)."""


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader with a nesting-depth limit and an integer-length limit.

    The composer recurses once per nesting level, so the depth is checked there, before Python's
    recursion limit; integers longer than MAX_INT_DIGITS are refused before ``int()`` sees them.
    Aliases stay allowed: their expanded size is bounded by :func:`check_bounded`.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _YamlLimitError(
                    None, None, f"nesting deeper than {MAX_YAML_DEPTH} levels", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        if len(node.value) > MAX_INT_DIGITS:
            raise _YamlLimitError(
                None, None, f"integer of {len(node.value):,} characters exceeds the limit of {MAX_INT_DIGITS}",
                node.start_mark)
        return super().construct_yaml_int(node)


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)


def load_yaml(text: str, label: str) -> Any:
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{label}: {_describe_yaml_error(exc)}") from None
    except (ValueError, RecursionError) as exc:  # PyYAML's own conversions (e.g. a huge float/timestamp)
        raise ConfigurationError(f"{label}: YAML value error: {short_text(str(exc), 120)}") from None


def check_bounded(data: Any, label: str) -> None:
    """Refuse raw config data nested deeper than MAX_YAML_DEPTH or with more than MAX_YAML_NODES
    values once aliases are expanded; iterative and stops at the limit, so it is cheap on bombs."""
    stack, nodes = [(data, 1)], 1
    while stack:
        value, depth = stack.pop()
        if not isinstance(value, (dict, list, tuple)):
            continue
        if depth > MAX_YAML_DEPTH:
            raise ConfigurationError(f"{label}: nested deeper than {MAX_YAML_DEPTH} levels")
        nodes += len(value) * (1 + isinstance(value, dict))  # counted before they are listed
        if nodes > MAX_YAML_NODES:
            raise ConfigurationError(
                f"{label}: more than {MAX_YAML_NODES:,} values (aliases expanded); a config needs a few dozen, "
                "a device preset about a thousand")
        items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        stack.extend((item, depth + 1) for item in items)


def _describe_yaml_error(exc: yaml.YAMLError) -> str:
    """One line for a YAML error: 'line L, column C: YAML syntax error: problem'."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    kind = "YAML limit" if isinstance(exc, _YamlLimitError) else "YAML syntax error"
    return f"{where}{kind}: {problem}"


def short_text(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, unprintable characters as '?' (labels, keys)."""
    text = "".join(ch if ch.isprintable() else "?" for ch in text[: limit + 1])
    return text if len(text) <= limit else text[: limit - 3] + "..."
