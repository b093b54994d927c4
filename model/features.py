"""Causal 80-bin log-mel features, computed the same way in one piece or incrementally.

Frame ``i`` covers samples ``[i * hop, i * hop + win)`` (no centring, no look-ahead padding), so a frame is
ready as soon as its last sample has arrived: the feature stream is causal and chunk-invariant.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from model.config import FeatureConfig


def _hz_to_mel(hz: float) -> float:
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def vtlp_frequencies(freqs: torch.Tensor, warp: float, nyquist: float, high: float = 0.8) -> torch.Tensor:
    """Vocal tract length perturbation of a frequency axis (Jaitly & Hinton 2013), in Hz.

    ``freqs`` (any shape, Hz) scaled by ``warp`` up to a boundary ``b = high * nyquist * min(warp, 1) / warp``,
    then a straight line from ``warp * b`` to the Nyquist frequency, which stays where it is: the warp is
    continuous, increasing and maps ``[0, nyquist]`` onto itself. ``warp`` > 1 moves a voice's spectral envelope
    up (a shorter vocal tract), < 1 down; 1 is the identity.
    """
    assert warp > 0 and 0 < high < 1, (warp, high)
    bound = high * nyquist * min(warp, 1.0) / warp
    slope = (nyquist - warp * bound) / (nyquist - bound)
    return torch.where(freqs <= bound, freqs * warp, nyquist - slope * (nyquist - freqs))


def mel_filterbank(cfg: FeatureConfig, warp: float = 1.0) -> torch.Tensor:
    """Triangular HTK-style mel filters; with ``warp`` != 1, filters of the VTLP-warped frequency axis
    (``vtlp_frequencies``: a power spectrum bin at f Hz counts in the bands of its warped frequency).

    Returns:
        (n_fft // 2 + 1, n_mels) float32 weights that map a power spectrum to mel bands.
    """
    n_freq = cfg.n_fft // 2 + 1
    freqs = torch.linspace(0.0, cfg.sample_rate / 2, n_freq, dtype=torch.float64)
    if warp != 1.0:
        freqs = vtlp_frequencies(freqs, warp, cfg.sample_rate / 2)
    mels = torch.linspace(_hz_to_mel(cfg.f_min), _hz_to_mel(cfg.f_max), cfg.n_mels + 2, dtype=torch.float64)
    hz = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    lower, centre, upper = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    rising = (freqs[None, :] - lower) / (centre - lower)
    falling = (upper - freqs[None, :]) / (upper - centre)
    fb = torch.clamp(torch.minimum(rising, falling), min=0.0)  # (n_mels, n_freq)
    return fb.T.contiguous().float()


class LogMel:
    """Stateless log-mel of complete frames.

    ``__call__(samples)`` with samples (N,) float32 at ``cfg.sample_rate`` returns (T, n_mels) float32 with
    ``T = 1 + (N - win) // hop`` for ``N >= win``, else 0.
    """

    def __init__(self, cfg: FeatureConfig, warp: float = 1.0) -> None:
        self.cfg = cfg
        self.warp = warp  # VTLP factor of the filters (training augmentation; 1.0 everywhere else)
        # Computed in float64 and rounded to float32 at the end, so that frames come out the same (to the
        # last bit in practice) whatever number of frames one call holds.
        self.window = torch.hann_window(cfg.win_length, periodic=True, dtype=torch.float64)
        self.filters = mel_filterbank(cfg, warp).double()
        self._warped: dict[float, LogMel] = {warp: self}

    def warped(self, warp: float) -> LogMel:
        """The same features with VTLP-warped filters (``mel_filterbank``); one instance per factor, cached."""
        if warp not in self._warped:
            self._warped[warp] = LogMel(self.cfg, warp)
        return self._warped[warp]

    def num_frames(self, num_samples: int) -> int:
        if num_samples < self.cfg.win_length:
            return 0
        return 1 + (num_samples - self.cfg.win_length) // self.cfg.hop_length

    def __call__(self, samples: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        n = self.num_frames(int(samples.shape[-1]))
        if n == 0:
            return torch.zeros(0, cfg.n_mels)
        frames = samples.double()[: (n - 1) * cfg.hop_length + cfg.win_length].unfold(0, cfg.win_length, cfg.hop_length)
        spec = torch.fft.rfft(frames * self.window, n=cfg.n_fft)  # (T, n_fft // 2 + 1)
        power = spec.real.square() + spec.imag.square()
        return torch.log(power @ self.filters + 1e-6).float()


class OnlineFeatures:
    """Incremental log-mel: accept samples in any piece sizes, pop the frames that became complete.

    State: the samples not yet fully consumed (fewer than ``win`` plus one hop) and the frame count.
    """

    def __init__(self, cfg: FeatureConfig, log_mel: LogMel | None = None) -> None:
        self.cfg = cfg
        self.log_mel = log_mel or LogMel(cfg)
        self._buffer = np.zeros(0, dtype=np.float32)
        self.num_frames = 0  # frames produced so far

    def accept(self, samples: np.ndarray) -> torch.Tensor:
        """Append (N,) float32 samples at cfg.sample_rate; return the new frames, (T_new, n_mels)."""
        self._buffer = np.concatenate([self._buffer, samples.astype(np.float32, copy=False)])
        feats = self.log_mel(torch.from_numpy(self._buffer))
        n = int(feats.shape[0])
        if n:
            self._buffer = self._buffer[n * self.cfg.hop_length :]
            self.num_frames += n
        return feats
