"""core.progress: a line per 10% in logs, one redrawn bar on a terminal, cooperative cancel."""

import io
import threading

import pytest

from core.progress import Cancelled, Progress, check_cancel


def test_log_output_prints_a_line_per_tenth():
    out = io.StringIO()
    with Progress(200, "featurize", stream=out) as p:
        for i in range(1, 201):
            p(i, 200)
    lines = out.getvalue().splitlines()
    assert len(lines) == 11  # 0%, 10%, ..., 100%; the final state is not printed twice
    assert lines[0].startswith("featurize:   0% 1/200")
    assert lines[-1].startswith("featurize: 100% 200/200")
    assert "\r" not in out.getvalue()


def test_stopped_early_prints_the_last_state_once():
    out = io.StringIO()
    p = Progress(1000, "x", stream=out)
    for _ in range(57):
        p.update()
    p.close()
    p.close()
    assert out.getvalue().splitlines()[-1].startswith("x:   6% 57/1000")
    assert out.getvalue().count("57/1000") == 1


def test_terminal_bar_redraws_in_place():
    out = io.StringIO()
    p = Progress(10, "synth", stream=out, tty=True, min_interval_s=0.0)
    for i in range(1, 11):
        p(i)
    p.close()
    text = out.getvalue()
    assert text.count("\r") >= 10 and text.endswith("\n") and text.count("\n") == 1
    assert "[" + "#" * 30 + "] 100% 10/10" in text


def test_cancel():
    ev = threading.Event()
    check_cancel(ev)
    check_cancel(None)
    ev.set()
    with pytest.raises(Cancelled):
        check_cancel(ev)
