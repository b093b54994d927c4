"""From per-channel token events to speaker turns.

``TurnAssembler`` is a small policy class with a ``push / partials / finalize`` contract:

    asm = TurnAssembler(ChannelLabeller())
    for events in decoded_batches:          # TokenEvents of one stream, in time order per channel
        finals = asm.push(events)           # turns closed by these events
        partials = asm.partials()           # open turns whose (stable) text changed
    finals = asm.finalize()                 # end of stream: close every open turn

It needs only the four fields of a token event (channel, token, time, logprob), so it imports neither the
model nor torch and the client SDK can reuse it.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Protocol

import numpy as np

from service.schemas import PartialMessage, Turn, Word

SOT = "<sot>"  # start of a turn
EOT = "<eot>"  # end of a turn
FRAME_SECONDS = 0.04  # encoder frame: a token at time t covers [t, t + 0.04)
DEFAULT_MAX_TURN_SECONDS = 30.0  # longer turns are closed at a word boundary and a new one opened
ECHO_LEAD = 0.1  # seconds: a container may start this much after the turn it contains
ECHO_MARGIN = 0.3  # the container's words compared: the turn's span widened by this share of the container's length


class TokenEventLike(Protocol):
    """What the assembler reads from ``model.recognizer.TokenEvent``."""

    @property
    def channel(self) -> int: ...  # output channel, 0 or 1
    @property
    def token(self) -> str: ...  # a character (or subword), "<sot>" or "<eot>"
    @property
    def time(self) -> float: ...  # seconds from stream start (start of the emitting 40 ms frame)
    @property
    def logprob(self) -> float: ...
    @property
    def revision(self) -> Sequence[TokenEventLike] | None: ...  # on an "<eot>": the turn's second-pass characters


@dataclass(frozen=True)
class LeakageRules:
    """How :class:`TurnAssembler` drops the separator's leakage (defaults: the service's; each rule in detail in the
    assembler's docstring)."""

    copy_window: float = 0.3  # seconds: cross-channel copies of a word this close are dropped (0: off)
    echo_cover: float = 0.6  # share of a contained turn's letters echoing its container that drops it (0: off)
    echo_grace: float = 0.4  # seconds after its container closed that a turn still counts as contained

    def __post_init__(self) -> None:
        if not self.copy_window >= 0:
            raise ValueError(f"copy_window must not be negative, got {self.copy_window}")
        if not 0 <= self.echo_cover <= 1:
            raise ValueError(f"echo_cover is a share in [0, 1], got {self.echo_cover}")
        if not self.echo_grace >= 0:
            raise ValueError(f"echo_grace must not be negative, got {self.echo_grace}")

    def changed(self) -> dict[str, float]:
        """The rules set otherwise than the service's defaults, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) != getattr(SERVICE_LEAKAGE, f.name)}  # fmt: skip


SERVICE_LEAKAGE = LeakageRules()  # the rules the service applies


@dataclass(frozen=True)
class OpenSpan:
    """A turn still open on another channel when a turn closes: it started at ``start`` (seconds) and runs on."""

    channel: int
    start: float


class SpeakerLabeller(Protocol):
    """Gives each turn a meeting-wide speaker label. Called for every partial and final turn, in order."""

    def accept_waveform(self, sample_rate: int, samples: np.ndarray) -> None:
        """The stream's audio, fed before it is decoded (labellers that ignore the voice ignore it)."""
        ...

    def label(self, turn: Turn, open_turns: Sequence[OpenSpan] = ()) -> str:
        """The label of ``turn``: a partial (no words) or a final one. For a final turn, ``open_turns`` are the
        turns open on the other channels at the moment it closed, known from the token events alone (so the
        same audio gives the same ones, whenever partials are asked for)."""
        ...

    def relabels(self, final: bool = False) -> dict[str, str]:
        """The final turns whose label changed since it was last given (at the turn's close or by an earlier
        call), turn_id -> label now; each change is given once. ``final``: the stream has ended; first revise
        the labels with the whole meeting's evidence."""
        ...


class ChannelLabeller:
    """Provisional labeller: channel 0 is "S1", channel 1 is "S2".

    This is NOT speaker identity: HEAT puts a turn on channel 0 whenever channel 0 is free, so one person
    appears on both channels and two people share a channel. A labeller that clusters voices replaces it
    behind the same ``SpeakerLabeller`` interface.
    """

    def accept_waveform(self, sample_rate: int, samples: np.ndarray) -> None:
        pass

    def label(self, turn: Turn, open_turns: Sequence[OpenSpan] = ()) -> str:
        return f"S{turn.channel + 1}"

    def relabels(self, final: bool = False) -> dict[str, str]:
        return {}


@dataclass
class _Word:
    chars: list[str] = field(default_factory=list)
    start: float = 0.0
    end: float = 0.0
    logprobs: list[float] = field(default_factory=list)
    copy: bool = False  # a cross-channel copy (see TurnAssembler's copy_window): left out of partials and finals
    heard: str | None = None  # the letters as recognised, when ``spell`` repaired them into ``chars``

    @property
    def text(self) -> str:
        return "".join(self.chars)

    @property
    def heard_text(self) -> str:
        """The word as recognised, before any lexicon repair (what echoes are judged by)."""
        return self.text if self.heard is None else self.heard

    @property
    def centre(self) -> float:
        return (self.start + self.end) / 2

    def to_word(self) -> Word:
        return Word(word=self.text, start=round(self.start, 3), end=round(self.end, 3),
                    confidence=_confidence(self.logprobs))  # fmt: skip


@dataclass
class _OpenTurn:
    channel: int
    start: float
    words: list[_Word] = field(default_factory=list)  # complete words
    current: _Word | None = None  # word being spelled
    turn_id: str | None = None  # given when the first character arrives
    last_partial: str = ""  # text of the last partial sent
    container: _OpenTurn | None = None  # open on another channel when this one opened, and started before it
    last_time: float = 0.0  # stream time (seconds) of its latest event
    closed_at: float | None = None  # stream time (seconds) of the event that closed it, once one has

    def has_text(self) -> bool:
        return bool(self.words) or self.current is not None

    def shown(self) -> list[_Word]:
        """The complete words a partial or the final shows: all but cross-channel copies."""
        return [w for w in self.words if not w.copy]


@dataclass(frozen=True)
class _ClosedTurn:
    channel: int
    start: float
    end: float
    words: list[_Word]


def _confidence(logprobs: list[float]) -> float:
    if not logprobs:
        return 0.0
    return round(min(1.0, max(0.0, math.exp(sum(logprobs) / len(logprobs)))), 3)


class TurnAssembler:
    """Turns the token events of one stream (both channels) into turns.

    - ``<sot>`` opens a turn on its channel (closing one left open there); characters accumulate into words
      (a word runs from its first character's frame to the end of its last character's frame; its confidence
      is exp of the mean log-probability of its characters); ``<eot>`` closes the turn.
    - Characters without a ``<sot>`` open a turn implicitly; an ``<eot>`` with no open turn is ignored; a turn
      with no words is dropped and gets no turn_id.
    - A turn reaching ``max_turn_seconds`` is closed after its last complete word and a new one opened with
      the word in progress (or closed whole when it has no complete word).
    - Partials show only complete words, so text once shown never changes; one is reported only when that
      text grew since the last one for the turn.
    - ``spell`` (the recognizer's :meth:`~model.recognizer.Recognizer.spell`: lexicon repair of misspelled
      words) maps each word as it completes, before any partial or final shows it.
    - ``leakage`` (:class:`LeakageRules`) holds the three knobs below.
    - ``echo_cover`` (0: off) drops echoes, the separator's other leakage: a turn that opens while a turn on
      another channel is open (its container: started before it, or at most ``ECHO_LEAD`` after) and closes
      while that one is still open, and whose letters are at least this share found, in order, in the
      container's words around it (within ``ECHO_MARGIN`` of the container's length so far; difflib's matching
      blocks; the letters as recognised, before ``spell``'s repairs), is the same speech heard again: it gets no
      final. ``echo_grace`` (seconds) extends "while that one is still open" to that long after it closed, by the
      turn's own event times (the two channels often close one person's sentence within a few frames of each
      other, the container first). So that no partial is left without its final, such a turn shows no partials
      while it is contained (a real interjection shows its words when it closes, or once its words run
      ``echo_grace`` past the container's close); finals stay the same whenever partials are asked for.
    - ``copy_window`` (seconds; 0: off) drops cross-channel copies, the separator's leakage: when a turn closes,
      each of its words that has the same text as a word of a turn on another channel (open, or closed and
      overlapping it) with centres less than ``copy_window`` apart is a copy; of the two turns, the one with the
      larger share of its words copied loses its copies (from the final and from later partials; a turn still
      open loses them when it closes). A turn whose words are all copies is kept whole, so that every turn a
      partial showed gets its final, and the finals do not depend on whether partials were asked for.
    """

    def __init__(
        self,
        labeller: SpeakerLabeller | None = None,
        max_turn_seconds: float = DEFAULT_MAX_TURN_SECONDS,
        frame_seconds: float = FRAME_SECONDS,
        spell: Callable[[str], str] | None = None,
        leakage: LeakageRules = SERVICE_LEAKAGE,
    ) -> None:
        assert max_turn_seconds > 0, f"max_turn_seconds must be positive, got {max_turn_seconds}"
        self.leakage = leakage
        self._time = 0.0  # stream time of the event being handled (seconds)
        self.echoes_dropped = 0  # turns dropped as echoes so far
        self._closed: list[_ClosedTurn] = []  # recent final turns (for copy_window), oldest first
        self.labeller: SpeakerLabeller = labeller or ChannelLabeller()
        self.spell = spell
        self.max_turn_seconds = max_turn_seconds
        self.frame_seconds = frame_seconds
        self._open: dict[int, _OpenTurn] = {}
        self._next_id = 1
        self.turns_closed = 0  # final turns returned so far

    # -- events ---------------------------------------------------------------------------------------
    def push(self, events: Iterable[TokenEventLike]) -> list[Turn]:
        """Feed token events (in time order per channel); returns the turns they closed, in order."""
        finals: list[Turn] = []
        for e in events:
            self._time = e.time
            if e.token == SOT:
                self._close(e.channel, finals)
                self._open[e.channel] = self._new_turn(e.channel, e.time)
            elif e.token == EOT:
                if e.revision is not None:
                    self._revise(e.channel, e.revision, finals)
                self._close(e.channel, finals, end=e.time)
            elif e.token.startswith("<") and e.token.endswith(">"):
                continue  # blank, unknown or future special tokens carry no text
            else:
                self._text(e, finals)
        for o in self._open.values():  # containers closed longer than the grace ago are let go
            if o.container is not None and o.container.closed_at is not None and not self._contained(o, o.last_time):
                o.container = None
        return finals

    def _text(self, e: TokenEventLike, finals: list[Turn]) -> None:
        """A text token: its characters (a multi-character subword token scores once, on its first non-space
        character)."""
        scored = False
        for ch in e.token:
            lp = None if scored or ch.isspace() else e.logprob
            scored = scored or lp is not None
            self._char(e.channel, ch, e.time, lp, finals)

    def _revise(self, channel: int, revision: Sequence[TokenEventLike], finals: list[Turn]) -> None:
        """The closing turn's words become those of the second pass (its part from the open turn's start on: an
        over-long turn's earlier parts are final already); a revision without letters leaves the words as they
        are, so that a turn a partial showed still gets its final."""
        turn = self._open.get(channel)
        if turn is None:
            return
        mine = [e for e in revision if e.time >= turn.start]
        if not any(ch.isalpha() for e in mine for ch in e.token):
            return
        turn.words, turn.current = [], None
        for e in mine:
            self._text(e, finals)

    def _char(self, channel: int, ch: str, time: float, logprob: float | None, finals: list[Turn]) -> None:
        turn = self._open.get(channel)
        if ch.isspace():
            if turn is not None:
                self._complete(turn)
            return
        if turn is None:
            turn = self._open[channel] = self._new_turn(channel, time)
        elif time - turn.start >= self.max_turn_seconds:
            turn = self._split(turn, time, finals)
        if turn.current is None:
            turn.current = _Word(start=time)
            if turn.turn_id is None:
                turn.turn_id = f"t{self._next_id}"
                self._next_id += 1
        turn.current.chars.append(ch)
        turn.current.end = time + self.frame_seconds
        turn.last_time = max(turn.last_time, time)
        if logprob is not None:
            turn.current.logprobs.append(logprob)

    def _new_turn(self, channel: int, start: float) -> _OpenTurn:
        """A turn opening on ``channel``, with its container when it has one (see ``echo_cover``)."""
        holders = [o for o in self._open.values() if o.channel != channel and o.start <= start + ECHO_LEAD]
        return _OpenTurn(channel, start, last_time=start, container=min(holders, key=lambda o: o.start, default=None))

    def _contained(self, turn: _OpenTurn, at: float) -> bool:
        """Whether ``turn``'s container is still open, or closed less than ``echo_grace`` before ``at`` (seconds:
        the turn's own latest event for its partials, the event closing it for its final; the turn's own times
        only, so that how the two channels' events interleave does not matter, and a turn that showed a partial is
        not contained when it closes)."""
        c = turn.container
        if c is None or self.leakage.echo_cover <= 0:
            return False
        if c.closed_at is None:
            return self._open.get(c.channel) is c
        return at < c.closed_at + self.leakage.echo_grace

    def _is_echo(self, turn: _OpenTurn, c: _OpenTurn, end: float) -> bool:
        """Whether the closing ``turn`` repeats the words of its container ``c`` (open, or closed within the
        grace) around it."""
        mine = " ".join(w.heard_text for w in turn.words)
        letters = len(mine.replace(" ", ""))
        margin = ECHO_MARGIN * max(end - c.start, 0.0)
        theirs = c.words + ([c.current] if c.current is not None else [])
        near = " ".join(w.heard_text for w in theirs if turn.start - margin <= w.centre <= end + margin)
        if not letters or not near:
            return False
        matched = sum(b.size for b in difflib.SequenceMatcher(None, mine, near, autojunk=False).get_matching_blocks())
        return matched / letters >= self.leakage.echo_cover

    def _complete(self, turn: _OpenTurn) -> None:
        """The word being spelled is complete: (repaired by ``spell``) it joins the turn's words."""
        word, turn.current = turn.current, None
        if word is not None:
            if self.spell is not None:
                word.heard = word.text
                word.chars = list(self.spell(word.text))
            turn.words.append(word)

    def _split(self, turn: _OpenTurn, time: float, finals: list[Turn]) -> _OpenTurn:
        """Close an over-long turn after its complete words; the word in progress opens the next turn."""
        carry = turn.current if turn.words else None
        if carry is not None:
            turn.current = None
        self._close(turn.channel, finals)
        new = self._open[turn.channel] = _OpenTurn(turn.channel, carry.start if carry else time, last_time=time)
        if carry is not None:
            new.current = carry
            new.turn_id = f"t{self._next_id}"
            self._next_id += 1
        return new

    def _close(self, channel: int, finals: list[Turn], end: float | None = None) -> None:
        turn = self._open.pop(channel, None)
        if turn is None:
            return
        # a closed turn contains nothing any more: drop its reference, so no chain of turns outlives them; the
        # turns it contains keep theirs for the grace
        turn.closed_at = max(self._time, turn.last_time)
        container, turn.container = (turn.container if self._contained(turn, turn.closed_at) else None), None
        if self.leakage.echo_grace <= 0:
            for o in self._open.values():
                if o.container is turn:
                    o.container = None
        self._complete(turn)
        if not turn.words:
            return
        assert turn.turn_id is not None, "a turn with words has a turn_id"
        last = turn.words[-1].end
        end = max(end, last) if end is not None else last
        if container is not None and self._is_echo(turn, container, end):
            self.echoes_dropped += 1  # it showed no partial (``partials``): nothing waits for its final
            return
        if self.leakage.copy_window > 0:
            self._mark_copies(turn, end)
            if not turn.shown():  # only copies: kept whole (a partial may have shown it; it gets its final)
                for w in turn.words:
                    w.copy = False
            self._closed = [c for c in self._closed if c.end > turn.start - self.max_turn_seconds][-8:]
            self._closed.append(_ClosedTurn(turn.channel, turn.start, end, turn.shown()))
        finals.append(self._final(turn, end))

    def _mark_copies(self, turn: _OpenTurn, end: float) -> None:
        """Mark the cross-channel copies between the closing ``turn`` and every turn on another channel that is
        open or overlaps it (see ``copy_window`` in the class docstring). An open turn that ``turn`` contains may
        still be dropped as its echo within the grace, taking the copies with it: it is left to settle its copies
        when it closes (against ``turn``, closed by then)."""
        maybe_echo = self.leakage.echo_cover > 0 and self.leakage.echo_grace > 0
        others = [(o.shown(), True) for o in self._open.values()
                  if o.channel != turn.channel and not (maybe_echo and o.container is turn)]  # fmt: skip
        others += [(c.words, False) for c in self._closed
                   if c.channel != turn.channel and c.end > turn.start and c.start < end]  # fmt: skip
        for theirs, still_open in others:
            mine = turn.shown()
            copied_mine = [w for w in mine if self._has_copy(w, theirs)]
            if not copied_mine:
                continue
            copied_theirs = [w for w in theirs if self._has_copy(w, mine)]
            if len(copied_mine) / len(mine) >= len(copied_theirs) / len(theirs):
                for w in copied_mine:
                    w.copy = True
            elif still_open:  # the open turn leaks into this one: it loses its copies when it closes
                for w in copied_theirs:
                    w.copy = True

    def _has_copy(self, word: _Word, among: list[_Word]) -> bool:
        return any(o.text == word.text and abs(o.centre - word.centre) < self.leakage.copy_window for o in among)

    def _final(self, turn: _OpenTurn, end: float) -> Turn:
        words = turn.shown()
        logprobs = [lp for w in words for lp in w.logprobs]
        t = Turn(
            turn_id=turn.turn_id or "", channel=turn.channel, speaker="", start=round(turn.start, 3),
            end=round(end, 3), text=" ".join(w.text for w in words),
            confidence=_confidence(logprobs), words=[w.to_word() for w in words],
        )  # fmt: skip
        self.turns_closed += 1
        # the channel's own turn was popped already: what is open now is on the other channels
        open_turns = [OpenSpan(o.channel, round(o.start, 3)) for o in self._open.values()]
        return t.model_copy(update={"speaker": self.labeller.label(t, open_turns)})

    # -- queries and commands -------------------------------------------------------------------------
    def partials(self) -> list[PartialMessage]:
        """Open turns whose complete-word text changed since their last partial, by channel."""
        out: list[PartialMessage] = []
        for channel in sorted(self._open):
            turn = self._open[channel]
            words = turn.shown()
            text = " ".join(w.text for w in words)
            if not text or text == turn.last_partial or turn.turn_id is None or self._contained(turn, turn.last_time):
                continue
            turn.last_partial = text
            probe = Turn(turn_id=turn.turn_id, channel=channel, speaker="", start=round(turn.start, 3),
                         end=round(words[-1].end, 3), text=text, confidence=0.0)  # fmt: skip
            out.append(PartialMessage(turn_id=turn.turn_id, channel=channel, speaker=self.labeller.label(probe),
                                      start=probe.start, text=text))  # fmt: skip
        return out

    def finalize(self) -> list[Turn]:
        """Close every open turn now (ending at its last word); returns them ordered by start."""
        finals: list[Turn] = []

        # turns inside an open container close first, while it is still open, as they would have mid-stream
        def inside(c: int) -> bool:
            return self._contained(self._open[c], self._open[c].last_time)

        for channel in sorted(self._open, key=lambda c: (not inside(c), self._open[c].start, c)):
            self._close(channel, finals)
        return sorted(finals, key=lambda t: (t.start, t.channel))

    @property
    def open_channels(self) -> list[int]:
        return sorted(self._open)
