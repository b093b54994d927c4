"""Study: speaker embeddings from inside the STS model (its separated channel representations) against the
bundled voice embedder, and both fused, for meeting-wide labels (issue 7: "measure which is better").

    .venv/bin/python scripts/channel_speaker_study.py data/dev/meet2 data/dev/meet3-4 [--train-sessions 600]

The "channel" embedding of a turn: the separator's output for the turn's channel (the masked mixture encoding
that enters the tied channel encoder, (T', 256) at 40 ms frames), mean and standard deviation over the turn's
frames (512 numbers), then an LDA (``model.speaker.fit_lda``, 24 dims) trained on the reference turns of
``--train-sessions`` simulated meetings of the bank's TRAIN voices, each turn on its HEAT channel (the channel the
model was trained to put it on). "fused": both unit embeddings concatenated with weights sqrt(1 - w), sqrt(w), so
that the cosine is (1 - w) * voice cosine + w * channel cosine.

Prints, per set: the pair EER (``clients.label_diagnostics``) of reference turns (HEAT channel) and of the
model's turns (its own channel, named by ``clients.evaluate.best_labelled``) for voice / channel / fused, over the
same pairs (turns of at least 0.5 s for which both exist); then cpWER and ORC-WER of the service's labeller
(``clients.evaluate.label_sessions``, the embedder's stored clustering thresholds) with the fused embedding at
each ``--weights`` value (w = 0 is the bundled labeller). The labeller is given the channel embedding by
patching it here; the service does not have it.
"""

from __future__ import annotations

import argparse
import types
from typing import Any

import numpy as np
import torch

import service.speakers as speakers
from clients.evaluate import _error_rate, _speakers, best_labelled, label_sessions, load_set, recognize_sessions
from clients.label_diagnostics import embed_spans, equal_error_rate, pair_scores
from model.checkpoint import load_model
from model.data.bank import Bank
from model.data.simulator import MeetingSimulator, SimulatorConfig
from model.encoder import init_state
from model.features import LogMel
from model.heat import assign_channels_heat
from model.recognizer import Recognizer, set_num_threads
from model.speaker import fit_lda, lda_project, load_embedder

FRAME = 0.04  # seconds per encoder frame
MIN_FRAMES = 12  # about 0.5 s


class ChannelFrames:
    """The separator's output of a whole session, (2, T', C), by a hook on the channel encoder's input."""

    def __init__(self, model_dir: str | None) -> None:
        self.model = load_model(model_dir)
        self.mel = LogMel(self.model.cfg.features)
        self._seen: list[torch.Tensor] = []
        self.model.encoder.channel.register_forward_hook(lambda m, args, out: self._seen.append(args[0]))

    @torch.no_grad()
    def __call__(self, audio: np.ndarray) -> np.ndarray:
        x = self.mel(torch.from_numpy(np.asarray(audio, dtype=np.float32)))
        x = x[: len(x) // 4 * 4][None]
        self._seen.clear()
        self.model.encoder(x, init_state(self.model.cfg.model, 1))
        return self._seen[-1].numpy()


def pool(frames: np.ndarray, channel: int, parts: list[tuple[float, float]]) -> np.ndarray | None:
    """Mean and std (2C,) of ``frames[channel]`` inside ``parts`` (seconds); None under MIN_FRAMES frames."""
    sel = [frames[channel, int(a / FRAME) : int(np.ceil(b / FRAME))] for a, b in parts]
    f = np.concatenate(sel) if sel else np.zeros((0, frames.shape[-1]))
    return np.concatenate([f.mean(0), f.std(0)]) if len(f) >= MIN_FRAMES else None


def train_channel_lda(frames_of: ChannelFrames, bank: str, sessions: int, dim: int) -> tuple[np.ndarray, ...]:
    sim = MeetingSimulator(SimulatorConfig(split="train", min_speakers=2, max_speakers=4, max_duration=40.0,
                                           noise_prob=0.5, reverb_prob=0.3), Bank(bank))  # fmt: skip
    rng = np.random.default_rng(77)
    stats, labels = [], []
    for i in range(sessions):
        s = sim.sample(rng, session_id=f"t{i}")
        frames = frames_of(s.audio)
        for t, c in zip(s.turns, assign_channels_heat(s.turns), strict=True):
            v = pool(frames, c, [(t.start, t.end)])
            if v is not None:
                stats.append(v)
                labels.append(s.meta["voices"][t.speaker])
    print(f"channel LDA: {len(stats)} turns of {len(set(labels))} voices, {sessions} meetings")
    return fit_lda(np.asarray(stats), labels, dim)


def eers(spans: list[Any], channels: list[int], session: Any, frames: np.ndarray, voice: Any,
         lda: tuple[np.ndarray, ...], w: float, pairs: dict[str, tuple[list[float], list[float]]]) -> None:  # fmt: skip
    """Add the same / different-speaker cosines of ``spans`` (speaker, start, end) to ``pairs``; the voice
    embeddings cut as ``clients.label_diagnostics`` cuts them."""
    voiced = embed_spans(session, [(t.speaker, t.start, t.end) for t in spans], voice, MIN_FRAMES * FRAME)
    items = []
    for t, c, v in zip(spans, channels, voiced, strict=True):
        st = pool(frames, c, [(t.start, t.end)])
        if v is not None and st is not None:
            ch = lda_project(st, *lda)
            items.append((t.speaker, {"voice": v[1], "channel": ch, "fused": fuse(v[1], ch, w)}))
    for kind in ("voice", "channel", "fused"):
        same, diff = pair_scores([(sp, e[kind]) for sp, e in items])
        pairs[kind][0].extend(same)
        pairs[kind][1].extend(diff)


def fuse(voice: np.ndarray, channel: np.ndarray, w: float) -> np.ndarray:
    return np.concatenate([np.sqrt(1 - w) * voice, np.sqrt(w) * channel]).astype(np.float32)


class FusedEmbedder:
    """The voice embedder's ``embed(audio)``, fused with the channel embedding of the span the labeller cut
    last (recorded by the patched ``AudioRing.cut``) on the channel it is labelling (set by the patches)."""

    def __init__(self, voice: Any, lda: tuple[np.ndarray, ...], w: float, frames: np.ndarray) -> None:
        self.voice, self.lda, self.w, self.frames = voice, lda, w, frames
        self.info, self.dim = voice.info, voice.dim + lda[2].shape[1]
        self.channel, self.parts = 0, []

    def embed(self, audio: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
        st = pool(self.frames, self.channel, self.parts)
        ch = lda_project(st, *self.lda) if st is not None else np.zeros(self.lda[2].shape[1], np.float32)
        return fuse(self.voice.embed(audio, sample_rate), ch, self.w)


def patch_labeller() -> dict[str, FusedEmbedder]:
    """Let the labeller's embedder know the span and channel of each embedding (the returned slot holds the
    session's embedder)."""
    slot: dict[str, FusedEmbedder] = {}
    labeller = speakers.VoiceLabeller
    ring_cut = speakers.AudioRing.cut
    final, provisional, rival = labeller._final, labeller._provisional, labeller._rival

    def cut_(self: Any, parts: list[tuple[float, float]]) -> np.ndarray:
        slot["emb"].parts = list(parts)
        return ring_cut(self, parts)

    def on(channel_of: Any, fn: Any) -> Any:
        def wrapped(self: Any, turn: Any, *rest: Any) -> Any:
            slot["emb"].channel = channel_of(turn)
            return fn(self, turn, *rest)

        return wrapped

    speakers.AudioRing.cut = cut_
    labeller._final = on(lambda t: t.channel, final)  # type: ignore[method-assign]
    labeller._provisional = on(lambda t: t.channel, provisional)  # type: ignore[method-assign]
    labeller._rival = on(lambda t: 1 - t.channel, rival)  # type: ignore[method-assign]
    return slot


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sets", nargs="+")
    p.add_argument("--model", default=None, help="checkpoint folder (default: the bundled model)")
    p.add_argument("--bank", default="data/bank")
    p.add_argument("--train-sessions", type=int, default=600)
    p.add_argument("--dim", type=int, default=24)
    p.add_argument("--eer-weight", type=float, default=0.5, help="fusion weight of the EER table")
    p.add_argument("--weights", default="0,0.3,0.5", help="fusion weights for the cpWER rows")
    a = p.parse_args()
    set_num_threads(1)
    frames_of = ChannelFrames(a.model)
    lda = train_channel_lda(frames_of, a.bank, a.train_sessions, a.dim)
    voice, rec, slot = load_embedder(None), Recognizer.from_pretrained(a.model), patch_labeller()
    for spec in a.sets:
        sessions = load_set(spec)
        recordings = recognize_sessions(rec, sessions)
        frames = [frames_of(s.audio) for s in sessions]
        turns = [d.turns for d in label_sessions(recordings, sessions)]  # labelled by channel
        for kind in ("reference", "model"):
            pairs: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in ("voice", "channel", "fused")}
            for s, f, ts in zip(sessions, frames, turns, strict=True):
                if kind == "reference":
                    spans = [types.SimpleNamespace(**t) for t in s.turns]
                    channels = assign_channels_heat(spans)
                else:
                    spans = best_labelled(s, ts)
                    channels = [t.channel for t in spans]
                eers(spans, channels, s, f, voice, lda, a.eer_weight, pairs)
            row = ", ".join(f"{k} {100 * equal_error_rate(np.asarray(sm), np.asarray(df)):.1f} %"
                            for k, (sm, df) in pairs.items())  # fmt: skip
            print(f"{spec} {kind} turns: EER {row} ({len(pairs['voice'][0])} / {len(pairs['voice'][1])} pairs)")
        for w in (float(x) for x in a.weights.split(",")):
            decoded = []
            for s, r, f in zip(sessions, recordings, frames, strict=True):
                slot["emb"] = FusedEmbedder(voice, lda, w, f)
                decoded += label_sessions([r], [s], slot["emb"])
            cp, orc = _error_rate("cp", sessions, decoded)["rate"], _error_rate("orc", sessions, decoded)["rate"]
            spk = _speakers(sessions, decoded)
            print(f"{spec} fused w={w}: cpWER {100 * cp:.1f} %, ORC-WER {100 * orc:.1f} %, speaker count accuracy "
                  f"{100 * spk['count_accuracy']:.1f} %, DER {100 * spk['der']:.1f} %")  # fmt: skip


if __name__ == "__main__":
    main()
