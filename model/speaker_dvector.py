"""A speaker embedding trained on real people: the GE2E d-vector of the ``resemblyzer`` package, reimplemented.

Our other embedders (:mod:`model.speaker`, :mod:`model.speaker_net`) learned voices from the voice bank's
synthetic speakers only. This one is the speaker encoder that PyPI's ``resemblyzer`` 0.1.4 (Apache-2.0) ships
with its wheel: a 3-layer LSTM trained with the generalised end-to-end loss on thousands of real speakers
(LibriSpeech, VoxCeleb). Its weights are converted once to safetensors (``scripts/convert_dvector.py``); at
run time nothing of that package is needed (no pickle, no librosa, no webrtcvad):

1. the span's level is raised (never lowered) to ``target_dbfs`` of mean power;
2. long pauses are cut: 30 ms windows count as speech within ``speech_db`` of the 95th percentile of window
   energy (resemblyzer used webrtcvad), smoothed over ``smooth_windows`` and widened by ``keep_windows``;
3. a power (not log) mel spectrogram: 25 ms Hann frames every 10 ms, centred with reflected edges, 40 Slaney
   mel bands 0-8 kHz (librosa's ``melspectrogram`` defaults of 2019, which the weights were trained on);
4. partial utterances of ``partial_frames`` (1.6 s) every ``1 / partial_rate`` s, each through the LSTM; the
   last hidden state of the top layer -> linear -> ReLU -> unit length; the span's embedding is the mean of
   its partials, unit length (``VoiceEncoder.embed_utterance``).

Saved as ``speaker.safetensors`` (the LSTM and linear weights) + ``speaker.json`` (``"kind": "dvector"``, the
config, where the weights came from); :func:`model.speaker.load_embedder` picks the class by ``kind``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from model.speaker import SAMPLE_RATE, WEIGHTS_FILE, TrainingInfo, read_config, unit_length, write_config

KIND = "dvector"


@dataclass(frozen=True)
class DVectorConfig:
    """Input pipeline and shape of the d-vector network (those of resemblyzer 0.1.4's ``hparams``)."""

    sample_rate: int = SAMPLE_RATE  # Hz
    n_fft: int = 400  # samples per frame (25 ms); also the FFT size
    hop_length: int = 160  # samples between frames (10 ms)
    n_mels: int = 40  # Slaney mel bands from 0 Hz to sample_rate / 2
    hidden_size: int = 256  # LSTM width
    num_layers: int = 3  # stacked LSTM layers
    embedding_dim: int = 256  # E
    partial_frames: int = 160  # frames per partial utterance (1.6 s)
    partial_rate: float = 1.3  # partial utterances per second
    min_coverage: float = 0.75  # a last, zero-padded partial is kept when at least this share of it is audio
    target_dbfs: float = -30.0  # spans quieter than this (mean power, dB re full scale) are raised to it
    vad_window: int = 480  # samples per pause-detection window (30 ms)
    speech_db: float = 30.0  # a window is speech within this many dB of the 95th percentile of window energy
    smooth_windows: int = 8  # moving average of the speech flags over this many windows
    keep_windows: int = 7  # flags widened to this many windows, centred (odd; pauses up to ~180 ms stay)

    def __post_init__(self) -> None:
        assert self.n_fft > 0 and 0 < self.hop_length <= self.n_fft, (self.n_fft, self.hop_length)
        assert self.partial_rate * self.partial_frames * self.hop_length >= self.sample_rate, (
            f"partial_rate {self.partial_rate}: partials of {self.partial_frames} frames would leave gaps"
        )
        assert 0 < self.min_coverage <= 1, self.min_coverage
        assert self.keep_windows % 2 == 1 and self.smooth_windows >= 1, (self.keep_windows, self.smooth_windows)


def slaney_mel_filters(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) Slaney-style mel filters (linear below 1 kHz, log above; each filter scaled to
    unit area), from 0 Hz to ``sample_rate / 2``: librosa's ``filters.mel`` with its defaults."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0

    def hz_to_mel(hz: float) -> float:
        return hz / f_sp if hz < min_log_hz else min_log_mel + np.log(hz / min_log_hz) / logstep

    def mel_to_hz(mel: np.ndarray) -> np.ndarray:
        return np.where(mel < min_log_mel, f_sp * mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)))

    fft_freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


class DVectorNet(nn.Module):
    """(B, T, n_mels) power mel frames -> (B, E) unit embeddings: LSTM, last hidden state, linear, ReLU."""

    def __init__(self, cfg: DVectorConfig) -> None:
        super().__init__()
        self.lstm = nn.LSTM(cfg.n_mels, cfg.hidden_size, cfg.num_layers, batch_first=True)
        self.linear = nn.Linear(cfg.hidden_size, cfg.embedding_dim)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(mels)
        z = torch.relu(self.linear(hidden[-1]))
        return z / torch.linalg.vector_norm(z, dim=1, keepdim=True).clamp_min(1e-9)


class DVectorEmbedder:
    """Audio span -> (E,) unit vector by the d-vector network (see the module docstring)."""

    def __init__(self, net: DVectorNet, config: DVectorConfig | None = None, info: TrainingInfo | None = None) -> None:
        self.net = net.eval()
        self.config = config or DVectorConfig()
        self.info = info or TrainingInfo()
        cfg = self.config
        assert net.linear.out_features == cfg.embedding_dim, f"net gives {net.linear.out_features} dims, config {cfg}"
        self.mel = torch.from_numpy(slaney_mel_filters(cfg.sample_rate, cfg.n_fft, cfg.n_mels)).float()
        self.window = torch.hann_window(cfg.n_fft, periodic=True)

    @property
    def dim(self) -> int:
        return self.config.embedding_dim

    def speech(self, samples: np.ndarray) -> np.ndarray:
        """(N,) float samples -> (N',) the level-raised samples with pauses longer than ~180 ms cut out."""
        cfg = self.config
        x = np.asarray(samples, dtype=np.float64).reshape(-1)
        power = float(np.mean(x**2)) if len(x) else 0.0
        if power > 0:
            gain_db = cfg.target_dbfs - 10.0 * np.log10(power)
            x = x * 10.0 ** (max(gain_db, 0.0) / 20.0)
        n = len(x) // cfg.vad_window
        if n < 2:
            return x.astype(np.float32)
        energy = 10.0 * np.log10(np.mean(x[: n * cfg.vad_window].reshape(n, -1) ** 2, axis=1) + 1e-12)
        flags = (energy >= np.percentile(energy, 95) - cfg.speech_db).astype(np.float64)
        w = cfg.smooth_windows
        smooth = np.convolve(np.concatenate([np.zeros((w - 1) // 2), flags, np.zeros(w // 2)]), np.ones(w), "valid") / w
        keep = np.round(smooth).astype(bool)
        h = cfg.keep_windows // 2
        keep = np.convolve(np.pad(keep.astype(np.float64), h), np.ones(2 * h + 1), "valid") > 0  # h more each side
        if not keep.any():
            return x.astype(np.float32)
        return x[: n * cfg.vad_window][np.repeat(keep, cfg.vad_window)].astype(np.float32)

    def mels(self, samples: np.ndarray) -> torch.Tensor:
        """(N,) float samples -> (T, n_mels) power mel frames, T = N // hop + 1."""
        cfg = self.config
        x = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
        if len(x) <= cfg.n_fft // 2:  # reflection needs more samples than the half frame
            x = torch.nn.functional.pad(x, (0, cfg.n_fft // 2 + 1 - len(x)))
        spec = torch.stft(x, cfg.n_fft, cfg.hop_length, window=self.window, center=True, pad_mode="reflect",
                          return_complex=True)  # fmt: skip
        return (self.mel @ spec.abs().square()).T

    def partial_starts(self, n_samples: int) -> list[int]:
        """First frame of each partial utterance of a span of ``n_samples`` (``compute_partial_slices``)."""
        cfg = self.config
        n_frames = int(np.ceil((n_samples + 1) / cfg.hop_length))
        step = max(1, int(np.round(cfg.sample_rate / cfg.partial_rate / cfg.hop_length)))
        starts = list(range(0, max(1, n_frames - cfg.partial_frames + step + 1), step))
        last = starts[-1] * cfg.hop_length
        coverage = (n_samples - last) / (cfg.partial_frames * cfg.hop_length)
        if coverage < cfg.min_coverage and len(starts) > 1:
            starts.pop()
        return starts

    @torch.inference_mode()
    def embed(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """(E,) float32 unit-length embedding of a span of audio (N,) at ``sample_rate`` (must be 16 kHz)."""
        cfg = self.config
        assert sample_rate == cfg.sample_rate, f"resample to {cfg.sample_rate} Hz, got {sample_rate}"
        x = self.speech(samples)
        starts = self.partial_starts(len(x))
        need = (starts[-1] + cfg.partial_frames) * cfg.hop_length
        x = np.pad(x, (0, max(0, need - len(x))))
        mel = self.mels(x)
        batch = torch.stack([mel[s : s + cfg.partial_frames] for s in starts])
        return unit_length(self.net(batch).mean(0).double().numpy())

    # -- files ---------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """Write ``speaker.safetensors`` and ``speaker.json`` into ``directory``."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().float().contiguous() for k, v in self.net.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE))
        write_config(directory, KIND, self.info, dvector_config=asdict(self.config), embedding_dim=self.dim)

    @classmethod
    def load(cls, directory: str | Path) -> DVectorEmbedder:
        """Read an embedder written by :meth:`save`."""
        from safetensors.torch import load_file

        directory = Path(directory)
        meta, info = read_config(directory, KIND)
        cfg = DVectorConfig(**meta["dvector_config"])
        net = DVectorNet(cfg)
        net.load_state_dict({k: v.float() for k, v in load_file(str(directory / WEIGHTS_FILE)).items()})
        return cls(net, cfg, info)
