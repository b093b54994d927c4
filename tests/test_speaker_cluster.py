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


def test_revise_moves_an_early_turn_to_the_speaker_it_turned_out_to_be() -> None:
    """A short turn joins S1 while S1 is the only speaker; once S2 exists it is clearly S2's, and revising
    moves it (and nothing else); with an S2 turn overlapping it, it cannot move."""
    a, b = _voice(1), _voice(2)
    c = 0.55 * a + np.sqrt(1 - 0.55**2) * b  # cosine 0.55 to a, 0.84 to b
    for overlapped in (False, True):
        cl = OnlineSpeakerClusterer(ClustererConfig(threshold=0.5, min_new_seconds=0.0))
        got = [cl.assign(a, 0.0, 10.0), cl.assign(c, 10.5, 11.5)]
        got.append(cl.assign(b, 11.0 if overlapped else 12.0, 14.0, overlapping={"S1"} if overlapped else ()))
        got += [cl.assign(b, 15.0, 17.0), cl.assign(b, 18.0, 20.0)]
        assert got == ["S1", "S1", "S2", "S2", "S2"]
        assert cl.revise() == (got if overlapped else ["S1", "S2", "S2", "S2", "S2"])
        assert [t.label for t in cl.turns] == got  # revising commits nothing


def test_revise_merges_an_over_split_speaker_unless_the_two_overlap() -> None:
    """Two speakers whose centroids are close (cosine 0.45, under the 0.5 threshold that split them, over the
    0.4 merge threshold) are one person, unless one of their turns overlaps one of the other's; a turn noted
    without its voice follows its speaker."""
    a, b = _voice(1), _voice(2)
    v = 0.45 * a + np.sqrt(1 - 0.45**2) * b
    cfg = ClustererConfig(threshold=0.5, min_new_seconds=0.0, merge_threshold=0.4)
    cl = OnlineSpeakerClusterer(cfg)
    assert [cl.assign(a, 0.0, 2.0), cl.assign(v, 3.0, 5.0), cl.assign(a, 6.0, 8.0)] == ["S1", "S2", "S1"]
    cl.note("S2", 9.0, 9.05)
    assert cl.revise() == ["S1", "S1", "S1", "S1"]
    cl2 = OnlineSpeakerClusterer(cfg)
    assert [cl2.assign(a, 0.0, 2.0), cl2.assign(v, 1.5, 5.0, overlapping={"S1"})] == ["S1", "S2"]
    assert cl2.revise() == ["S1", "S2"]
    cl3 = OnlineSpeakerClusterer(ClustererConfig(threshold=0.5, merge_threshold=0.4))
    labels = [cl3.assign(a, 0.0, 2.0), cl3.assign(b, 3.0, 5.0), cl3.assign(a, 6.0, 7.0)]
    assert labels == ["S1", "S2", "S1"] and cl3.revise() == labels  # different voices stay apart
