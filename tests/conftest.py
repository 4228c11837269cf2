"""Shared pytest fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real test data at ../shared/data (skips the test when it is absent)."""
    path = (REPO_ROOT.parent / "shared" / "data").resolve()
    if not path.is_dir():
        pytest.skip(f"real test data not found at {path} (../shared/data from the repo root)")
    return path


@pytest.fixture
def alsa_env(tmp_path):
    """Factory of environments for a *subprocess* whose ALSA default device is file-backed.

    `alsa_env(infile=raw)`: capture reads headerless int16 PCM from `raw` (open the stream at the
    rate and channel count the file was made for; it has no clock and repeats stale data past
    its end, so read at most as many frames as it holds). `outfile`: playback is written there.
    `alsa_env()`: a config whose only pcm cannot be opened, so PortAudio sees no device. PortAudio
    reads the ALSA config once per process, hence a fresh interpreter per config.
    """

    def make(infile: Path | None = None, outfile: Path | None = None) -> dict[str, str]:
        if infile is None and outfile is None:
            pcm = 'pcm.!default { type hw card "kwsgui_no_such_card" }\n'
        else:
            pcm = (
                f'pcm.!default {{ type file slave.pcm {{ type null }} file "{outfile or "/dev/null"}"'
                f' infile "{infile or "/dev/null"}" format "raw" }}\n'
            )
        conf = tmp_path / f"asound-{abs(hash(pcm))}.conf"
        conf.write_text(pcm)
        env = dict(os.environ, ALSA_CONFIG_PATH=str(conf))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        return env

    return make


@pytest.fixture
def run_python():
    """run_python(code, env) -> stdout: see `_run_python`."""
    return _run_python


def _run_python(code: str, env: dict[str, str]) -> str:
    """Run `code` in a fresh interpreter (e.g. one that must read a new ALSA config); fail with its
    output if it fails; return its stdout."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"subprocess failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout
