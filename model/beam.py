"""Streaming beam search over rows of channel encodings, committing what every hypothesis agrees on.

Each row (stream x channel) keeps up to ``beam`` hypotheses. On every encoder frame a hypothesis may emit up to
``max_symbols_per_frame`` tokens (rounds of expansion: a blank ends the hypothesis's frame, a token keeps it in
the frame for another round), then the best ``beam`` survive; hypotheses with the same tokens are merged
(log-sum of their scores). Scores are the model's log-probabilities plus the decode-time biases (the search's
logit bias, and a fused character LM when given), exactly as the greedy search chooses; with ``beam == 1`` the
search is the greedy search.

Streaming: tokens that every hypothesis of a row holds (their common prefix) are final and come out as
emissions; the rest stays pending in the row's :class:`Beam` until later frames settle it, or until
:func:`flush` commits the best hypothesis at the end of the stream. Hypotheses can disagree for a long time
(one closed the turn with ``<eot>``, another still waits in the silence that follows), so ``max_pending``
bounds the wait: a token of the best hypothesis that has been pending that many frames is committed anyway,
and the hypotheses that do not hold it are dropped. The check runs on every frame, so the result does not
depend on how the stream was cut into blocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch

from model.char_lm import LmFusion
from model.decoder import Decoder, DecoderTable
from model.joiner import Joiner
from model.search import Emission
from model.tokenizer import BLANK_ID


@dataclass(frozen=True)
class Hyp:
    """One hypothesis: its tokens not yet committed, and the search context after them."""

    context: tuple[int, ...]  # last L tokens (committed and pending), blank-padded at a stream's start
    tokens: tuple[int, ...] = ()  # pending tokens, oldest first
    frames: tuple[int, ...] = ()  # absolute encoder frame of each pending token
    logprobs: tuple[float, ...] = ()  # the model's own log-probability of each pending token
    score: float = 0.0  # biased log-probability of the pending path (committed part dropped)

    def extend(self, token: int, frame: int, logprob: float, score: float) -> Hyp:
        return Hyp(
            (*self.context[1:], token), (*self.tokens, token), (*self.frames, frame), (*self.logprobs, logprob), score
        )


@dataclass
class Beam:
    """The hypotheses of one row (stream x channel), best first."""

    hyps: list[Hyp] = field(default_factory=list)

    @staticmethod
    def fresh(width: int) -> Beam:
        return Beam([Hyp(context=(BLANK_ID,) * width)])


def _merge(hyps: list[Hyp]) -> list[Hyp]:
    """Hypotheses with the same pending tokens as one (the best one's times, scores log-summed), best first."""
    merged: dict[tuple[int, ...], Hyp] = {}
    for h in sorted(hyps, key=lambda h: -h.score):
        old = merged.get(h.tokens)
        if old is None:
            merged[h.tokens] = h
        else:
            merged[h.tokens] = replace(old, score=old.score + math.log1p(math.exp(h.score - old.score)))
    return sorted(merged.values(), key=lambda h: -h.score)


@torch.no_grad()
def beam_search(
    decoder: Decoder | DecoderTable,
    joiner: Joiner,
    enc: torch.Tensor,
    beams: list[Beam],
    beam: int,
    max_symbols_per_frame: int,
    offsets: list[int],
    logit_bias: torch.Tensor | None = None,
    fusion: LmFusion | None = None,
    max_pending: int | None = None,
) -> list[Emission]:
    """Advance every row's beam over a block of frames (in place) and return the tokens that became final.

    Args:
        enc: (M, T, J) projected encoder frames of M rows.
        beams: M beams, one per row (:meth:`Beam.fresh` at a stream's start).
        beam: hypotheses kept per row.
        offsets: (M,) absolute encoder frame of each row's ``enc[r, 0]`` (frames decoded before the block);
            emissions give absolute frames.
        logit_bias: optional (V,) decode-time biases (see :func:`model.search.search_bias`).
        fusion: optional character LM fused into the scores.
        max_pending: most encoder frames a token of a row's best hypothesis stays pending (None: no bound).
    Returns:
        The committed emissions (rows' common prefixes, and the tokens ``max_pending`` forced), in time order
        per row.
    """
    m, t_len, _ = enc.shape
    assert len(beams) == m == len(offsets), f"{len(beams)} beams and {len(offsets)} offsets for {m} rows"
    cs = decoder.context_size
    committed: list[Emission] = []
    for t in range(t_len):
        done: list[list[Hyp]] = [[] for _ in range(m)]  # hypotheses whose frame has ended
        active = [b.hyps for b in beams]
        for _ in range(max_symbols_per_frame):
            rows = [r for r in range(m) for _ in active[r]]
            if not rows:
                break
            flat = [h for r in range(m) for h in active[r]]
            context = torch.tensor([h.context for h in flat], dtype=torch.long)  # (H, L)
            dec = decoder.step(context[:, -cs:])  # (H, J)
            logp = torch.log_softmax(joiner(enc[rows, t], dec), dim=-1)  # (H, V)
            score = logp if logit_bias is None else logp + logit_bias
            if fusion is not None:
                score = score + fusion.bias(context)
            total = score + torch.tensor([h.score for h in flat])[:, None]  # (H, V)
            nxt: list[list[Hyp]] = [[] for _ in range(m)]
            start = 0
            for r in range(m):
                n = len(active[r])
                if not n:
                    continue
                cand = total[start : start + n].reshape(-1)
                k = min(beam, cand.numel())
                vals, idx = cand.topk(k)
                for v, i in zip(vals.tolist(), idx.tolist(), strict=True):
                    j, tok = divmod(i, total.shape[1])
                    if tok == BLANK_ID:
                        done[r].append(replace(active[r][j], score=v))
                    else:
                        lp = float(logp[start + j, tok])
                        nxt[r].append(active[r][j].extend(tok, offsets[r] + t, lp, v))
                start += n
            active = [_merge(a) for a in nxt]
        for r in range(m):
            kept = _merge(done[r] + active[r])[:beam]  # hypotheses still in a frame at the limit move on
            top = kept[0].score  # scores relative to the best, so that they stay small over a long stream
            beams[r].hyps = [replace(h, score=h.score - top) for h in kept]
            due = -1 if max_pending is None else offsets[r] + t - max_pending
            committed.extend(_commit(beams[r], r, common_only=True, due=due))
    return committed


def flush(beams: list[Beam], rows: list[int]) -> list[Emission]:
    """Commit the best hypothesis of each row in ``rows`` (the end of its stream); its beam keeps only that."""
    return [e for r in rows for e in _commit(beams[r], r, common_only=False)]


def _commit(b: Beam, row: int, common_only: bool, due: int = -1) -> list[Emission]:
    """Take the settled pending tokens of ``b``'s hypotheses out as emissions (absolute frames): with
    ``common_only`` their common prefix, extended by the best hypothesis's tokens at frames up to ``due`` (the
    hypotheses that do not share that extension are dropped); otherwise all of the best hypothesis's tokens."""
    best = b.hyps[0]
    n = len(best.tokens)
    if common_only:
        for h in b.hyps[1:]:
            n = next((i for i, (x, y) in enumerate(zip(best.tokens[:n], h.tokens, strict=False)) if x != y),
                     min(n, len(h.tokens)))  # fmt: skip
        if n < len(best.tokens) and best.frames[n] <= due:
            while n < len(best.tokens) and best.frames[n] <= due:
                n += 1
            b.hyps = [h for h in b.hyps if h.tokens[:n] == best.tokens[:n]]
    else:
        b.hyps = [best]
    out = [Emission(row, best.frames[i], best.tokens[i], best.logprobs[i]) for i in range(n)]
    if n:
        # the prefix came out at the best hypothesis's frames; another one holding the same tokens may have
        # aligned them earlier, so its later tokens can sit at earlier frames: they come out no earlier than the
        # prefix did (a row's emissions stay in time order)
        last = best.frames[n - 1]
        b.hyps = [replace(h, tokens=h.tokens[n:], frames=tuple(max(f, last) for f in h.frames[n:]),
                          logprobs=h.logprobs[n:]) for h in b.hyps]  # fmt: skip
    return out


@torch.no_grad()
def search_turn(
    decoder: Decoder | DecoderTable,
    joiner: Joiner,
    enc: torch.Tensor,
    context: tuple[int, ...],
    first_frame: int,
    beam: int,
    max_symbols_per_frame: int,
    logit_bias: torch.Tensor,
    fusion: LmFusion | None = None,
) -> list[Emission]:
    """A closed turn's characters searched again (the second pass), with every hypothesis kept to the end.

    Args:
        enc: (T, J) projected encoder frames of one channel, from the frame of the turn's ``<sot>`` to that of
            its ``<eot>``.
        context: the search context after the turn's ``<sot>`` (its last tokens, ``<sot>`` last).
        first_frame: absolute encoder frame of ``enc[0]``.
        logit_bias: (V,) decode-time biases with the turn tokens at -inf, so that the search neither closes the
            turn early nor opens another.
    Returns:
        The best hypothesis's tokens (characters and spaces), in time order, with absolute frames (row 0).
    """
    beams = [Beam([Hyp(context=context)])]
    out = beam_search(decoder, joiner, enc[None], beams, beam, max_symbols_per_frame, [first_frame], logit_bias,
                      fusion)  # fmt: skip
    return out + flush(beams, [0])
