"""Output sets: a command's output files replace the previous ones as one unit, every file fsynced.

    with output_set(folder, ["training.npz", "validation.npz", "testing.npz"]) as out:
        save_dataset(out.path("training.npz"), train)      # written into a staging folder
        ...
    # now every file is in `folder`; a kill at any moment leaves the complete old or the complete new set

How (a small redo journal inside `folder`):
  1. files are written into `folder/.kws-set.new-<pid>-<hex>/`; on success each file, a list of the members
     not written this time (to delete) and the staging folder are fsynced;
  2. the staging folder is renamed to `folder/.kws-set.commit` and `folder` fsynced: the commit point;
  3. each file is renamed into `folder`, the old members not written are deleted, `folder` is fsynced
     and the commit folder removed.
A kill before 2 leaves the old set (and a dead staging folder, removed by the next writer); a kill
during 3 leaves `.kws-set.commit`, which `settle(folder)` rolls forward. Readers call `settle` before
reading (load_dataset, load_splits); writers call it before staging. Steps 2-3 and `settle` hold an
flock on the folder, so a reader never finishes a set while its writer is moving it. Nothing else in
the folder is touched: checkpoint.pt, a cmake build/ folder or a user's notes stay where they are.

Single files: `atomic_file(path)` is fsutil.atomic_path plus fsync of the file and its folder, with
the writer's pid in the temporary's name (`.NAME.<pid>-<hex>.tmp`), so `clean_stale` can tell a dead
writer's leftovers from a live one's.

Test hook (tests/core/test_output_sets.py): with KWS_OUTPUTS_KILL_AT=N in the environment the
process SIGKILLs itself at the Nth step of the journal (each staged file synced, the commit rename,
each move or delete into the folder, the commit folder's removal), so kills between files are
deterministic. It is read on every step and does nothing when unset.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from core.errors import KwsError
from core.fsutil import atomic_path, fsync_path

try:
    import fcntl
except ImportError:  # not POSIX: no folder lock (settle is still idempotent)
    fcntl = None

STAGE_PREFIX = ".kws-set.new-"
COMMIT = ".kws-set.commit"
REMOVE_LIST = ".kws-set.remove.json"  # inside the staging/commit folder: members to delete
LEGACY_TMP_AGE_S = 600  # fsutil.atomic_path temporaries carry no pid: stale when untouched this long
_steps = 0


def _step() -> None:
    """The kill hook (see the module docstring)."""
    global _steps
    want = os.environ.get("KWS_OUTPUTS_KILL_AT")
    if want:
        _steps += 1
        if _steps == int(want):
            os.kill(os.getpid(), signal.SIGKILL)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


atomic_file = atomic_path  # one implementation: core.fsutil


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    fd = os.open(folder, os.O_RDONLY)
    try:
        if fcntl is not None:
            with contextlib.suppress(OSError):  # e.g. a filesystem without flock: go on unlocked
                fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock (so does the death of the process)


def _roll_forward(folder: Path) -> None:
    """Finish a committed set (lock held): move its files in, delete the dropped members."""
    commit = folder / COMMIT
    try:
        remove = json.loads((commit / REMOVE_LIST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        remove = []
    for entry in sorted(os.listdir(commit)):
        if entry != REMOVE_LIST:
            os.replace(commit / entry, folder / entry)
            _step()
    for name in remove:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / name)
        _step()
    fsync_path(folder)
    _step()
    shutil.rmtree(commit)
    fsync_path(folder)


def settle(folder: str | os.PathLike) -> None:
    """Finish a set whose writer was killed after its commit point. Cheap (one stat) when there is
    none; readers call it before reading a set's files."""
    folder = Path(folder)
    if not (folder / COMMIT).is_dir():
        return
    try:
        with _folder_lock(folder):
            if (folder / COMMIT).is_dir():
                _roll_forward(folder)
    except OSError as e:
        raise KwsError(f"{folder}: cannot finish the output files an interrupted run left "
                       f"in {COMMIT}: {e.strerror or e}") from None


_OUR_TMP = re.compile(r"\.(?P<name>.+)\.(?:(?P<pid>\d+)-[0-9a-f]+|(?P<legacy>[a-z0-9_]{8}))\.tmp")


def clean_stale(folder: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """Remove what dead writers left in `folder`: staging folders `.kws-set.new-<pid>-*` and file
    temporaries `.NAME.<pid>-<hex>.tmp` of the given member names whose pid is not alive, and
    fsutil.atomic_path's pid-less `.NAME.XXXXXXXX.tmp` untouched for 10 minutes; roll a committed
    set forward. Returns the paths removed. Call at the start of a command's run on that folder."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    settle(folder)
    names, removed = set(names), []
    now = time.time()
    for entry in os.scandir(folder):
        path = Path(entry.path)
        if entry.name.startswith(STAGE_PREFIX) and entry.is_dir(follow_symlinks=False):
            pid = entry.name[len(STAGE_PREFIX):].split("-")[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
            continue
        m = _OUR_TMP.fullmatch(entry.name)
        if not m or m["name"] not in names or not entry.is_file(follow_symlinks=False):
            continue
        try:
            stale = (not _pid_alive(int(m["pid"])) if m["pid"] is not None
                     else now - entry.stat().st_mtime > LEGACY_TMP_AGE_S)
        except FileNotFoundError:
            continue
        if stale:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            removed.append(path)
    return removed


class OutputSet:
    """The staging side of `output_set`: `path(name)` is where a member is written."""

    def __init__(self, folder: Path, members: tuple[str, ...]):
        self.folder, self.members = folder, members
        self.stage = folder / f"{STAGE_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"

    def path(self, name: str) -> Path:
        if name not in self.members:
            raise ValueError(f"{name!r} is not one of this output set's files {self.members}")
        return self.stage / name

    def final(self, name: str) -> Path:
        return self.folder / name

    def written(self) -> list[str]:
        return sorted(n for n in self.members if (self.stage / n).is_file())

    def _commit(self) -> None:
        written = self.written()
        if not written:
            raise KwsError(f"{self.folder}: nothing was written")
        for name in self.members:  # checked before the commit point, where it could still stop cleanly
            if (self.folder / name).is_dir():
                raise KwsError(f"{self.folder / name}: is a folder, so the output file {name} cannot replace it")
        for name in written:
            fsync_path(self.stage / name)
            _step()
        for entry in os.listdir(self.stage):  # a member's temporary left by a writer that failed
            if entry not in written:
                p = self.stage / entry
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        (self.stage / REMOVE_LIST).write_text(json.dumps([n for n in self.members if n not in written]),
                                              encoding="utf-8")
        fsync_path(self.stage / REMOVE_LIST)
        fsync_path(self.stage)
        with _folder_lock(self.folder):
            if (self.folder / COMMIT).is_dir():  # another writer's, killed after its commit point
                _roll_forward(self.folder)
            os.rename(self.stage, self.folder / COMMIT)
            fsync_path(self.folder)
            _step()
            _roll_forward(self.folder)


@contextlib.contextmanager
def output_set(folder: str | os.PathLike, members: Iterable[str],
               clean: Iterable[str] = ()) -> Iterator[OutputSet]:
    """Write the files named in `members` into `folder` as one unit (see the module docstring).

    Members not written inside the block are deleted from `folder` when the set is committed (a
    dataset built without a testing list leaves no old testing.npz). An exception inside the block
    leaves the old set as it was. Stale temporaries of `members` and of the extra names in `clean`
    are removed first."""
    folder = Path(folder)
    members = tuple(members)
    for name in members:
        if not name or "/" in name or os.sep in name or name in (".", "..") or name.startswith(".kws-set"):
            raise ValueError(f"bad output file name {name!r}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        clean_stale(folder, (*members, *clean))
        out = OutputSet(folder, members)
        out.stage.mkdir()
    except OSError as e:
        raise KwsError(f"{folder}: cannot write output files here: {e.strerror or e}") from None
    try:
        yield out
        try:
            out._commit()
        except OSError as e:
            raise KwsError(f"{folder}: cannot write the output files: {e.strerror or e}") from None
    finally:
        shutil.rmtree(out.stage, ignore_errors=True)
