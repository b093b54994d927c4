"""Stateless prediction network (as icefall's): embeddings of the last ``context_size`` tokens."""

from __future__ import annotations

import torch
from torch import nn

from model.config import ModelConfig
from model.tokenizer import BLANK_ID


class Decoder(nn.Module):
    """(N, U) token ids -> (N, U, joiner_dim); output ``u`` depends on tokens ``u - context + 1 .. u``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.context_size = cfg.context_size
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.decoder_dim)
        self.conv = nn.Conv1d(cfg.decoder_dim, cfg.decoder_dim, kernel_size=cfg.context_size, bias=False)
        self.proj = nn.Linear(cfg.decoder_dim, cfg.joiner_dim)

    def forward(self, tokens: torch.Tensor, pad_left: bool = True) -> torch.Tensor:
        """tokens: (N, U). With ``pad_left`` the sequence is preceded by ``context_size - 1`` blanks (training);
        without it the input is exactly the (N, context_size) context of one search step."""
        if pad_left:
            tokens = nn.functional.pad(tokens, (self.context_size - 1, 0), value=BLANK_ID)
        emb = self.embedding(tokens).transpose(1, 2)  # (N, D, U + context - 1)
        out = torch.relu(self.conv(emb)).transpose(1, 2)  # (N, U, D)
        return self.proj(out)
