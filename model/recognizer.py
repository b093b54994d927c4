"""Streaming STS recognizer, shaped after sherpa-onnx's OnlineRecognizer.

    rec = Recognizer.from_pretrained()          # bundled model
    s = rec.create_stream()
    s.accept_waveform(16000, samples)           # any rate 8-48 kHz, any piece size
    s.input_finished()
    while s.is_ready:
        rec.decode_streams([s])                 # one chunk (320 ms) per ready stream, batched
    events = s.pop_events()                     # per-channel tokens with times

Every stream carries its own explicit state (features, encoder state, decoder context); ``decode_streams``
stacks the states of the streams it is given, runs one batched step and unstacks them again.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import soxr
import torch

from model.beam import Beam, beam_search, flush, search_turn
from model.char_lm import CharNgram, LmFusion
from model.checkpoint import checkpoint_dir, load_model, random_model
from model.config import StreamingConfig, StsConfig
from model.decoder import DecoderTable
from model.encoder import EncoderState, init_state, stack_states, unstack_states
from model.features import LogMel, OnlineFeatures
from model.heat import FRAME_SECONDS
from model.lexicon import Lexicon
from model.search import Emission, context_width, greedy_search, init_context, internal_lm, search_bias
from model.sts import StsModel
from model.tokenizer import BLANK_ID, EOT_ID, SOT_ID, TOKENS

MIN_SAMPLE_RATE = 8000  # Hz
MAX_SAMPLE_RATE = 48000  # Hz


def set_num_threads(threads: int) -> None:
    """CPU threads the recognizer's tensor operations may use (process-wide)."""
    torch.set_num_threads(max(1, int(threads)))


@dataclass(frozen=True)
class TokenEvent:
    """One token emitted on one output channel."""

    channel: int  # output channel, 0 or 1
    token: str  # a character, " ", "<sot>" or "<eot>"
    time: float  # seconds from the start of the stream (start of the emitting 40 ms frame)
    logprob: float  # log-probability of the token when it was emitted
    # on an "<eot>" with the second pass on (``turn_beam``): the turn's characters as searched again, which replace
    # those emitted since its "<sot>"; None otherwise
    revision: tuple[TokenEvent, ...] | None = None


def token_events(
    emissions: list[Emission], streams: int, revisions: dict[int, list[Emission]] | None = None
) -> list[list[TokenEvent]]:
    """Emissions (absolute frames) of channel-major rows over ``streams`` streams -> each stream's events;
    ``revisions`` maps the index of an ``<eot>`` emission to its turn's second-pass emissions."""
    out: list[list[TokenEvent]] = [[] for _ in range(streams)]
    for k, e in enumerate(emissions):
        channel, i = divmod(e.row, streams)
        rev = None if revisions is None or k not in revisions else tuple(_event(r, channel) for r in revisions[k])
        out[i].append(replace(_event(e, channel), revision=rev))
    return out


def _event(e: Emission, channel: int) -> TokenEvent:
    return TokenEvent(channel, TOKENS[e.token], round(e.frame * FRAME_SECONDS, 3), e.logprob)


@dataclass
class TurnFrames:
    """One channel's encoder frames kept for the second pass (``turn_beam``), and the turn open on it.

    ``frames`` (T, J) are the projected encoder frames from absolute frame ``first`` on; while no turn is open
    only the last ``keep`` are kept (a ``<sot>`` can be committed that late), while one is open every frame from
    its ``<sot>``, up to ``MAX_FRAMES`` (a longer turn keeps its first-pass text).
    """

    MAX_FRAMES = 500  # 20 s of 40 ms encoder frames: a longer turn keeps its first pass (bounds the search's time)

    history: tuple[int, ...]  # the channel's last committed tokens (the search context they make)
    frames: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    first: int = 0
    turn_from: int | None = None  # absolute frame of the open turn's <sot>
    turn_context: tuple[int, ...] = ()  # the search context after that <sot>

    def append(self, block: torch.Tensor, keep: int) -> None:
        """Add (T_b, J) frames that follow those held."""
        self.frames = block if not self.frames.numel() else torch.cat([self.frames, block])
        end = self.first + self.frames.shape[0]
        if self.turn_from is not None and end - self.turn_from > self.MAX_FRAMES:
            self.turn_from = None  # too long: no second pass
        self._drop_before(end - keep if self.turn_from is None else self.turn_from)

    def commit(self, token: int, frame: int) -> tuple[torch.Tensor, tuple[int, ...], int] | None:
        """Take a committed token of the channel; at an ``<eot>`` closing a turn whose frames are held, returns
        them ((T, J), from its ``<sot>`` to this frame), the context after its ``<sot>`` and its first frame."""
        self.history = (*self.history[1:], token)
        if token == SOT_ID:
            self.turn_from, self.turn_context = (frame, self.history) if frame >= self.first else (None, ())
            if self.turn_from is not None:
                self._drop_before(frame)
        elif token == EOT_ID and self.turn_from is not None:
            start, self.turn_from = self.turn_from, None
            return self.frames[start - self.first : frame - self.first + 1], self.turn_context, start
        return None

    def _drop_before(self, frame: int) -> None:
        if frame > self.first:
            self.frames = self.frames[frame - self.first :]
            self.first = frame


class Stream:
    """One audio stream's state. Not thread-safe: feed it from one task, decode it from one worker."""

    def __init__(self, recognizer: Recognizer) -> None:
        cfg = recognizer.config
        self._cfg = cfg
        self._recognizer = recognizer
        self._features = OnlineFeatures(cfg.features, recognizer.log_mel)
        self._pending = torch.zeros(0, cfg.features.n_mels)  # feature frames not yet encoded
        self._resampler: soxr.ResampleStream | None = None
        self.sample_rate: int | None = None  # input rate fixed by the first accept_waveform
        self.num_samples = 0  # input samples accepted (at 16 kHz after resampling)
        self.encoder_state: EncoderState = init_state(cfg.model, 1)
        self.context = init_context(cfg.model.num_channels, recognizer.context_width)  # (K, L) greedy search context
        # beam search: the hypotheses of each channel (None with the greedy search)
        self.beams = [Beam.fresh(recognizer.context_width) for _ in range(cfg.model.num_channels)] if (
            cfg.streaming.beam > 1) else None  # fmt: skip
        # second pass: each channel's frames of its open turn (None when ``turn_beam`` is 0)
        self.turn_frames = [TurnFrames((BLANK_ID,) * recognizer.context_width) for _ in
                            range(cfg.model.num_channels)] if cfg.streaming.turn_beam else None  # fmt: skip
        self.frames_decoded = 0  # encoder frames (40 ms) decoded so far
        self.finished = False
        self._events: list[TokenEvent] = []

    # -- input ---------------------------------------------------------------------------------------
    def accept_waveform(self, sample_rate: int, samples: np.ndarray | Sequence[float]) -> None:
        """Append mono samples in [-1, 1] at ``sample_rate`` Hz (resampled to 16 kHz)."""
        if self.finished:
            raise RuntimeError("accept_waveform after input_finished")
        if not MIN_SAMPLE_RATE <= int(sample_rate) <= MAX_SAMPLE_RATE:
            raise ValueError(f"sample rate {sample_rate} outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz")
        if self.sample_rate is None:
            self.sample_rate = int(sample_rate)
            if self.sample_rate != self._cfg.features.sample_rate:
                self._resampler = soxr.ResampleStream(
                    self.sample_rate, self._cfg.features.sample_rate, 1, dtype="float32"
                )
        elif int(sample_rate) != self.sample_rate:
            raise ValueError(f"sample rate changed from {self.sample_rate} to {sample_rate} within a stream")
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(x)):
            raise ValueError("samples contain NaN or infinity")
        self._push(x, last=False)

    def input_finished(self) -> None:
        """No more audio: the remaining whole chunks and the tail (rounded down to 40 ms) get decoded."""
        if not self.finished:
            self._push(np.zeros(0, dtype=np.float32), last=True)
            self.finished = True
            if not self.is_ready:  # no decode step left to commit the beams
                self.settle()

    def settle(self) -> None:
        """Commit every token the search holds back now (the beams' best hypotheses), e.g. at a client's finalize
        point; decoding goes on from there. A no-op for the greedy search, which holds nothing back."""
        if self.beams is not None:
            self.add_events(self._recognizer.settled_events(self))

    def _push(self, x: np.ndarray, last: bool) -> None:
        if self._resampler is not None:
            x = self._resampler.resample_chunk(x, last=last)
        self.num_samples += len(x)
        frames = self._features.accept(x)
        if frames.shape[0]:
            self._pending = torch.cat([self._pending, frames])

    # -- status --------------------------------------------------------------------------------------
    @property
    def duration(self) -> float:
        """Seconds of audio accepted so far."""
        return self.num_samples / self._cfg.features.sample_rate

    @property
    def is_ready(self) -> bool:
        """True when a decode step has work: a full chunk, or the 40 ms-aligned tail after input_finished."""
        n = self._pending.shape[0]
        return n >= self._cfg.streaming.chunk_frames or (self.finished and n >= 4)

    @property
    def is_done(self) -> bool:
        """Input finished and everything decodable decoded."""
        return self.finished and not self.is_ready

    def next_chunk_frames(self) -> int:
        """Feature frames the next decode step takes (0 when not ready)."""
        if not self.is_ready:
            return 0
        n = min(self._pending.shape[0], self._cfg.streaming.chunk_frames)
        return n - n % 4

    def take_chunk(self, frames: int) -> torch.Tensor:
        chunk, self._pending = self._pending[:frames], self._pending[frames:]
        return chunk

    def add_events(self, events: list[TokenEvent]) -> None:
        self._events.extend(events)

    def pop_events(self) -> list[TokenEvent]:
        """The token events emitted since the last call, in time order per channel."""
        events, self._events = self._events, []
        return events


class Recognizer:
    """Holds the model; decodes batches of streams. ``decode_streams`` is serialised by a lock."""

    def __init__(
        self,
        model: StsModel,
        streaming: StreamingConfig | None = None,
        lm: CharNgram | None = None,
        lexicon: Lexicon | None = None,
    ) -> None:
        """``streaming`` replaces the checkpoint's decode settings (chunk length, search) when given; ``lm`` is
        the character LM that the search fuses with weight ``streaming.lm_weight`` (unused at weight 0);
        ``lexicon`` repairs misspelled words (:meth:`spell`)."""
        self.model = model.eval()
        self.lexicon = lexicon
        self.config: StsConfig = model.cfg if streaming is None else replace(model.cfg, streaming=streaming)
        self.log_mel = LogMel(self.config.features)
        search = self.config.streaming
        self._bias = search_bias(self.config.model.vocab_size, search.blank_penalty, search.turn_bonus)
        if search.lm_weight and lm is None:
            raise ValueError(f"the search fuses a character LM (lm weight {search.lm_weight}) but none was given")
        if search.ilm_weight and not search.lm_weight:
            raise ValueError(f"internal LM weight {search.ilm_weight} without a fused LM (lm weight 0): it corrects "
                             "the fusion and means nothing alone")  # fmt: skip
        self.lm = lm
        self._predictor = DecoderTable.of(model.decoder)  # the search's decoder outputs, looked up
        internal = internal_lm(self._predictor, model.joiner) if search.ilm_weight else None
        self._fusion = (
            LmFusion(lm, search.lm_weight, search.lm_bonus, internal, search.ilm_weight)
            if lm is not None and search.lm_weight
            else None
        )
        self.context_width = context_width(self.config.model.context_size, self._fusion)
        # the beam search's bound on pending tokens, in encoder frames (None: unbounded)
        self._max_pending = round(search.max_pending_ms / 1000 / FRAME_SECONDS) if search.max_pending_ms else None
        # second pass: the biases of the turn search (turn tokens barred), and the frames a channel keeps while no
        # turn is open on it (a <sot> comes out at most max_pending frames late, one decode step's frames more)
        self._turn_bias = torch.zeros(self.config.model.vocab_size) if self._bias is None else self._bias.clone()
        self._turn_bias[[SOT_ID, EOT_ID]] = float("-inf")
        self._keep_frames = (self._max_pending or TurnFrames.MAX_FRAMES) + search.chunk_frames // 4 + 1
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None) -> Recognizer:
        """Load a checkpoint directory (with its character LM and lexicon when it holds them); the model bundled
        with the package when ``path`` is None."""
        folder = checkpoint_dir(path)
        return cls(load_model(path), lm=CharNgram.load_if_present(folder), lexicon=Lexicon.load_if_present(folder))

    def with_search(self, streaming: StreamingConfig) -> Recognizer:
        """A recognizer on the same model, LM and lexicon with other decode settings (sweeps, command-line
        overrides)."""
        return Recognizer(self.model, streaming, self.lm, self.lexicon)

    def spell(self, word: str) -> str:
        """A completed word as the transcript shows it: repaired by the lexicon when there is one
        (:meth:`model.lexicon.Lexicon.correct`), else unchanged. The turn assembler calls it per word."""
        return word if self.lexicon is None else self.lexicon.correct(word)

    @classmethod
    def random(cls, cfg: StsConfig | None = None, seed: int = 0) -> Recognizer:
        """A recognizer with seeded random weights (the tiny config by default), for tests."""
        return cls(random_model(cfg or StsConfig.tiny(), seed))

    @property
    def model_name(self) -> str:
        return self.config.name

    @property
    def sample_rate(self) -> int:
        return self.config.features.sample_rate

    @property
    def chunk_seconds(self) -> float:
        return self.config.streaming.chunk_frames * self.config.features.hop_length / self.sample_rate

    def create_stream(self) -> Stream:
        return Stream(self)

    def decode_streams(self, streams: Sequence[Stream]) -> None:
        """Decode one chunk of every ready stream, batching streams whose chunks have the same length."""
        groups: dict[int, list[Stream]] = {}
        for s in streams:
            n = s.next_chunk_frames()
            if n:
                groups.setdefault(n, []).append(s)
        with self._lock, torch.inference_mode():
            for n, group in groups.items():
                self._decode_group(n, group)

    def _decode_group(self, frames: int, streams: list[Stream]) -> None:
        feats = torch.stack([s.take_chunk(frames) for s in streams])  # (N, frames, 80)
        state = stack_states([s.encoder_state for s in streams])
        enc, new_state = self.model.encoder(feats, state)  # (2N, frames / 4, C)
        enc = self.model.joiner.project_encoder(enc)
        n = len(streams)
        channels = self.config.model.num_channels
        offsets = [s.frames_decoded for _ in range(channels) for s in streams]  # rows: channel-major, as enc's
        if self.config.streaming.beam > 1:
            beams = [s.beams[c] for c in range(channels) for s in streams if s.beams is not None]
            ends = [c * n + i for c in range(channels) for i, s in enumerate(streams) if s.finished and not s.is_ready]
            emissions = self._beam(enc, offsets, beams, ends)
        else:
            context = torch.cat([torch.stack([s.context[c] for s in streams]) for c in range(channels)])
            emissions, context = self._greedy(enc, offsets, context)
            for i, s in enumerate(streams):
                s.context = torch.stack([context[c * n + i] for c in range(channels)])
        for c in range(channels):
            for i, s in enumerate(streams):
                if s.turn_frames is not None:
                    s.turn_frames[c].append(enc[c * n + i], self._keep_frames)
        per_stream = self.events(streams, emissions)
        for i, (s, st) in enumerate(zip(streams, unstack_states(new_state), strict=True)):
            s.encoder_state = st
            s.frames_decoded += frames // 4
            s.add_events(per_stream[i])

    def settled_events(self, stream: Stream) -> list[TokenEvent]:
        """The events of every token ``stream``'s beams hold back, committed now (:meth:`Stream.settle`)."""
        assert stream.beams is not None, "only a beam search holds tokens back"
        with self._lock, torch.inference_mode():  # a turn it closes may be searched again: the model is used
            return self.events([stream], flush(stream.beams, list(range(len(stream.beams)))))[0]

    def events(self, streams: Sequence[Stream], emissions: list[Emission]) -> list[list[TokenEvent]]:
        """Each stream's events of the committed ``emissions`` (channel-major rows over ``streams``, time order per
        row); with ``turn_beam`` each ``<eot>`` that closes a turn carries the turn's second-pass characters."""
        revisions: dict[int, list[Emission]] = {}
        n = len(streams)
        for k, e in enumerate(emissions):
            channel, i = divmod(e.row, n)
            held = streams[i].turn_frames
            turn = None if held is None else held[channel].commit(e.token, e.frame)
            if turn is not None:
                frames, context, first = turn
                search = self.config.streaming
                revisions[k] = search_turn(self._predictor, self.model.joiner, frames, context, first,
                                           search.turn_beam, search.max_symbols_per_frame, self._turn_bias,
                                           self._fusion)  # fmt: skip
        return token_events(emissions, n, revisions)

    def _greedy(
        self, enc: torch.Tensor, offsets: list[int], context: torch.Tensor
    ) -> tuple[list[Emission], torch.Tensor]:
        """Greedy search of (M, T, J) rows; emission frames made absolute by each row's offset."""
        search = self.config.streaming
        emissions, context = greedy_search(
            self._predictor, self.model.joiner, enc, context, search.max_symbols_per_frame, self._bias,
            self._fusion,
        )  # fmt: skip
        return [replace(e, frame=e.frame + offsets[e.row]) for e in emissions], context

    def _beam(self, enc: torch.Tensor, offsets: list[int], beams: list[Beam], ends: list[int]) -> list[Emission]:
        """Beam search of (M, T, J) rows (absolute frames); the rows in ``ends`` commit their best hypothesis."""
        search = self.config.streaming
        emissions = beam_search(
            self._predictor, self.model.joiner, enc, beams, search.beam, search.max_symbols_per_frame, offsets,
            self._bias, self._fusion, self._max_pending,
        )  # fmt: skip
        return sorted(emissions + flush(beams, ends), key=lambda e: e.frame)  # stable: rows keep their order

    def decode_offline(self, samples: np.ndarray) -> list[TokenEvent]:
        """Whole-utterance decode of 16 kHz samples in one encoder call (reference for streaming tests)."""
        feats = self.log_mel(torch.from_numpy(np.asarray(samples, dtype=np.float32)))
        feats = feats[: feats.shape[0] - feats.shape[0] % 4]
        with self._lock, torch.inference_mode():
            enc = self.model.encode(feats[None])  # (K, T', J)
            rows = list(range(enc.shape[0]))
            if self.config.streaming.beam > 1:
                emissions = self._beam(enc, [0] * len(rows), [Beam.fresh(self.context_width) for _ in rows], rows)
            else:
                emissions, _ = self._greedy(enc, [0] * len(rows), init_context(len(rows), self.context_width))
        return token_events(emissions, 1)[0]

    def transcribe_events(self, samples: np.ndarray, sample_rate: int) -> list[TokenEvent]:
        """All token events of a whole signal, decoded through the streaming path chunk by chunk."""
        stream = self.create_stream()
        stream.accept_waveform(sample_rate, samples)
        stream.input_finished()
        events: list[TokenEvent] = []
        while stream.is_ready:
            self.decode_streams([stream])
            events.extend(stream.pop_events())
        return events
