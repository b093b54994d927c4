"""A neural speaker embedding: a small TDNN (x-vector style) over log-mel frames, trained on the voice bank.

The same contract as :class:`model.speaker.SpeakerEmbedder` (``dim``, ``info``, ``embed(samples) -> (E,)``
unit vector; cosine scoring), so the service's labeller and the evaluations take either:

1. log-mel frames of the span (``model.features.LogMel``: 80 bands, 25 ms / 10 ms), the quiet frames dropped
   (more than ``speech_db`` below the 95th percentile of frame level), the mean over the span subtracted: per
   band (cepstral-mean style, so a channel or a gain does not look like a speaker) or, with
   ``band_mean=False``, only the overall level (the long-term spectrum is kept);
2. :class:`TDNN`: five 1-D convolutions over time (growing dilation, ReLU, batch norm), mean and standard
   deviation pooled over the frames, one linear layer to ``embedding_dim``;
3. length-normalised.

Trained by ``python -m model.speaker_train --kind tdnn`` with an additive-margin (cosine) softmax over the
bank's TRAIN voices (the classifier is not saved). Saved as ``speaker.safetensors`` (the TDNN's weights) +
``speaker.json`` (``"kind": "tdnn"``, the configs, training facts); :func:`model.speaker.load_embedder`
picks the class by ``kind``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from model.config import FeatureConfig
from model.features import LogMel
from model.speaker import SAMPLE_RATE, WEIGHTS_FILE, TrainingInfo, read_config, unit_length, write_config

KIND = "tdnn"


@dataclass(frozen=True)
class TDNNConfig:
    """Shape of the TDNN and of its input."""

    channels: int = 192  # width of the frame layers
    pooled_channels: int = 512  # width of the last frame layer, before pooling
    embedding_dim: int = 128  # E
    speech_db: float = 30.0  # frames more than this below the 95th percentile of frame level are dropped
    min_frames: int = 20  # shorter spans are repeated up to this many frames
    band_mean: bool = True  # subtract each band's mean over the span (else only the overall level)

    def __post_init__(self) -> None:
        assert self.channels > 0 and self.pooled_channels > 0 and self.embedding_dim > 0, self
        assert self.min_frames >= 16, f"min_frames {self.min_frames}: the convolutions see 15 frames"


class TDNN(nn.Module):
    """(B, T, F) normalised log-mel frames -> (B, E) embeddings (not normalised)."""

    def __init__(self, n_mels: int, cfg: TDNNConfig) -> None:
        super().__init__()
        c = cfg.channels
        layers: list[nn.Module] = []
        # (in, out, kernel, dilation): receptive field 15 frames
        shapes = [(n_mels, c, 5, 1), (c, c, 3, 2), (c, c, 3, 3), (c, c, 1, 1), (c, cfg.pooled_channels, 1, 1)]
        for cin, cout, k, d in shapes:
            layers += [nn.Conv1d(cin, cout, k, dilation=d), nn.ReLU(), nn.BatchNorm1d(cout)]
        self.frames = nn.Sequential(*layers)
        self.embedding = nn.Linear(2 * cfg.pooled_channels, cfg.embedding_dim)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        h = self.frames(feats.transpose(1, 2))  # (B, C, T')
        pooled = torch.cat([h.mean(-1), h.std(-1)], dim=-1)  # (B, 2C)
        return self.embedding(pooled)


def span_frames(log_mel: torch.Tensor, cfg: TDNNConfig) -> torch.Tensor:
    """(T, F) log-mel of a span -> (T', F) its speech frames, mean-normalised (per band, or the overall level
    only: the long-term spectrum is a speaker cue, and a channel one), at least ``cfg.min_frames``."""
    x = log_mel
    if len(x) == 0:
        return torch.zeros(cfg.min_frames, log_mel.shape[-1])
    level = torch.logsumexp(x, dim=-1) * (10.0 / np.log(10.0))  # dB up to a constant
    keep = level >= torch.quantile(level, 0.95) - cfg.speech_db
    x = x[keep]
    x = x - (x.mean(0, keepdim=True) if cfg.band_mean else x.mean())
    if len(x) < cfg.min_frames:
        x = x.repeat(-(-cfg.min_frames // len(x)), 1)[: cfg.min_frames]
    return x


class NeuralSpeakerEmbedder:
    """Audio span -> (E,) unit vector by the TDNN (see the module docstring).

    Args:
        net: the trained TDNN (put in eval mode here).
        config: its shape and input policy.
        features: the log-mel configuration it was trained with.
    """

    def __init__(
        self, net: TDNN, config: TDNNConfig, features: FeatureConfig | None = None, info: TrainingInfo | None = None
    ) -> None:
        self.net = net.eval()
        self.config = config
        self.features = features or FeatureConfig()
        self.log_mel = LogMel(self.features)
        self.info = info or TrainingInfo()

    @property
    def dim(self) -> int:
        return self.config.embedding_dim

    def frames(self, samples: np.ndarray) -> torch.Tensor:
        """(N,) float samples at 16 kHz -> (T', F) network input."""
        x = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32).reshape(-1))
        return span_frames(self.log_mel(x), self.config)

    @torch.inference_mode()
    def embed(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """(E,) float32 unit-length embedding of a span of audio (N,) at ``sample_rate`` (must be 16 kHz)."""
        rate = self.features.sample_rate
        assert sample_rate == rate, f"resample to {rate} Hz, got {sample_rate}"
        return unit_length(self.net(self.frames(samples)[None])[0].double().numpy())

    # -- files ---------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """Write ``speaker.safetensors`` and ``speaker.json`` into ``directory``."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().float().contiguous() for k, v in self.net.state_dict().items() if v.is_floating_point()}
        save_file(state, str(directory / WEIGHTS_FILE))
        write_config(directory, KIND, self.info, tdnn_config=asdict(self.config),
                     feature_config=asdict(self.features), embedding_dim=self.dim)  # fmt: skip

    @classmethod
    def load(cls, directory: str | Path) -> NeuralSpeakerEmbedder:
        """Read an embedder written by :meth:`save`."""
        from safetensors.torch import load_file

        directory = Path(directory)
        meta, info = read_config(directory, KIND)
        cfg = TDNNConfig(**meta["tdnn_config"])
        feats = FeatureConfig(**meta["feature_config"])
        net = TDNN(feats.n_mels, cfg)
        missing, unexpected = net.load_state_dict(load_file(str(directory / WEIGHTS_FILE)), strict=False)
        assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
        return cls(net, cfg, feats, info)
