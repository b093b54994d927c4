"""Causal STS encoder: subsampling, mixture encoder, mask separator and the tied channel encoder.

Every layer is causal with **zero right context**: encoder frame ``t`` (40 ms) depends only on feature frames
``0 .. 4t + 3``. Streaming calls carry an explicit :class:`EncoderState` and give exactly the output of one
call over the whole sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model.config import ModelConfig

CONV_CONTEXT = 2  # encoder frames of left context cached by the causal conv (kernel 3)


@dataclass
class EncoderState:
    """Streaming state of a batch of N streams (every tensor has the batch on dim ``batch_dim``).

    conv:      (N, C, 2)      the last 2 subsampled frames seen by the causal conv
    mix_h/c:   (Lm+Bm, N, C)  mixture LSTM state: its Lm layers, then its Bm residual blocks
    sep_h/c:   (Ls, N, C)     separator LSTM state (kept, unused, by the one-channel baseline)
    chan_h/c:  (Lc+Bc, K*N, C) channel LSTM state (layers, then blocks) of K channels, channel 0 of all streams
                              first, then channel 1
    """

    conv: torch.Tensor
    mix_h: torch.Tensor
    mix_c: torch.Tensor
    sep_h: torch.Tensor
    sep_c: torch.Tensor
    chan_h: torch.Tensor
    chan_c: torch.Tensor

    @property
    def batch_size(self) -> int:
        return int(self.conv.shape[0])


def init_state(cfg: ModelConfig, batch: int = 1, device: torch.device | str | None = None) -> EncoderState:
    """Zero state for ``batch`` streams, on ``device`` (default: the CPU)."""
    c = cfg.d_model
    return EncoderState(
        conv=torch.zeros(batch, c, CONV_CONTEXT, device=device),
        mix_h=torch.zeros(cfg.mixture_layers + cfg.mixture_blocks, batch, c, device=device),
        mix_c=torch.zeros(cfg.mixture_layers + cfg.mixture_blocks, batch, c, device=device),
        sep_h=torch.zeros(cfg.separator_layers, batch, c, device=device),
        sep_c=torch.zeros(cfg.separator_layers, batch, c, device=device),
        chan_h=torch.zeros(cfg.channel_layers + cfg.channel_blocks, cfg.num_channels * batch, c, device=device),
        chan_c=torch.zeros(cfg.channel_layers + cfg.channel_blocks, cfg.num_channels * batch, c, device=device),
    )


def stack_states(states: list[EncoderState]) -> EncoderState:
    """Batch single-stream states; the inverse of :func:`unstack_states`."""
    assert states, "stack_states needs at least one state"

    def chan(name: str) -> torch.Tensor:
        # (L, K, C) per stream -> (L, K*N, C) with all channel-0 rows first
        per = [getattr(s, name) for s in states]
        return torch.cat([p[:, k : k + 1] for k in range(per[0].shape[1]) for p in per], 1)

    return EncoderState(
        conv=torch.cat([s.conv for s in states], 0),
        mix_h=torch.cat([s.mix_h for s in states], 1),
        mix_c=torch.cat([s.mix_c for s in states], 1),
        sep_h=torch.cat([s.sep_h for s in states], 1),
        sep_c=torch.cat([s.sep_c for s in states], 1),
        chan_h=chan("chan_h"),
        chan_c=chan("chan_c"),
    )


def unstack_states(state: EncoderState) -> list[EncoderState]:
    """Split a batched state into one state per stream; the inverse of :func:`stack_states`."""
    n = state.batch_size
    k = state.chan_h.shape[1] // n
    return [
        EncoderState(
            conv=state.conv[i : i + 1],
            mix_h=state.mix_h[:, i : i + 1],
            mix_c=state.mix_c[:, i : i + 1],
            sep_h=state.sep_h[:, i : i + 1],
            sep_c=state.sep_c[:, i : i + 1],
            chan_h=state.chan_h[:, [c * n + i for c in range(k)]],
            chan_c=state.chan_c[:, [c * n + i for c in range(k)]],
        )
        for i in range(n)
    ]


def _between(cfg: ModelConfig, layers: int) -> float:
    """LSTM dropout between stacked layers (none for a single layer)."""
    return cfg.dropout if layers > 1 else 0.0


class CausalSubsampling(nn.Module):
    """(N, T, 80) log-mel at 10 ms -> (N, T // 4, C) at 40 ms.

    A stride-4 convolution over 4 stacked frames (no overlap, so no cache), then a causal kernel-3 convolution
    over the 40 ms frames whose left context is cached in the state.
    """

    feature_mean: torch.Tensor  # (n_mels,) buffer
    feature_std: torch.Tensor  # (n_mels,) buffer

    def __init__(self, n_mels: int, d_model: int) -> None:
        super().__init__()
        # global feature normalisation (per mel bin), estimated on training data before training starts
        self.register_buffer("feature_mean", torch.zeros(n_mels))
        self.register_buffer("feature_std", torch.ones(n_mels))
        self.stack = nn.Conv1d(n_mels, d_model, kernel_size=4, stride=4)
        self.conv = nn.Conv1d(d_model, d_model, kernel_size=CONV_CONTEXT + 1)
        self.norm = nn.LayerNorm(d_model)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (N, T, 80) with T a multiple of 4; cache: (N, C, 2). Returns (N, T/4, C) and the new cache."""
        assert x.shape[1] % 4 == 0, f"frame count must be a multiple of 4, got {x.shape[1]}"
        x = (x - self.feature_mean) / self.feature_std
        y = self.act(self.stack(x.transpose(1, 2)))  # (N, C, T/4)
        y = torch.cat([cache, y], dim=2)
        new_cache = y[:, :, -CONV_CONTEXT:]
        y = self.act(self.conv(y)).transpose(1, 2)  # (N, T/4, C)
        return self.norm(y), new_cache


class ResidualBlocks(nn.Module):
    """``B`` causal one-layer LSTM blocks, each adding a projection of its output to its input:
    ``y <- y + W_b LSTM_b(y)``. With ``W_b = 0`` (how :mod:`model.grow` adds them) a block is the identity, so
    blocks deepen a trained encoder without changing what it computes. In training, ``dropout`` zeroes a share
    of each LSTM output before its projection (the residual path is left whole).
    """

    def __init__(self, d_model: int, blocks: int, dropout: float = 0.0) -> None:
        super().__init__()
        assert blocks >= 1, f"at least one block, got {blocks}"
        self.lstms = nn.ModuleList(nn.LSTM(d_model, d_model, batch_first=True) for _ in range(blocks))
        self.projections = nn.ModuleList(nn.Linear(d_model, d_model) for _ in range(blocks))
        self.dropout = nn.Dropout(dropout)

    def zero_projections(self) -> None:
        """Make every block the identity (its LSTM keeps its weights)."""
        with torch.no_grad():
            for proj in self.projections:
                for tensor in proj.parameters():
                    tensor.zero_()

    def forward(
        self, y: torch.Tensor, h: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """y: (N, T, C); h, c: (B, N, C) one state row per block. Returns y and the new (B, N, C) states."""
        hs, cs = [], []
        for b, (lstm, proj) in enumerate(zip(self.lstms, self.projections, strict=True)):
            out, (hb, cb) = lstm(y, (h[b : b + 1], c[b : b + 1]))
            y = y + proj(self.dropout(out))
            hs.append(hb)
            cs.append(cb)
        return y, torch.cat(hs, 0), torch.cat(cs, 0)


class StsEncoder(nn.Module):
    """Mixture encoder -> separator (2 masks) -> tied channel encoder.

    ``forward`` returns (2N, T/4, C) channel encodings: rows ``0..N-1`` are channel 0, ``N..2N-1`` channel 1.
    With ``num_channels == 1`` (the baseline) there is no separator and the mixture encoding is the one channel.
    """

    def __init__(self, cfg: ModelConfig, n_mels: int) -> None:
        super().__init__()
        c = cfg.d_model
        self.cfg = cfg
        self.subsampling = CausalSubsampling(n_mels, c)
        self.mixture = nn.LSTM(
            c, c, num_layers=cfg.mixture_layers, batch_first=True, dropout=_between(cfg, cfg.mixture_layers)
        )
        if cfg.num_channels == 2:
            self.separator = nn.LSTM(c, c, num_layers=cfg.separator_layers, batch_first=True)
            self.masks = nn.Linear(c, 2 * c)
        self.channel = nn.LSTM(
            c, c, num_layers=cfg.channel_layers, batch_first=True, dropout=_between(cfg, cfg.channel_layers)
        )
        if cfg.mixture_blocks:
            self.mixture_blocks = ResidualBlocks(c, cfg.mixture_blocks, cfg.dropout)
        if cfg.channel_blocks:
            self.channel_blocks = ResidualBlocks(c, cfg.channel_blocks, cfg.dropout)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, state: EncoderState) -> tuple[torch.Tensor, EncoderState]:
        """x: (N, T, 80) feature frames, T a multiple of 4. Returns (2N, T/4, C) and the new state."""
        n = x.shape[0]
        assert state.batch_size == n, f"state holds {state.batch_size} streams, input {n}"
        y, conv = self.subsampling(x, state.conv)
        lm, lc = self.cfg.mixture_layers, self.cfg.channel_layers
        mix, (mix_h, mix_c) = self.mixture(y, (state.mix_h[:lm], state.mix_c[:lm]))
        mix = self.dropout(mix) + y  # residual: the features reach the separator even while the LSTM learns
        if self.cfg.mixture_blocks:
            mix, bh, bc = self.mixture_blocks(mix, state.mix_h[lm:], state.mix_c[lm:])
            mix_h, mix_c = torch.cat([mix_h, bh], 0), torch.cat([mix_c, bc], 0)
        if self.cfg.num_channels == 2:
            sep, (sep_h, sep_c) = self.separator(mix, (state.sep_h, state.sep_c))
            m0, m1 = torch.sigmoid(self.masks(sep)).chunk(2, dim=-1)  # (N, T', C) each
            channels = torch.cat([mix * m0, mix * m1], dim=0)  # (2N, T', C)
        else:
            channels, sep_h, sep_c = mix, state.sep_h, state.sep_c
        out, (chan_h, chan_c) = self.channel(channels, (state.chan_h[:lc], state.chan_c[:lc]))
        out = out + channels  # residual
        if self.cfg.channel_blocks:
            out, bh, bc = self.channel_blocks(out, state.chan_h[lc:], state.chan_c[lc:])
            chan_h, chan_c = torch.cat([chan_h, bh], 0), torch.cat([chan_c, bc], 0)
        new_state = EncoderState(conv, mix_h, mix_c, sep_h, sep_c, chan_h, chan_c)
        return self.dropout(out), new_state
