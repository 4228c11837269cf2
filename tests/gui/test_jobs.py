"""The generic job worker and the child-process runner: results, one failure signal, Stop as
a clean cancel, throttled progress; the modules that run in child processes stay Qt-free."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from core.errors import DataError
from kwsgui.jobs import Job, JobProgress


def run_job(qtbot, fn, stop_early: bool = False):
    job = Job("test", fn)
    got = {"progress": [], "partial": [], "result": [], "failed": [], "log": []}
    for k in got:
        getattr(job.worker, k).connect(got[k].append)
    with qtbot.waitSignal(job.worker.finished, timeout=30_000) as blocker:
        job.start()
        if stop_early:
            job.stop()
    assert job.thread.wait(5000)
    return blocker.args[0], got


def test_result_progress_and_partials(qtbot):
    def fn(ctx):
        for i in range(1000):
            ctx.progress(i + 1, 1000, "counting")
        ctx.partial(("half", 500))
        ctx.log("done counting")
        return 42

    summary, got = run_job(qtbot, fn)
    assert summary.completed and not summary.cancelled and summary.error is None
    assert got["result"] == [42] and got["partial"] == [("half", 500)] and got["log"] == ["done counting"]
    assert 1 <= len(got["progress"]) < 50  # throttled at the source, the last one always sent
    assert got["progress"][-1] == JobProgress(1000, 1000, "counting")


@pytest.mark.parametrize("exc, text", [(DataError("list.txt: no wav files"), "list.txt: no wav files"),
                                       (ZeroDivisionError("oops"), "ZeroDivisionError: oops")])
def test_errors_are_one_failed_signal(qtbot, exc, text):
    def fn(ctx):
        raise exc

    summary, got = run_job(qtbot, fn)
    assert got["failed"] == [text] and summary.error == text and not summary.completed
    assert got["result"] == []


def test_stop_is_a_clean_cancel(qtbot):
    def fn(ctx):
        while True:
            ctx.check()
            time.sleep(0.001)

    summary, got = run_job(qtbot, fn, stop_early=True)
    assert summary.cancelled and not summary.completed and summary.error is None
    assert got["failed"] == [] and got["log"] == ["test: stopped"]


def test_child_process_modules_do_not_import_qt():
    code = ("import sys; import kwsgui.subproc, kwsgui.train_task, kwsgui.dataset_task, kwsgui.vad_task, "
            "kwsgui.model_set; bad = [m for m in sys.modules if m.startswith(('PyQt5', 'pyqtgraph'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


EXIT_SCRIPT = '''
import os, sys, threading, time
sys.path.insert(0, sys.argv[2])
from kwsgui.subproc import run_in_child


def stubborn(pid_file, ctx):  # never checks ctx.cancel: only terminate() ends it
    with open(pid_file + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(pid_file + ".tmp", pid_file)
    while True:
        time.sleep(0.05)


class Ctx:
    cancel = threading.Event()
    progress = log = partial = staticmethod(lambda *a: None)


if __name__ == "__main__":
    pid_file = sys.argv[1]
    threading.Thread(target=run_in_child, args=(stubborn, (pid_file,), Ctx()), daemon=True).start()
    while not os.path.exists(pid_file):
        time.sleep(0.05)
    sys.exit(0)  # the GUI quits while the job still runs
'''


def test_exit_stops_a_running_child(tmp_path):
    """The job child is not a daemon (it may start a pool of its own), so the process exit must
    stop it: the interpreter exits promptly and the child is gone."""
    import os
    from pathlib import Path

    script, pid_file = tmp_path / "quit_while_running.py", tmp_path / "child.pid"
    script.write_text(EXIT_SCRIPT)
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, str(script), str(pid_file), str(Path(__file__).resolve().parents[2])],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    pid = int(pid_file.read_text())
    assert time.monotonic() - t0 < 60  # not multiprocessing's endless join of a non-daemonic child
    for _ in range(100):  # reaped by its parent (the forkserver) soon after it was terminated
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split(")")[-1].split()[0] == "Z":
                break
        time.sleep(0.05)
    else:
        pytest.fail(f"the job's child process {pid} is still running")
