"""A fixed dev set of simulated sessions from DEV voices and DEV sentences only.

    python -m model.data.devset --bank data/bank --out data/dev --sessions 40 --seed 0

writes three subsets (each a session set of ``model.data.meeting``):
``<out>/single`` (1 speaker, 4-20 s), ``<out>/meet2`` (2 speakers, 20-60 s), ``<out>/meet3-4`` (3-4 speakers,
20-60 s; the speakers of a meeting are distinct people: no two perturbations of one engine voice, see
``model.data.voices.identity_of``), and prints hours, sessions, overlap ratio and turns per minute per subset
and per voice family.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from model.data.bank import Bank
from model.data.meeting import Session, activity_stats, write_sessions
from model.data.simulator import MeetingSimulator, SimulatorConfig

SUBSETS: dict[str, SimulatorConfig] = {
    "single": SimulatorConfig(split="dev", min_speakers=1, max_speakers=1, min_duration=4, max_duration=20),
    "meet2": SimulatorConfig(
        split="dev", min_speakers=2, max_speakers=2, distinct_people=True, min_duration=20, max_duration=60
    ),
    "meet3-4": SimulatorConfig(
        split="dev", min_speakers=3, max_speakers=4, distinct_people=True, min_duration=20, max_duration=60
    ),
}


def make_devset(bank: Bank, sessions: int, seed: int, split: str = "dev") -> dict[str, list[Session]]:
    """``sessions`` sessions per subset; session ``i`` of subset ``k`` uses the generator (seed, k, i). ``split``
    "train" draws the same kind of sessions from the training voices and utterances (to see how well the model
    fits what it trained on; never a dev score)."""
    out: dict[str, list[Session]] = {}
    for k, (name, config) in enumerate(SUBSETS.items()):
        sim = MeetingSimulator(replace(config, split=split), bank)
        out[name] = [
            sim.sample(np.random.default_rng([seed, k, i]), session_id=f"dev-{name}-{i:04d}") for i in range(sessions)
        ]
    return out


def stats(sessions: Sequence[Session]) -> dict[str, float]:
    """Hours, sessions, overlap ratio (of speech), turns per minute, speakers per session."""
    seconds = sum(s.duration for s in sessions)
    speech = overlap = 0.0
    for s in sessions:
        sp, ov, _ = activity_stats([(t.start, t.end) for t in s.turns])
        speech, overlap = speech + sp, overlap + ov
    turns = sum(len(s.turns) for s in sessions)
    return {
        "hours": seconds / 3600,
        "sessions": len(sessions),
        "overlap": overlap / speech if speech else 0.0,
        "turns_per_min": turns / (seconds / 60) if seconds else 0.0,
        "speakers": float(np.mean([len(s.speakers) for s in sessions])) if sessions else 0.0,
    }


def family_stats(sessions: Sequence[Session]) -> dict[str, dict[str, float]]:
    """Per voice family: turns and hours of speech."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: {"turns": 0.0, "speech_hours": 0.0})
    for s in sessions:
        families: Mapping[str, str] = s.meta.get("families", {})
        for t in s.turns:
            f = out[families.get(t.speaker, "?")]
            f["turns"] += 1
            f["speech_hours"] += (t.end - t.start) / 3600
    return dict(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bank", default="data/bank", help="voice bank root")
    parser.add_argument("--families", default=None, help="comma-separated families (default: all in the bank)")
    parser.add_argument("--out", default="data/dev", help="output folder")
    parser.add_argument("--sessions", type=int, default=40, help="sessions per subset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", default="dev", choices=("dev", "train"), help="voices and utterances to draw")
    args = parser.parse_args(argv)
    bank = Bank(args.bank, families=args.families.split(",") if args.families else None)
    subsets = make_devset(bank, args.sessions, args.seed, args.split)
    print(f"{'subset':8} {'sessions':>8} {'hours':>7} {'overlap':>8} {'turns/min':>9} {'speakers':>8}")
    for name, sessions in subsets.items():
        write_sessions(Path(args.out) / name, sessions)
        st = stats(sessions)
        print(
            f"{name:8} {st['sessions']:>8} {st['hours']:>7.3f} {st['overlap']:>8.3f} {st['turns_per_min']:>9.1f} "
            f"{st['speakers']:>8.2f}"
        )
        for family, fs in sorted(family_stats(sessions).items()):
            print(f"  {family:10} turns {int(fs['turns']):>5}  speech hours {fs['speech_hours']:.3f}")


if __name__ == "__main__":
    main()
