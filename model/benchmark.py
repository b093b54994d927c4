"""Speed benchmark: streaming decode real-time factor and training throughput. Prints numbers; asserts nothing.

    python -m model.benchmark [--model DIR|random] [--seconds 20] [--streams 1,16] [--threads 1] [--audio FILE]

RTF = CPU seconds of decoding / seconds of audio, per stream (lower is better; < 1 is faster than real time).
The audio (random noise, or ``--audio``: a recording looped to the length) is fed in 320 ms chunks as a live
stream would be, and all streams are decoded in one batch per chunk. When the model's search is a beam search,
fuses an LM or searches each turn again, the greedy search without LM on the same model is timed too, in the same
process, as the baseline (and with a second pass, the same search without it).
Training throughput uses the default config on random features with realistic target lengths
(15 characters per second of audio per channel), batch 8 x 8 s.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from model.config import StsConfig
from model.data.audio import read_wav_16k
from model.recognizer import Recognizer
from model.sts import LossConfig, StsModel


def decode_rtf(rec: Recognizer, streams: int, seconds: float, recording: np.ndarray | None = None) -> float:
    rs = np.random.RandomState(0)
    n = int(seconds * 16000)
    if recording is not None:  # each stream starts at another place in the looped recording
        looped = np.resize(recording, n + len(recording))
        audio = [looped[(k * 7919 * 16) % len(recording) :][:n] for k in range(streams)]
    else:
        audio = [(rs.randn(n) * 0.1).astype(np.float32) for _ in range(streams)]
    ss = [rec.create_stream() for _ in range(streams)]
    piece = int(rec.chunk_seconds * 16000)
    busy = 0.0
    for pos in range(0, len(audio[0]), piece):
        for s, a in zip(ss, audio, strict=True):
            s.accept_waveform(16000, a[pos : pos + piece])
            if pos + piece >= len(a):
                s.input_finished()
        t0 = time.process_time()
        while any(s.is_ready for s in ss):
            rec.decode_streams(ss)
        busy += time.process_time() - t0
    return busy / (seconds * streams)


def train_throughput(cfg: StsConfig, batch: int = 8, seconds: float = 8.0, steps: int = 3, bf16: bool = False) -> float:
    """Seconds of audio per second of one training step (forward, backward, optimizer) on random input;
    ``bf16``: the forward pass under bfloat16 autocast (``model.train --amp bf16``)."""
    model = StsModel(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    frames = int(seconds * 100)
    u = int(seconds * 15)
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model.loss(
                torch.randn(batch, frames, 80), torch.full((batch,), frames),
                torch.randint(1, cfg.model.vocab_size, (2 * batch, u)), torch.full((2 * batch,), u),
                torch.full((2 * batch, u), -1), LossConfig(),
            )  # fmt: skip
        loss.sum().backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t0)
    return batch * seconds / float(np.median(times[1:]))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="checkpoint dir; 'random' = default config, random weights")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--streams", default="1,16")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--train-threads", type=int, default=2)
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--audio", default=None, help="decode this recording (any rate; looped) instead of noise")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.model in (None, "random"):
        rec = Recognizer.random(StsConfig(), seed=0)
    else:
        rec = Recognizer.from_pretrained(a.model)
    params = sum(p.numel() for p in rec.model.parameters())
    print(f"model {rec.model_name}: {params / 1e6:.2f}M parameters, {a.threads} thread(s), {a.seconds:.0f} s audio")
    recording = read_wav_16k(a.audio) if a.audio else None
    search = rec.config.streaming
    # (heading, what the ratios call it, recognizer)
    recs = [(f"search: {('greedy' if search.beam == 1 else 'beam search')}{search.search_note()}", "", rec)]
    if search.turn_beam:
        recs.append(("without the second pass (turn beam 0)", "the same search without the second pass",
                     rec.with_search(search.overridden(turn_beam=0))))  # fmt: skip
    if search.beam > 1 or (rec.lm is not None and search.lm_weight) or search.turn_beam:
        baseline = search.overridden(beam=1, lm_weight=0, turn_beam=0)
        recs.append(("baseline: greedy, no LM, no second pass", "the greedy baseline", rec.with_search(baseline)))
    counts = [int(x) for x in a.streams.split(",")]
    rtfs: list[list[float]] = []
    for label, _, r in recs:
        print(label)
        rtfs.append([decode_rtf(r, n, a.seconds, recording) for n in counts])
        for n, rtf in zip(counts, rtfs[-1], strict=True):
            print(f"  streaming decode, {n:3d} stream(s) batched: RTF {rtf:.4f} per stream "
                  f"({1 / rtf:.1f}x real time; {rtfs[-1][0] / rtf:.2f}x the per-stream speed of the first "
                  "row)")  # fmt: skip
    for (_, name, _), other in zip(recs[1:], rtfs[1:], strict=True):
        ratios = ", ".join(f"{x / y:.2f}x with {n} stream(s)" for n, x, y in zip(counts, rtfs[0], other, strict=True))
        print(f"the model's search costs {ratios} the CPU time of {name}")
    if not a.skip_train:
        torch.set_num_threads(a.train_threads)
        tp = train_throughput(rec.config)
        print(f"training ({a.train_threads} threads, batch 8 x 8 s): {tp:.1f} s of audio per second")
        tb = train_throughput(rec.config, bf16=True)
        print(f"training under bfloat16 autocast (--amp bf16): {tb:.1f} s of audio per second ({tb / tp:.2f}x float32)")


if __name__ == "__main__":
    main()
