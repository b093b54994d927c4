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

    def step(self, context: torch.Tensor) -> torch.Tensor:
        """(H, context_size) contexts of search hypotheses -> (H, joiner_dim) decoder outputs."""
        return self(context, pad_left=False)[:, 0]


def all_contexts(vocab: int, size: int) -> torch.Tensor:
    """(vocab ** size, size) every context of ``size`` tokens, oldest first, in the order of their place values."""
    return torch.cartesian_prod(*[torch.arange(vocab)] * size).reshape(-1, size)


class DecoderTable:
    """A stateless decoder's output for every possible context, computed once, for the search.

    The decoder sees only its last ``context_size`` tokens, so a search step is a row lookup instead of an
    embedding + convolution per hypothesis per round (the largest cost of the beam search). The table is built
    again when the decoder's weights change in place (their version counters move, e.g. ``copy_`` or
    ``load_state_dict``). ``step`` has :meth:`Decoder.step`'s meaning.
    """

    MAX_ROWS = 4096  # vocab ** context_size above this: the search calls the decoder itself (:meth:`of`)

    def __init__(self, decoder: Decoder) -> None:
        self.decoder = decoder
        self.context_size = decoder.context_size
        vocab = decoder.embedding.num_embeddings
        self.powers = vocab ** torch.arange(self.context_size - 1, -1, -1)  # (L,) place values, oldest first
        self.grid = all_contexts(vocab, self.context_size)
        self._built_for: tuple[tuple[int, int], ...] = ()
        self.table = self._build()  # (V ** L, J); row (grid * powers).sum() of each context

    def _weights(self) -> tuple[tuple[int, int], ...]:
        """Where the decoder's weights live and how often they were changed in place (weights made in inference
        mode keep no version counter: they cannot change in place outside it either)."""
        return tuple((p.data_ptr(), 0 if p.is_inference() else p._version) for p in self.decoder.parameters())

    def _build(self) -> torch.Tensor:
        with torch.no_grad():
            self._built_for = self._weights()
            return self.decoder.step(self.grid)

    @classmethod
    def of(cls, decoder: Decoder) -> Decoder | DecoderTable:
        """The table of ``decoder`` when it is small enough, else ``decoder``."""
        return cls(decoder) if decoder.embedding.num_embeddings**decoder.context_size <= cls.MAX_ROWS else decoder

    def step(self, context: torch.Tensor) -> torch.Tensor:
        """(H, context_size) contexts -> (H, joiner_dim) decoder outputs."""
        if self._weights() != self._built_for:
            self.table = self._build()
        return self.table[(context * self.powers).sum(1)]
