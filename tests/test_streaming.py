"""Streaming in pieces gives exactly the whole-utterance decode; batching gives exactly one-by-one."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from model.config import FeatureConfig, ModelConfig
from model.encoder import init_state, stack_states, unstack_states
from model.features import LogMel, OnlineFeatures, vtlp_frequencies
from model.recognizer import Recognizer, Stream, TokenEvent


def key(events: list[TokenEvent]) -> list[tuple[int, str, float]]:
    return [(e.channel, e.token, e.time) for e in events]


def feed(rec: Recognizer, stream: Stream, audio: np.ndarray, piece: int, rate: int = 16000) -> list[TokenEvent]:
    events: list[TokenEvent] = []
    for i in range(0, len(audio), piece):
        stream.accept_waveform(rate, audio[i : i + piece])
        while stream.is_ready:
            rec.decode_streams([stream])
        events += stream.pop_events()
    stream.input_finished()
    while stream.is_ready:
        rec.decode_streams([stream])
    return events + stream.pop_events()


def test_features_incremental_equal_whole() -> None:
    cfg = FeatureConfig()
    audio = np.random.RandomState(1).randn(16000 * 2).astype(np.float32) * 0.1
    whole = LogMel(cfg)(torch.from_numpy(audio))
    online = OnlineFeatures(cfg)
    parts = torch.cat([online.accept(audio[i : i + 320]) for i in range(0, len(audio), 320)])
    assert whole.shape == (1 + (len(audio) - 400) // 160, 80)
    assert torch.equal(whole, parts)


def test_vtlp_warp_maps_the_band_onto_itself_and_moves_formants() -> None:
    """The VTLP warp of training (--data-warp-prob) keeps 0 and Nyquist, is increasing, is the identity at 1, and a
    factor above 1 moves a tone's energy to higher mel bands (below 1: lower)."""
    freqs = torch.linspace(0.0, 8000.0, 201, dtype=torch.float64)
    for warp in (0.9, 0.95, 1.05, 1.1):
        warped = vtlp_frequencies(freqs, warp, 8000.0)
        assert float(warped[0]) == 0.0 and float(warped[-1]) == pytest.approx(8000.0)
        assert bool((warped.diff() > 0).all())
        assert float(warped[50]) == pytest.approx(2000.0 * warp)  # scaled below the boundary
    assert torch.equal(vtlp_frequencies(freqs, 1.0, 8000.0), freqs)
    cfg = FeatureConfig()
    log_mel = LogMel(cfg)
    assert log_mel.warped(1.0) is log_mel and log_mel.warped(1.1) is log_mel.warped(1.1)
    tone = torch.from_numpy(np.sin(2 * np.pi * 1000.0 * np.arange(16000) / 16000).astype(np.float32))
    peak = {w: int(log_mel.warped(w)(tone).mean(0).argmax()) for w in (0.9, 1.0, 1.1)}
    assert peak[0.9] < peak[1.0] < peak[1.1], peak


@pytest.mark.parametrize("piece_ms", [20, 100, 1000])
def test_streaming_equals_whole(tiny_recognizer: Recognizer, test_audio: np.ndarray, piece_ms: int) -> None:
    whole = tiny_recognizer.decode_offline(test_audio)
    tokens = {e.token for e in whole}
    # the check compares something: varied tokens on both channels, spread over time
    assert len(whole) > 50 and len(tokens) > 5 and {e.channel for e in whole} == {0, 1}, tokens
    assert len({e.time for e in whole}) > 20
    streamed = feed(tiny_recognizer, tiny_recognizer.create_stream(), test_audio, 16 * piece_ms)
    assert key(streamed) == key(whole)
    np.testing.assert_allclose([e.logprob for e in streamed], [e.logprob for e in whole], atol=1e-4)


@pytest.mark.parametrize("beam", [1, 4])
def test_batched_equals_one_by_one(tiny_recognizer: Recognizer, beam: int) -> None:
    from tests.conftest import tone_bursts

    if beam > 1:
        tiny_recognizer = tiny_recognizer.with_search(tiny_recognizer.config.streaming.overridden(beam=beam))

    audios = [tone_bursts(seconds=s, seed=k) for k, s in enumerate([3.0, 4.5, 2.2, 5.0])]
    alone = [feed(tiny_recognizer, tiny_recognizer.create_stream(), a, 1600) for a in audios]
    streams = [tiny_recognizer.create_stream() for _ in audios]
    got: list[list[TokenEvent]] = [[] for _ in audios]
    pos = [0] * len(audios)
    # feed all streams in unequal pieces, decode them together in one call per round
    while not all(s.is_done for s in streams):
        for i, (s, a) in enumerate(zip(streams, audios, strict=True)):
            if pos[i] < len(a):
                step = 800 * (i + 1)
                s.accept_waveform(16000, a[pos[i] : pos[i] + step])
                pos[i] += step
            elif not s.finished:
                s.input_finished()
        tiny_recognizer.decode_streams(streams)
        for i, s in enumerate(streams):
            got[i] += s.pop_events()
    assert sum(len(ev) for ev in alone) > 100 and sum(1 for ev in alone if ev) >= 3, [len(ev) for ev in alone]
    for g, ev in zip(got, alone, strict=True):
        # per channel (with a beam, tokens of the two channels settle in different decode steps)
        assert sorted(key(g), key=lambda k: k[0]) == sorted(key(ev), key=lambda k: k[0])


def test_stack_unstack_inverse() -> None:
    cfg = ModelConfig.tiny()
    states = []
    for i in range(3):
        s = init_state(cfg, 1)
        for name in vars(s):
            getattr(s, name).normal_(generator=torch.Generator().manual_seed(i))
        states.append(s)
    again = unstack_states(stack_states(states))
    for a, b in zip(states, again, strict=True):
        for name in vars(a):
            assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_bad_input_rejected(tiny_recognizer: Recognizer) -> None:
    s = tiny_recognizer.create_stream()
    with pytest.raises(ValueError, match="sample rate"):
        s.accept_waveform(4000, np.zeros(100, dtype=np.float32))
    s.accept_waveform(8000, np.zeros(100, dtype=np.float32))
    with pytest.raises(ValueError, match="changed"):
        s.accept_waveform(16000, np.zeros(100, dtype=np.float32))
    with pytest.raises(ValueError, match="NaN"):
        s.accept_waveform(8000, np.array([0.0, np.nan], dtype=np.float32))


def test_resampled_stream_decodes(tiny_recognizer: Recognizer, test_audio: np.ndarray) -> None:
    import soxr

    audio_44k = soxr.resample(test_audio, 16000, 44100).astype(np.float32)
    stream = tiny_recognizer.create_stream()
    events = feed(tiny_recognizer, stream, audio_44k, 882, rate=44100)
    assert stream.sample_rate == 44100
    assert abs(stream.duration - len(test_audio) / 16000) < 0.01, stream.duration
    assert events and max(e.time for e in events) > 0.5 * stream.duration


def test_one_channel_baseline_streams_like_whole(test_audio: np.ndarray) -> None:
    from dataclasses import replace

    from model.config import StsConfig

    cfg = StsConfig.tiny()
    rec = Recognizer.random(replace(cfg, model=replace(cfg.model, num_channels=1)), seed=5)
    assert not hasattr(rec.model.encoder, "separator")
    whole = rec.decode_offline(test_audio)
    assert len(whole) > 20 and {e.channel for e in whole} == {0}
    assert key(feed(rec, rec.create_stream(), test_audio, 1600)) == key(whole)


def test_blank_penalty_biases_the_search(tiny_recognizer: Recognizer, test_audio: np.ndarray) -> None:
    """Penalty 0 is the checkpoint's search; a huge penalty never picks blank, a negative one always does."""
    model = tiny_recognizer.model
    search = tiny_recognizer.config.streaming

    def decode(penalty: float) -> list[TokenEvent]:
        rec = Recognizer(model, replace(search, blank_penalty=penalty))
        return rec.transcribe_events(test_audio, 16000)

    assert key(decode(0.0)) == key(tiny_recognizer.transcribe_events(test_audio, 16000))
    assert decode(-1e4) == []
    frames = len(test_audio) // 640  # 40 ms encoder frames of the 16 kHz test audio
    assert len(decode(1e4)) >= 2 * frames * search.max_symbols_per_frame - 2 * search.max_symbols_per_frame


def test_turn_bonus_biases_the_search_towards_turn_tokens(tiny_recognizer: Recognizer, test_audio: np.ndarray) -> None:
    """A huge bonus makes every emission a <sot> or <eot>; a huge negative one removes them all."""
    search = tiny_recognizer.config.streaming

    def decode(bonus: float) -> list[TokenEvent]:
        rec = Recognizer(tiny_recognizer.model, search.overridden(turn_bonus=bonus))
        return rec.transcribe_events(test_audio, 16000)

    boosted = decode(1e4)
    assert boosted and {e.token for e in boosted} <= {"<sot>", "<eot>"}
    assert all(e.token not in ("<sot>", "<eot>") for e in decode(-1e4))
