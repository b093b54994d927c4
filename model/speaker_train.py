"""Train a speaker embedder on the bank's TRAIN voices: the LDA projection (:class:`model.speaker.SpeakerEmbedder`,
``--kind stats-lda``) or the TDNN (:class:`model.speaker_net.NeuralSpeakerEmbedder`, ``--kind tdnn``).

Training spans are cut the way the service cuts them: simulated meetings of train voices (noise, reverberation,
overlap as in the dev sets), one span per reference turn, the part where nobody else talks when there is
enough of it (:func:`model.speaker.exclusive_span`); plus the clean bank utterances of every train voice.
Dev voices are never seen.

    python -m model.speaker_train --kind stats-lda --sessions 1500 --out model/pretrained_speaker   # 3 CPU min
    python -m model.speaker_train --kind stats-lda --ubm 64 --out exp/speaker_ubm   # + a 64-Gaussian mixture, 5 min
    python -m model.speaker_train --kind tdnn --sessions 1000 --steps 3000 --out exp/speaker_tdnn  # ~30 CPU min

The TDNN learns with an additive-margin softmax over the voices (scale 30, margin ramped to 0.2 over the first
quarter of the steps), on random crops of 1.5-2.5 s, AdamW with warm-up and cosine decay, one CPU thread.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from tqdm import tqdm

from model.data.bank import Bank
from model.data.meeting import Session
from model.data.simulator import MeetingSimulator, SimulatorConfig
from model.speaker import (
    SpeakerEmbedder,
    SpeakerFeatureConfig,
    TrainingInfo,
    cut,
    exclusive_span,
    frame_features,
    span_statistics,
)
from model.speaker_gmm import DiagonalGMM
from model.speaker_net import TDNN, NeuralSpeakerEmbedder, TDNNConfig

log = logging.getLogger(__name__)
F = TypeVar("F")


def session_spans(session: Session, min_seconds: float = 1.0) -> list[tuple[str, np.ndarray]]:
    """(speaker label, audio) of every reference turn of a session, cut to its exclusive part where possible."""
    out = []
    for i, t in enumerate(session.turns):
        others = [(o.start, o.end) for j, o in enumerate(session.turns) if j != i and o.speaker != t.speaker]
        out.append((t.speaker, cut(session.audio, exclusive_span(t.start, t.end, others, min_seconds))))
    return out


def collect(
    bank: Bank,
    sessions: int,
    seed: int,
    featurize: Callable[[np.ndarray], F],
    progress: bool = True,
    speed_prob: float = 0.0,
) -> tuple[list[F], list[str]]:
    """``featurize(audio)`` and the voice id of every training span (bank utterances, then meeting turns).

    With ``speed_prob`` a meeting speaker may be played faster or slower (pitch, formants and tempo move,
    see :class:`SimulatorConfig`); such a speaker is a class of its own, "<voice id>@<speed>".
    """
    feats: list[F] = []
    labels: list[str] = []
    for u in tqdm(bank.utterances("train"), disable=not progress, desc="bank utterances"):
        feats.append(featurize(u.load()))
        labels.append(u.voice_id)
    sc = SimulatorConfig(split="train", min_speakers=1, max_speakers=4, max_duration=40.0, speed_prob=speed_prob)
    sim = MeetingSimulator(sc, bank)
    rng = np.random.default_rng(seed)
    for _ in tqdm(range(sessions), disable=not progress, desc="simulated meetings"):
        session = sim.sample(rng)
        voices, speeds = session.meta["voices"], session.meta.get("speeds", {})
        for speaker, audio in session_spans(session):
            feats.append(featurize(audio))
            labels.append(voices[speaker] + (f"@{speeds[speaker]:.4f}" if speaker in speeds else ""))
    return feats, labels


def _frames32(samples: np.ndarray, cfg: SpeakerFeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """:func:`frame_features` of a span, stored as float32 (the frames of every span are kept in memory)."""
    mfcc, f0 = frame_features(samples, cfg)
    return mfcc.astype(np.float32), f0.astype(np.float32)


def train_tdnn(
    frames: Sequence[torch.Tensor],
    labels: Sequence[str],
    steps: int,
    batch_size: int = 48,
    lr: float = 2e-3,
    margin: float = 0.2,
    crop_frames: tuple[int, int] = (150, 250),
    config: TDNNConfig | None = None,
    seed: int = 0,
    progress: bool = True,
) -> TDNN:
    """Train a TDNN on (T_i, F) frame tensors (``NeuralSpeakerEmbedder.frames``) with a voice per row.

    Each step takes ``batch_size`` random spans, one random crop of ``crop_frames`` frames (the same length in
    a batch; short spans are repeated). Returns the net in eval mode.
    """
    import torch.nn.functional as nnf

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    index = {v: k for k, v in enumerate(sorted(set(labels)))}
    y_all = np.asarray([index[v] for v in labels])
    cfg = config or TDNNConfig()
    net = TDNN(int(frames[0].shape[-1]), cfg)
    weight = torch.nn.Parameter(torch.randn(len(index), cfg.embedding_dim) * 0.01)
    opt = torch.optim.AdamW([*net.parameters(), weight], lr=lr, weight_decay=1e-4)
    warmup = max(steps // 20, 1)

    def lr_at(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        return lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(steps - warmup, 1))))

    net.train()
    bar = tqdm(range(steps), disable=not progress, desc="tdnn")
    smoothed = None
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        length = int(rng.integers(crop_frames[0], crop_frames[1] + 1))
        idx = rng.integers(0, len(frames), batch_size)
        batch = []
        for i in idx:
            x = frames[i]
            if len(x) < length:
                x = x.repeat(-(-length // len(x)), 1)
            o = int(rng.integers(0, len(x) - length + 1))
            batch.append(x[o : o + length].float())
        feats = torch.stack(batch)
        y = torch.from_numpy(y_all[idx])
        z = nnf.normalize(net(feats), dim=-1)
        cos = z @ nnf.normalize(weight, dim=-1).T  # (B, classes)
        m = margin * min(1.0, step / max(steps // 4, 1))
        logits = 30.0 * (cos - m * nnf.one_hot(y, len(index)))
        loss = nnf.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([*net.parameters(), weight], 5.0)
        opt.step()
        value = loss.item()
        smoothed = value if smoothed is None else 0.98 * smoothed + 0.02 * value
        bar.set_postfix(loss=f"{smoothed:.3f}", lr=f"{lr_at(step):.1e}")
    return net.eval()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", choices=["stats-lda", "tdnn"], default="stats-lda")
    p.add_argument("--bank", default="data/bank")
    p.add_argument("--sessions", type=int, default=1500, help="simulated train meetings to cut spans from")
    p.add_argument("--speed-prob", type=float, default=0.0, help="chance that a meeting speaker is sped up or down")
    p.add_argument("--dim", type=int, default=48, help="stats-lda: embedding dimensions kept by the LDA")
    p.add_argument("--ubm", type=int, default=0, help="stats-lda: add the mean supervector of a mixture of this many")
    p.add_argument("--ubm-frames", type=int, default=200_000, help="stats-lda: speech frames the mixture is fit on")
    p.add_argument("--steps", type=int, default=3000, help="tdnn: training steps")
    p.add_argument("--batch-size", type=int, default=48, help="tdnn: crops per step")
    p.add_argument("--lr", type=float, default=2e-3, help="tdnn: peak learning rate")
    p.add_argument("--level-only", action="store_true", help="tdnn: normalise the level only, not every band")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="model/pretrained_speaker")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    bank = Bank(a.bank)
    t0 = time.monotonic()
    families = ", ".join(sorted({bank.family_of(v) for v in bank.voices("train")}))
    if a.kind == "stats-lda":
        cfg = SpeakerFeatureConfig()
        spans, labels = collect(bank, a.sessions, a.seed, lambda x: _frames32(x, cfg), speed_prob=a.speed_prob)
        ubm = None
        if a.ubm:
            pool = np.concatenate([m for m, _ in spans])
            rng = np.random.default_rng(a.seed)
            sample = pool[rng.choice(len(pool), min(len(pool), a.ubm_frames), replace=False)]
            ubm = DiagonalGMM.fit(sample, a.ubm, rng)
        stats = [span_statistics(m.astype(np.float64), f0.astype(np.float64), cfg, ubm) for m, f0 in spans]
        info = TrainingInfo(
            voices=len(set(labels)),
            segments=len(labels),
            data=f"train voices of {a.bank} ({families}): every train utterance plus the turns of "
            f"{a.sessions} simulated train meetings (seed {a.seed}"
            + (f", speakers sped up or down with chance {a.speed_prob})" if a.speed_prob else ")")
            + (f"; mean supervector of a {a.ubm}-Gaussian mixture fit on {len(sample)} speech frames" if a.ubm else ""),
        )
        emb = SpeakerEmbedder.train(np.asarray(stats), labels, dim=a.dim, config=cfg, info=info, ubm=ubm)
        emb.save(Path(a.out))
    else:
        torch.set_num_threads(a.threads)
        tcfg = TDNNConfig(band_mean=not a.level_only)
        featurizer = NeuralSpeakerEmbedder(TDNN(80, tcfg), tcfg)
        frames, labels = collect(
            bank, a.sessions, a.seed, lambda x: featurizer.frames(x).half(), speed_prob=a.speed_prob
        )
        net = train_tdnn(frames, labels, a.steps, a.batch_size, a.lr, config=tcfg, seed=a.seed)
        info = TrainingInfo(
            voices=len(set(labels)),
            segments=len(labels),
            data=f"train voices of {a.bank} ({families}): every train utterance plus the turns of "
            f"{a.sessions} simulated train meetings (seed {a.seed}); {a.steps} steps of {a.batch_size} crops",
        )
        NeuralSpeakerEmbedder(net, tcfg, info=info).save(Path(a.out))
    print(f"trained {a.kind} on {len(labels)} spans of {len(set(labels))} voices in {time.monotonic() - t0:.0f} s "
          f"-> {a.out}")  # fmt: skip


if __name__ == "__main__":
    main()
