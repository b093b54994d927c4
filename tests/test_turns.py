"""TurnAssembler: <sot>/<eot>, missing <sot> or <eot>, finalize, the turn-length cap, partial stability."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from service.schemas import Turn
from service.turns import ChannelLabeller, LeakageRules, OpenSpan, TurnAssembler


@dataclass(frozen=True)
class Ev:
    channel: int
    token: str
    time: float
    logprob: float = -0.1
    revision: tuple[Ev, ...] | None = None  # on an <eot>: the turn's second-pass characters


def spell(channel: int, text: str, start: float, step: float = 0.04, sot: bool = True, eot: bool = True) -> list[Ev]:
    """Events of ``<sot> text <eot>`` with one token per frame from ``start``."""
    out = [Ev(channel, "<sot>", start)] if sot else []
    t = start + (step if sot else 0.0)
    for ch in text:
        out.append(Ev(channel, ch, round(t, 3)))
        t += step
    if eot:
        out.append(Ev(channel, "<eot>", round(t, 3)))
    return out


def test_sot_and_eot_make_a_turn_with_words() -> None:
    asm = TurnAssembler()
    events = spell(0, "hi there", 1.0)
    events[1] = Ev(0, "h", 1.04, logprob=-1.0)
    [turn] = asm.push(events)
    assert turn.turn_id == "t1" and turn.channel == 0 and turn.speaker == "S1"
    assert turn.start == 1.0 and turn.end == pytest.approx(1.36)
    assert turn.text == "hi there"
    assert [w.word for w in turn.words] == ["hi", "there"]
    hi, there = turn.words
    assert (hi.start, hi.end) == (1.04, 1.12)  # first character's frame to the end of the last one's
    assert (there.start, there.end) == (1.16, 1.36)
    import math

    assert hi.confidence == pytest.approx(math.exp(-0.55), abs=1e-3)
    assert there.confidence == pytest.approx(math.exp(-0.1), abs=1e-3)
    assert turn.confidence == pytest.approx(math.exp((-1.0 - 0.1 * 6) / 7), abs=1e-3)
    assert asm.finalize() == [] and asm.turns_closed == 1


def test_two_channels_interleaved_and_ids_in_order_of_first_word() -> None:
    asm = TurnAssembler()
    a = spell(0, "one two", 0.0)
    b = spell(1, "yes", 0.1)
    events = sorted(a + b, key=lambda e: e.time)
    turns = asm.push(events)
    assert [(t.turn_id, t.channel, t.speaker, t.text) for t in turns] == [
        ("t2", 1, "S2", "yes"),
        ("t1", 0, "S1", "one two"),
    ]


def test_missing_sot_opens_a_turn_implicitly() -> None:
    asm = TurnAssembler()
    [turn] = asm.push(spell(1, "ok then", 2.0, sot=False))
    assert turn.start == 2.0 and turn.text == "ok then" and turn.channel == 1


def test_missing_eot_closed_at_finalize_ending_at_its_last_word() -> None:
    asm = TurnAssembler()
    assert asm.push(spell(0, "still talking ", 0.0, eot=False)) == []
    assert asm.open_channels == [0]
    [turn] = asm.finalize()
    assert turn.text == "still talking" and turn.end == turn.words[-1].end == pytest.approx(0.56)
    assert asm.open_channels == [] and asm.finalize() == []


def test_sot_while_open_closes_the_previous_turn() -> None:
    asm = TurnAssembler()
    turns = asm.push(spell(0, "first", 0.0, eot=False) + spell(0, "second", 1.0))
    assert [(t.turn_id, t.text, t.end) for t in turns] == [("t1", "first", 0.24), ("t2", "second", 1.28)]


def test_empty_turns_and_stray_tokens_are_dropped() -> None:
    asm = TurnAssembler()
    events = [Ev(0, "<eot>", 0.0), Ev(0, "<sot>", 0.1), Ev(0, " ", 0.2), Ev(0, "<eot>", 0.3),
              Ev(0, "<blank>", 0.4), Ev(1, " ", 0.5)]  # fmt: skip
    assert asm.push(events) == [] and asm.finalize() == []
    [turn] = asm.push(spell(0, "a", 1.0))
    assert turn.turn_id == "t1"  # no id was spent on the empty turn


def test_turn_cap_splits_at_a_word_boundary() -> None:
    asm = TurnAssembler(max_turn_seconds=1.0)
    text = "aaaa bbbb cccc dddd eeee ffff gg"  # one character per 40 ms: "f" at 1.04 s is past the 1 s cap
    turns = asm.push(spell(0, text, 0.0, eot=False))
    assert [t.text for t in turns] == ["aaaa bbbb cccc dddd eeee"]
    first = turns[0]
    [rest] = asm.finalize()
    assert rest.text == "ffff gg" and rest.turn_id == "t2" and rest.start == rest.words[0].start == 1.04
    assert first.end <= rest.start


def test_turn_cap_mid_word_carries_the_word_over() -> None:
    asm = TurnAssembler(max_turn_seconds=0.3)
    turns = asm.push(spell(0, "ab cdefgh", 0.0, sot=False, eot=False))
    assert [t.text for t in turns] == ["ab"]
    [rest] = asm.finalize()
    assert rest.text == "cdefgh" and rest.start == 0.12


def test_turn_cap_without_any_word_boundary_closes_whole() -> None:
    asm = TurnAssembler(max_turn_seconds=1.0)
    turns = asm.push([Ev(0, "x", i * 0.04) for i in range(60)])  # rubbish of a random model: no spaces
    assert len(turns) == 2 and all(t.end - t.start <= 1.0 + 0.04 + 1e-9 for t in turns)
    assert sum(len(t.text) for t in turns) + len(asm.finalize()[0].text) == 60


def test_partials_only_whole_words_only_when_changed() -> None:
    asm = TurnAssembler()
    events = spell(0, "good morning every", 0.0, eot=False)
    seen = []
    for e in events:  # one decode step per event: the worst case for flicker
        asm.push([e])
        seen += [(p.turn_id, p.text) for p in asm.partials()]
    assert seen == [("t1", "good"), ("t1", "good morning")]
    asm.push([Ev(0, "o", 0.8), Ev(0, "n", 0.84), Ev(0, "e", 0.88)])
    assert asm.partials() == []  # "everyone" is not finished: nothing new to show
    [turn] = asm.push([Ev(0, "<eot>", 0.92)])
    assert turn.text == "good morning everyone"
    assert asm.partials() == []


def test_partial_carries_speaker_from_the_labeller() -> None:
    class Fixed:
        def label(self, turn: Turn, open_turns: Sequence[OpenSpan] = ()) -> str:
            return "SPK" + turn.turn_id

    asm = TurnAssembler(labeller=Fixed())
    asm.push(spell(1, "a b", 0.0, eot=False))
    [p] = asm.partials()
    assert p.speaker == "SPKt1" and p.channel == 1 and p.start == 0.0
    assert asm.finalize()[0].speaker == "SPKt1"
    assert ChannelLabeller().label(Turn(turn_id="t1", channel=1, speaker="", start=0, end=1, text="",
                                        confidence=0)) == "S2"  # fmt: skip


def test_subword_tokens_score_once() -> None:
    asm = TurnAssembler()
    [turn] = asm.push([Ev(0, "<sot>", 0.0), Ev(0, "hel", 0.04, -0.2), Ev(0, "lo ", 0.08, -0.4),
                       Ev(0, "you", 0.12, -0.6), Ev(0, "<eot>", 0.16)])  # fmt: skip
    assert [w.word for w in turn.words] == ["hello", "you"]
    import math

    assert turn.words[0].confidence == pytest.approx(math.exp(-0.3), abs=1e-3)


def test_final_turns_see_the_turns_open_on_the_other_channel_whenever_partials_are_asked() -> None:
    """The labeller gets, with each final turn, the turns then open on other channels, from the events alone:
    the same whether the events come in one batch or one at a time with partials asked after each."""

    class Recording:
        def __init__(self) -> None:
            self.calls: list[tuple[str, bool, tuple[OpenSpan, ...]]] = []

        def accept_waveform(self, sample_rate: int, samples: object) -> None:
            pass

        def label(self, turn: Turn, open_turns: Sequence[OpenSpan] = ()) -> str:
            self.calls.append((turn.turn_id, bool(turn.words), tuple(open_turns)))
            return "S1"

    # channel 0 talks from 0.0; channel 1 opens at 0.2 (a backchannel) and closes at 0.5, inside the long turn
    events = sorted(spell(0, "we should go now", 0.0) + spell(1, "yes", 0.2), key=lambda e: (e.time, e.channel))
    one = Recording()
    TurnAssembler(one).push(events)
    finals_one = [c for c in one.calls if c[1]]
    many = Recording()
    asm = TurnAssembler(many)
    for e in events:
        asm.push([e])
        asm.partials()
    finals_many = [c for c in many.calls if c[1]]
    assert finals_one == finals_many
    (yes_id, _, yes_open), (long_id, _, long_open) = finals_one
    assert yes_open == (OpenSpan(0, 0.0),)  # the long turn was still open when "yes" closed
    assert long_open == ()


def test_spell_repairs_each_word_as_it_completes() -> None:
    fixes = {"helo": "hello", "wrld": "world"}
    asm = TurnAssembler(spell=lambda w: fixes.get(w, w))
    events = spell(0, "helo big wrld", 0.0)
    shown = []
    for e in events[:-2]:  # all but the last character and <eot>: "wrl" is still being spelled
        asm.push([e])
        shown += [p.text for p in asm.partials()]
    assert shown == ["hello", "hello big"]  # partials show repaired words only
    [turn] = asm.push(events[-2:])
    assert turn.text == "hello big world" and [w.word for w in turn.words] == ["hello", "big", "world"]
    assert (turn.words[0].start, turn.words[0].end) == (0.04, 0.2)  # the spoken word's times are kept


def _by_time(*streams: list[Ev]) -> list[Ev]:
    return sorted((e for s in streams for e in s), key=lambda e: e.time)


def _assemble(
    events: list[Ev],
    copy_window: float,
    partials: list[tuple[int, str]] | None = None,
    echo_cover: float = 0.0,
    echo_grace: float = 0.0,
) -> list[Turn]:
    """Turns of ``events`` pushed one by one (echo removal off unless asked: these turns overlap on purpose)."""
    asm = TurnAssembler(leakage=LeakageRules(copy_window, echo_cover, echo_grace))
    turns = []
    for e in events:  # one decode step per event
        turns += asm.push([e])
        if partials is not None:
            partials += [(p.channel, p.text) for p in asm.partials()]
    return sorted(turns + asm.finalize(), key=lambda t: t.channel)


# "beta" of channel 1 lies exactly on "beta" of channel 0 (both spelled 1.28-1.44 s): the separator's leakage
SPEAKER = spell(0, "alpha beta gamma", 1.0)  # closes at 1.68 s


def test_cross_channel_copies_are_kept_when_asked() -> None:
    turns = _assemble(_by_time(SPEAKER, spell(1, "beta zeta", 1.24)), copy_window=0.0)
    assert [t.text for t in turns] == ["alpha beta gamma", "beta zeta"]
    asm = TurnAssembler(leakage=LeakageRules(echo_cover=0.0))  # the default drops them
    turns = sorted(asm.push(_by_time(SPEAKER, spell(1, "beta zeta", 1.24))), key=lambda t: t.channel)
    assert asm.leakage.copy_window == LeakageRules.copy_window > 0
    assert [t.text for t in turns] == ["alpha beta gamma", "zeta"]


def test_a_copy_leaves_the_turn_that_is_more_copy_closing_first_or_still_open() -> None:
    # the leaking turn closes first (1.64 s; half its words copied, and half of the other's complete words)
    turns = _assemble(_by_time(SPEAKER, spell(1, "beta zeta", 1.24)), copy_window=0.3)
    assert [t.text for t in turns] == ["alpha beta gamma", "zeta"]
    assert [w.word for w in turns[1].words] == ["zeta"] and turns[1].start == 1.24
    # the leaking turn is still open when the other closes (1/3 copied against 1/2): it loses the copy later,
    # in its partials too once the other turn has closed
    seen: list[tuple[int, str]] = []
    turns = _assemble(_by_time(SPEAKER, spell(1, "beta zeta eta theta", 1.24)), copy_window=0.3, partials=seen)
    assert [t.text for t in turns] == ["alpha beta gamma", "zeta eta theta"]
    assert (1, "beta zeta") in seen and seen[-1] == (1, "zeta eta")


def test_only_the_same_word_near_in_time_is_a_copy() -> None:
    other_word = _assemble(_by_time(SPEAKER, spell(1, "delta zeta", 1.24)), copy_window=0.3)
    assert [t.text for t in other_word] == ["alpha beta gamma", "delta zeta"]
    later = _by_time(SPEAKER, spell(1, "beta zeta", 1.64))  # overlapping turns, the two "beta" centres 0.4 s apart
    assert [t.text for t in _assemble(later, copy_window=0.3)] == ["alpha beta gamma", "beta zeta"]
    assert [t.text for t in _assemble(later, copy_window=0.5)] == ["alpha beta gamma", "zeta"]


def test_a_turn_of_copies_only_is_kept_whole() -> None:
    seen: list[tuple[int, str]] = []
    turns = _assemble(_by_time(SPEAKER, spell(1, "beta ", 1.24)), copy_window=0.3, partials=seen)
    assert [t.text for t in turns] == ["alpha beta gamma", "beta"]  # its partial gets a final with its words
    assert (1, "beta") in seen


# channel 1 opens inside the open channel-0 turn and repeats its middle, misspelled: the separator's echo
TALKER_TEXT = "research is to see what everybody else has seen"
TALKER = spell(0, TALKER_TEXT, 20.0)  # closes at 21.92 s
ECHO = spell(1, "is to sea what", 20.36)  # closes at 20.96 s, inside TALKER


def test_an_echo_inside_an_open_turn_gets_no_final_and_shows_no_partial() -> None:
    seen: list[tuple[int, str]] = []
    turns = _assemble(_by_time(TALKER, ECHO), copy_window=0.3, partials=seen, echo_cover=LeakageRules.echo_cover)
    assert [(t.channel, t.text) for t in turns] == [(0, "research is to see what everybody else has seen")]
    assert seen and all(channel == 0 for channel, _ in seen)
    asm = TurnAssembler()  # the service's default drops it too, and counts it
    assert asm.leakage.echo_cover == LeakageRules.echo_cover > 0
    assert [t.channel for t in asm.push(_by_time(TALKER, ECHO))] == [0] and asm.echoes_dropped == 1
    # off: the echo is a turn like any other
    assert len(_assemble(_by_time(TALKER, ECHO), copy_window=0.3, echo_cover=0.0)) == 2


def test_echoes_are_judged_by_the_letters_heard_not_by_the_lexicons_repairs() -> None:
    """A repair that makes the echo's words unlike the talker's (or alike) does not change whether it is one:
    the lexicon shows words, the echo is in the audio."""
    asm = TurnAssembler(spell=lambda w: "q" * 12 if w == "sea" else w)
    assert [t.text for t in asm.push(_by_time(TALKER, ECHO))] == [TALKER_TEXT] and asm.echoes_dropped == 1


def test_an_interjection_inside_an_open_turn_is_kept_and_its_partials_wait_for_its_container() -> None:
    other = spell(1, "sounds good", 20.36)  # another voice's words: nothing like the talker's
    seen: list[tuple[int, str]] = []
    turns = _assemble(_by_time(TALKER, other), copy_window=0.3, partials=seen, echo_cover=LeakageRules.echo_cover)
    assert [(t.channel, t.text) for t in turns] == [(0, TALKER_TEXT), (1, "sounds good")]
    assert (1, "sounds") not in seen  # no partial while the container was open: its words came with the final
    # a turn that outlasts its container shows its partials once the container has closed
    long = spell(1, "sounds good to me and we can start on monday then", 20.36)  # closes at 22.40 s
    seen = []
    turns = _assemble(_by_time(TALKER, long), copy_window=0.3, partials=seen, echo_cover=LeakageRules.echo_cover)
    assert [t.channel for t in turns] == [0, 1]
    first = next(i for i, (channel, _) in enumerate(seen) if channel == 1)
    closed_at = next(i for i, (channel, text) in enumerate(seen) if channel == 0 and text.endswith("has"))
    assert first > closed_at and seen[-1][0] == 1


def test_an_echo_closing_just_after_its_container_is_dropped_within_the_grace() -> None:
    late = spell(1, "else has seen", 21.5)  # the talker's last words again, closing at 22.06 s (the talker: 21.92)
    events = _by_time(TALKER, late)
    for grace in (0.0, 0.05):  # no grace, or too short: a turn like any other
        turns = _assemble(events, copy_window=0.0, echo_cover=LeakageRules.echo_cover, echo_grace=grace)
        assert [t.channel for t in turns] == [0, 1]
    seen: list[tuple[int, str]] = []
    turns = _assemble(events, copy_window=0.0, partials=seen, echo_cover=LeakageRules.echo_cover, echo_grace=0.3)
    assert [t.channel for t in turns] == [0] and all(channel == 0 for channel, _ in seen)
    # an interjection that outlasts the grace shows its partials once the grace is over, and keeps its final
    long = spell(1, "sounds good to me and we can start on monday then", 20.36)  # closes at 22.40 s
    asm = TurnAssembler(leakage=LeakageRules(echo_grace=0.3))
    shown_at = []
    for e in _by_time(TALKER, long):
        asm.push([e])
        shown_at += [e.time for p in asm.partials() if p.channel == 1]
    assert shown_at and min(shown_at) >= 21.92 + 0.3
    assert [t.channel for t in asm.finalize()] == [] and asm.echoes_dropped == 0


@pytest.mark.parametrize("grace", [0.0, 0.3])
def test_echo_removal_gives_the_same_finals_whenever_partials_are_asked(grace: float) -> None:
    talker = spell(0, TALKER_TEXT, 20.0, eot=False)  # still talking when the stream ends
    events = _by_time(talker, ECHO, spell(1, "yes is to sea", 21.2, eot=False))
    asked = _assemble(events, copy_window=0.3, partials=[], echo_cover=LeakageRules.echo_cover, echo_grace=grace)
    never = _assemble(events, copy_window=0.3, echo_cover=LeakageRules.echo_cover, echo_grace=grace)
    assert [t.model_dump() for t in asked] == [t.model_dump() for t in never]
    # a talker that closes, then an echo of its end closing within the grace, then more talk
    closed = _by_time(TALKER, spell(1, "else has seen", 21.5), spell(0, "and so on", 23.0))
    cover = LeakageRules.echo_cover
    with_partials = _assemble(closed, copy_window=0.3, partials=[], echo_cover=cover, echo_grace=grace)
    without = _assemble(closed, copy_window=0.3, echo_cover=cover, echo_grace=grace)
    assert [t.model_dump() for t in with_partials] == [t.model_dump() for t in without]
    assert len(without) == (2 if grace else 3)
    at_once = TurnAssembler(leakage=LeakageRules(echo_grace=grace))
    whole = at_once.push(events) + at_once.finalize()
    assert sorted(t.text for t in whole) == sorted(t.text for t in never)
    # the unclosed echo inside the unclosed talker closes first at finalize, as it would have mid-stream
    assert [t.text for t in never] == [TALKER_TEXT] and at_once.echoes_dropped == 2


def test_leakage_rules_refuse_bad_values_and_name_what_differs_from_the_service() -> None:
    assert LeakageRules().changed() == {}
    assert LeakageRules(copy_window=0.0, echo_grace=1.5).changed() == {"copy_window": 0.0, "echo_grace": 1.5}
    for bad in ({"copy_window": -0.1}, {"echo_cover": 1.2}, {"echo_cover": -0.5}, {"echo_grace": float("nan")}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            LeakageRules(**bad)


def test_open_turns_hold_no_chain_of_closed_turns() -> None:
    """Turns overlapping in turn on the two channels for a long meeting: an open turn refers at most to its
    container (open, or closed within the echo grace), never to a chain of closed turns (the memory of a long
    stream stays flat)."""
    asm = TurnAssembler()
    events = []
    for k in range(200):  # each turn opens inside the other channel's and outlasts it
        events += spell(k % 2, "we should meet again next week", 1.0 * k, eot=True)
    for e in sorted(events, key=lambda e: e.time):
        asm.push([e])
        for turn in asm._open.values():
            c = turn.container
            if c is not None:  # open, or closed within the grace; and no chain beyond the other channel's turn
                assert asm._open.get(c.channel) is c or turn.last_time < c.closed_at + asm.leakage.echo_grace  # type: ignore[operator]
                assert c.container is None or c.container.container is None
    assert asm.turns_closed > 150


def revised(events: list[Ev], text: str) -> list[Ev]:
    """``events`` (ending with an ``<eot>``) whose ``<eot>`` carries ``text`` as the turn's second pass, one
    character a frame from the turn's first character on."""
    start = next(e.time for e in events if not e.token.startswith("<"))
    eot = events[-1]
    revision = tuple(Ev(eot.channel, ch, round(start + 0.04 * i, 3), -0.2) for i, ch in enumerate(text))
    return [*events[:-1], Ev(eot.channel, "<eot>", eot.time, revision=revision)]


def test_the_second_pass_text_makes_the_final_and_partials_stay_as_shown() -> None:
    asm = TurnAssembler()
    events = revised(spell(0, "helo wrld ", 1.0), "hello world")
    assert asm.push(events[:7]) == []
    [partial] = asm.partials()
    assert partial.text == "helo"  # the first pass, as it was spoken
    [turn] = asm.push(events[7:])
    assert turn.turn_id == partial.turn_id and turn.text == "hello world"
    assert [(w.word, w.start, w.end) for w in turn.words] == [("hello", 1.04, 1.24), ("world", 1.28, 1.48)]
    assert turn.start == 1.0 and turn.end == pytest.approx(1.48)  # the <eot> at 1.44, the last letter's end
    assert turn.words[0].confidence == pytest.approx(math.exp(-0.2), abs=1e-3)


def test_a_second_pass_without_letters_leaves_the_turn_as_it_was() -> None:
    for text in ("", " "):
        [turn] = TurnAssembler().push(revised(spell(1, "yes", 0.0), text))
        assert turn.text == "yes"


def test_the_second_pass_of_an_over_long_turn_revises_only_its_open_part() -> None:
    asm = TurnAssembler(max_turn_seconds=1.0)
    first, second = asm.push(revised(spell(0, "aaaa bbbb cccc dddd eeee fff", 0.0), "xxxx xxxx xxxx xxxx yyyy zzz"))
    assert first.text == "aaaa bbbb cccc dddd eeee"  # closed by the cap before the <eot>: the first pass stays
    assert (second.text, second.start) == ("zzz", 1.04)  # the second pass from the open part's start (1.04 s) on
