"""Turn simulated sessions into padded training batches: features, HEAT targets, reference frames."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from model.features import LogMel
from model.heat import TurnLike, heat_targets
from model.tokenizer import BLANK_ID


class SessionLike(Protocol):
    @property
    def audio(self) -> np.ndarray: ...  # (num_samples,) float32 at 16 kHz

    @property
    def turns(self) -> Sequence[TurnLike]: ...


@dataclass
class Batch:
    """A padded batch of N sessions; channel rows are channel-major (all channel 0 first).

    feats:       (N, T, 80) log-mel, T a multiple of 4
    feat_lens:   (N,) valid frames
    targets:     (KN, U) token ids of K channels, blank-padded
    target_lens: (KN,)
    ref_frames:  (KN, U) reference encoder frame of each <sot>/<eot>, -1 elsewhere
    """

    feats: torch.Tensor
    feat_lens: torch.Tensor
    targets: torch.Tensor
    target_lens: torch.Tensor
    ref_frames: torch.Tensor

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            *(getattr(self, k).to(device) for k in ("feats", "feat_lens", "targets", "target_lens", "ref_frames"))
        )

    @property
    def audio_seconds(self) -> float:
        return float(self.feat_lens.sum()) / 100.0


def collate(
    sessions: Sequence[SessionLike], log_mel: LogMel, num_channels: int = 2, warps: Sequence[float] | None = None
) -> Batch:
    """Features and HEAT channel targets of ``sessions`` (K = ``num_channels`` rows per session); with ``warps``,
    session ``i``'s features come from filters VTLP-warped by ``warps[i]`` (``LogMel.warped``)."""
    if warps is None:
        warps = [log_mel.warp] * len(sessions)
    assert len(warps) == len(sessions), f"{len(warps)} warps for {len(sessions)} sessions"
    feats = [
        log_mel.warped(w)(torch.from_numpy(np.asarray(s.audio, dtype=np.float32)))
        for s, w in zip(sessions, warps, strict=True)
    ]
    lens = [f.shape[0] - f.shape[0] % 4 for f in feats]
    t_max = max(max(lens), 4)
    n = len(sessions)
    x = torch.zeros(n, t_max, feats[0].shape[1])
    for i, f in enumerate(feats):
        x[i, : lens[i]] = f[: lens[i]]
    targets = [heat_targets(s.turns, num_channels) for s in sessions]
    rows = [tg.tokens[c] for c in range(num_channels) for tg in targets]  # channel-major
    frames = [tg.ref_frames[c] for c in range(num_channels) for tg in targets]
    u_max = max(1, max(len(r) for r in rows))
    y = torch.full((num_channels * n, u_max), BLANK_ID, dtype=torch.long)
    ref = torch.full((num_channels * n, u_max), -1, dtype=torch.long)
    for i, (r, fr) in enumerate(zip(rows, frames, strict=True)):
        y[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        ref[i, : len(fr)] = torch.tensor(fr, dtype=torch.long)
    return Batch(x, torch.tensor(lens), y, torch.tensor([len(r) for r in rows]), ref)


def concat(batches: Sequence[Batch], num_channels: int = 2) -> Batch:
    """One batch of the sessions of ``batches`` in order, padded to the longest; channel rows stay channel-major
    (channel 0 of every session, then channel 1, ...), so the result equals ``collate`` of all the sessions."""
    n = sum(b.feats.shape[0] for b in batches)
    t_max = max(b.feats.shape[1] for b in batches)
    u_max = max(b.targets.shape[1] for b in batches)
    x = batches[0].feats.new_zeros(n, t_max, batches[0].feats.shape[2])
    y = torch.full((num_channels * n, u_max), BLANK_ID, dtype=torch.long)
    ref = torch.full((num_channels * n, u_max), -1, dtype=torch.long)
    target_lens = torch.zeros(num_channels * n, dtype=torch.long)
    at = 0
    for b in batches:
        m, t, u = b.feats.shape[0], b.feats.shape[1], b.targets.shape[1]
        x[at : at + m, :t] = b.feats
        for c in range(num_channels):
            rows = slice(c * n + at, c * n + at + m)
            y[rows, :u] = b.targets[c * m : (c + 1) * m]
            ref[rows, :u] = b.ref_frames[c * m : (c + 1) * m]
            target_lens[rows] = b.target_lens[c * m : (c + 1) * m]
        at += m
    return Batch(x, torch.cat([b.feat_lens for b in batches]), y, target_lens, ref)


@dataclass(frozen=True)
class SpecAugment:
    """Masks on the features during training (Park et al. 2019), applied per session."""

    freq_masks: int = 2  # frequency masks per session
    freq_width: int = 15  # maximum mel bins per frequency mask
    time_masks_per_second: float = 0.4  # time masks per second of audio
    time_width: int = 20  # maximum frames (10 ms) per time mask

    def __call__(self, batch: Batch, generators: Sequence[torch.Generator]) -> Batch:
        """Masked copy of ``batch``; session ``i``'s masks come from ``generators[i]`` alone and are filled with the
        mean of its own valid frames, so a session is augmented the same whatever batch it is in."""
        feats = batch.feats.clone()
        n, t_max, n_mels = feats.shape
        assert len(generators) == n, f"{len(generators)} generators for {n} sessions"
        for i, generator in enumerate(generators):
            t_len = int(batch.feat_lens[i])
            fill = feats[i, :t_len].mean()
            for _ in range(self.freq_masks):
                w = int(torch.randint(0, self.freq_width + 1, (1,), generator=generator))
                f0 = int(torch.randint(0, max(1, n_mels - w), (1,), generator=generator))
                feats[i, :t_len, f0 : f0 + w] = fill
            for _ in range(int(self.time_masks_per_second * t_len / 100)):
                w = int(torch.randint(0, self.time_width + 1, (1,), generator=generator))
                t0 = int(torch.randint(0, max(1, t_len - w), (1,), generator=generator))
                feats[i, t0 : t0 + w] = fill
        return Batch(feats, batch.feat_lens, batch.targets, batch.target_lens, batch.ref_frames)


def feature_stats(batches: Sequence[Batch]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-bin mean and standard deviation of the valid frames of ``batches``: (n_mels,), (n_mels,)."""
    frames = torch.cat([b.feats[i, : int(b.feat_lens[i])] for b in batches for i in range(b.feats.shape[0])])
    return frames.mean(0), frames.std(0).clamp(min=1e-3)
