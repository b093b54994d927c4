"""SVOX Pico voices through PyPI ``py-nanotts`` (the lingware files ship inside the wheel).

Pico has one English voice per language (en-US: lh0, en-GB: kh0); speakers come from pitch (0.5-2.0)
and speaking-rate perturbation. Each (language, pitch) pair gets ``SPEEDS_PER_PITCH`` rates, one
drawn from each equal slice of ``SPEED_RANGE`` (deterministic for the seed). Held out as split "dev":
en-GB with a pitch in ``DEV_PITCH_RANGE``; training never sees that language-pitch region. Native output
is 16 kHz 16-bit PCM, so no resampling is needed. Synthesis runs at about 200x real time on one core.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from model.data.voices import SAMPLE_RATE, Split, Voice, allowed_voice, check_allowed

LANGUAGES = ("en-US", "en-GB")  # Pico's English voices
PITCHES = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.35, 1.5, 1.7, 2.0)  # pitch factors
SPEEDS_PER_PITCH = 3  # speaking rates drawn for each (language, pitch)
SPEED_RANGE = (0.8, 1.25)  # speaking-rate factor, uniform
DEV_LANGUAGE = "en-GB"  # the held-out setting: this language ...
DEV_PITCH_RANGE = (1.3, 1.6)  # ... with a pitch in this closed range
PICO_RATE = 16000  # Hz, Pico's output rate
_PEAK = 0.95  # peak magnitude after normalisation


def _is_dev(language: str, pitch: float) -> bool:
    return language == DEV_LANGUAGE and DEV_PITCH_RANGE[0] <= pitch <= DEV_PITCH_RANGE[1]


class PicoFamily:
    """SVOX Pico en-US / en-GB with pitch and rate perturbation (see the module docstring)."""

    name = "pico"

    def available(self) -> bool:
        return importlib.util.find_spec("py_nanotts") is not None

    def voices(self, seed: int = 0) -> list[Voice]:
        rng = np.random.default_rng([seed, 1605])
        out: list[Voice] = []
        for language in LANGUAGES:
            for pitch in PITCHES:
                for speed in self._speeds(rng):
                    voice_id = f"pico:{language}:p{pitch:.2f}:s{speed:.2f}"
                    split: Split = "dev" if _is_dev(language, pitch) else "train"
                    out.append(allowed_voice(self.name, voice_id, language, speed, pitch, split))
        return out

    @staticmethod
    def _speeds(rng: np.random.Generator) -> list[float]:
        """SPEEDS_PER_PITCH distinct rates: one uniform draw in each equal slice of SPEED_RANGE."""
        edges = np.linspace(*SPEED_RANGE, SPEEDS_PER_PITCH + 1)
        return [
            round(float(rng.uniform(lo + 0.01, hi - 0.01)), 2) for lo, hi in zip(edges[:-1], edges[1:], strict=True)
        ]

    def synthesize(self, voice: Voice, text: str) -> np.ndarray:
        check_allowed(voice)
        assert voice.family == self.name, f"not a Pico voice: {voice.voice_id!r}"
        assert voice.spec in LANGUAGES, f"unknown Pico language {voice.spec!r}"
        from py_nanotts import NanoTTS

        pcm = NanoTTS().speak(text, voice=voice.spec, speed=voice.speed, pitch=voice.pitch)
        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        assert PICO_RATE == SAMPLE_RATE, "Pico output needs resampling"
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        if peak > 0:
            audio *= _PEAK / peak
        return audio


FAMILY = PicoFamily()
