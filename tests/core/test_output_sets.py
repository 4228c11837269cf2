"""Output sets (core.outputs): after a SIGKILL at any point, readers see the complete old or the
complete new set of a command's files, and the next run leaves no stray temporaries.

Kills: KWS_OUTPUTS_KILL_AT=N (core.outputs' test hook) kills a run at the Nth step of its journal,
deterministically between files; seeded random delays kill runs anywhere else (featurizing,
compiling, training, writing). `kws dataset` and `kws compile` run as `python -m core`
subprocesses; `kws train` runs as children forked from one driver process that imported torch
once (a fresh interpreter per kill would spend ~8 s importing torch on a busy 2-core machine).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core import outputs
from core.errors import KwsError
from core.outputs import COMMIT, atomic_file, clean_stale, output_set, settle

ROOT = Path(__file__).resolve().parents[2]
KILLED = -signal.SIGKILL


def _env(kill_at: int | None = None) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), KWS_OUTPUTS_KILL_AT=str(kill_at or ""))
    if not kill_at:
        del env["KWS_OUTPUTS_KILL_AT"]
    return env


def _run(argv: list, kill_at: int | None = None, delay: float | None = None) -> tuple[int, float]:
    """Run `python ARGV`; SIGKILL it after `delay` seconds if it is still running. (status, seconds)."""
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, *map(str, argv)], cwd=ROOT, env=_env(kill_at),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = p.communicate(timeout=delay if delay is not None else 300)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    assert p.returncode in (0, KILLED), err
    return p.returncode, time.monotonic() - t0


def _entries(folder: Path) -> set[str]:
    return set(os.listdir(folder))


# ------------------------------------------------------------------ the mechanism on its own

def _write(folder, contents: dict[str, str], members=("a", "b", "c")):
    with output_set(folder, members) as s:
        for name, text in contents.items():
            s.path(name).write_text(text)


def _read(folder, members=("a", "b", "c")) -> dict[str, str]:
    return {n: (folder / n).read_text() for n in members if (folder / n).exists()}


def test_a_set_replaces_only_its_members(tmp_path):
    _write(tmp_path, {"a": "1", "b": "1", "c": "1"})
    (tmp_path / "checkpoint.pt").write_text("keep")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "x.o").write_text("keep")
    _write(tmp_path, {"a": "2", "b": "2"})  # c not made this time: the old c goes too
    assert _read(tmp_path) == {"a": "2", "b": "2"}
    assert _entries(tmp_path) == {"a", "b", "checkpoint.pt", "build"}
    assert (tmp_path / "build" / "x.o").read_text() == "keep"


def test_an_error_inside_the_block_keeps_the_old_set(tmp_path):
    _write(tmp_path, {"a": "1", "b": "1", "c": "1"})
    with pytest.raises(RuntimeError, match="disk full"), output_set(tmp_path, ("a", "b", "c")) as s:
        s.path("a").write_text("2")
        raise RuntimeError("disk full")
    assert _read(tmp_path) == {"a": "1", "b": "1", "c": "1"} and _entries(tmp_path) == {"a", "b", "c"}
    with pytest.raises(ValueError, match="not one of"), output_set(tmp_path, ("a",)) as s:
        s.path("z")
    with pytest.raises(ValueError, match="bad output file name"), output_set(tmp_path, ("../a",)):
        pass
    (tmp_path / "d").mkdir()
    with pytest.raises(KwsError, match="is a folder"):
        _write(tmp_path, {"a": "3", "d": "3"}, members=("a", "b", "c", "d"))
    assert _read(tmp_path) == {"a": "1", "b": "1", "c": "1"} and _entries(tmp_path) == {"a", "b", "c", "d"}


def test_files_and_folders_are_fsynced_before_the_renames(tmp_path, monkeypatch):
    log = []
    real_fsync, real_replace, real_rename = os.fsync, os.replace, os.rename
    monkeypatch.setattr(outputs.os, "fsync", lambda fd: (log.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                          real_fsync(fd))[1])
    monkeypatch.setattr(outputs.os, "replace", lambda a, b: (log.append(("replace", str(a))), real_replace(a, b))[1])
    monkeypatch.setattr(outputs.os, "rename", lambda a, b: (log.append(("rename", str(a))), real_rename(a, b))[1])
    with atomic_file(tmp_path / "one.bin") as tmp:
        tmp.write_bytes(b"x")
    assert log == [("fsync", str(tmp)), ("replace", str(tmp)), ("fsync", str(tmp_path))]
    log.clear()
    _write(tmp_path, {"a": "1", "b": "1"})
    commit = tmp_path / COMMIT
    stage = Path(next(path for op, path in log if op == "rename"))
    rename = log.index(("rename", str(stage)))
    assert {("fsync", str(stage / "a")), ("fsync", str(stage / "b")), ("fsync", str(stage))} <= set(log[:rename])
    assert log[rename + 1] == ("fsync", str(tmp_path))  # the commit point is durable
    moves = [i for i, e in enumerate(log) if e[0] == "replace"]
    assert [log[i][1] for i in moves] == [str(commit / "a"), str(commit / "b")]
    assert ("fsync", str(tmp_path)) in log[moves[-1]:]


def _dead_pid() -> int:
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(p.stdout)


def test_clean_stale_removes_only_dead_writers_leftovers(tmp_path):
    dead, me = _dead_pid(), os.getpid()
    names = {
        f".model.pt.{dead}-1a2b.tmp": False,  # a dead writer's: removed
        f".model.pt.{me}-1a2b.tmp": True,  # a live writer's
        ".model.pt.k3j_x9q0.tmp": False,  # fsutil.atomic_path's (no pid), untouched for an hour
        ".model.pt.p0o9i8u7.tmp": True,  # the same, fresh: may be being written
        f".notes.txt.{dead}-1a2b.tmp": True,  # not one of the names asked about
        "model.pt": True,
    }
    for n in names:
        (tmp_path / n).write_text("x")
    hour_ago = time.time() - 3600
    os.utime(tmp_path / ".model.pt.k3j_x9q0.tmp", (hour_ago, hour_ago))
    dead_stage, live_stage = f"{outputs.STAGE_PREFIX}{dead}-00ff", f"{outputs.STAGE_PREFIX}{me}-00ff"
    (tmp_path / dead_stage).mkdir()
    (tmp_path / dead_stage / "model.pt").write_text("half")
    (tmp_path / live_stage).mkdir()
    removed = clean_stale(tmp_path, ["model.pt"])
    keep = {n for n, k in names.items() if k} | {live_stage}
    assert _entries(tmp_path) == keep
    assert {p.name for p in removed} == set(names) - keep | {dead_stage}


WRITER = """
import sys
from core.outputs import output_set
names, text = sys.argv[1].split(","), sys.argv[2]
with output_set(sys.argv[3], ("a", "b", "c")) as s:
    for n in names:
        s.path(n).write_text(text)
"""


def test_a_kill_at_every_step_of_the_journal_leaves_old_or_new(tmp_path):
    folder = tmp_path / "out"
    old, new = {"a": "old", "b": "old", "c": "old"}, {"a": "new", "b": "new"}
    steps = 2 + 1 + 2 + 1 + 1  # fsync a, b; commit; move a, b; delete c; fsync folder
    seen = set()
    for kill_at in range(1, steps + 2):  # the last one is not reached: the run completes
        _run(["-c", WRITER, "a,b,c", "old", folder])
        (folder / "notes.txt").write_text("mine")
        status, _ = _run(["-c", WRITER, "a,b", "new", folder], kill_at=kill_at)
        assert status == (KILLED if kill_at <= steps else 0)
        committed = (folder / COMMIT).exists()
        if not committed:
            assert _read(folder) in (old, new)
        settle(folder)  # what readers do
        state = _read(folder)
        assert state in (old, new)
        seen.add(("committed" if committed else "whole", "new" if state == new else "old"))
        assert (folder / "notes.txt").read_text() == "mine"
    # every kind of outcome happened: old untouched, committed-then-finished by a reader, new
    assert seen == {("whole", "old"), ("committed", "new"), ("whole", "new")}
    _run(["-c", WRITER, "a,b,c", "old", folder], kill_at=1)  # leaves its staging folder
    assert any(n.startswith(outputs.STAGE_PREFIX) for n in _entries(folder))
    _run(["-c", WRITER, "a,b", "new", folder])
    assert _entries(folder) == {"a", "b", "notes.txt"}


# ------------------------------------------------------------------ the commands, killed for real

def _campaign(folder: Path, run, view, foreign: set[str], seed: int, n_random_steps: int = 1,
              n_delays: int = 2, reader=settle) -> None:
    """`run(config, kill_at, delay) -> (status, seconds)` runs the command with config "old" or
    "new"; `view(folder) -> {member: tag}` reads the members present without settling, `reader(folder)`
    is a reader that settles (core.outputs.settle, or the command's own loader). Two whole
    runs give the reference sets; then kills flip between them: between files by the hook (after
    the first staged file; after the commit and two moves, which leaves a half-moved set that
    readers must settle; a seeded random step), and at seeded random times."""
    refs, seconds = {}, {}
    for config in ("old", "new"):
        status, seconds[config] = run(config, None, None)
        assert status == 0
        refs[config] = view(folder)
        assert _entries(folder) == set(refs[config]) | foreign
    assert refs["old"] != refs["new"]
    rng = random.Random(seed)
    current, strays_left = "new", False
    kills = [("step", 1), ("step", "two moves")]
    kills += [("step", "random")] * n_random_steps + [("delay", None)] * n_delays
    for kind, point in kills:
        target = "old" if current == "new" else "new"
        n = len(refs[target])
        steps = n + 1 + n + len(set(refs[current]) - set(refs[target])) + 1
        if kind == "step":
            kill_at = {1: 1, "two moves": n + 3, "random": rng.randint(1, steps)}[point]
            status, _ = run(target, kill_at, None)
            assert status == KILLED, (target, kill_at)
        else:
            status, _ = run(target, None, rng.uniform(0.2, 1.0) * seconds[target])
        committed = (folder / COMMIT).exists()
        if point == "two moves":
            assert committed and view(folder) not in refs.values()  # a reader that does not settle sees a mix
        if not committed:
            assert view(folder) in refs.values(), (kind, point)
        reader(folder)
        assert not (folder / COMMIT).exists()
        state = view(folder)
        assert state in refs.values(), (kind, point, state)
        current = "new" if state == refs["new"] else "old"
        if status == 0:
            assert current == target
        assert foreign <= _entries(folder)
        strays_left |= bool(_entries(folder) - set(state) - foreign)
    assert strays_left  # some kill left temporaries behind ...
    target = "old" if current == "new" else "new"
    assert run(target, None, None)[0] == 0
    assert view(folder) == refs[target]
    assert _entries(folder) == set(refs[target]) | foreign  # ... and the next run removed them


SAMPLE = "speech_commands_v0.01_sample"


def _write_lists(folder: Path, data: Path, pick: slice, testing: bool) -> Path:
    words = ("no", "up", "yes")
    clips = {w: sorted((data / SAMPLE / w).glob("*.wav"))[pick] for w in words}
    folder.mkdir()
    (folder / "categories.txt").write_text("".join(f"{w}\n" for w in words))
    splits = {"training": slice(0, 2), "validation": slice(2, 3)} | ({"testing": slice(3, 4)} if testing else {})
    for split, part in splits.items():
        (folder / f"{split}_list.txt").write_text("".join(f"{p}\n" for w in words for p in clips[w][part]))
    return folder


def _dataset_view(folder: Path) -> dict:
    """Each present split's content, read without settling (np.load: load_dataset would settle)."""
    out = {}
    for split in ("training", "validation", "testing"):
        p = folder / f"{split}.npz"
        if p.exists():
            with np.load(p, allow_pickle=False) as z:
                out[p.name] = hashlib.sha256(z["features"].tobytes() + z["labels"].tobytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def featurizer(tmp_path_factory) -> Path:
    from core.features.featurizer import FeaturizerConfig, build_featurizer
    from core.graph import modelfile

    path = tmp_path_factory.mktemp("feat") / "f.kwm"
    modelfile.save(build_featurizer(FeaturizerConfig()), path)
    return path


@pytest.mark.shared
@pytest.mark.slow
def test_kws_dataset_killed_anywhere(shared_data, featurizer, tmp_path):
    lists = {"old": _write_lists(tmp_path / "lists_old", shared_data, slice(0, 4), testing=True),
             "new": _write_lists(tmp_path / "lists_new", shared_data, slice(4, 7), testing=False)}
    out = tmp_path / "ds"
    out.mkdir()
    (out / "notes.txt").write_text("mine")

    def run(config, kill_at, delay):
        return _run(["-m", "core", "dataset", "--lists", lists[config], "-f", featurizer, "-o", out],
                    kill_at, delay)

    from core.data.dataset import load_dataset

    # the reader is load_dataset, which settles a half-moved set by itself
    _campaign(out, run, _dataset_view, {"notes.txt"}, seed=11, n_delays=1,
              reader=lambda folder: load_dataset(folder / "validation.npz"))


def _compile_view(folder: Path) -> dict:
    names = ("kws.o", "kws.h", "kws_api.c", "CMakeLists.txt", "kws.py", "README.md", "categories.txt", "kws_demo.c")
    return {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names if (folder / n).exists()}


@pytest.mark.slow
def test_kws_compile_killed_anywhere(featurizer, tmp_path):
    out = tmp_path / "kws_out"
    (out / "build").mkdir(parents=True)  # the user's cmake build folder survives every export
    (out / "build" / "CMakeCache.txt").write_text("mine")
    models = {"old": [featurizer, "--target", "host"], "new": [featurizer, "--target", "pi3"]}

    def run(config, kill_at, delay):
        return _run(["-m", "core", "compile", *models[config], "--module-name", "kws", "-o", out], kill_at, delay)

    _campaign(out, run, _compile_view, {"build"}, seed=12, n_delays=1)
    assert (out / "build" / "CMakeCache.txt").read_text() == "mine"


TRAIN_DRIVER = r"""
import json, os, signal, sys, time
import core.cli, core.train.trainer, core.train.export, torch.onnx, torch._dynamo  # once; runs fork from here
core.cli.build_parser()  # imports every command module
for line in sys.stdin:
    req = json.loads(line)
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        if req["kill_at"]:
            os.environ["KWS_OUTPUTS_KILL_AT"] = str(req["kill_at"])
        os._exit(core.cli.main(req["argv"]))
    done = 0
    if req["delay"] is not None:
        while not done and time.monotonic() < t0 + req["delay"]:
            done, status = os.waitpid(pid, os.WNOHANG)
            time.sleep(0.005)
        if not done:
            os.kill(pid, signal.SIGKILL)
    if not done:
        _, status = os.waitpid(pid, 0)
    print(json.dumps([os.waitstatus_to_exitcode(status), time.monotonic() - t0]), flush=True)
"""


def _train_view(folder: Path) -> dict:
    """What identifies each output's run (hidden size 8 or 12), read without settling."""
    import onnx
    import torch

    from core.graph import modelfile

    out = {}
    if (folder / "model.pt").exists():
        sd = torch.load(folder / "model.pt", weights_only=True)
        out["model.pt"] = sorted((k, tuple(v.shape)) for k, v in sd.items())
    if (folder / "model.onnx").exists():
        m = onnx.load(str(folder / "model.onnx"), load_external_data=False)
        out["model.onnx"] = sorted((t.name, tuple(t.dims)) for t in m.graph.initializer)
    if (folder / "model.kwm").exists():
        g = modelfile.load(folder / "model.kwm")
        out["model.kwm"] = (g.metadata["training"]["config"]["hidden_size"], g.metadata["training"]["epochs"])
    if (folder / "categories.txt").exists():
        out["categories.txt"] = (folder / "categories.txt").read_text()
    if (folder / "train_results.json").exists():
        r = json.loads((folder / "train_results.json").read_text())
        out["train_results.json"] = (r["config"]["hidden_size"], len(r["log"]), r["outputs"]["model"])
    return out


@pytest.mark.shared
@pytest.mark.slow
def test_kws_train_killed_anywhere_keeps_the_checkpoint(shared_data, featurizer, tmp_path):
    from core.data.dataset import build_dataset, featurizer_info, save_dataset
    from core.graph import modelfile
    from core.train.trainer import checkpoint_config

    g = modelfile.load(featurizer)
    words = ("no", "up", "yes")
    entries = [(p, w) for w in words for p in sorted((shared_data / SAMPLE / w).glob("*.wav"))[:4]]
    data = tmp_path / "data"
    save_dataset(data / "training.npz", build_dataset(entries, words, g, featurizer_info(g, featurizer)).dataset)
    out = tmp_path / "train"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    sizes = {"old": ("8", "1"), "new": ("12", "2")}  # hidden size, epochs
    driver = subprocess.Popen([sys.executable, "-c", TRAIN_DRIVER], cwd=ROOT, env=_env(), text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        def run(config, kill_at, delay):
            hidden, epochs = sizes[config]
            argv = ["train", "-d", str(data), "-o", str(out), "--num-layers", "1", "--hidden-size", hidden,
                    "--epochs", epochs, "--batch-size", "4", "--device", "cpu"]
            driver.stdin.write(json.dumps({"argv": argv, "kill_at": kill_at, "delay": delay}) + "\n")
            driver.stdin.flush()
            line = driver.stdout.readline()
            assert line, "the training driver died"
            status, seconds = json.loads(line)
            assert status in (0, KILLED)
            return status, seconds

        def view(folder):
            state = _train_view(folder)
            # the checkpoint survives every kill and stays resumable
            assert checkpoint_config(folder)["hidden_size"] in (8, 12)
            return state

        _campaign(out, run, view, {"notes.txt", "checkpoint.pt"}, seed=13, n_delays=1)
    finally:
        driver.stdin.close()
        driver.wait(timeout=60)
