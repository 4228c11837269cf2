"""The real capture path: PyAudio -> PortAudio -> ALSA, with a file-backed ALSA device.

PortAudio reads the ALSA configuration when it initialises, so each capture runs in a fresh
interpreter with ALSA_CONFIG_PATH set (see the `alsa_env` fixture in tests/conftest.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.audio.resample import resample
from core.audio.wav import read_wav, to_int16

pytest.importorskip(
    "pyaudio", reason="PyAudio is not installed (needs portaudio19-dev, then pip install pyaudio)"
)





def clip(kind: str, request: pytest.FixtureRequest) -> np.ndarray:
    """int16 samples: the real 'seven' clip, or seeded full-scale noise (needs no shared data)."""
    if kind == "seven":
        x, rate = read_wav(request.getfixturevalue("shared_data") / "ell_examples" / "seven.wav")
        assert rate == 16000
        return to_int16(x)
    return np.random.default_rng(42).integers(-32768, 32768, 12345).astype("<i2")


@pytest.mark.parametrize("kind", ["seven", "noise"])
def test_capture_is_bit_exact(run_python, tmp_path, alsa_env, request, kind):
    ref = clip(kind, request)
    raw = tmp_path / "clip.raw"
    ref.tofile(raw)
    out = run_python(
        f"""
        import numpy as np
        from core.audio.microphone import MicrophoneSource, record
        n = {len(ref)}
        x = record(10.0, 16000, max_samples=n)
        np.save({str(tmp_path / "record.npy")!r}, x)
        with MicrophoneSource(16000, max_seconds=n / 16000) as mic:  # as `kws run --duration`
            blocks = list(mic.blocks(512))
            print(mic.device_rate, mic.channels, mic.overflows, len(blocks))
        np.save({str(tmp_path / "blocks.npy")!r}, np.concatenate(blocks))
    """,
        alsa_env(infile=raw),
    )
    rate, channels, overflows, n_blocks = map(int, out.split())
    assert (rate, channels, overflows, n_blocks) == (16000, 1, 0, len(ref) // 512)
    recorded = np.load(tmp_path / "record.npy")
    assert recorded.dtype == np.float32 and len(recorded) == len(ref)
    np.testing.assert_array_equal(to_int16(recorded), ref)
    np.testing.assert_array_equal(recorded, ref / np.float32(32768))
    blocks = np.load(tmp_path / "blocks.npy")
    np.testing.assert_array_equal(to_int16(blocks), ref[: n_blocks * 512])


def test_capture_at_device_rate_is_resampled(run_python, tmp_path, alsa_env):
    rng = np.random.default_rng(5)
    ref = (rng.standard_normal(44100) * 4000).clip(-32768, 32767).astype("<i2")  # 1 s at 44.1 kHz
    raw = tmp_path / "clip44.raw"
    ref.tofile(raw)
    run_python(
        f"""
        import numpy as np
        from core.audio.microphone import MicrophoneSource
        with MicrophoneSource(16000, device_rate=44100, max_samples={len(ref)}) as mic:
            assert (mic.device_rate, mic.sample_rate) == (44100, 16000)
            np.save({str(tmp_path / "y.npy")!r}, np.concatenate(list(mic.chunks())))
    """,
        alsa_env(infile=raw),
    )
    y = np.load(tmp_path / "y.npy")
    want = resample(ref / np.float32(32768), 44100, 16000)  # the streaming resampler, flushed at the end
    assert len(y) == len(want) == 16000
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-6)


def test_stereo_device_is_averaged(run_python, tmp_path, alsa_env):
    rng = np.random.default_rng(6)
    stereo = rng.integers(-20000, 20000, size=(3000, 2)).astype("<i2")
    raw = tmp_path / "stereo.raw"
    stereo.tofile(raw)  # interleaved L R L R ...
    run_python(
        f"""
        import numpy as np
        from core.audio.microphone import record
        from core.audio.microphone import MicrophoneSource
        with MicrophoneSource(16000, channels=2, max_samples=3000) as mic:
            assert mic.channels == 2
            np.save({str(tmp_path / "y.npy")!r}, np.concatenate(list(mic.chunks())))
    """,
        alsa_env(infile=raw),
    )
    want = (stereo.astype(np.float32) / 32768).mean(axis=1)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, rtol=0, atol=1e-7)


def test_stop_ends_iteration_of_an_endless_stream(run_python, tmp_path, alsa_env):
    raw = tmp_path / "clip.raw"
    np.arange(16000, dtype="<i2").tofile(raw)
    out = run_python(
        """
        import threading
        from core.audio.microphone import MicrophoneSource
        mic = MicrophoneSource(16000)  # no max_samples: the clockless device never ends by itself
        got = 0
        for block in mic.blocks(160):
            got += 1
            if got == 20:
                mic.stop()
        mic.close()
        mic.close()  # twice is fine
        print(got)
    """,
        alsa_env(infile=raw),
    )
    assert int(out) == 20


def test_no_device_is_a_clear_audio_error(run_python, alsa_env):
    out = run_python(
        """
        from core.audio.microphone import MicrophoneSource, default_input_device, list_input_devices, record
        from core.errors import AudioError
        assert list_input_devices() == [] and default_input_device() is None
        for make in (lambda: MicrophoneSource(16000), lambda: record(1.0)):
            try:
                make()
            except AudioError as e:
                print(e)
            else:
                raise SystemExit("no AudioError")
    """,
        alsa_env(),
    )
    lines = out.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        assert line.startswith("no microphone found: tried the default device")
        assert "ALSA_CONFIG_PATH=" in line and "microphone devices: none" in line


def test_alsa_config_without_any_pcm_is_an_error_not_an_abort(run_python, tmp_path, alsa_env):
    empty = tmp_path / "empty.conf"
    empty.write_text("")  # PortAudio 19.6 would hit an assertion and abort the process
    env = dict(alsa_env(), ALSA_CONFIG_PATH=str(empty))
    out = run_python(
        """
        from core.audio.microphone import MicrophoneSource
        from core.errors import AudioError
        try:
            MicrophoneSource(16000)
        except AudioError as e:
            print(e)
    """,
        env,
    )
    if "no sound card" not in out:
        pytest.skip("this machine has a sound card, so the trap cannot occur")
    assert out.startswith("no microphone found: ALSA_CONFIG_PATH=") and str(empty) in out


def test_bad_device_index_names_what_exists(run_python, tmp_path, alsa_env):
    raw = tmp_path / "clip.raw"
    np.zeros(100, "<i2").tofile(raw)
    out = run_python(
        """
        from core.audio.microphone import MicrophoneSource, list_input_devices
        from core.errors import AudioError
        print([d.name for d in list_input_devices()])
        for device in (7, "no such mic"):
            try:
                MicrophoneSource(16000, device=device)
            except AudioError as e:
                print(e)
    """,
        alsa_env(infile=raw),
    )
    names, by_index, by_name = out.strip().splitlines()
    assert names == "['default']"
    assert by_index.startswith("no microphone found: device index 7 is not a microphone")
    assert "0: default" in by_index
    assert by_name.startswith("no microphone found: no device named like 'no such mic'")


def test_core_audio_imports_neither_pyaudio_nor_qt():
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, core.audio.microphone, core.audio.speaker, core.audio.ring\n"
            "banned = ('pyaudio', 'PyQt5', 'pyqtgraph', 'kwsgui')\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in banned))",
        ],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert out.strip() == "[]"
