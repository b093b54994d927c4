"""A small copy of a voice bank with its audio in Ogg Opus, for a machine the whole bank cannot travel to.

A GPU machine lent for training takes at most 64 MiB of luggage and reaches no registry, so it can neither
carry the 1.3 GB FLAC bank nor synthesise one. This writes a seeded random part of each family:

    python -m model.data.pack --bank data/bank --out pack/bank --seed 0 \\
        --hours kokoro:2.2,espeak:0.35,flite:0.35,pico:0.35,festival:0.2 --dev-utterances 40

- train sentences of each family drawn at random up to the hours given (seconds of the files);
- every train backchannel ("yeah", "mm-hmm": short) of the family;
- ``--dev-utterances`` dev sentences of the family (the trainer's dev batches draw from them), if it has any.

Audio is written at 16 kHz as Ogg Opus at ``--level`` (soundfile's compression level: 0.95 gives about
20 kbit/s, near 2.5 kB per second of speech, with a waveform SNR about 20 dB against the FLAC and no delay).
Manifest lines keep every field but ``path``. The copy is a bank like any other (``model.data.bank.Bank``).
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Mapping
from pathlib import Path

from tqdm import tqdm

from model.data.audio import read_audio
from model.data.bank import read_manifest
from model.data.voices import SAMPLE_RATE


def choose(records: list[dict], hours: float, dev_utterances: int, seed: int) -> list[dict]:
    """The manifest lines of one family that the copy keeps, in manifest order."""
    rng = random.Random(seed)
    sentences = [r for r in records if r["split"] == "train" and r.get("kind", "sentence") == "sentence"]
    rng.shuffle(sentences)
    keep: set[str] = set()
    budget = hours * 3600.0
    for r in sentences:
        if budget <= 0:
            break
        keep.add(r["utt_id"])
        budget -= float(r["duration"])
    keep.update(r["utt_id"] for r in records if r["split"] == "train" and r.get("kind") == "backchannel")
    dev = [r for r in records if r["split"] == "dev" and r.get("kind", "sentence") == "sentence"]
    keep.update(r["utt_id"] for r in rng.sample(dev, min(dev_utterances, len(dev))))
    return [r for r in records if r["utt_id"] in keep]


def pack(bank: Path, out: Path, hours: Mapping[str, float], dev_utterances: int, seed: int, level: float) -> int:
    """Writes the copy under ``out``; returns its size in bytes."""
    import soundfile as sf

    total = 0
    for family, h in hours.items():
        records = choose(read_manifest(bank / family / "manifest.jsonl"), h, dev_utterances, seed)
        (out / family / "audio").mkdir(parents=True, exist_ok=True)
        with (out / family / "manifest.jsonl").open("w") as manifest:
            for r in tqdm(records, desc=family):
                path = f"{family}/audio/{r['utt_id']}.ogg"
                target = out / path
                if not target.exists():
                    audio = read_audio(bank / r["path"])
                    sf.write(str(target), audio, SAMPLE_RATE, format="OGG", subtype="OPUS", compression_level=level)
                total += target.stat().st_size
                manifest.write(json.dumps({**r, "path": path}) + "\n")
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bank", default="data/bank")
    parser.add_argument("--out", required=True)
    parser.add_argument("--hours", required=True, help="family:hours of train sentences, comma-separated")
    parser.add_argument("--dev-utterances", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--level", type=float, default=0.95, help="Opus compression level, 0 (best) to 1")
    args = parser.parse_args(argv)
    hours = {k: float(v) for k, v in (part.split(":") for part in args.hours.split(",") if part)}
    size = pack(Path(args.bank), Path(args.out), hours, args.dev_utterances, args.seed, args.level)
    print(f"{args.out}: {size / 2**20:.1f} MiB of audio")


if __name__ == "__main__":
    main()
