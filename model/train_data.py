"""Training and dev sessions for ``model.train``: the meeting simulator over the voice bank, with a curriculum.

Sessions are a pure function of (seed, step, index in batch), so a resumed run sees exactly the data it would
have seen without the interruption.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class DataConfig:
    """Where training sessions come from."""

    bank: str = "data/bank"  # voice bank root (model.data.bank)
    families: str = "espeak:1,flite:1,festival:0.5,pico:1,kokoro:2"  # family:weight, missing families skipped
    clean_until: int = 800  # curriculum: steps without additive noise and reverberation
    single_until: int = 1500  # curriculum: steps with single-speaker sessions only
    single_fraction: float = 0.3  # after that, fraction of single-speaker sessions
    min_seconds: float = 4.0  # session length range, seconds
    max_seconds: float = 12.0
    max_overlap: float = 0.4  # largest overlap fraction of speech in multi-speaker sessions
    noise_prob: float = 0.5  # probability of additive noise
    reverb_prob: float = 0.3  # probability of reverberation
    speed_prob: float = 0.0  # probability that a speaker is played back faster or slower (new voices)
    speed_range: float = 0.1  # such a speaker's speed factor is drawn in [1 - speed_range, 1 + speed_range]
    eq_prob: float = 0.0  # probability that a speaker's track passes a random equaliser (microphone, line)
    quiet_prob: float = 0.0  # probability of a quiet session (peak 0.01-0.3, log-uniform; else 0.3-0.95)
    codec_prob: float = 0.0  # probability that a session passes a lossy codec (Ogg Vorbis, about 35-60 kbps)
    floor_prob: float = 0.0  # probability that a session without additive noise gets a faint floor (SNR 30-70 dB)
    band_prob: float = 0.0  # probability that a session is narrowband (as if sampled at 8 kHz, or 8-12 kHz)
    same_family_prob: float = 0.0  # probability that a multi-speaker session's voices share one voice family
    warp_prob: float = 0.0  # probability that a session's features are VTLP-warped (factor uniform in warp_range)
    warp_range: float = 0.1  # VTLP factors are drawn in [1 - warp_range, 1 + warp_range], in steps of 0.005
    dev_sessions: int = 16  # sessions in the fixed dev batches


def parse_weights(spec: str) -> dict[str, float]:
    """ "espeak:1,flite:0.5" -> {"espeak": 1.0, "flite": 0.5}."""
    out: dict[str, float] = {}
    for part in spec.split(","):
        if part.strip():
            name, _, w = part.partition(":")
            out[name.strip()] = float(w) if w else 1.0
    return out


class SessionSource:
    """Deterministic session factory for training (train voices/sentences) and dev (held-out ones)."""

    def __init__(self, cfg: DataConfig, seed: int = 0) -> None:
        from model.data.bank import Bank
        from model.data.simulator import MeetingSimulator, SimulatorConfig

        self.cfg = cfg
        self.seed = seed
        self.bank = Bank(cfg.bank, weights=parse_weights(cfg.families))

        def sim(speakers: tuple[int, int], split: str, clean: bool = False) -> Any:
            sc = SimulatorConfig(
                min_speakers=speakers[0], max_speakers=speakers[1], min_duration=cfg.min_seconds,
                max_duration=cfg.max_seconds, max_overlap=cfg.max_overlap, noise_prob=0.0 if clean else cfg.noise_prob,
                reverb_prob=0.0 if clean else cfg.reverb_prob, split=split,
                speed_prob=cfg.speed_prob if split == "train" else 0.0,  # dev batches stay comparable across runs
                speed_range=(1.0 - cfg.speed_range, 1.0 + cfg.speed_range),
                eq_prob=cfg.eq_prob if split == "train" and not clean else 0.0,
                quiet_prob=cfg.quiet_prob if split == "train" else 0.0,
                codec_prob=cfg.codec_prob if split == "train" else 0.0,
                floor_prob=cfg.floor_prob if split == "train" and not clean else 0.0,
                band_prob=cfg.band_prob if split == "train" else 0.0,
                same_family_prob=cfg.same_family_prob if split == "train" else 0.0,
            )  # fmt: skip
            return MeetingSimulator(sc, self.bank)

        # (single speaker?, clean?) -> simulator of training sessions
        self._train = {(one, clean): sim((1, 1) if one else (2, 4), "train", clean) for one in (True, False)
                       for clean in (True, False)}  # fmt: skip
        self._dev_single = sim((1, 1), "dev")
        self._dev_multi = sim((2, 3), "dev")

    def train_batch(self, step: int, indices: Sequence[int]) -> list[Any]:
        """Sessions ``indices`` of step ``step``'s batch."""
        out = []
        for i in indices:
            rng = np.random.default_rng([self.seed, step, i])
            single = step < self.cfg.single_until or rng.random() < self.cfg.single_fraction
            out.append(self._train[single, step < self.cfg.clean_until].sample(rng))
        return out

    def train_warps(self, step: int, indices: Sequence[int]) -> list[float] | None:
        """VTLP factors of sessions ``indices`` of step ``step``'s batch (``LogMel.warped``); None without warping.

        Drawn from their own generators, so the sessions themselves (and every other draw) are what they were
        without warping, and rounded to steps of 0.005 so the warped filterbanks can be cached."""
        if self.cfg.warp_prob <= 0:
            return None
        out = []
        low, high = 1.0 - self.cfg.warp_range, 1.0 + self.cfg.warp_range
        for i in indices:
            rng = np.random.default_rng([self.seed, step, i, 1])
            out.append(round(float(rng.uniform(low, high)) * 200) / 200 if rng.random() < self.cfg.warp_prob else 1.0)
        return out

    def dev_batches(self, size: int) -> list[list[Any]]:
        sessions = []
        for i in range(self.cfg.dev_sessions):
            rng = np.random.default_rng([self.seed, 10**9, i])
            sessions.append((self._dev_single if i % 2 == 0 else self._dev_multi).sample(rng))
        return [sessions[i : i + size] for i in range(0, len(sessions), size)]
