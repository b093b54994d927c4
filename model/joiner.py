"""Transducer joiner: tanh(enc + dec) -> vocabulary logits."""

from __future__ import annotations

import torch
from torch import nn

from model.config import ModelConfig


class Joiner(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.enc_proj = nn.Linear(cfg.d_model, cfg.joiner_dim)
        self.out = nn.Linear(cfg.joiner_dim, cfg.vocab_size)

    def project_encoder(self, enc: torch.Tensor) -> torch.Tensor:
        """(..., d_model) encoder frames -> (..., joiner_dim)."""
        return self.enc_proj(enc)

    def forward(self, enc: torch.Tensor, dec: torch.Tensor) -> torch.Tensor:
        """enc (already projected) and dec broadcast against each other, e.g. (N, T, 1, J) + (N, 1, U, J);
        returns logits (..., vocab_size)."""
        return self.out(torch.tanh(enc + dec))
