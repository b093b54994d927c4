"""espeak-ng English voices: 8 accents x variants (m1-m8, f1-f5, klatt, ...), each with its own pitch and speed.

Robotic but cheap (~100x real time) and varied. The variants in :data:`DEV_VARIANTS` are held out (split "dev").
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from model.data.audio import peak_normalize, read_wav_16k
from model.data.voices import Split, Voice, allowed_voice

LANGUAGES = "en-us en-gb en-gb-scotland en-gb-x-rp en-gb-x-gbclan en-gb-x-gbcwmd en-029 en-us-nyc".split()
TRAIN_VARIANTS = "m1 m2 m3 m4 m5 m7 m8 f1 f2 f3 f5 klatt klatt2 klatt4".split()
TRAIN_VARIANTS += "adam Andy annie benjamin edward linda paul robert steph travis".split()
DEV_VARIANTS = "m6 f4 klatt3 john shelby".split()  # held out: split "dev"
DEFAULT_PITCH = 50  # espeak-ng -p (0-99)
DEFAULT_SPEED = 175  # espeak-ng -s, words per minute


def _variant_dirs() -> list[Path]:
    return [
        Path(p) / "voices" / "!v"
        for p in (
            "/usr/lib/x86_64-linux-gnu/espeak-ng-data",
            "/usr/lib/aarch64-linux-gnu/espeak-ng-data",
            "/usr/share/espeak-ng-data",
        )
    ]


def installed_variants() -> set[str] | None:
    """Variant names found on disk, or None when the data folder is not found (then every variant is tried)."""
    for d in _variant_dirs():
        if d.is_dir():
            return {p.name for p in d.iterdir()}
    return None


class EspeakFamily:
    """The espeak-ng voice family (see module docstring)."""

    name = "espeak"

    def available(self) -> bool:
        return shutil.which("espeak-ng") is not None

    def voices(self, seed: int = 0) -> list[Voice]:
        have = installed_variants()
        out: list[Voice] = []
        groups: list[tuple[Split, list[str]]] = [("train", TRAIN_VARIANTS), ("dev", DEV_VARIANTS)]
        for split, variants in groups:
            for lang in LANGUAGES:
                for variant in variants:
                    if have is not None and variant not in have:
                        continue
                    rng = random.Random(f"espeak:{seed}:{lang}:{variant}")
                    pitch, speed = rng.uniform(0.7, 1.4), rng.uniform(0.85, 1.2)
                    p, s = round(DEFAULT_PITCH * pitch), round(DEFAULT_SPEED * speed)
                    spec = f"{lang}+{variant}"
                    out.append(allowed_voice(self.name, f"espeak:{spec}:p{p}:s{s}", spec, speed, pitch, split))
        return out

    def synthesize(self, voice: Voice, text: str) -> np.ndarray:
        p = min(99, max(0, round(DEFAULT_PITCH * voice.pitch)))
        s = max(80, round(DEFAULT_SPEED * voice.speed))
        fd, path = tempfile.mkstemp(suffix=".wav")
        os.close(fd)
        try:
            subprocess.run(
                ["espeak-ng", "-v", voice.spec, "-p", str(p), "-s", str(s), "-w", path, text],
                check=True,
                capture_output=True,
                timeout=60,
            )
            return peak_normalize(read_wav_16k(path))
        finally:
            os.unlink(path)


FAMILY = EspeakFamily()
