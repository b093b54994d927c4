"""Batched greedy transducer search over rows of channel encodings, with explicit decoder context."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model.decoder import Decoder
from model.joiner import Joiner
from model.tokenizer import BLANK_ID, EOT_ID, SOT_ID


@dataclass(frozen=True)
class Emission:
    """One non-blank token emitted by the search."""

    row: int  # row of the batch (stream x channel) that emitted it
    frame: int  # encoder frame index within the searched block
    token: int  # token id
    logprob: float  # the model's log-probability of the token when emitted (before any search bias)


def search_bias(vocab_size: int, blank_penalty: float = 0.0, turn_bonus: float = 0.0) -> torch.Tensor | None:
    """(V,) logit bias of the search: ``-blank_penalty`` on blank, ``+turn_bonus`` on ``<sot>`` and ``<eot>``;
    None when both are zero (the model's own choice)."""
    if not blank_penalty and not turn_bonus:
        return None
    bias = torch.zeros(vocab_size)
    bias[BLANK_ID] = -blank_penalty
    bias[SOT_ID] = bias[EOT_ID] = turn_bonus
    return bias


def init_context(rows: int, context_size: int) -> torch.Tensor:
    """(rows, context_size) decoder context of a fresh stream: all blanks."""
    return torch.full((rows, context_size), BLANK_ID, dtype=torch.long)


@torch.no_grad()
def greedy_search(
    decoder: Decoder,
    joiner: Joiner,
    enc: torch.Tensor,
    context: torch.Tensor,
    max_symbols_per_frame: int,
    logit_bias: torch.Tensor | None = None,
) -> tuple[list[Emission], torch.Tensor]:
    """Greedy search over a block of frames, up to ``max_symbols_per_frame`` tokens per frame.

    Args:
        enc: (M, T, J) projected encoder frames of M rows.
        context: (M, context_size) last tokens of each row (blank-padded at the start of a stream).
        logit_bias: optional (V,) amounts added to the joiner's logits before the choice (decode-time biases,
            e.g. against blank or for turn tokens; see :func:`search_bias`).
    Returns:
        The emissions in time order and the (M, context_size) context after the block.
    """
    m, t_len, _ = enc.shape
    assert context.shape[0] == m, f"context rows {context.shape[0]} != encoder rows {m}"
    context = context.clone()
    dec = decoder(context, pad_left=False)[:, 0]  # (M, J)
    emissions: list[Emission] = []
    for t in range(t_len):
        active = torch.ones(m, dtype=torch.bool)
        for _ in range(max_symbols_per_frame):
            logp = torch.log_softmax(joiner(enc[:, t], dec), dim=-1)  # (M, V)
            best = (logp if logit_bias is None else logp + logit_bias).argmax(dim=-1)
            best_lp = logp.gather(1, best[:, None]).squeeze(1)  # the model's own probability, bias or not
            emit = active & (best != BLANK_ID)
            if not bool(emit.any()):
                break
            rows = emit.nonzero().squeeze(1)
            for r in rows.tolist():
                emissions.append(Emission(r, t, int(best[r]), float(best_lp[r])))
            context[rows] = torch.cat([context[rows, 1:], best[rows, None]], dim=1)
            dec[rows] = decoder(context[rows], pad_left=False)[:, 0]
            active = emit
    return emissions, context
