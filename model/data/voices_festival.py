"""festival's kal_diphone voice (train only) in several pitch/speed perturbations. Never an HTS voice.

Starting festival costs about a second, so each process keeps one festival running (``festival --pipe``) and
sends it one Scheme command per utterance; a marker file tells when the WAV is written.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from model.data.audio import peak_normalize, read_wav_16k
from model.data.voices import Voice, check_allowed, perturbed_voices

VOICES = ("kal_diphone",)
BASE_F0 = 105.0  # Hz, kal_diphone's target mean
BASE_F0_STD = 14.0
PERTURBATIONS = 10  # voices: the unperturbed one and 9 random pitch/speed pairs
PERTURB = ((0.75, 1.35), (0.85, 1.15))  # pitch and speed factor ranges of the perturbed voices
TIMEOUT = 60.0  # seconds to wait for one utterance


class _FestivalServer:
    """One festival process owned by this Python process."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="festival-"))
        self.proc = subprocess.Popen(
            ["festival", "--pipe"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.count = 0
        self.voice = ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def say(self, voice_name: str, text: str, stretch: float, f0: float) -> np.ndarray:
        assert self.proc.stdin is not None
        assert "\\" not in text and '"' not in text, text
        self.count += 1
        wav, done = self.dir / f"{self.count}.wav", self.dir / f"{self.count}.done"
        cmd = ""
        if voice_name != self.voice:
            cmd += f"(voice_{voice_name})\n"
            self.voice = voice_name
        cmd += (
            f"(begin (Parameter.set 'Duration_Stretch {stretch:.4f}) "
            f"(set! int_lr_params '((target_f0_mean {f0:.1f}) (target_f0_std {BASE_F0_STD * f0 / BASE_F0:.1f}) "
            f"(model_f0_mean 170) (model_f0_std 34))) "
            f'(utt.save.wave (utt.synth (Utterance Text "{text}")) "{wav}" \'riff) '
            f'(fclose (fopen "{done}" "w")))\n'
        )
        self.proc.stdin.write(cmd)
        self.proc.stdin.flush()
        t0 = time.monotonic()
        while not done.exists():
            if not self.alive() or time.monotonic() - t0 > TIMEOUT:
                raise RuntimeError(f"festival failed on {text!r}")
            time.sleep(0.003)
        try:
            return read_wav_16k(wav)
        finally:
            wav.unlink(missing_ok=True)
            done.unlink(missing_ok=True)

    def close(self) -> None:
        if self.alive():
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class FestivalFamily:
    """The festival voice family (see module docstring)."""

    name = "festival"

    def __init__(self) -> None:
        self._server: _FestivalServer | None = None
        self._pid = -1

    def available(self) -> bool:
        return shutil.which("festival") is not None and Path("/usr/share/festival/voices/english/kal_diphone").is_dir()

    def voices(self, seed: int = 0) -> list[Voice]:
        return [v for name in VOICES for v in perturbed_voices(self.name, name, "train", seed, PERTURBATIONS, *PERTURB)]

    def _get_server(self) -> _FestivalServer:
        # a forked child must not share its parent's festival process
        if self._server is None or self._pid != os.getpid() or not self._server.alive():
            self._server = _FestivalServer()
            self._pid = os.getpid()
            atexit.register(self._server.close)
        return self._server

    def synthesize(self, voice: Voice, text: str) -> np.ndarray:
        check_allowed(voice)
        try:
            audio = self._get_server().say(voice.spec, text, 1.0 / voice.speed, BASE_F0 * voice.pitch)
        except RuntimeError:
            self._server = None  # restart festival once
            audio = self._get_server().say(voice.spec, text, 1.0 / voice.speed, BASE_F0 * voice.pitch)
        return peak_normalize(audio)


FAMILY = FestivalFamily()
