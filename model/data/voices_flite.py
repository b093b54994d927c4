"""flite voices: kal, kal16, awb, rms (train) and slt (dev only), each in several pitch/speed perturbations.

Pitch goes through flite's ``int_f0_target_mean`` where the voice honours it; rms ignores it, so its pitch
change is a resampling (which also scales the formants, like a different vocal tract) with the duration
stretch compensating so the speaking rate stays ``speed``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import numpy as np

from model.data.audio import change_speed, peak_normalize, read_wav_16k
from model.data.voices import Split, Voice, perturbed_voices

BASE_F0 = {"kal": 105.0, "kal16": 105.0, "awb": 110.0, "rms": 100.0, "slt": 170.0}  # Hz, approximate
RESAMPLE_PITCH = {"rms"}  # voices whose pitch is changed by resampling
TRAIN_VOICES = ("kal", "kal16", "awb", "rms")
DEV_VOICES = ("slt",)
PERTURBATIONS = 6  # voices per engine voice: the unperturbed one and 5 random pitch/speed pairs
PERTURB = ((0.8, 1.25), (0.85, 1.15))  # pitch and speed factor ranges of the perturbed voices


class FliteFamily:
    """The flite voice family (see module docstring)."""

    name = "flite"

    def available(self) -> bool:
        return shutil.which("flite") is not None

    def voices(self, seed: int = 0) -> list[Voice]:
        groups: list[tuple[Split, tuple[str, ...]]] = [("train", TRAIN_VOICES), ("dev", DEV_VOICES)]
        return [
            v
            for split, names in groups
            for name in names
            for v in perturbed_voices(self.name, name, split, seed, PERTURBATIONS, *PERTURB)
        ]

    def synthesize(self, voice: Voice, text: str) -> np.ndarray:
        name = voice.spec
        resample = name in RESAMPLE_PITCH and abs(voice.pitch - 1.0) > 1e-3
        stretch = (voice.pitch if resample else 1.0) / voice.speed
        cmd = ["flite", "-voice", name, "--setf", f"duration_stretch={stretch:.4f}"]
        if not resample:
            cmd += ["--setf", f"int_f0_target_mean={BASE_F0.get(name, 110.0) * voice.pitch:.1f}"]
        fd, path = tempfile.mkstemp(suffix=".wav")
        os.close(fd)
        try:
            subprocess.run([*cmd, "-t", text, "-o", path], check=True, capture_output=True, timeout=60)
            audio = read_wav_16k(path)
        finally:
            os.unlink(path)
        if resample:  # played back `pitch` times faster: pitch up, duration down by the same factor
            audio = change_speed(audio, voice.pitch)
        return peak_normalize(audio)


FAMILY = FliteFamily()
