"""Wav reading over the format matrix, resampling on read, round trips and broken files."""

from __future__ import annotations

import os
import struct
import threading
import wave

import numpy as np
import pytest

from core.audio.wav import read_wav, read_wav_info, to_int16, write_wav
from core.errors import AudioError

PCM, FLOAT, EXTENSIBLE, ADPCM = 0x0001, 0x0003, 0xFFFE, 0x0002
GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


def wav_bytes(
    payload: bytes,
    *,
    rate: int,
    channels: int,
    bits: int,
    tag: int = PCM,
    extensible: bool = False,
    data_size: int | None = None,
    riff_size: int | None = None,
    trailer: bytes = b"",
) -> bytes:
    """A wav file written by hand, so any header (also a wrong one) can be made."""
    block = channels * bits // 8
    if extensible:
        fmt = struct.pack("<HHIIHH", EXTENSIBLE, channels, rate, rate * block, block, bits)
        fmt += struct.pack("<HHI", 22, bits, (1 << channels) - 1) + struct.pack("<H", tag) + GUID_TAIL
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, (rate * block) & 0xFFFFFFFF, block, bits)
    size = len(payload) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", size) + payload
    body += b"\0" * (len(payload) & 1) + trailer
    return b"RIFF" + struct.pack("<I", len(body) if riff_size is None else riff_size) + body


def encode(ints: np.ndarray, bits: int, is_float: bool) -> bytes:
    """(frames, channels) integer codes (or floats) -> little-endian interleaved bytes."""
    if is_float:
        return ints.astype("<f4" if bits == 32 else "<f8").tobytes()
    if bits == 8:
        return (ints + 128).astype(np.uint8).tobytes()
    if bits == 24:
        v = ints.astype("<i4").reshape(-1)
        return np.stack([v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF], axis=1).astype(np.uint8).tobytes()
    return ints.astype("<i2" if bits == 16 else "<i4").tobytes()


@pytest.mark.parametrize("extensible", [False, True])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize(
    "bits,is_float", [(8, False), (16, False), (24, False), (32, False), (32, True), (64, True)]
)
def test_format_matrix(tmp_path, bits, is_float, channels, extensible):
    rng = np.random.default_rng(bits * 10 + channels)
    frames = 1001
    if is_float:
        codes = rng.uniform(-1, 1, size=(frames, channels))
        expected = codes.astype(np.float32)
    else:
        half = 1 << (bits - 1)
        codes = rng.integers(-half, half, size=(frames, channels), dtype=np.int64)
        expected = (codes / half).astype(np.float32)
    path = tmp_path / f"x{bits}{is_float}{channels}{extensible}.wav"
    path.write_bytes(
        wav_bytes(
            encode(codes, bits, is_float),
            rate=8000,
            channels=channels,
            bits=bits,
            tag=FLOAT if is_float else PCM,
            extensible=extensible,
        )
    )
    x, rate = read_wav(path)
    assert rate == 8000 and x.dtype == np.float32 and x.shape == (frames,)
    want = expected[:, 0] if channels == 1 else expected.astype(np.float64).mean(axis=1)
    np.testing.assert_allclose(x, want, rtol=0, atol=1e-6)
    info = read_wav_info(path)
    assert (info.channels, info.bits_per_sample, info.is_float, info.frames) == (
        channels,
        bits,
        is_float,
        frames,
    )


def test_stereo_channels_are_averaged(tmp_path):
    left, right = np.full(100, 8192, np.int64), np.full(100, -4096, np.int64)
    path = tmp_path / "st.wav"
    path.write_bytes(
        wav_bytes(encode(np.stack([left, right], 1), 16, False), rate=16000, channels=2, bits=16)
    )
    x, _ = read_wav(path)
    np.testing.assert_array_equal(x, np.full(100, (0.25 - 0.125) / 2, np.float32))


def tone(rate: int, freq: float, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def peak_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spec)])


@pytest.mark.parametrize("src_rate", [8000, 22050, 44100, 48000])
def test_resample_on_read_keeps_frequency_and_amplitude(tmp_path, src_rate):
    path = tmp_path / "tone.wav"
    write_wav(path, tone(src_rate, 1000.0), src_rate, bits=32)
    x, rate = read_wav(path, 16000)
    assert rate == 16000 and abs(len(x) - 16000) <= 1
    mid = x[800:-800]  # away from the edges
    assert abs(peak_hz(mid, 16000) - 1000.0) <= 2.0
    rms = float(np.sqrt(np.mean(mid.astype(np.float64) ** 2)))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


@pytest.mark.parametrize("src_rate,freq", [(22050, 10500), (44100, 10000), (44100, 15000), (48000, 12000)])
def test_resample_on_read_removes_content_above_new_nyquist(tmp_path, src_rate, freq):
    path = tmp_path / "high.wav"
    write_wav(path, tone(src_rate, freq), src_rate, bits=32)
    x, _ = read_wav(path, 16000)
    rms = float(np.sqrt(np.mean(x[800:-800].astype(np.float64) ** 2)))
    assert rms < 0.01 * (0.5 / np.sqrt(2))  # at least 40 dB down


def test_upsampling_adds_no_images(tmp_path):
    path = tmp_path / "lo.wav"
    write_wav(path, tone(8000, 1000.0), 8000, bits=32)
    x, _ = read_wav(path, 16000)
    spec = np.abs(np.fft.rfft(x[800:-800] * np.hanning(len(x) - 1600)))
    freqs = np.fft.rfftfreq(len(x) - 1600, 1 / 16000)
    assert spec[freqs > 4100].max() < 1e-3 * spec.max()


def test_round_trip_int16_and_float32(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 777).astype(np.float32)
    write_wav(tmp_path / "a.wav", x, 22050)
    y, rate = read_wav(tmp_path / "a.wav")
    assert rate == 22050
    np.testing.assert_array_equal(y, to_int16(x).astype(np.float32) / 32768)
    write_wav(tmp_path / "b.wav", x, 16000, bits=32)
    np.testing.assert_array_equal(read_wav(tmp_path / "b.wav")[0], x)
    stereo = np.stack([x, -x / 2], axis=1)
    write_wav(tmp_path / "c.wav", stereo, 16000, bits=32)
    np.testing.assert_allclose(read_wav(tmp_path / "c.wav")[0], x / 4, atol=1e-7)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_to_int16_clips():
    np.testing.assert_array_equal(
        to_int16(np.array([-2.0, -1.0, 0.5, 1.0, 2.0])), [-32768, -32768, 16384, 32767, 32767]
    )


def test_real_clip_matches_stdlib_wave(shared_data):
    path = shared_data / "ell_examples" / "seven.wav"
    x, rate = read_wav(path)
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        ref = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        assert rate == w.getframerate() == 16000
    np.testing.assert_array_equal(x, ref.astype(np.float32) / 32768)
    assert 0.05 < np.abs(x).max() < 1.0  # real speech, not silence


def _good(frames: int = 100) -> bytes:
    return wav_bytes(np.zeros(frames, "<i2").tobytes(), rate=16000, channels=1, bits=16)


BROKEN = {
    "empty": lambda: b"",
    "zero_frames": lambda: wav_bytes(b"", rate=16000, channels=1, bits=16),
    "zero_frames_then_metadata": lambda: wav_bytes(
        b"", rate=16000, channels=1, bits=16, trailer=b"LIST" + struct.pack("<I", 4) + b"INFO"
    ),
    "truncated_header": lambda: _good()[:30],
    "riff_only": lambda: _good()[:12],
    "truncated_data": lambda: wav_bytes(
        np.zeros(100, "<i2").tobytes(), rate=16000, channels=1, bits=16, data_size=400
    ),
    "text": lambda: b"this is not audio at all, just some text\n" * 3,
    "random": lambda: np.random.default_rng(7).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
    "adpcm": lambda: wav_bytes(b"\0" * 256, rate=16000, channels=1, bits=4, tag=ADPCM),
    "adpcm_extensible": lambda: wav_bytes(
        b"\0" * 256, rate=16000, channels=1, bits=16, tag=ADPCM, extensible=True
    ),
    "pcm_12_bit": lambda: wav_bytes(b"\0" * 300, rate=16000, channels=1, bits=12),
    "float_16_bit": lambda: wav_bytes(b"\0" * 300, rate=16000, channels=1, bits=16, tag=FLOAT),
    "zero_channels": lambda: wav_bytes(b"\0" * 300, rate=16000, channels=0, bits=16),
    "nan": lambda: wav_bytes(
        np.array([0.0, np.nan], "<f4").tobytes(), rate=16000, channels=1, bits=32, tag=FLOAT
    ),
}


def read_with_deadline(path, seconds: float = 10.0):
    """read_wav in a thread: a hang fails the test instead of blocking the suite."""
    box: dict = {}

    def run():
        try:
            box["result"] = read_wav(path)
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"read_wav({path}) hung"
    if "error" in box:
        raise box["error"]
    return box["result"]


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_files_raise_audio_error_naming_the_file(tmp_path, case):
    path = tmp_path / f"{case}.wav"
    path.write_bytes(BROKEN[case]())
    with pytest.raises(AudioError) as err:
        read_with_deadline(path)
    assert str(path) in str(err.value)
    if case != "nan":  # the header is fine; only decoding finds the NaN
        with pytest.raises(AudioError):
            read_wav_info(path)


def test_folder_missing_file_fifo_and_device(tmp_path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    regular = "audio file must be a regular file, this is"
    cases = [(tmp_path, f"{regular} a folder"), (tmp_path / "missing.wav", "no such audio file"),
             (fifo, f"{regular} a FIFO (named pipe)"), ("/dev/zero", f"{regular} a device")]
    for path, message in cases:
        with pytest.raises(AudioError) as err:
            read_with_deadline(path)
        assert str(err.value) == f"{path}: {message}"


def test_streamed_file_with_unset_sizes_reads_to_the_end(tmp_path):
    codes = np.arange(-50, 50, dtype=np.int64)[:, None] * 300
    path = tmp_path / "streamed.wav"
    path.write_bytes(
        wav_bytes(encode(codes, 16, False), rate=16000, channels=1, bits=16, data_size=0, riff_size=0)
    )
    x, _ = read_wav(path)
    np.testing.assert_array_equal(x, (codes[:, 0] / 32768).astype(np.float32))


def test_folder_source_lists_sorted_wavs_and_moves_both_ways(tmp_path):
    from core.audio.sources import FolderSource

    for name, value in (("b.wav", 0.25), ("a.wav", 0.5), ("c.wav", -0.5)):
        write_wav(tmp_path / name, np.full(1000, value, np.float32), 16000)
    (tmp_path / "notes.txt").write_text("not audio")
    src = FolderSource(tmp_path, 16000)
    assert [p.name for p in src.files] == ["a.wav", "b.wav", "c.wav"]
    assert src.next().name == "b.wav" and src.previous().name == "a.wav" and src.previous().name == "c.wav"
    blocks = list(src.blocks(400))  # two whole hops per 1000-sample file
    assert len(blocks) == 6
    np.testing.assert_allclose([b[0] for b in blocks], [0.5, 0.5, 0.25, 0.25, -0.5, -0.5], atol=1e-4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AudioError, match="no audio files"):
        FolderSource(tmp_path / "empty", 16000)


def _header_only(rate: int, channels: int, frames: int = 100, bits: int = 16) -> bytes:
    return wav_bytes(b"\0" * (frames * channels * bits // 8), rate=rate, channels=channels, bits=bits)


@pytest.mark.parametrize(
    "rate,channels,message",
    [
        (1, 1, "sample rate 1 Hz is outside the supported 1000..384000 Hz"),
        (999, 1, "sample rate 999 Hz is outside"),
        (4294967295, 1, "sample rate 4294967295 Hz is outside"),
        (16000, 65535, "65535 channels (at most 64 are supported)"),
    ],
)
def test_absurd_headers_are_refused_before_decoding(tmp_path, rate, channels, message):
    path = tmp_path / "absurd.wav"
    frames, bits = (2, 8) if channels > 64 else (100, 16)  # 8-bit: 65535 channels still fit the block size field
    path.write_bytes(_header_only(rate, channels, frames, bits))
    for fn in (read_with_deadline, read_wav_info):
        with pytest.raises(AudioError) as err:
            fn(path)
        assert str(err.value).startswith(f"{path}: {message}")


def test_limits_accept_their_edges(tmp_path):
    for rate, channels in ((1000, 1), (384000, 64)):
        path = tmp_path / f"edge{rate}.wav"
        path.write_bytes(_header_only(rate, channels))
        info = read_wav_info(path)
        assert (info.sample_rate, info.channels, info.frames) == (rate, channels, 100)


def float_wav(path, values) -> None:
    path.write_bytes(wav_bytes(np.asarray(values, "<f4").tobytes(), rate=16000, channels=1, bits=32, tag=FLOAT))


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan, 3e38, -4.01])
def test_float_samples_that_are_not_audio_are_refused(tmp_path, bad):
    path = tmp_path / "bad_float.wav"
    float_wav(path, [0.0, 0.5, bad, 0.0])
    with pytest.raises(AudioError, match="NaN or infinite|far outside") as err:
        read_wav(path)
    assert str(path) in str(err.value)


def test_mild_float_overs_are_clipped_to_full_scale(tmp_path):
    path = tmp_path / "hot.wav"
    values = np.array([0.25, 1.0001, -1.5, 4.0, -0.75], np.float32)  # up to +12 dBFS is clipped
    float_wav(path, values)
    x, _ = read_wav(path)
    np.testing.assert_array_equal(x, np.clip(values, -1, 1))


def test_blocks_stream_the_same_samples_as_a_whole_read(tmp_path):
    from core.audio.wav import AudioReader

    rng = np.random.default_rng(11)
    x = rng.uniform(-0.9, 0.9, 44100 * 3).astype(np.float32)
    path = tmp_path / "long.wav"
    write_wav(path, x, 44100, bits=32)
    with AudioReader(path) as r:
        assert r.info.frames == len(x)
        native = list(r.blocks(block_frames=10000))
        resampled = list(r.blocks(16000, block_frames=10000))  # blocks() can be run again from the start
    assert max(len(b) for b in native) == 10000  # memory is one block, not the file
    np.testing.assert_array_equal(np.concatenate(native), x)
    np.testing.assert_array_equal(np.concatenate(resampled), read_wav(path, 16000)[0])
    from core.audio.resample import resample

    np.testing.assert_array_equal(np.concatenate(resampled), resample(x, 44100, 16000))


def test_whole_reads_have_a_length_cap(tmp_path, monkeypatch):
    import core.audio.wav as wav

    path = tmp_path / "a.wav"
    write_wav(path, np.zeros(5000, np.float32), 8000)
    monkeypatch.setattr(wav, "MAX_READ_FRAMES", 4999)
    with pytest.raises(AudioError, match="too long to read whole") as err:
        read_wav(path)
    assert str(path) in str(err.value)
    monkeypatch.setattr(wav, "MAX_READ_FRAMES", 6000)
    assert len(read_wav(path)[0]) == 5000
    with pytest.raises(AudioError, match="too long to read whole"):  # 10000 samples after upsampling
        read_wav(path, 16000)


def test_write_formats_by_extension_and_errors(tmp_path):
    rng = np.random.default_rng(12)
    x = rng.uniform(-1, 1, 1600).astype(np.float32)
    write_wav(tmp_path / "a.flac", x, 16000)
    info = read_wav_info(tmp_path / "a.flac")
    assert (info.format, info.subtype, info.bits_per_sample) == ("FLAC", "PCM_16", 16)
    np.testing.assert_array_equal(read_wav(tmp_path / "a.flac")[0], to_int16(x).astype(np.float32) / 32768)
    with pytest.raises(AudioError, match="cannot tell the audio format"):
        write_wav(tmp_path / "a.xyz", x, 16000)
    with pytest.raises(AudioError, match="32-bit float samples need a .wav"):
        write_wav(tmp_path / "b.flac", x, 16000, bits=32)
    with pytest.raises(AudioError, match="cannot write") as err:
        write_wav(tmp_path / "c.opus", x, 11025)  # Opus has no 11025 Hz
    assert "c.opus" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.flac"]  # nothing half-written left
