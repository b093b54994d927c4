"""Batched greedy transducer search over rows of channel encodings, with explicit decoder context."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model.char_lm import LmFusion
from model.decoder import Decoder, DecoderTable, all_contexts
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


@torch.no_grad()
def internal_lm(decoder: Decoder | DecoderTable, joiner: Joiner) -> torch.Tensor:
    """(V, ..., V, V) log-probabilities of the model's internal LM, indexed by the decoder's C context tokens
    (oldest first) and then the next token: the joiner's output with no acoustic evidence (projected encoder frame
    zero), over the non-blank tokens (blank's entries -inf), as internal LM estimation has it."""
    vocab = joiner.out.out_features
    size = decoder.context_size
    dec = decoder.step(all_contexts(vocab, size))  # (V ** C, J)
    logits = joiner(torch.zeros_like(dec), dec)
    logits[:, BLANK_ID] = float("-inf")
    return torch.log_softmax(logits, dim=-1).reshape(*[vocab] * size, vocab)


def init_context(rows: int, width: int) -> torch.Tensor:
    """(rows, width) search context of a fresh stream: all blanks. ``width`` is the decoder's context size, or
    more when a fused LM reads a longer history (:func:`context_width`)."""
    return torch.full((rows, width), BLANK_ID, dtype=torch.long)


def context_width(context_size: int, fusion: LmFusion | None) -> int:
    """Tokens of history the search keeps: the decoder's ``context_size`` and the fused LM's history."""
    return max(context_size, fusion.lm.history if fusion is not None else 0)


@torch.no_grad()
def greedy_search(
    decoder: Decoder | DecoderTable,
    joiner: Joiner,
    enc: torch.Tensor,
    context: torch.Tensor,
    max_symbols_per_frame: int,
    logit_bias: torch.Tensor | None = None,
    fusion: LmFusion | None = None,
) -> tuple[list[Emission], torch.Tensor]:
    """Greedy search over a block of frames, up to ``max_symbols_per_frame`` tokens per frame.

    Args:
        enc: (M, T, J) projected encoder frames of M rows.
        context: (M, L) last tokens of each row (blank-padded at the start of a stream), L at least the
            decoder's context size (the decoder reads the last ``context_size``, a fused LM up to its history).
        logit_bias: optional (V,) amounts added to the joiner's logits before the choice (decode-time biases,
            e.g. against blank or for turn tokens; see :func:`search_bias`).
        fusion: optional character LM whose weighted log-probabilities join the choice (shallow fusion).
    Returns:
        The emissions in time order and the (M, L) context after the block.
    """
    m, t_len, _ = enc.shape
    cs = decoder.context_size
    assert context.shape[0] == m, f"context rows {context.shape[0]} != encoder rows {m}"
    assert context.shape[1] >= cs, f"context of {context.shape[1]} tokens, the decoder reads {cs}"
    context = context.clone()
    dec = decoder.step(context[:, -cs:])  # (M, J)
    lm_bias = fusion.bias(context) if fusion is not None else None  # (M, V)
    emissions: list[Emission] = []
    for t in range(t_len):
        active = torch.ones(m, dtype=torch.bool)
        for _ in range(max_symbols_per_frame):
            logp = torch.log_softmax(joiner(enc[:, t], dec), dim=-1)  # (M, V)
            score = logp if logit_bias is None else logp + logit_bias
            best = (score if lm_bias is None else score + lm_bias).argmax(dim=-1)
            best_lp = logp.gather(1, best[:, None]).squeeze(1)  # the model's own probability, bias or not
            emit = active & (best != BLANK_ID)
            if not bool(emit.any()):
                break
            rows = emit.nonzero().squeeze(1)
            for r in rows.tolist():
                emissions.append(Emission(r, t, int(best[r]), float(best_lp[r])))
            context[rows] = torch.cat([context[rows, 1:], best[rows, None]], dim=1)
            dec[rows] = decoder.step(context[rows, -cs:])
            if fusion is not None and lm_bias is not None:
                lm_bias[rows] = fusion.bias(context[rows])
            active = emit
    return emissions, context
