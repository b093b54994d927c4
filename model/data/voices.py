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


def check_allowed(voice: Voice) -> None:
    """Raise ``ValueError`` if ``voice`` names a voice reserved for the held-out evaluation."""
    text = f"{voice.family} {voice.voice_id} {voice.spec}".lower()
    for marker in FORBIDDEN_VOICE_MARKERS:
        if marker in text:
            raise ValueError(f"voice {voice.voice_id!r} is reserved for held-out evaluation ({marker!r})")


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
