"""The second pass (``turn_beam``): each closed turn's characters searched again over its frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.recognizer import Recognizer, TokenEvent, TurnFrames
from model.tokenizer import BLANK_ID, EOT_ID, SOT_ID, encode
from service.turns import LeakageRules, TurnAssembler
from tests.test_beam import searching as beam_searching
from tests.test_streaming import feed

TURNS = {"turn_bonus": 2.0}  # the random tiny model opens and closes many turns with this bias


def searching(rec: Recognizer, **settings: float) -> Recognizer:
    return beam_searching(rec, None, **{**TURNS, **settings})


def first_pass(events: list[TokenEvent]) -> list[TokenEvent]:
    return [TokenEvent(e.channel, e.token, e.time, e.logprob) for e in events]


def closing_turns(events: list[TokenEvent]) -> list[tuple[TokenEvent, TokenEvent, list[TokenEvent]]]:
    """(``<sot>``, ``<eot>``, first-pass text events between them) of every turn opened and closed on a channel."""
    out = []
    opened: dict[int, int] = {}
    for i, e in enumerate(events):
        if e.token == "<sot>":
            opened[e.channel] = i
        elif e.token == "<eot>" and e.channel in opened:
            j = opened.pop(e.channel)
            between = [x for x in events[j + 1 : i] if x.channel == e.channel]
            out.append((events[j], e, between))
    return out


@pytest.mark.parametrize("beam", [1, 3])
def test_every_closed_turn_gets_its_second_pass_and_nothing_else_changes(
    tiny_recognizer: Recognizer, test_audio: np.ndarray, beam: int
) -> None:
    rec = searching(tiny_recognizer, beam=beam, turn_beam=4)
    events = feed(rec, rec.create_stream(), test_audio, 1600)
    plain = searching(tiny_recognizer, beam=beam)
    assert first_pass(events) == feed(plain, plain.create_stream(), test_audio, 1600)  # the first pass as it was
    turns = closing_turns(events)
    assert len(turns) >= 3
    for sot, eot, _ in turns:
        assert eot.revision is not None and eot.revision
        assert all(not r.token.startswith("<") and r.channel == eot.channel for r in eot.revision)
        assert all(sot.time <= r.time <= eot.time for r in eot.revision)
        assert [r.time for r in eot.revision] == sorted(r.time for r in eot.revision)
    closing = {id(eot) for _, eot, _ in turns}
    assert all(e.revision is None for e in events if id(e) not in closing)  # no turn open: nothing to revise


def test_the_second_pass_does_not_depend_on_how_the_stream_was_cut(
    tiny_recognizer: Recognizer, test_audio: np.ndarray
) -> None:
    rec = searching(tiny_recognizer, beam=3, turn_beam=4)
    small = feed(rec, rec.create_stream(), test_audio, 1600)
    large = feed(rec, rec.create_stream(), test_audio, 7001)
    assert sum(e.revision is not None for e in small) >= 3
    assert sorted(small, key=lambda e: (e.channel, e.time)) == sorted(large, key=lambda e: (e.channel, e.time))


def test_a_second_pass_of_width_one_repeats_the_greedy_first_pass(
    tiny_recognizer: Recognizer, test_audio: np.ndarray
) -> None:
    rec = searching(tiny_recognizer, beam=1, turn_beam=1)
    turns = closing_turns(feed(rec, rec.create_stream(), test_audio, 1600))
    assert len(turns) >= 3
    for sot, eot, between in turns:
        assert eot.revision is not None
        # inside the turn the same choices; only on its first and last frame may the search without turn tokens
        # choose otherwise (another symbol where the first pass spent one on <sot> or chose <eot>)
        inner = [(e.token, e.time) for e in between if sot.time < e.time < eot.time]
        assert [(r.token, r.time) for r in eot.revision if sot.time < r.time < eot.time] == inner


def frames(first: int, count: int) -> torch.Tensor:
    """(count, 2) frames whose first column is their absolute index."""
    return torch.stack([torch.arange(first, first + count, dtype=torch.float32), torch.ones(count)], dim=1)


def test_turn_frames_hold_the_open_turn_and_forget_the_rest() -> None:
    held = TurnFrames((BLANK_ID,) * 3)
    for block in range(5):
        held.append(frames(8 * block, 8), keep=10)
    assert (held.first, held.frames.shape[0]) == (30, 10)  # no turn open: the last `keep` frames
    a = encode("a")[0]
    assert held.commit(a, 38) is None and held.commit(EOT_ID, 39) is None  # no turn was open
    assert held.commit(SOT_ID, 33) is None  # committed late, its frame still held
    assert held.turn_context == (a, EOT_ID, SOT_ID)
    for block in range(5, 9):
        held.append(frames(8 * block, 8), keep=10)
    assert held.first == 33  # the open turn's frames from its <sot> on
    turn = held.commit(EOT_ID, 70)
    assert turn is not None
    enc, context, first = turn
    assert enc[:, 0].tolist() == list(range(33, 71)) and first == 33 and context == (a, EOT_ID, SOT_ID)
    assert held.commit(EOT_ID, 71) is None  # closed


def test_a_turn_longer_than_the_bound_keeps_its_first_pass() -> None:
    held = TurnFrames((BLANK_ID,) * 2)
    held.append(frames(0, 8), keep=10)
    held.commit(SOT_ID, 2)
    held.append(frames(8, TurnFrames.MAX_FRAMES - 5), keep=10)  # frames 2 .. MAX_FRAMES + 2: one too many
    assert held.turn_from is None and held.frames.shape[0] == 10
    assert held.commit(EOT_ID, TurnFrames.MAX_FRAMES) is None
    late = TurnFrames((BLANK_ID,) * 2)
    late.append(frames(0, 40), keep=10)
    assert late.commit(SOT_ID, 20) is None and late.turn_from is None  # its frame was forgotten: no second pass


def test_the_assembler_makes_each_final_of_its_second_pass(tiny_recognizer: Recognizer, test_audio: np.ndarray) -> None:
    rec = searching(tiny_recognizer, beam=3, turn_beam=4)
    events = feed(rec, rec.create_stream(), test_audio, 1600)
    finals = TurnAssembler(leakage=LeakageRules(copy_window=0, echo_cover=0)).push(events)
    second = {(eot.channel, sot.time): "".join(r.token for r in eot.revision or ()) for sot, eot, _ in
              closing_turns(events)}  # fmt: skip
    revised = [t for t in finals if (t.channel, t.start) in second]
    assert len(revised) >= 3
    for t in revised:
        assert t.text == " ".join(second[t.channel, t.start].split())


def test_a_turn_closed_by_settling_gets_its_second_pass(tiny_recognizer: Recognizer, test_audio: np.ndarray) -> None:
    rec = searching(tiny_recognizer, beam=3, turn_beam=4)
    stream = rec.create_stream()
    stream.accept_waveform(16000, test_audio[:64000])  # a cut where the beams hold back a turn's <eot>
    while stream.is_ready:
        rec.decode_streams([stream])
    before = stream.pop_events()
    stream.settle()
    settled = stream.pop_events()
    [(sot, eot, _)] = [t for t in closing_turns(before + settled) if t[1] in settled]
    assert eot.revision and all(sot.time <= r.time <= eot.time for r in eot.revision)
