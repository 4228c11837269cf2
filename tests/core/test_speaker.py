"""Speaker through PyAudio/PortAudio into a file-backed ALSA device, and real-time pacing."""

from __future__ import annotations

import time

import numpy as np
import pytest

from core.audio.sources import ArraySource
from core.audio.speaker import PacedSource, Pacer


def test_speaker_plays_bit_exact_into_the_device(run_python, tmp_path, alsa_env):
    pytest.importorskip("pyaudio", reason="PyAudio is not installed")
    ref = np.random.default_rng(11).integers(-30000, 30000, 9999).astype("<i2")
    np.save(tmp_path / "x.npy", ref.astype(np.float32) / 32768)
    played = tmp_path / "played.raw"
    out = run_python(
        f"""
        import numpy as np
        from core.audio.speaker import Speaker
        x = np.load({str(tmp_path / "x.npy")!r})
        with Speaker(16000) as spk:
            print(spk.silent, spk.device_rate, spk.channels)
            spk.play(x[:5000])
            for i in range(5000, len(x), 999):
                spk.write(x[i : i + 999])
    """,
        alsa_env(outfile=played),
    )
    assert out.split() == ["False", "16000", "1"]
    got = np.fromfile(played, "<i2")
    np.testing.assert_array_equal(got[: len(ref)], ref)
    assert not got[len(ref) :].any()  # anything after the signal is silence padding


def test_no_output_device_is_a_clear_error_or_a_silent_pacer(run_python, alsa_env):
    pytest.importorskip("pyaudio", reason="PyAudio is not installed")
    out = run_python(
        """
        import time
        import numpy as np
        from core.audio.speaker import Speaker
        from core.errors import AudioError
        try:
            Speaker(16000)
        except AudioError as e:
            print(e)
        spk = Speaker(16000, allow_silent=True)
        t = time.monotonic()
        spk.play(np.zeros(16000, np.float32), realtime=False)
        fast = time.monotonic() - t
        t = time.monotonic()
        spk.play(np.zeros(4000, np.float32), 16000)
        paced = time.monotonic() - t
        print(spk.silent, fast < 0.1, 0.24 <= paced < 0.6)
    """,
        alsa_env(),
    )
    error, flags = out.strip().splitlines()
    assert error.startswith("no speaker found: tried the default device") and "speaker devices: none" in error
    assert flags == "True True True"


class FakeClock:
    def __init__(self) -> None:
        self.now, self.sleeps = 100.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


def test_paced_source_schedule_is_absolute_and_does_not_drift():
    clock = FakeClock()
    src = ArraySource(np.arange(3200, dtype=np.float32), 16000)
    paced = PacedSource(src, clock=clock, sleep=clock.sleep)
    times = []
    for _ in paced.blocks(160):  # 20 blocks of 10 ms
        times.append(clock.now - 100.0)
        clock.now += 0.004 if len(times) != 3 else 0.05  # processing time; block 2 takes 50 ms
    assert len(times) == 20
    # block i is released when (i + 1) hops of audio time have passed since the start ...
    for i in (0, 1, 2, *range(10, 20)):
        assert times[i] == pytest.approx((i + 1) * 0.01, abs=1e-9)
    # ... and a late consumer gets the next blocks at once until it has caught up (block 10)
    for i in range(3, 10):
        assert times[i] == pytest.approx(0.08 + (i - 3) * 0.004, abs=1e-9)


def test_paced_source_real_time_and_stop():
    x = np.random.default_rng(3).standard_normal(4000).astype(np.float32)  # 0.25 s at 16 kHz
    paced = PacedSource(ArraySource(x, 16000))
    t = time.monotonic()
    blocks = list(paced.blocks(400))
    elapsed = time.monotonic() - t
    assert 0.25 <= elapsed < 0.5
    np.testing.assert_array_equal(np.concatenate(blocks), x)
    unpaced = PacedSource(ArraySource(x, 16000), realtime=False)
    t = time.monotonic()
    assert len(list(unpaced.blocks(400))) == 10 and time.monotonic() - t < 0.05
    long = PacedSource(ArraySource(np.zeros(16000 * 60, np.float32), 16000))
    t = time.monotonic()
    for i, _ in enumerate(long.blocks(160)):
        if i == 2:
            long.stop()
    assert time.monotonic() - t < 0.5  # a 60 s source ended right after stop()


def test_pacer_first_call_starts_the_clock():
    clock = FakeClock()
    pacer = Pacer(1000, clock, clock.sleep)
    pacer.wait_until(0)
    pacer.wait_until(500)
    clock.now += 2.0
    pacer.wait_until(1000)  # already late: no sleep
    assert clock.sleeps == [pytest.approx(0.5)]
