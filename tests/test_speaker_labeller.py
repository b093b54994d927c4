"""service.speakers.VoiceLabeller behind the TurnAssembler's SpeakerLabeller interface (no model, no TTS)."""

from __future__ import annotations

from typing import Any

import numpy as np

from model.speaker import SAMPLE_RATE, SpeakerEmbedder, SpeakerFeatureConfig, TrainingInfo, speaker_statistics
from model.speaker_cluster import ClustererConfig, clusterer_config
from service.schemas import Turn, Word
from service.speakers import AudioRing, VoiceLabeller, make_labeller
from service.turns import OpenSpan


def _buzz(f0: float, seconds: float, seed: int) -> np.ndarray:
    """A vowel-like pulse train at ``f0`` Hz through a fixed two-pole resonance: a crude 'voice'."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    f = f0 * (1 + 0.03 * np.sin(2 * np.pi * 3 * t))
    x = np.sign(np.sin(2 * np.pi * np.cumsum(f) / SAMPLE_RATE)) + 0.05 * rng.standard_normal(n)
    r, w = 0.97, 2 * np.pi * (700 if f0 < 150 else 1100) / SAMPLE_RATE
    y = np.zeros(n)
    for i in range(2, n):
        y[i] = x[i] + 2 * r * np.cos(w) * y[i - 1] - r * r * y[i - 2]
    return (0.3 * y / np.max(np.abs(y))).astype(np.float32)


def _embedder() -> SpeakerEmbedder:
    """A projection fitted on the two synthetic voices (and a few more), so the test needs no bundled file."""
    cfg = SpeakerFeatureConfig()
    stats, labels = [], []
    for k, f0 in enumerate([100.0, 120.0, 180.0, 220.0, 260.0]):
        for s in range(6):
            stats.append(speaker_statistics(_buzz(f0, 1.0, 10 * k + s), cfg))
            labels.append(str(k))
    return SpeakerEmbedder.train(np.asarray(stats), labels, dim=3, config=cfg)


def _turn(tid: str, channel: int, start: float, end: float, final: bool = True) -> Turn:
    words = [Word(word="hi", start=start, end=end, confidence=1.0)] if final else []
    return Turn(turn_id=tid, channel=channel, speaker="", start=start, end=end, text="hi", confidence=1.0,
                words=words)  # fmt: skip


def test_voice_labeller_follows_voices_not_channels() -> None:
    low, high = _buzz(100.0, 8.0, 1), _buzz(220.0, 8.0, 2)
    audio = np.zeros(int(10 * SAMPLE_RATE), np.float32)
    # low talks 0-2 s and 6-8 s, high 2.5-5 s; channels are assigned as HEAT would (channel 0 when free)
    audio[: 2 * SAMPLE_RATE] += low[: 2 * SAMPLE_RATE]
    audio[int(2.5 * SAMPLE_RATE) : 5 * SAMPLE_RATE] += high[: int(2.5 * SAMPLE_RATE)]
    audio[6 * SAMPLE_RATE : 8 * SAMPLE_RATE] += low[2 * SAMPLE_RATE : 4 * SAMPLE_RATE]
    lab = VoiceLabeller(_embedder(), ClustererConfig(threshold=0.5))
    lab.accept_waveform(SAMPLE_RATE, audio)
    assert lab.label(_turn("t1", 0, 0.0, 2.0)) == "S1"
    assert lab.label(_turn("t2", 0, 2.5, 5.0)) == "S2"
    assert lab.label(_turn("t3", 0, 6.0, 8.0)) == "S1"
    assert lab.label(_turn("t1", 0, 0.0, 2.0)) == "S1"  # a final turn keeps its label


def test_overlapping_final_turns_get_different_labels_and_partials_are_provisional() -> None:
    low = _buzz(100.0, 6.0, 3)
    lab = VoiceLabeller(_embedder(), ClustererConfig(threshold=0.5))
    lab.accept_waveform(SAMPLE_RATE, low)
    assert lab.label(_turn("t1", 0, 0.0, 3.0, final=False)) == "S1"  # a partial: provisional
    assert lab.clusterer.labels == []  # nothing committed
    assert lab.label(_turn("t1", 0, 0.0, 3.0)) == "S1"
    # the same voice overlapping t1 must still be someone else
    assert lab.label(_turn("t2", 1, 2.0, 5.0)) == "S2"


def test_audio_ring_is_bounded_and_resamples() -> None:
    ring = AudioRing(seconds=1.0)
    for _ in range(50):
        ring.append(np.ones(1600, np.float32))
    assert len(ring.cut([(0.0, 5.0)])) <= 2 * SAMPLE_RATE
    assert len(ring.cut([(4.5, 5.0)])) == 8000
    lab = VoiceLabeller(_embedder())
    for _ in range(10):
        lab.accept_waveform(44100, np.zeros(4410, np.float32))
    assert abs(lab.ring.end_seconds - 1.0) < 0.05


class _TableEmbedder:
    """Embeds a span by the constant value its samples hold: value k/10 -> row k of ``table``."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = table
        self.info = TrainingInfo()

    @property
    def dim(self) -> int:
        return int(self.table.shape[1])

    def embed(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        return self.table[int(round(float(np.median(samples)) * 10))]


def _revision_case() -> tuple[np.ndarray, list[tuple[str, float, float, int]], np.ndarray]:
    """t2 joins S1 while S1 is alone (cosine 0.55 to it); once S2 has spoken, t2 is closer to S2."""
    a, b = np.eye(4)[1], np.eye(4)[2]
    table = np.stack([np.zeros(4), a, 0.55 * a + np.sqrt(1 - 0.55**2) * b, b])
    spans = [("t1", 0.0, 10.0, 1), ("t2", 10.5, 11.5, 2), ("t3", 12.0, 14.0, 3), ("t4", 15.0, 17.0, 3)]
    audio = np.zeros(int(18 * SAMPLE_RATE), np.float32)
    for _, s, e, k in spans:
        audio[int(s * SAMPLE_RATE) : int(e * SAMPLE_RATE)] = k / 10
    return table, spans, audio


def test_the_end_revision_reports_only_the_turns_that_change() -> None:
    """Without revisions during the stream: the end-of-stream revision moves t2 to S2 and reports only t2."""
    table, spans, audio = _revision_case()
    cfg = ClustererConfig(threshold=0.5, min_new_seconds=0.0, live_revise=False)
    lab = VoiceLabeller(_TableEmbedder(table), cfg)
    lab.accept_waveform(SAMPLE_RATE, audio)
    assert [lab.label(_turn(t, 0, s, e)) for t, s, e, _ in spans] == ["S1", "S1", "S2", "S2"]
    assert lab.relabels() == {}
    assert lab.relabels(final=True) == {"t2": "S2"}
    assert lab.relabels(final=True) == {}  # each change is given once
    assert lab.label(_turn("t2", 0, 10.5, 11.5)) == "S2"  # the label as it stands now


def test_revisions_during_the_stream_relabel_earlier_turns_once() -> None:
    """With revisions during the stream (the default), t2 moves to S2 as soon as S2's turn t3 closes: t3's label
    comes out revised, t2's change is given once by relabels, and the end of the stream has nothing left."""
    table, spans, audio = _revision_case()
    lab = VoiceLabeller(_TableEmbedder(table), ClustererConfig(threshold=0.5, min_new_seconds=0.0))
    lab.accept_waveform(SAMPLE_RATE, audio)
    got = []
    for t, s, e, _ in spans:
        got.append((lab.label(_turn(t, 0, s, e)), lab.relabels()))
    assert got == [("S1", {}), ("S1", {}), ("S2", {"t2": "S2"}), ("S2", {})]
    assert lab.relabels(final=True) == {}


def test_the_revision_after_a_turn_keeps_the_turns_that_overlap_an_open_one() -> None:
    """A final turn that closes while another channel's turn is open was labelled jointly with it: the revision
    that follows pins it (and any other final turn overlapping the open one), and only those."""
    table, spans, audio = _revision_case()
    lab = VoiceLabeller(_TableEmbedder(table), ClustererConfig(threshold=0.5, min_new_seconds=0.0))
    lab.accept_waveform(SAMPLE_RATE, audio)
    seen: list[list[int]] = []
    revise = lab.clusterer.revise

    def spy(live: bool = False, pinned: Any = ()) -> list[str]:
        seen.append(list(pinned))
        return revise(live, pinned)

    lab.clusterer.revise = spy  # type: ignore[method-assign]
    lab.label(_turn("t1", 0, 0.0, 10.0))
    lab.label(_turn("t2", 1, 10.5, 11.5), [OpenSpan(channel=0, start=11.0)])
    lab.label(_turn("t3", 1, 12.0, 14.0), [OpenSpan(channel=0, start=11.0)])
    lab.label(_turn("t4", 0, 11.0, 15.0))
    assert seen == [[], [1], [1, 2], []]


def test_the_thresholds_tuned_for_an_embedder_decide_its_labels() -> None:
    """Two turns at cosine 0.55: one speaker under a tuned threshold of 0.3, two under 0.7 (make_labeller reads
    the thresholds stored with the embedder; the client's max_speakers still applies on top)."""
    a, b = np.eye(3)[1], np.eye(3)[2]
    table = np.stack([np.zeros(3), a, 0.55 * a + np.sqrt(1 - 0.55**2) * b])
    audio = np.zeros(int(6 * SAMPLE_RATE), np.float32)
    audio[: 2 * SAMPLE_RATE] = 0.1
    audio[3 * SAMPLE_RATE : 5 * SAMPLE_RATE] = 0.2
    turns = [_turn("t1", 0, 0.0, 2.0), _turn("t2", 1, 3.0, 5.0)]

    def labels(tuned: dict[str, float], max_speakers: int | None = None) -> list[str]:
        emb = _TableEmbedder(table)
        emb.info = TrainingInfo(clustering=tuned)
        lab = make_labeller(emb, max_speakers)
        lab.accept_waveform(SAMPLE_RATE, audio)
        return [lab.label(t) for t in turns]

    assert labels({"threshold": 0.3, "min_new_seconds": 0.0}) == ["S1", "S1"]
    # the revision after each final turn merges never-overlapping speakers at live_merge_threshold (also tuned)
    apart = {"threshold": 0.7, "min_new_seconds": 0.0, "live_merge_threshold": 0.7}
    assert labels({"threshold": 0.7, "min_new_seconds": 0.0}) == ["S1", "S1"]
    assert labels(apart) == ["S1", "S2"]
    assert labels({"threshold": 0.7, "min_new_seconds": 0.0, "live_revise": 0}) == ["S1", "S2"]
    assert labels(apart, max_speakers=1) == ["S1", "S1"]
    assert clusterer_config({"threshold": 0.7, "unknown": 1.0}) == ClustererConfig(threshold=0.7)
    assert clusterer_config({"live_revise": 0.0}).live_revise is False
