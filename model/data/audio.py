"""Small audio helpers shared by the voice families, the bank builder and the meeting simulator."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from model.data.voices import SAMPLE_RATE

FRAME = 160  # samples per energy frame (10 ms at 16 kHz)


def to_16k(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 at SAMPLE_RATE from ``audio`` (num_samples,) or (num_samples, channels) at ``sample_rate``."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if sample_rate != SAMPLE_RATE:
        x = soxr.resample(x, sample_rate, SAMPLE_RATE).astype(np.float32)
    return x


def speed_rate(factor: float) -> int:
    """The integer sample rate (Hz) :func:`change_speed` reads 16 kHz audio at to play it ``factor`` times faster;
    the speed-up really applied is ``speed_rate(factor) / SAMPLE_RATE``."""
    return round(SAMPLE_RATE * factor)


def change_speed(audio: np.ndarray, factor: float) -> np.ndarray:
    """``audio`` (num_samples,) played back ``factor`` times faster: tempo and pitch (formants too) rise by
    ``factor``, the length becomes about ``num_samples / factor``. Resampled with soxr from an integer rate."""
    if factor == 1.0:
        return np.asarray(audio, dtype=np.float32)
    return soxr.resample(audio, speed_rate(factor), SAMPLE_RATE).astype(np.float32)


def peak_normalize(audio: np.ndarray, peak: float = 0.95) -> np.ndarray:
    """Scale so that the largest magnitude is ``peak`` (silence stays silence)."""
    m = float(np.max(np.abs(audio))) if audio.size else 0.0
    if m < 1e-9:
        return audio.astype(np.float32)
    return (audio * (peak / m)).astype(np.float32)


def read_wav_16k(path: str | Path) -> np.ndarray:
    """A WAV (or any soundfile format) as mono float32 at SAMPLE_RATE."""
    x, sr = sf.read(str(path), dtype="float32", always_2d=False)
    return to_16k(x, int(sr))


def speech_bounds(audio: np.ndarray, threshold_db: float = -40.0) -> tuple[int, int]:
    """Energy-based speech extent of ``audio`` (num_samples,) at SAMPLE_RATE.

    A 10 ms frame is speech when its energy is within ``threshold_db`` of the loudest frame.

    Returns:
        (start, end) sample indices, end exclusive; (0, 0) for silence.
    """
    n = len(audio) // FRAME
    if n == 0:
        return (0, 0)
    frames = audio[: n * FRAME].reshape(n, FRAME).astype(np.float64)
    energy = (frames**2).mean(axis=1)
    top = float(energy.max())
    if top <= 1e-12:
        return (0, 0)
    active = np.flatnonzero(energy >= top * 10 ** (threshold_db / 10))
    return (int(active[0]) * FRAME, min(len(audio), (int(active[-1]) + 1) * FRAME))


def trim_silence(audio: np.ndarray, pad: float = 0.05) -> tuple[np.ndarray, float, float]:
    """Cut leading and trailing silence, keeping ``pad`` seconds of margin on each side.

    Returns:
        (trimmed audio, speech_start, speech_end): the speech extent in seconds inside the trimmed audio.
    """
    start, end = speech_bounds(audio)
    if end <= start:
        return audio.astype(np.float32), 0.0, len(audio) / SAMPLE_RATE
    p = int(pad * SAMPLE_RATE)
    a, b = max(0, start - p), min(len(audio), end + p)
    return audio[a:b].astype(np.float32), (start - a) / SAMPLE_RATE, (end - a) / SAMPLE_RATE


def write_flac(path: str | Path, audio: np.ndarray) -> None:
    """Write ``audio`` (num_samples,) float32 at SAMPLE_RATE as 16-bit FLAC, atomically (temp file + rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    sf.write(str(tmp), np.clip(audio, -1.0, 1.0), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    tmp.replace(path)


def vorbis_roundtrip(audio: np.ndarray, compression: float) -> np.ndarray:
    """``audio`` (num_samples,) float32 at SAMPLE_RATE encoded as Ogg Vorbis and decoded again, in memory: the
    artefacts of a lossy recording, same length, no delay. ``compression`` in [0, 1] is libsndfile's level
    (16 kHz mono: about 80 kbps at 0, 35 kbps at 1). The decoded audio is deterministic; about 3 ms of CPU per
    second of audio."""
    assert 0.0 <= compression <= 1.0, compression
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", SAMPLE_RATE, 1, format="OGG", subtype="VORBIS", compression_level=compression) as f:
        f.write(np.clip(audio, -1.0, 1.0).astype(np.float32))
    buf.seek(0)
    return sf.read(buf, dtype="float32", always_2d=False)[0][: len(audio)]


def band_limit(audio: np.ndarray, rate: int) -> np.ndarray:
    """``audio`` (num_samples,) float32 at SAMPLE_RATE as if recorded at ``rate`` Hz (e.g. 8000: a telephone line):
    resampled down to it and back up with soxr, so nothing above ``rate / 2`` Hz is left; same length, no delay."""
    assert 0 < rate <= SAMPLE_RATE, rate
    if rate == SAMPLE_RATE:
        return audio.astype(np.float32, copy=False)
    back = to_16k(soxr.resample(audio.astype(np.float32, copy=False), SAMPLE_RATE, rate), rate)
    out = np.zeros(len(audio), dtype=np.float32)
    out[: min(len(back), len(audio))] = back[: len(audio)]
    return out


def add_noise_floor(audio: np.ndarray, below_peak_db: float, key: str) -> np.ndarray:
    """``audio`` (num_samples,) plus white noise ``below_peak_db`` dB below its peak magnitude (RMS of the noise),
    the same for the same ``key`` (e.g. a session id): a recording's faint hiss, for robustness probes."""
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    level = float(np.max(np.abs(audio), initial=0.0)) * 10 ** (-below_peak_db / 20)
    return (audio + level * rng.standard_normal(len(audio))).astype(np.float32)


def read_audio(path: str | Path) -> np.ndarray:
    """A bank or session file as float32 (num_samples,) at SAMPLE_RATE."""
    x, sr = sf.read(str(path), dtype="float32", always_2d=False)
    if sr != SAMPLE_RATE or x.ndim != 1:
        x = to_16k(x, int(sr))
    return x
