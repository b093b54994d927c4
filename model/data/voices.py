"""The voice-family interface of the TTS voice bank.

Every family of voices (espeak-ng, flite, festival, kokoro, pico) lives in its own module
``model/data/voices_<family>.py`` and exposes one :class:`VoiceFamily` object named ``FAMILY``.
The bank builder (``model/data/bank.py``) only talks to this interface.

Rules that hold for every family (DESIGN.md section 3):
- No piper voice and no festival HTS voice may ever be listed or synthesized.
- Every voice belongs to exactly one split: ``"train"`` or ``"dev"`` (held out for the dev set).
- ``synthesize`` returns mono float32 audio at :data:`SAMPLE_RATE` (resampled with soxr where needed).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

SAMPLE_RATE = 16000  # Hz, the rate of every utterance in the bank

Split = Literal["train", "dev"]

FORBIDDEN_VOICE_MARKERS = ("piper", "hts", "cmu_us_slt_arctic_hts", "nitech")
"""Substrings that mark voices reserved for the held-out evaluation; never to be used."""


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: a family, a voice and its fixed perturbation."""

    family: str  # voice family, e.g. "espeak", "flite", "festival", "kokoro", "pico"
    voice_id: str  # unique across the bank, e.g. "espeak:en-gb+m3:p60:s160"
    spec: str  # family-specific voice description (engine voice name, mix weights, ...)
    speed: float = 1.0  # speaking-rate factor, 1.0 = the engine's default
    pitch: float = 1.0  # pitch factor, 1.0 = the engine's default
    split: Split = "train"  # "train" or "dev" (held out of training)


def identity_of(voice_id: str) -> str:
    """The person behind a voice id: the engine voice without its pitch / speed perturbation.

    Perturbations of one engine voice sound like one person at different moods, not like different people, so
    a session that wants distinct people draws distinct identities:

    - espeak ``espeak:<accent>+<variant>:p..:s..`` -> ``espeak:<variant>`` (the variant sets the timbre);
    - kokoro ``kokoro:<name>:<style>*w+<style>*w..:s..`` -> ``kokoro:<style>`` of the largest weight;
    - flite, festival, pico ``<family>:<voice>:...`` -> ``<family>:<voice>``.
    """
    parts = voice_id.split(":")
    family = parts[0]
    if family == "espeak" and len(parts) > 1:
        return f"espeak:{parts[1].split('+')[-1]}"
    if family == "kokoro" and len(parts) > 2:
        weights = [term.split("*") for term in parts[2].split("+")]
        return f"kokoro:{max(weights, key=lambda t: float(t[1]) if len(t) > 1 else 1.0)[0]}"
    return ":".join(parts[:2])


def check_allowed(voice: Voice) -> None:
    """Raise ``ValueError`` if ``voice`` names a voice reserved for the held-out evaluation."""
    text = f"{voice.family} {voice.voice_id} {voice.spec}".lower()
    for marker in FORBIDDEN_VOICE_MARKERS:
        if marker in text:
            raise ValueError(f"voice {voice.voice_id!r} is reserved for held-out evaluation ({marker!r})")


def allowed_voice(family: str, voice_id: str, spec: str, speed: float, pitch: float, split: Split) -> Voice:
    """A :class:`Voice` that passed :func:`check_allowed` (``ValueError`` for a reserved voice)."""
    voice = Voice(family=family, voice_id=voice_id, spec=spec, speed=speed, pitch=pitch, split=split)
    check_allowed(voice)
    return voice


def perturbed_voices(
    family: str,
    name: str,
    split: Split,
    seed: int,
    count: int,
    pitch_range: tuple[float, float],
    speed_range: tuple[float, float],
) -> list[Voice]:
    """``count`` speakers from engine voice ``name``: the voice as it is, then random pitch and speed factors.

    Deterministic for ``(family, seed, name)``; ids read ``<family>:<name>:p<pitch>:s<speed>``.
    """
    rng = random.Random(f"{family}:{seed}:{name}")
    out = []
    for k in range(count):
        pitch, speed = (1.0, 1.0) if k == 0 else (rng.uniform(*pitch_range), rng.uniform(*speed_range))
        out.append(allowed_voice(family, f"{family}:{name}:p{pitch:.2f}:s{speed:.2f}", name, speed, pitch, split))
    return out


class VoiceFamily(Protocol):
    """What a family module provides."""

    name: str  # family name, equal to Voice.family of its voices

    def available(self) -> bool:
        """True when the engine is installed on this machine."""
        ...

    def voices(self, seed: int = 0) -> list[Voice]:
        """All voices of the family (train and dev), deterministic for ``seed``."""
        ...

    def synthesize(self, voice: Voice, text: str) -> np.ndarray:
        """Speak ``text`` (normalised lower-case words) with ``voice``.

        Returns:
            (num_samples,) float32 at SAMPLE_RATE, peak-normalised to at most 1.0 in magnitude.
        """
        ...
