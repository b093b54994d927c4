"""Meeting-wide speaker labels from the voice: a ``SpeakerLabeller`` that embeds and clusters each turn's audio.

The model's channels say who is speaking *now*, not *who* (HEAT puts a turn on channel 0 whenever it is free),
so :class:`VoiceLabeller` labels turns by their voice instead:

    labeller = VoiceLabeller(load_embedder())     # the embedder loads once, at start-up
    assembler = TurnAssembler(labeller)
    labeller.accept_waveform(sample_rate, samples)   # the SAME audio the stream gets, before it is decoded
    finals = assembler.push(events)                  # the assembler calls labeller.label(turn)

- It keeps the last ``buffer_seconds`` of the stream's audio at 16 kHz (a bounded buffer) and cuts each final
  turn's span from it, preferring the parts where no other turn talks (``model.speaker.exclusive_span``).
- Final turns are labelled as they close by ``model.speaker_cluster.OnlineSpeakerClusterer``: turns that
  overlap in time never share a label, and a turn still open on the other channel when this one closes (the
  assembler says which, from the token events) is its ``rival``: the two are labelled jointly (the best pair
  of different speakers, only this turn's label committed), so that a backchannel closing inside a long turn
  does not take the talker's label. Labels of partials are never used for finals (they depend on when
  partials were asked for, and the same audio must get the same labels over WebSocket and REST).
- Partials (turns without words, as the assembler's ``partials`` builds them) get a provisional label: the
  speaker the turn's audio so far is closest to, committing nothing.
- After each final turn the labels of the meeting so far are revised and kept (``OnlineSpeakerClusterer.revise``
  with ``live=True``, then ``adopt``; unless the config's ``live_revise`` is off), so the turn is given the label
  of that revision, and later turns are labelled against the revised speakers; at the end of the stream they
  are revised once more with the whole meeting. :meth:`VoiceLabeller.relabels` says which final turns changed
  label since it was given; REST applies them, WebSocket clients that ask get them as ``relabel`` messages. For
  that the labeller keeps one small record per final turn (its times, embedding and label; a stream's length is
  capped by the service).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from model.speaker import SAMPLE_RATE, Embedder, exclusive_span
from model.speaker_cluster import ClustererConfig, OnlineSpeakerClusterer, clusterer_config
from service.schemas import Turn
from service.turns import ChannelLabeller, OpenSpan, SpeakerLabeller


def make_labeller(
    embedder: Embedder | None, max_speakers: int | None = None, clustering: Mapping[str, float] | None = None
) -> SpeakerLabeller:
    """A :class:`VoiceLabeller` when a speaker embedder is loaded, else the provisional channel labeller.
    ``clustering`` overrides the embedder's tuned clustering knobs (``model.speaker_cluster.TUNABLE``; for
    tuning them, e.g. ``sts-eval --sweep-labels``)."""
    if embedder is None:
        return ChannelLabeller()
    tuned = {**(embedder.info.clustering or {}), **(clustering or {})}
    return VoiceLabeller(embedder, clusterer_config(tuned, max_speakers=max_speakers))


DEFAULT_BUFFER_SECONDS = 120.0  # audio kept for cutting turns: longer than a turn (30 s) plus decode delay
MIN_AUDIO_SECONDS = 0.1  # a turn with less audio than this in the buffer is labelled without its voice


@dataclass
class _Span:
    channel: int
    start: float  # seconds from the stream start
    end: float  # seconds; for an open turn, the end of its words so far
    label: str


class AudioRing:
    """The last ``seconds`` of a 16 kHz stream, addressed by time from the stream start."""

    def __init__(self, seconds: float = DEFAULT_BUFFER_SECONDS) -> None:
        assert seconds > 0, f"buffer seconds must be positive, got {seconds}"
        self.capacity = int(seconds * SAMPLE_RATE)
        self._buf = np.zeros(0, dtype=np.float32)
        self._first = 0  # absolute index of _buf[0]

    @property
    def end_seconds(self) -> float:
        """Seconds of audio received so far."""
        return (self._first + len(self._buf)) / SAMPLE_RATE

    def append(self, samples: np.ndarray) -> None:
        """Add (N,) float32 samples at 16 kHz."""
        self._buf = np.concatenate([self._buf, np.asarray(samples, dtype=np.float32).reshape(-1)])
        if len(self._buf) > 2 * self.capacity:  # trim in steps, so appending stays amortised O(N)
            drop = len(self._buf) - self.capacity
            self._buf = self._buf[drop:]
            self._first += drop

    def cut(self, parts: list[tuple[float, float]]) -> np.ndarray:
        """The samples inside ``parts`` (seconds) that are still held, joined."""
        pieces = []
        for a, b in parts:
            i0 = max(int(a * SAMPLE_RATE) - self._first, 0)
            i1 = min(int(b * SAMPLE_RATE) - self._first, len(self._buf))
            if i1 > i0:
                pieces.append(self._buf[i0:i1])
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)


class VoiceLabeller:
    """A ``service.turns.SpeakerLabeller`` that labels turns by voice (see the module docstring).

    Args:
        embedder: the speaker-embedding extractor (share one across streams: it is read-only).
        config: the clustering policy (``max_speakers`` is a hint from the client, when it gives one).
        buffer_seconds: audio kept to cut turns from.
    """

    def __init__(
        self,
        embedder: Embedder,
        config: ClustererConfig | None = None,
        buffer_seconds: float = DEFAULT_BUFFER_SECONDS,
    ) -> None:
        self.embedder = embedder
        self.clusterer = OnlineSpeakerClusterer(config or clusterer_config(embedder.info.clustering))
        self.ring = AudioRing(buffer_seconds)
        self.buffer_seconds = buffer_seconds
        self._rate: int | None = None
        self._resampler: Any = None  # soxr.ResampleStream, made on the first audio at another rate
        self._finals: dict[str, _Span] = {}  # turn_id -> final turn (the recent ones)
        self._open: dict[str, _Span] = {}  # turn_id -> open turn, from its partials
        self._turn_ids: list[str] = []  # turn_id of every final turn, in the clusterer's order (its ``turns``)
        self._given: dict[str, str] = {}  # turn_id -> the label last given for it (at its close or in relabels)

    # -- audio ----------------------------------------------------------------------------------------
    def accept_waveform(self, sample_rate: int, samples: np.ndarray) -> None:
        """Feed the stream's audio (N,) float32 mono at ``sample_rate``; resampled to 16 kHz as needed."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if sample_rate != SAMPLE_RATE:
            import soxr

            if self._resampler is None or self._rate != sample_rate:
                self._resampler = soxr.ResampleStream(sample_rate, SAMPLE_RATE, 1, dtype="float32")
                self._rate = sample_rate
            x = self._resampler.resample_chunk(x)
        self.ring.append(x)

    # -- SpeakerLabeller -------------------------------------------------------------------------------
    def label(self, turn: Turn, open_turns: Sequence[OpenSpan] = ()) -> str:
        """The speaker label of a final turn (committed) or of a partial one (provisional)."""
        if turn.turn_id in self._finals:
            return self._finals[turn.turn_id].label
        if not turn.words:
            return self._provisional(turn)
        return self._final(turn, open_turns)

    def _provisional(self, turn: Turn) -> str:
        others = self._others(turn)
        audio = self.ring.cut(exclusive_span(turn.start, turn.end, [(o.start, o.end) for o in others]))
        overlapping = {o.label for o in others if o.turn_final}
        if len(audio) < MIN_AUDIO_SECONDS * SAMPLE_RATE:
            guess = self._fallback(overlapping)
        else:
            guess = self.clusterer.peek(self.embedder.embed(audio), turn.start, turn.end, overlapping)
        label = guess or self.clusterer.next_label
        self._open[turn.turn_id] = _Span(turn.channel, turn.start, turn.end, label)
        return label

    def _final(self, turn: Turn, open_turns: Sequence[OpenSpan]) -> str:
        self._open.pop(turn.turn_id, None)
        # final labels use final turns and the assembler's open turns only: the labels of partials depend on
        # when partials were asked for (the WebSocket and REST paths ask at different times), and the same
        # audio must get the same labels
        others = [o for o in self._others(turn) if o.turn_final]
        overlapping = {o.label for o in others}
        audio = self.ring.cut(exclusive_span(turn.start, turn.end, [(o.start, o.end) for o in others]))
        if len(audio) < MIN_AUDIO_SECONDS * SAMPLE_RATE:
            label = self._fallback(overlapping)
            if label:
                self.clusterer.note(label, turn.start, turn.end)
            else:
                label = self.clusterer.assign(np.zeros(self.embedder.dim), turn.start, turn.end, overlapping)
        else:
            rival, rival_seconds = self._rival(turn, open_turns)
            label = self.clusterer.assign(
                self.embedder.embed(audio), turn.start, turn.end, overlapping, rival, rival_seconds
            )
        self._finals[turn.turn_id] = _Span(turn.channel, turn.start, turn.end, label)
        self._turn_ids.append(turn.turn_id)
        if self.clusterer.config.live_revise:
            # the final turns that overlap a turn still open were labelled jointly with it: they stay put
            pinned = self.clusterer.ending_after(min((o.start for o in open_turns), default=None))
            self._adopt(self.clusterer.revise(live=True, pinned=pinned))
            label = self.clusterer.turns[-1].label
        self._given[turn.turn_id] = label
        self._forget(turn.end)
        return label

    def relabels(self, final: bool = False) -> dict[str, str]:
        """The final turns whose label changed since it was last given (turn_id -> label now), each change given
        once; ``final``: the stream has ended, so first revise the labels with the whole meeting (and keep them)."""
        if final:
            self._adopt(self.clusterer.revise())
        out = {}
        for tid, r in zip(self._turn_ids, self.clusterer.turns, strict=True):
            if self._given.get(tid) != r.label:
                out[tid] = self._given[tid] = r.label
        return out

    def _adopt(self, labels: list[str]) -> None:
        """Keep revised labels (one per clusterer turn) from now on: later turns are labelled against the revised
        speakers, and the overlap rule sees the new labels."""
        self.clusterer.adopt(labels)
        for tid, label in zip(self._turn_ids, labels, strict=True):
            if tid in self._finals:
                self._finals[tid].label = label

    # -- helpers --------------------------------------------------------------------------------------
    def _rival(self, turn: Turn, open_turns: Sequence[OpenSpan]) -> tuple[np.ndarray | None, float]:
        """The embedding of the longest turn open on another channel while ``turn`` closes (its audio from its
        start to now) and its seconds; (None, 0) when there is none with enough audio."""
        spans = [o for o in open_turns if o.channel != turn.channel and o.start < turn.end]
        if not spans:
            return None, 0.0
        start = min(o.start for o in spans)
        audio = self.ring.cut([(start, turn.end)])
        if len(audio) < MIN_AUDIO_SECONDS * SAMPLE_RATE:
            return None, 0.0
        return self.embedder.embed(audio), turn.end - start

    def _others(self, turn: Turn) -> list[_Other]:
        """Final and open turns (other than ``turn``) that overlap it in time."""
        out = [_Other(s.channel, s.start, s.end, s.label, True) for s in self._finals.values()
               if s.start < turn.end and s.end > turn.start]  # fmt: skip
        for tid, s in self._open.items():
            if tid != turn.turn_id and s.channel != turn.channel and s.start < turn.end:
                # an open turn runs at least until now, i.e. past the end of this one
                out.append(_Other(s.channel, s.start, max(s.end, turn.end), s.label, False))
        return out

    def _fallback(self, overlapping: set[str]) -> str:
        """Without audio: the most recent final turn's speaker that the overlap rule allows ("" if none)."""
        for s in sorted(self._finals.values(), key=lambda s: s.end, reverse=True):
            if s.label not in overlapping:
                return s.label
        return ""

    def _forget(self, now: float) -> None:
        horizon = now - self.buffer_seconds
        self._finals = {k: s for k, s in self._finals.items() if s.end > horizon}
        self._open = {k: s for k, s in self._open.items() if s.start > horizon}


@dataclass
class _Other:
    channel: int
    start: float
    end: float
    label: str
    turn_final: bool  # a final turn (its label is committed), else an open one (provisional label)
