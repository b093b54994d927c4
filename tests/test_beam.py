"""The streaming beam search: greedy at beam 1, chunk-independent, committing only what all hypotheses share."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.beam import Beam, Hyp, _commit, beam_search, flush
from model.char_lm import CharNgram, LmFusion
from model.decoder import DecoderTable
from model.encoder import init_state
from model.recognizer import Recognizer, Stream, TokenEvent
from model.search import Emission, context_width, greedy_search, init_context, search_bias
from model.tokenizer import TOKENS
from tests.test_char_lm import CORPUS
from tests.test_streaming import feed, key


def per_channel(events: list[TokenEvent]) -> list[tuple[int, str, float]]:
    """Events per channel in emission order (across channels the order depends on when tokens settle)."""
    return sorted(key(events), key=lambda k: k[0])


@pytest.fixture(scope="module")
def lm() -> CharNgram:
    return CharNgram.build(CORPUS, order=4, min_count=1)


def searching(rec: Recognizer, lm: CharNgram | None = None, **settings: float) -> Recognizer:
    return Recognizer(rec.model, rec.config.streaming.overridden(**settings), lm)


@pytest.mark.parametrize("lm_weight", [0.0, 1.0])
def test_beam_of_one_is_the_greedy_search(
    tiny_recognizer: Recognizer, test_audio: np.ndarray, lm: CharNgram, lm_weight: float
) -> None:
    model = tiny_recognizer.model
    feats = tiny_recognizer.log_mel(torch.from_numpy(test_audio))
    with torch.inference_mode():
        enc = model.encode(feats[None, : feats.shape[0] - feats.shape[0] % 4])  # (2, T', J)
    fusion = LmFusion(lm, lm_weight, 0.5) if lm_weight else None
    bias = search_bias(model.cfg.model.vocab_size, turn_bonus=0.5)
    width = context_width(model.cfg.model.context_size, fusion)
    greedy, _ = greedy_search(model.decoder, model.joiner, enc, init_context(2, width), 4, bias, fusion)
    assert len(greedy) > 20
    beams = [Beam.fresh(width) for _ in range(2)]
    one = beam_search(model.decoder, model.joiner, enc, beams, 1, 4, [0, 0], bias, fusion)
    assert all(not b.hyps[0].tokens for b in beams)  # one hypothesis: everything is committed at once

    def order(emissions: list[Emission]) -> list[Emission]:
        return sorted(emissions, key=lambda e: (e.row, e.frame))  # stable: tokens of one frame keep their order

    assert [(e.row, e.frame, e.token) for e in order(one)] == [(e.row, e.frame, e.token) for e in order(greedy)]
    np.testing.assert_allclose([e.logprob for e in order(one)], [e.logprob for e in order(greedy)], atol=1e-5)


def chunked_encoding(rec: Recognizer, audio: np.ndarray) -> torch.Tensor:
    """(2, T', J) encoder output of ``audio`` computed chunk by chunk as a stream computes it (bit-identical)."""
    feats = rec.log_mel(torch.from_numpy(audio))
    frames, chunk = feats.shape[0] - feats.shape[0] % 4, rec.config.streaming.chunk_frames
    state, out = init_state(rec.config.model, 1), []
    with torch.inference_mode():
        for i in range(0, frames, chunk):
            enc, state = rec.model.encoder(feats[None, i : min(frames, i + chunk)], state)
            out.append(rec.model.joiner.project_encoder(enc))
    return torch.cat(out, dim=1)


@pytest.mark.parametrize(("lm_weight", "max_pending_ms"), [(0.0, 0), (1.0, 0), (0.0, 200), (1.0, 200)])
def test_committing_while_streaming_changes_nothing(
    tiny_recognizer: Recognizer, test_audio: np.ndarray, lm: CharNgram, lm_weight: float, max_pending_ms: int
) -> None:
    """Tokens settled chunk by chunk are those of one search over the whole signal, committed at its end (with
    the bound on pending tokens too: it acts frame by frame, not at the ends of decode steps).

    (The whole-signal *encoder* differs from the chunked one in the last float bits, which flips near-ties of
    the random test model's beam, so the reference searches the stream's own encoder output.)"""
    rec = searching(tiny_recognizer, lm, beam=4, lm_weight=lm_weight, max_pending_ms=max_pending_ms)
    events = feed(rec, rec.create_stream(), test_audio, 1234)
    assert per_channel(events) == per_channel(rec.transcribe_events(test_audio, 16000))
    enc = chunked_encoding(rec, test_audio)
    beams = [Beam.fresh(rec.context_width) for _ in range(2)]
    s = rec.config.streaming
    fusion = LmFusion(lm, lm_weight) if lm_weight else None
    bias = search_bias(rec.config.model.vocab_size, s.blank_penalty, s.turn_bonus)
    whole = beam_search(rec.model.decoder, rec.model.joiner, enc, beams, 4, s.max_symbols_per_frame, [0, 0], bias,
                        fusion, max_pending_ms // 40 or None) + flush(beams, [0, 1])  # fmt: skip
    assert len(whole) > 20
    got = [(e.channel, e.token, round(e.time / 0.04)) for e in events]
    ref = [(e.row, TOKENS[e.token], e.frame) for e in whole]
    assert sorted(got, key=lambda k: k[0]) == sorted(ref, key=lambda k: k[0])


def test_beam_commits_before_the_end_of_the_stream(tiny_recognizer: Recognizer, test_audio: np.ndarray) -> None:
    rec = searching(tiny_recognizer, beam=4, max_pending_ms=0)  # unbounded: tokens wait
    stream = rec.create_stream()
    stream.accept_waveform(16000, test_audio)
    while stream.is_ready:
        rec.decode_streams([stream])
    early = stream.pop_events()  # the input is not finished: only settled tokens
    stream.input_finished()
    while stream.is_ready:
        rec.decode_streams([stream])
    late = stream.pop_events()
    assert len(early) > 20 and late, "tokens settle while the stream goes on; the last ones at its end"
    assert per_channel(early + late) == per_channel(rec.transcribe_events(test_audio, 16000))


def test_commit_takes_the_common_prefix_and_flush_the_best() -> None:
    best = Hyp((0, 0), tokens=(5, 6, 7), frames=(1, 2, 3), logprobs=(-0.1, -0.2, -0.3), score=0.0)
    other = Hyp((0, 0), tokens=(5, 6, 8, 9), frames=(1, 3, 4, 5), logprobs=(-0.1, -0.4, -0.5, -0.6), score=-1.0)
    b = Beam([best, other])
    out = _commit(b, row=3, common_only=True)
    assert [(e.row, e.frame, e.token) for e in out] == [(3, 1, 5), (3, 2, 6)]  # times of the best hypothesis
    assert [h.tokens for h in b.hyps] == [(7,), (8, 9)]
    assert _commit(b, row=3, common_only=True) == []  # nothing more in common
    rest = flush([b], [0])
    assert [(e.frame, e.token) for e in rest] == [(3, 7)] and b.hyps[0].tokens == ()


def test_commit_forces_the_best_hypothesis_tokens_that_are_due() -> None:
    best = Hyp((0, 0), tokens=(5, 6, 7), frames=(1, 2, 9), logprobs=(-0.1, -0.2, -0.3), score=0.0)
    agrees = Hyp((0, 0), tokens=(5, 6, 8), frames=(1, 2, 3), score=-0.5)  # holds the forced tokens: stays
    other = Hyp((0, 0), tokens=(5, 4), frames=(1, 2), score=-1.0)  # disagrees on a forced token: dropped
    b = Beam([best, agrees, other])
    out = _commit(b, row=0, common_only=True, due=5)  # frames 1 and 2 are due; frame 9 is not
    assert [(e.frame, e.token) for e in out] == [(1, 5), (2, 6)]
    assert [h.tokens for h in b.hyps] == [(7,), (8,)]
    assert _commit(b, row=0, common_only=True, due=8) == []  # the best's oldest pending token is not due yet


def test_a_rows_emissions_stay_in_time_order_when_hypotheses_aligned_the_prefix_differently() -> None:
    """Two hypotheses hold the same tokens, one aligned them much earlier: the prefix comes out at the best one's
    frames, and what the other says next must not come out before it (dev-meet2-0005 at LM weight 0.4 gave a
    turn that ended a second before it started)."""
    late = Hyp((0, 0), tokens=(5, 6, 7), frames=(10, 11, 12), logprobs=(-0.1, -0.2, -0.3), score=0.0)
    early = Hyp((0, 0), tokens=(5, 6, 8, 9), frames=(1, 2, 3, 4), logprobs=(-0.1, -0.2, -0.3, -0.4), score=-1.0)
    b = Beam([late, early])
    first = _commit(b, row=0, common_only=True)
    assert [(e.frame, e.token) for e in first] == [(10, 5), (11, 6)]
    b.hyps = [b.hyps[1], b.hyps[0]]  # later frames make the early alignment's continuation the best
    rest = flush([b], [0])
    assert [(e.frame, e.token) for e in rest] == [(11, 8), (11, 9)]
    frames = [e.frame for e in first + rest]
    assert frames == sorted(frames)


def pending_ages(rec: Recognizer, audio: np.ndarray) -> list[int]:
    """After every decode step of a stream fed ``audio`` at once: how many encoder frames the oldest pending
    token of each channel's best hypothesis has waited (frames decoded minus one, minus its frame)."""
    stream = rec.create_stream()
    stream.accept_waveform(16000, audio)
    ages = []
    while stream.is_ready:
        rec.decode_streams([stream])
        ages += [stream.frames_decoded - 1 - b.hyps[0].frames[0] for b in stream.beams or [] if b.hyps[0].tokens]
    return ages


def test_max_pending_bounds_how_long_a_token_waits(tiny_recognizer: Recognizer, test_audio: np.ndarray) -> None:
    unbounded = pending_ages(searching(tiny_recognizer, beam=4, max_pending_ms=0), test_audio)
    assert max(unbounded) > 5, "no token waited longer than the bound: the case is not tested"
    bounded = pending_ages(searching(tiny_recognizer, beam=4, max_pending_ms=200), test_audio)  # 5 frames
    assert bounded and max(bounded) <= 5


def decode_open(rec: Recognizer, audio: np.ndarray) -> tuple[Stream, list[TokenEvent], int]:
    """Feed ``audio`` to a new stream without finishing it and decode what is ready: the stream, the events out so
    far and the number of tokens its beams still hold back (asserted > 0, else the tests below test nothing)."""
    stream = rec.create_stream()
    stream.accept_waveform(16000, audio)
    while stream.is_ready:
        rec.decode_streams([stream])
    pending = sum(len(b.hyps[0].tokens) for b in stream.beams or [])
    assert pending > 0, "nothing was pending: the case is not tested"
    return stream, stream.pop_events(), pending


def test_beam_flushes_when_the_input_ends_between_decode_steps(
    tiny_recognizer: Recognizer, test_audio: np.ndarray
) -> None:
    """The stream's last decode step came before ``input_finished``: the pending tokens still come out."""
    rec = searching(tiny_recognizer, beam=4, max_pending_ms=0)  # unbounded: tokens wait
    chunk = rec.config.streaming.chunk_frames

    def frames(cut: int, finish: bool) -> int:  # feature frames a stream holds (features only, nothing decoded)
        probe = tiny_recognizer.create_stream()
        probe.accept_waveform(16000, test_audio[:cut])
        if finish:
            probe.input_finished()
        return int(probe._pending.shape[0])

    # a length whose last decode step comes before input_finished: full chunks, then a tail under 40 ms
    cut = next(c for c in range(len(test_audio) // 2, len(test_audio), 160)
               if frames(c, False) % chunk + frames(c, True) - frames(c, False) < 4)  # fmt: skip
    stream, events, pending = decode_open(rec, test_audio[:cut])
    stream.input_finished()
    assert not stream.is_ready
    flushed = stream.pop_events()
    assert len(flushed) == pending
    assert per_channel(events + flushed) == per_channel(rec.transcribe_events(test_audio[:cut], 16000))


def test_settle_commits_what_the_beam_holds_back(tiny_recognizer: Recognizer, test_audio: np.ndarray) -> None:
    """A finalize point mid-stream: every decoded token comes out now, and decoding goes on after it."""
    rec = searching(tiny_recognizer, beam=4, max_pending_ms=0)  # unbounded: tokens wait
    half = len(test_audio) // 2
    stream, before, pending = decode_open(rec, test_audio[:half])
    stream.settle()
    settled = stream.pop_events()
    assert len(settled) == pending and all(not b.hyps[0].tokens and len(b.hyps) == 1 for b in stream.beams or [])
    assert max(e.time for e in before + settled) < half / 16000
    settled_at = stream.frames_decoded * 0.04  # seconds decoded when the beams were settled
    stream.accept_waveform(16000, test_audio[half:])
    stream.input_finished()
    while stream.is_ready:
        rec.decode_streams([stream])
    after = stream.pop_events()
    assert after and min(e.time for e in after) >= settled_at - 1e-6  # nothing decoded before comes out twice


def test_decoder_table_gives_the_decoder_outputs() -> None:
    from model.config import StsConfig

    decoder = Recognizer.random(StsConfig.tiny(), seed=4).model.decoder  # its own: the test changes its weights
    table = DecoderTable.of(decoder)
    assert isinstance(table, DecoderTable) and table.table.shape[0] == len(TOKENS) ** decoder.context_size
    contexts = torch.randint(0, len(TOKENS), (50, decoder.context_size), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(table.step(contexts), decoder.step(contexts))
    with torch.no_grad():
        decoder.proj.bias.add_(1.0)  # weights changed in place: the table follows
    torch.testing.assert_close(table.step(contexts), decoder.step(contexts))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(DecoderTable, "MAX_ROWS", len(TOKENS) ** decoder.context_size - 1)
        assert DecoderTable.of(decoder) is decoder  # too many contexts: the search calls the decoder
