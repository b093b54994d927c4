"""Long meetings of one fixed group: 2-4 people (dev voices) talking for 150-300 s, for what labels do over minutes.

    .venv/bin/python scripts/long_meetings.py data/dev_long2 --speakers 2 2 --sessions 12 --seed 99
    .venv/bin/python scripts/long_meetings.py data/dev_long34 --speakers 3 4 --sessions 12 --seed 99
    .venv/bin/sts-eval data/dev_long2 data/dev_long34

The dev sets' meetings last 20-60 s, and ``scripts/long_streams.py`` joins them into streams whose people change
every session (and whose voices may recur as different people). Here the same people talk throughout, as in a
real meeting. Session ``i`` uses the generator (seed, fewest speakers, i). A meeting ends early when its voices
have no unused dev sentence left that fits (the bank holds a few dozen per dev voice), so some come out shorter
than drawn. The tuning counterparts (to choose settings on, before measuring on the above once) use seed 7:
``data/tune_long2``, ``data/tune_long34`` with 16 sessions each. Like every simulated set, a meeting depends on
the bank it is drawn from: a bank with more dev utterances gives another sample (session 22's sets were drawn
while the bank's Kokoro family was growing: 3,310-3,390 utterances, 522-602 of them dev).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from model.data.bank import Bank
from model.data.devset import stats
from model.data.meeting import write_sessions
from model.data.simulator import MeetingSimulator, SimulatorConfig


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--bank", type=Path, default=Path("data/bank"))
    p.add_argument("--speakers", type=int, nargs=2, default=(2, 2), metavar=("MIN", "MAX"))
    p.add_argument("--sessions", type=int, default=12)
    p.add_argument("--seed", type=int, default=99)
    p.add_argument("--seconds", type=float, nargs=2, default=(150.0, 300.0), metavar=("MIN", "MAX"))
    a = p.parse_args(argv)
    lo, hi = a.speakers
    cfg = SimulatorConfig(split="dev", min_speakers=lo, max_speakers=hi, distinct_people=True,
                          min_duration=a.seconds[0], max_duration=a.seconds[1])  # fmt: skip
    sim = MeetingSimulator(cfg, Bank(a.bank))
    sessions = [sim.sample(np.random.default_rng([a.seed, lo, i]), session_id=f"long-{lo}{hi}-{i:04d}")
                for i in range(a.sessions)]  # fmt: skip
    write_sessions(a.out, sessions)
    print(a.out, {k: round(v, 3) for k, v in stats(sessions).items()})


if __name__ == "__main__":
    main()
