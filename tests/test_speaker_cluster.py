"""The online speaker clustering policy (model.speaker_cluster): pure numpy, no audio."""

from __future__ import annotations

import numpy as np

from model.speaker_cluster import ClustererConfig, OnlineSpeakerClusterer


def _voice(k: int, dim: int = 16) -> np.ndarray:
    """Voice ``k``: orthogonal to every other voice (cosine 0)."""
    return np.eye(dim)[k]


def _noisy(v: np.ndarray, seed: int, amount: float = 0.2) -> np.ndarray:
    x = v + amount * np.random.default_rng(1000 + seed).standard_normal(v.shape) / np.sqrt(len(v))
    return x / np.linalg.norm(x)


def test_a_repeated_speaker_gets_its_old_label() -> None:
    a, b = _voice(1), _voice(2)
    c = OnlineSpeakerClusterer(ClustererConfig(threshold=0.5))
    got = [c.assign(_noisy(v, i), 2.0 * i, 2.0 * i + 1.8) for i, v in enumerate([a, b, a, b, b, a])]
    assert got == ["S1", "S2", "S1", "S2", "S2", "S1"], got
    assert c.labels == ["S1", "S2"]


def test_overlapping_turns_never_share_a_label() -> None:
    a = _voice(1)
    c = OnlineSpeakerClusterer(ClustererConfig(threshold=0.5))
    assert c.assign(a, 0.0, 3.0) == "S1"
    # the same voice (as far as the embedding can tell) talking over an S1 turn: it must be someone else
    assert c.assign(_noisy(a, 1), 2.0, 4.0, overlapping={"S1"}) == "S2"
    # even a short turn, and even when the hint says one speaker: the overlap rule wins
    c1 = OnlineSpeakerClusterer(ClustererConfig(threshold=0.5, max_speakers=1))
    c1.assign(a, 0.0, 3.0)
    assert c1.assign(_noisy(a, 2), 1.0, 1.3, overlapping={"S1"}) == "S2"


def test_max_speakers_is_respected() -> None:
    voices = [_voice(s) for s in range(5)]
    c = OnlineSpeakerClusterer(ClustererConfig(threshold=0.5, max_speakers=2))
    got = [c.assign(v, 2.0 * i, 2.0 * i + 1.8) for i, v in enumerate(voices)]
    assert set(got) == {"S1", "S2"}, got
    free = OnlineSpeakerClusterer(ClustererConfig(threshold=0.5))
    assert len({free.assign(v, 2.0 * i, 2.0 * i + 1.8) for i, v in enumerate(voices)}) == 5


def test_short_turns_do_not_open_speakers_and_rivals_are_labelled_jointly() -> None:
    a, b = _voice(1), _voice(2)
    c = OnlineSpeakerClusterer(ClustererConfig(threshold=0.5, min_new_seconds=1.0))
    assert c.assign(a, 0.0, 2.0) == "S1"
    assert c.assign(b, 2.5, 2.9) == "S1"  # a 0.4 s turn of a new voice joins the known speaker
    # a backchannel of a new voice closes inside a long open turn of S1's voice: the pair is labelled
    # jointly, so the backchannel does not take S1 away from the talker
    c2 = OnlineSpeakerClusterer(ClustererConfig(threshold=0.5, min_new_seconds=0.0))
    c2.assign(a, 0.0, 2.0)
    assert c2.assign(_noisy(b, 3, 1.5), 3.0, 3.4, rival=_noisy(a, 4), rival_seconds=1.5) == "S2"
    assert c2.assign(_noisy(a, 5), 2.5, 6.0, overlapping={"S2"}) == "S1"


def test_peek_commits_nothing() -> None:
    a, b = _voice(1), _voice(2)
    c = OnlineSpeakerClusterer(ClustererConfig(threshold=0.5))
    c.assign(a, 0.0, 2.0)
    assert c.peek(a, 3.0, 4.0) == "S1"
    assert c.peek(b, 3.0, 5.0) == ""  # a new speaker
    assert c.labels == ["S1"] and c.speakers[0].turns == 1
