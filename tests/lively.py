"""Test helpers: synthetic "meeting" audio and a random tiny recognizer rewired to emit turns.

A random tiny model emits rubbish (often 4 tokens per frame, or nothing, never a turn structure), so a
comparison of two transcripts of it proves little. ``lively_recognizer`` keeps the random encoder but rewires
the joiner and the stateless prediction network (one symbol per frame):

- a "speech" unit: a linear read-out of the random encoder, fitted to the bursts of the calibration audio;
- two pseudo-random units and eight letter units: random projections of the encoder, centred;
- three context units from the last token: outside a turn (blank, <eot>), word start (<sot>, space), letter.

Then: outside a turn, speech gives <sot>; at a word start, speech gives a letter, silence <eot>; after a
letter, silence gives <eot>, speech a letter, a space or a blank depending on the pseudo-random units. The
output depends on the audio (bursts become turns), so a transport that loses or mangles audio changes it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from model.config import StreamingConfig, StsConfig
from model.encoder import init_state
from model.recognizer import Recognizer
from model.tokenizer import TOKENS

SR = 16000


def burst_audio(seconds: float = 12.0, seed: int = 0, sr: int = SR) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Harmonic, amplitude-modulated bursts (0.4-1.5 s) separated by 0.3-1.0 s of near silence.

    Returns float32 samples in [-1, 1] and the (start, end) of every burst in seconds."""
    rng = np.random.RandomState(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = np.zeros_like(t)
    bursts = []
    pos = 0.3
    while pos < seconds - 0.6:
        d = rng.uniform(0.4, 1.5)
        f0 = rng.uniform(90, 250)
        m = (t >= pos) & (t < pos + d)
        ph = 2 * np.pi * f0 * (t[m] - pos)
        x[m] += 0.25 * sum(np.sin(k * ph) / k for k in range(1, 8)) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * (t[m] - pos)))
        bursts.append((pos, min(pos + d, seconds)))
        pos += d + rng.uniform(0.3, 1.0)
    x += 0.002 * rng.randn(len(x))
    return np.clip(x, -1, 1).astype(np.float32), bursts


def lively_recognizer(seed: int = 0) -> Recognizer:
    base = StsConfig.tiny()
    cfg = dataclasses.replace(
        base, name="sts-tiny-lively", streaming=StreamingConfig(base.streaming.chunk_frames, max_symbols_per_frame=1)
    )
    rec = Recognizer.random(cfg, seed=seed)
    model = rec.model
    rng = np.random.RandomState(seed + 1)
    audio, bursts = burst_audio(30.0, seed=seed + 100)
    with torch.inference_mode():
        feats = rec.log_mel(torch.from_numpy(audio))
        feats = feats[: feats.shape[0] - feats.shape[0] % 4]
        enc, _ = model.encoder(feats[None], init_state(cfg.model, 1))  # (2, T', d_model)
    e = enc.reshape(-1, enc.shape[-1]).double().numpy()
    times = (np.arange(enc.shape[1]) * 0.04)[None].repeat(2, 0).reshape(-1)
    y = np.where([any(a + 0.08 <= tt < b for a, b in bursts) for tt in times], 1.0, -1.0)
    mean = e.mean(0)
    ec = e - mean
    w = np.linalg.solve(ec.T @ ec + 1e-6 * np.eye(ec.shape[1]), ec.T @ y)  # ridge read-out of "speech"
    s = ec @ w
    thr = 0.5 * (np.median(s[y > 0]) + np.median(s[y < 0]))

    d, j = cfg.model.d_model, cfg.model.joiner_dim
    enc_w, enc_b = np.zeros((j, d)), np.zeros(j)

    def unit(i: int, direction: np.ndarray, centre: float, spread: float, gain: float = 3.0) -> None:
        enc_w[i] = gain * direction / spread
        enc_b[i] = -gain * (direction @ mean + centre) / spread

    unit(0, w, thr, s.std())
    for i in range(1, 11):  # R1, R2 and eight letter units
        u = rng.randn(d)
        p = (ec @ u)[y > 0]  # centred on the speech frames, where it matters
        unit(i, u, float(np.median(p)), p.std(), gain=4.0)
    S, R1, R2, OUT, START, LET = 0, 1, 2, 11, 12, 13
    letters = [TOKENS.index(c) for c in "abcdefghijklmnopqrstuvwxyz'"]
    space, sot, eot = TOKENS.index(" "), TOKENS.index("<sot>"), TOKENS.index("<eot>")

    a = np.zeros((cfg.model.vocab_size, j))  # logit = a @ f + c, with f = (h + 1) / 2 in {0, 1}
    c = np.zeros(cfg.model.vocab_size)
    a[sot, [S, OUT]] = 10
    c[sot] = -15
    a[eot, [START, LET]] = 10
    a[eot, S] = -10
    c[eot] = -5
    for k in letters:
        a[k, START], a[k, LET], a[k, S], a[k, R1] = 14, 10, 10, 4
        a[k, 3:11] = rng.uniform(-0.18, 0.18, 8)
        c[k] = -22
    a[space, LET], a[space, S], a[space, R1], a[space, R2] = 10, 10, -4, 4
    c[space] = -22

    cls = np.zeros(cfg.model.vocab_size, dtype=int)  # 0 outside a turn, 1 word start, 2 letter
    cls[[sot, space]] = 1
    cls[letters] = 2
    with torch.no_grad():
        model.joiner.enc_proj.weight.copy_(torch.from_numpy(enc_w))
        model.joiner.enc_proj.bias.copy_(torch.from_numpy(enc_b))
        model.joiner.out.weight.copy_(torch.from_numpy(a / 2))
        model.joiner.out.bias.copy_(torch.from_numpy(c + a.sum(1) / 2))
        dec = model.decoder
        dec.embedding.weight.zero_()
        dec.embedding.weight[torch.arange(len(cls)), torch.from_numpy(cls)] = 1.0
        dec.conv.weight.zero_()
        for i in range(3):
            dec.conv.weight[i, i, -1] = 1.0  # the last token of the context only
        dec.proj.weight.zero_()
        dec.proj.bias.zero_()
        for i, u in enumerate((OUT, START, LET)):
            dec.proj.weight[u, i] = 20.0
            dec.proj.bias[u] = -10.0
    return rec
