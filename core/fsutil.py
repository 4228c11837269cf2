"""File helpers: atomic writes (temporary file beside the target, then rename) and guarded reads.

Every file a user points us at goes through `check_regular_file` or `read_bytes_bounded`: a FIFO,
a device (/dev/zero), a socket or a folder is refused before anything blocks or fills memory, and
a size cap keeps a huge file from being read whole. Errors are the caller's `KwsError` subclass and
name the file and what it was supposed to be.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from core.errors import DataError, KwsError

MiB = 1 << 20


def fsync_path(path: str | os.PathLike) -> None:
    """fsync a file or a folder by name (folders: so a rename or create inside it is durable)."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if os.path.isdir(path) else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):  # some filesystems cannot sync folders
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is fsynced and replaces `path` (folder
    fsynced too), on error it vanishes. The temporary is named `.NAME.<pid>-<hex>.tmp`, so a
    later run can tell a dead writer's leftover (core.outputs.clean_stale) from a live one's."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # umask applies, as for open()
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_path(target.parent)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def human_size(n: int) -> str:
    """'512 bytes', '3.2 KiB', '1.0 GiB'."""
    if n < 1024:
        return f"{n} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if n < 1024 or unit == "TiB":
            break
    return f"{n:.1f} {unit}"


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _check_stat(p: Path, st: os.stat_result, what: str, error: type[KwsError], max_bytes: int | None) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{p}: {what} must be a regular file, this is {_kind(st.st_mode)}")
    if max_bytes is not None and st.st_size > max_bytes:
        raise error(f"{p}: {what} is {human_size(st.st_size)}, more than the {human_size(max_bytes)} allowed")


def check_regular_file(path: str | os.PathLike, what: str, *, error: type[KwsError] = DataError,
                       max_bytes: int | None = None) -> Path:
    """`path` as a Path if it names an existing regular file of at most `max_bytes` bytes; else `error`.

    Only stats the file (follows symlinks), so it never blocks on a FIFO or reads a device.
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise error(f"{p}: no such {what}") from None
    except (OSError, ValueError) as e:  # ValueError: embedded NUL byte in the name
        raise error(f"{p}: cannot read {what}: {getattr(e, 'strerror', None) or e}") from None
    _check_stat(p, st, what, error, max_bytes)
    return p


def read_bytes_bounded(path: str | os.PathLike, what: str, *, error: type[KwsError] = DataError,
                       max_bytes: int) -> bytes:
    """The bytes of a regular file of at most `max_bytes` bytes, else `error` naming the file.

    Opens without blocking (O_NONBLOCK: a FIFO with no writer would otherwise hang the open), checks
    the opened file's type and size, and reads at most max_bytes + 1 bytes, so a file that grows
    while we read is refused rather than read whole.
    """
    p = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(p, flags)
    except FileNotFoundError:
        raise error(f"{p}: no such {what}") from None
    except (OSError, ValueError) as e:
        raise error(f"{p}: cannot read {what}: {getattr(e, 'strerror', None) or e}") from None
    try:
        _check_stat(p, os.fstat(fd), what, error, max_bytes)
        chunks = []
        left = max_bytes + 1
        while left > 0:
            b = os.read(fd, min(left, 4 * MiB))
            if not b:
                break
            chunks.append(b)
            left -= len(b)
    except OSError as e:
        raise error(f"{p}: cannot read {what}: {e.strerror or e}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise error(f"{p}: {what} is more than the {human_size(max_bytes)} allowed")
    return data


def read_text_bounded(path: str | os.PathLike, what: str, *, error: type[KwsError] = DataError,
                      max_bytes: int) -> str:
    """`read_bytes_bounded` decoded as UTF-8 (a BOM is dropped); undecodable text is `error`."""
    data = read_bytes_bounded(path, what, error=error, max_bytes=max_bytes)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise error(f"{Path(path)}: {what} is not UTF-8 text (byte {e.start})") from None
