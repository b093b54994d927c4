"""What the speaker labeller's revision after every final turn costs as a meeting grows (CPU milliseconds).

    .venv/bin/python scripts/label_cost.py --turns 1500

Synthetic meeting: 4 voices (random 64-dim directions plus noise), turns of 0.5-6 s one after another on two
channels, one in five starting up to 1 s before the previous one ends (so at most two turns are open at once,
as with the model's two channels), clustered with the bundled embedder's knobs. Prints the mean time of
``revise(live=True)`` + ``adopt`` over the last 50 turns at a few meeting lengths; the labeller runs this once
per final turn (``service.speakers.VoiceLabeller``), the embedding of the turn's audio (about 2 ms per second of
audio) comes on top.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from model.speaker import load_embedder
from model.speaker_cluster import OnlineSpeakerClusterer, clusterer_config


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--turns", type=int, default=1500)
    p.add_argument("--voices", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    rng = np.random.default_rng(a.seed)
    voices = rng.normal(size=(a.voices, 64))
    clusterer = OnlineSpeakerClusterer(clusterer_config(load_embedder(None).info.clustering))
    now, last_end, times = 0.0, 0.0, []
    marks = {m for m in (100, 250, 500, 1000, 1500, 3000) if m <= a.turns} | {a.turns}
    for n in range(1, a.turns + 1):
        seconds = float(rng.uniform(0.5, 6.0))
        start = max(now - float(rng.uniform(0.0, 1.0)), last_end) if rng.random() < 0.2 else now
        last_end, now = now, start + seconds + float(rng.uniform(0.0, 0.5))
        overlapping = {r.label for r in clusterer.turns[-2:] if r.end > start}
        embedding = voices[rng.integers(a.voices)] + 1.5 * rng.normal(size=64)
        clusterer.assign(embedding, start, start + seconds, overlapping)
        t0 = time.perf_counter()
        clusterer.adopt(clusterer.revise(live=True))
        times.append(time.perf_counter() - t0)
        if n in marks:
            print(f"{n:5d} turns ({now / 60:5.1f} min): revision {1000 * np.mean(times[-50:]):6.1f} ms per final turn, "
                  f"{len(clusterer.speakers)} speakers")  # fmt: skip


if __name__ == "__main__":
    main()
