"""Output files of the CLI: checked before any simulation, written whole or not at all.

Every output option (``--json``, ``--csv``, ``--trace``, ``compare --json``, ``sweep --out``,
``check --update``'s goldens) is checked up front by :func:`check_output_path`, so that a bad path
costs no simulation and never ends in a traceback after the results were printed. A path is
accepted when it is absent or an existing regular file, and its folder exists and lets us create
a file (probed by creating and removing one: permission bits alone say nothing for root or for
read-only mounts such as /proc).

Special files are refused, ``/dev/full`` and ``/dev/null`` included: files are written to a
temporary file in the same folder and renamed over the target (:func:`write_atomically`), and
renaming over a device node would replace it with a regular file; writing such a node in place
is not worth the exception. Failures are :class:`~ttsim.errors.TtsimError` naming the option and
the path (exit status 2).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from ttsim.errors import TtsimError


def _kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "a special file")


def _folder(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def check_output_path(option: str, path: Path | str) -> Path:
    """Check that ``path`` can be written as ``option``'s output; returns it as a Path.

    Raises TtsimError('<option> <path>: <reason>') for "", a directory, a special file, a file
    that is not writable, a missing folder or a folder where no file can be created.
    """
    text = os.fspath(path)
    if text in ("", "."):
        raise TtsimError(f"{option} {text!r}: expected a file path, not an empty path or the current folder")
    path = Path(text)
    where = f"{option} {text}"
    try:
        info = os.stat(path)
    except FileNotFoundError:
        info = None
    except (OSError, ValueError) as exc:
        raise TtsimError(f"{where}: cannot use this path: {getattr(exc, 'strerror', None) or exc}") from None
    if info is not None:
        if not stat.S_ISREG(info.st_mode):
            raise TtsimError(f"{where}: is {_kind(info.st_mode)}, not a regular file")
        if not os.access(path, os.W_OK):
            raise TtsimError(f"{where}: the file is not writable")
    folder = _folder(path)
    if not folder.is_dir():
        raise TtsimError(f"{where}: folder {folder} does not exist")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".probe")
    except OSError as exc:
        raise TtsimError(f"{where}: cannot create files in {folder}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)
    if info is not None:  # a regular file: the rename will need write access to it
        try:
            with open(path, "ab"):
                pass
        except OSError as exc:
            raise TtsimError(f"{where}: cannot write: {exc.strerror or exc}") from None
    return path


def write_atomically(option: str, path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder, then rename.

    The target is checked again just before the rename (it may have changed since
    :func:`check_output_path`), so a special file is never replaced.
    """
    folder = _folder(path)
    where = f"{option} {path}"
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise TtsimError(f"{where}: cannot create files in {folder}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual mode
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None and not stat.S_ISREG(mode):
            raise TtsimError(f"{where}: is {_kind(mode)}, not a regular file")
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise TtsimError(f"{where}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_output_paths(outputs: list[tuple[str, Path | None]], inputs: tuple[Path, ...] = ()) -> None:
    """:func:`check_output_path` for every given (option, path) pair (None: option not given),
    refusing two options on one file and an output that is one of the input files."""
    seen: dict[str, str] = {}
    for option, path in outputs:
        if path is None:
            continue
        check_output_path(option, path)
        real = os.path.realpath(path)
        if real in seen:
            raise TtsimError(f"{option} {path}: the same file as {seen[real]}")
        seen[real] = f"{option} {path}"
    for source in inputs:
        try:
            real = os.path.realpath(source)
        except (OSError, ValueError):
            continue
        if real in seen:
            raise TtsimError(f"{seen[real]}: is the input config {source}")
