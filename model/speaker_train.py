"""Train the speaker-embedding projection (:class:`model.speaker.SpeakerEmbedder`) on the bank's TRAIN voices.

Training spans are cut the way the service cuts them: simulated meetings of train voices (noise, reverberation,
overlap as in the dev sets), one span per reference turn, the part where nobody else talks when there is
enough of it (:func:`model.speaker.exclusive_span`); plus the clean bank utterances of every train voice.
Dev voices are never seen. A few CPU minutes:

    python -m model.speaker_train --bank data/bank --sessions 1500 --out model/pretrained_speaker
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model.data.bank import Bank
from model.data.meeting import Session
from model.data.simulator import MeetingSimulator, SimulatorConfig
from model.speaker import SpeakerEmbedder, SpeakerFeatureConfig, TrainingInfo, cut, exclusive_span, speaker_statistics

log = logging.getLogger(__name__)


def session_spans(session: Session, min_seconds: float = 1.0) -> list[tuple[str, np.ndarray]]:
    """(speaker label, audio) of every reference turn of a session, cut to its exclusive part where possible."""
    out = []
    for i, t in enumerate(session.turns):
        others = [(o.start, o.end) for j, o in enumerate(session.turns) if j != i and o.speaker != t.speaker]
        out.append((t.speaker, cut(session.audio, exclusive_span(t.start, t.end, others, min_seconds))))
    return out


def collect(
    bank: Bank, sessions: int, seed: int, cfg: SpeakerFeatureConfig, progress: bool = True
) -> tuple[np.ndarray, list[str]]:
    """Statistics (M, D) and voice ids of the training spans."""
    stats: list[np.ndarray] = []
    labels: list[str] = []
    for u in tqdm(bank.utterances("train"), disable=not progress, desc="bank utterances"):
        stats.append(speaker_statistics(u.load(), cfg))
        labels.append(u.voice_id)
    sim = MeetingSimulator(SimulatorConfig(split="train", min_speakers=1, max_speakers=4, max_duration=40.0), bank)
    rng = np.random.default_rng(seed)
    for _ in tqdm(range(sessions), disable=not progress, desc="simulated meetings"):
        session = sim.sample(rng)
        voices = session.meta["voices"]
        for speaker, audio in session_spans(session):
            stats.append(speaker_statistics(audio, cfg))
            labels.append(voices[speaker])
    return np.asarray(stats), labels


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bank", default="data/bank")
    p.add_argument("--sessions", type=int, default=1500, help="simulated train meetings to cut spans from")
    p.add_argument("--dim", type=int, default=48, help="embedding dimensions kept by the LDA")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="model/pretrained_speaker")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = SpeakerFeatureConfig()
    bank = Bank(a.bank)
    t0 = time.monotonic()
    stats, labels = collect(bank, a.sessions, a.seed, cfg)
    info = TrainingInfo(
        voices=len(set(labels)),
        segments=len(labels),
        data=f"train voices of {a.bank} ({', '.join(sorted({bank.family_of(v) for v in bank.voices('train')}))}): "
        f"every train utterance plus the turns of "
        f"{a.sessions} simulated train meetings (seed {a.seed})",
    )
    emb = SpeakerEmbedder.train(stats, labels, dim=a.dim, config=cfg, info=info)
    emb.save(Path(a.out))
    print(f"trained on {len(labels)} spans of {info.voices} voices in {time.monotonic() - t0:.0f} s -> {a.out}")


if __name__ == "__main__":
    main()
