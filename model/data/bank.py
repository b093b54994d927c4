"""The TTS voice bank: builder (command line) and reader (:class:`Bank`).

Layout under the bank root (other code relies on it exactly)::

    <root>/<family>/manifest.jsonl        one JSON object per line, appended as utterances finish
    <root>/<family>/audio/<utt_id>.flac   16 kHz mono FLAC, leading/trailing silence trimmed

Manifest fields: ``utt_id``, ``path`` (relative to the root, "espeak/audio/<utt_id>.flac"), ``text``,
``voice_id``, ``family``, ``split`` ("train" or "dev"), ``speech_start`` / ``speech_end`` (seconds of speech
inside the file), ``duration`` (seconds of the file), ``sample_rate`` (16000) and ``kind`` ("sentence" or
"backchannel": a short listener response such as "yeah" that the meeting simulator drops into others' turns).

Building is deterministic for a seed: utterance ``i`` of (family, split) has the id
``<family>-<split>-s<seed>-<i>`` and its voice and sentence are drawn from a generator seeded by
(seed, family, split, i) only, so an interrupted build resumes where it stopped and adds exactly what an
uninterrupted one would have made. Train voices speak train sentences, dev voices dev sentences.

    python -m model.data.bank --voices espeak,flite,festival --hours 2 --workers 2 --seed 0 --out data/bank
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import random
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from model.data.audio import change_speed, read_audio, speed_rate, trim_silence, write_flac
from model.data.families import get_family
from model.data.text import BACKCHANNELS, load_sentences, write_corpus
from model.data.voices import SAMPLE_RATE, Voice, check_allowed, identity_of

log = logging.getLogger(__name__)

SECONDS_PER_WORD = 0.34  # planning estimate of speech per word at speed 1.0 (espeak default rate ~175 wpm)
SECONDS_PER_UTTERANCE = 0.3  # planning estimate of fixed overhead (trimmed pauses, margins)


# ---------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Utterance:
    """One manifest line; ``path`` is absolute."""

    utt_id: str
    path: Path
    text: str
    voice_id: str
    family: str
    split: str  # "train" or "dev"
    speech_start: float  # seconds from the start of the file to the start of speech
    speech_end: float  # seconds from the start of the file to the end of speech
    duration: float  # seconds, the whole file
    sample_rate: int = SAMPLE_RATE
    kind: str = "sentence"  # "sentence" or "backchannel"
    speed: float = 1.0  # played back this many times faster on load (model.data.audio.change_speed)

    @property
    def speech_duration(self) -> float:
        return self.speech_end - self.speech_start

    def load(self) -> np.ndarray:
        """(num_samples,) float32 at 16 kHz."""
        return change_speed(read_audio(self.path), self.speed)

    def with_speed(self, speed: float) -> Utterance:
        """This utterance played back ``speed`` times faster (pitch and tempo), its times scaled to match."""
        if speed == 1.0:
            return self
        total = self.speed * speed
        scale = speed_rate(self.speed) / speed_rate(total)  # the speed-ups change_speed really applies
        return replace(
            self, speech_start=self.speech_start * scale, speech_end=self.speech_end * scale,
            duration=self.duration * scale, speed=total,
        )  # fmt: skip


def read_manifest(path: str | Path) -> list[dict[str, Any]]:
    """The records of a manifest; a truncated last line (an interrupted write) is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                log.warning("skipping a broken line in %s", path)
    return out


class Bank:
    """The utterances of chosen families of a bank, by split and by voice; audio loads on demand.

    Args:
        root: the bank root (``data/bank``).
        families: families to load; default: those in ``weights``, or every family folder with a manifest.
            A family without a manifest is skipped with a warning.
        weights: sampling weight per family for :meth:`sample_voices` (default 1.0 each); families with
            weight 0 are not loaded.
    """

    def __init__(
        self,
        root: str | Path,
        families: Sequence[str] | None = None,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        self.root = Path(root)
        if families is None:
            if weights is not None:
                families = [f for f, w in weights.items() if w > 0]
            else:
                families = sorted(p.parent.name for p in self.root.glob("*/manifest.jsonl"))
        self.families: list[str] = []
        self.weights: dict[str, float] = {}
        self._utts: list[Utterance] = []
        for family in families:
            records = read_manifest(self.root / family / "manifest.jsonl")
            if not records:
                log.warning("voice bank %s has no family %r; skipped", self.root, family)
                continue
            self.families.append(family)
            self.weights[family] = float((weights or {}).get(family, 1.0))
            for r in records:
                self._utts.append(
                    Utterance(
                        utt_id=r["utt_id"],
                        path=self.root / r["path"],
                        text=r["text"],
                        voice_id=r["voice_id"],
                        family=r["family"],
                        split=r["split"],
                        speech_start=float(r["speech_start"]),
                        speech_end=float(r["speech_end"]),
                        duration=float(r["duration"]),
                        sample_rate=int(r.get("sample_rate", SAMPLE_RATE)),
                        kind=r.get("kind", "sentence"),
                    )
                )
        self._by_voice: dict[tuple[str, str], list[Utterance]] = defaultdict(list)
        self._voice_family: dict[str, str] = {}
        self._voice_split: dict[str, str] = {}
        for u in self._utts:
            self._by_voice[(u.voice_id, u.kind)].append(u)
            self._voice_family[u.voice_id] = u.family
            self._voice_split[u.voice_id] = u.split

    def __len__(self) -> int:
        return len(self._utts)

    def utterances(self, split: str | None = None, kind: str | None = "sentence") -> list[Utterance]:
        """Utterances of ``split`` (None: all) and ``kind`` (None: all kinds)."""
        return [u for u in self._utts if (split is None or u.split == split) and (kind is None or u.kind == kind)]

    def voices(self, split: str | None = None, family: str | None = None) -> list[str]:
        """Voice ids that have sentences, in a fixed order."""
        return sorted(
            v
            for (v, kind) in self._by_voice
            if kind == "sentence"
            and (split is None or self._voice_split[v] == split)
            and (family is None or self._voice_family[v] == family)
        )

    def family_of(self, voice_id: str) -> str:
        return self._voice_family[voice_id]

    def split_of(self, voice_id: str) -> str:
        return self._voice_split[voice_id]

    def utterances_of(self, voice_id: str, kind: str = "sentence") -> list[Utterance]:
        """The utterances of one voice (``kind`` "sentence" or "backchannel")."""
        return self._by_voice.get((voice_id, kind), [])

    def backchannels_of(self, voice_id: str) -> list[Utterance]:
        return self.utterances_of(voice_id, "backchannel")

    def sample_voices(
        self, rng: np.random.Generator, split: str, n: int, distinct_people: bool = False, one_family: bool = False
    ) -> list[str]:
        """``n`` distinct voices of ``split``: each draws a family by weight, then a voice of it uniformly.

        With ``distinct_people`` no two voices share an :func:`identity_of` (perturbations of one engine voice).
        With ``one_family`` the voices after the first come from the first one's family while it has voices left.
        Fewer than ``n`` are returned only when the split has fewer voices (or identities).
        """
        pools = {f: self.voices(split, f) for f in self.families if self.weights[f] > 0}
        pools = {f: v for f, v in pools.items() if v}
        chosen: list[str] = []
        while len(chosen) < n and pools:
            names = sorted(pools)
            if one_family and chosen and self.family_of(chosen[0]) in pools:
                names = [self.family_of(chosen[0])]
            p = np.array([self.weights[f] for f in names])
            family = names[int(rng.choice(len(names), p=p / p.sum()))]
            voice = pools[family][int(rng.integers(len(pools[family])))]
            chosen.append(voice)
            taken = identity_of(voice) if distinct_people else voice
            pools[family] = [v for v in pools[family] if (identity_of(v) if distinct_people else v) != taken]
            if not pools[family]:
                del pools[family]
        return chosen

    def hours(self, split: str | None = None, family: str | None = None, kind: str | None = None) -> float:
        """Hours of audio (whole files) of the selection."""
        us = self.utterances(split, kind)
        return sum(u.duration for u in us if family is None or u.family == family) / 3600

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """{family: {split: {"utterances", "voices", "hours", "backchannels"}}}."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for f in self.families:
            for split in ("train", "dev"):
                us = [u for u in self._utts if u.family == f and u.split == split]
                if not us:
                    continue
                out.setdefault(f, {})[split] = {
                    "utterances": sum(u.kind == "sentence" for u in us),
                    "voices": len(self.voices(split, f)),
                    "hours": sum(u.duration for u in us) / 3600,
                    "backchannels": sum(u.kind == "backchannel" for u in us),
                }
        return out


# ---------------------------------------------------------------------------------------------- building


@dataclass(frozen=True)
class Job:
    """One utterance to synthesise."""

    utt_id: str
    voice: Voice
    text: str
    kind: str  # "sentence" or "backchannel"


def estimate_seconds(text: str, voice: Voice) -> float:
    """Planning estimate of an utterance's length (the real one is measured after synthesis)."""
    return (SECONDS_PER_WORD * len(text.split()) + SECONDS_PER_UTTERANCE) / max(voice.speed, 0.1)


def plan_family(
    family: str,
    voices: Sequence[Voice],
    sentences: Mapping[str, Sequence[str]],
    hours: float,
    seed: int,
    dev_fraction: float,
    backchannels_per_voice: int,
) -> list[Job]:
    """Every job of one family, deterministic for (seed, the arguments): sentences, then backchannels."""
    jobs: list[Job] = []
    used: dict[str, Voice] = {}
    by_split = {s: [v for v in voices if v.split == s] for s in ("train", "dev")}
    dev_hours = hours * dev_fraction if by_split["dev"] else 0.0
    for split, target in (("train", hours - dev_hours), ("dev", dev_hours)):
        pool, texts = by_split[split], sentences.get(split, ())
        if target <= 0 or not pool:
            continue
        assert texts, f"no {split} sentences for family {family}"
        planned, i = 0.0, 0
        while planned < target * 3600:
            r = random.Random(f"{seed}:{family}:{split}:{i}")
            voice = pool[r.randrange(len(pool))]
            text = texts[r.randrange(len(texts))]
            jobs.append(Job(f"{family}-{split}-s{seed}-{i:06d}", voice, text, "sentence"))
            used[voice.voice_id] = voice
            planned += estimate_seconds(text, voice)
            i += 1
    for vi, voice in enumerate(voices):
        if voice.voice_id not in used or backchannels_per_voice <= 0:
            continue
        r = random.Random(f"{seed}:{family}:bc:{voice.voice_id}")
        for wi in sorted(r.sample(range(len(BACKCHANNELS)), min(backchannels_per_voice, len(BACKCHANNELS)))):
            jobs.append(Job(f"{family}-bc-s{seed}-v{vi:04d}-{wi:02d}", voice, BACKCHANNELS[wi], "backchannel"))
    return jobs


def synthesize_job(job: Job, root: Path) -> dict[str, Any] | None:
    """Synthesise, trim and write one job; returns its manifest record (None when it failed or is silent)."""
    voice = job.voice
    try:
        check_allowed(voice)
        audio = get_family(voice.family).synthesize(voice, job.text)
    except Exception as e:  # noqa: BLE001 - one failed utterance must not stop the build
        log.warning("synthesis failed for %s (%s): %s", job.utt_id, voice.voice_id, e)
        return None
    audio, start, end = trim_silence(audio)
    if end - start < 0.1:
        log.warning("silent output for %s (%s)", job.utt_id, voice.voice_id)
        return None
    rel = f"{voice.family}/audio/{job.utt_id}.flac"
    write_flac(root / rel, audio)
    return {
        "utt_id": job.utt_id,
        "path": rel,
        "text": job.text,
        "voice_id": voice.voice_id,
        "family": voice.family,
        "split": voice.split,
        "speech_start": round(start, 6),
        "speech_end": round(end, 6),
        "duration": round(len(audio) / SAMPLE_RATE, 6),
        "sample_rate": SAMPLE_RATE,
        "kind": job.kind,
    }


_ROOT: Path | None = None


def _init_worker(root: Path) -> None:
    global _ROOT
    _ROOT = root


def _worker(job: Job) -> dict[str, Any] | None:
    assert _ROOT is not None
    return synthesize_job(job, _ROOT)


def build_bank(
    out: str | Path,
    families: Sequence[str],
    hours: float,
    seed: int = 0,
    workers: int = 1,
    text_dir: str | Path = "data/text",
    sentences: Mapping[str, Sequence[str]] | None = None,
    dev_fraction: float = 0.1,
    backchannels_per_voice: int = 4,
    max_voices: int | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Synthesise (or finish synthesising) a bank of about ``hours`` hours, shared equally by ``families``.

    Args:
        out: bank root.
        families: family names (``model.data.families``).
        hours: total hours to plan (estimated from word counts; the report gives the real ones).
        seed: fixes voices, sentences and utterance ids.
        workers: synthesis processes (1: in this process).
        text_dir: the text corpus (``model.data.text``); written there first when missing.
        sentences: {"train": [...], "dev": [...]} to use instead of ``text_dir``.
        dev_fraction: share of a family's hours spoken by its dev voices (families without any: none).
        backchannels_per_voice: short responses ("yeah", ...) synthesised for every voice used.
        max_voices: keep at most this many voices per family and split (a deterministic subset), for tests.
        progress: show a tqdm bar.

    Returns:
        {"utterances": new utterances, "seconds": new audio seconds, "wall": wall seconds}.
    """
    root = Path(out)
    if sentences is None:
        text_dir = Path(text_dir)
        if not (text_dir / "train.txt").exists():
            write_corpus(text_dir)
        sentences = {s: load_sentences(text_dir, s) for s in ("train", "dev")}
    pending: list[Job] = []
    manifests: dict[str, Path] = {}
    for name in families:
        family = get_family(name)
        if not family.available():
            log.warning("voice family %s is not installed; skipped", name)
            continue
        voices = family.voices(seed)
        for v in voices:
            check_allowed(v)
        if max_voices is not None:
            keep: list[Voice] = []
            for split in ("train", "dev"):
                pool = [v for v in voices if v.split == split]
                keep += random.Random(f"{seed}:{name}:{split}:subset").sample(pool, min(max_voices, len(pool)))
            voices = [v for v in voices if v in keep]
        jobs = plan_family(name, voices, sentences, hours / len(families), seed, dev_fraction, backchannels_per_voice)
        fam_dir = root / name
        (fam_dir / "audio").mkdir(parents=True, exist_ok=True)
        manifest = fam_dir / "manifest.jsonl"
        manifests[name] = manifest
        if manifest.exists() and manifest.stat().st_size > 0:
            data = manifest.read_bytes()
            if not data.endswith(b"\n"):  # an interrupted write left a partial last line: drop it
                with open(manifest, "rb+") as fb:
                    fb.truncate(data.rfind(b"\n") + 1)
        done = {r["utt_id"] for r in read_manifest(manifest)}
        pending += [j for j in jobs if j.utt_id not in done]
    # the dev voices' utterances first (so that the dev sets can be made while the train part is still being
    # synthesised: model.data.devset reads only dev voices), then sentences before backchannels
    pending.sort(key=lambda j: (j.voice.split != "dev", j.kind != "sentence", j.utt_id))
    t0 = time.monotonic()
    seconds, count = 0.0, 0
    files = {name: open(path, "a", encoding="utf-8") for name, path in manifests.items()}  # noqa: SIM115
    bar = tqdm(total=len(pending), disable=not progress, unit="utt", desc="voice bank")
    try:
        for record in _run(pending, root, workers):
            bar.update(1)
            if record is None:
                continue
            f = files[record["family"]]
            f.write(json.dumps(record) + "\n")
            f.flush()
            seconds += record["duration"]
            count += 1
            bar.set_postfix(hours=f"{seconds / 3600:.3f}")
    finally:
        bar.close()
        for f in files.values():
            f.close()
    return {"utterances": count, "seconds": seconds, "wall": time.monotonic() - t0}


def _run(jobs: list[Job], root: Path, workers: int) -> Iterator[dict[str, Any] | None]:
    if workers <= 1:
        for job in jobs:
            yield synthesize_job(job, root)
        return
    with multiprocessing.get_context("fork").Pool(workers, initializer=_init_worker, initargs=(root,)) as pool:
        yield from pool.imap_unordered(_worker, jobs, chunksize=4)


def print_report(root: str | Path) -> None:
    """Hours, utterances and voices per family and split."""
    bank = Bank(root)
    print(f"{'family':10} {'split':6} {'utts':>7} {'bc':>6} {'voices':>7} {'hours':>8}")
    for family, splits in bank.summary().items():
        for split, s in splits.items():
            print(
                f"{family:10} {split:6} {int(s['utterances']):>7} {int(s['backchannels']):>6} "
                f"{int(s['voices']):>7} {s['hours']:>8.3f}"
            )
    print(f"{'total':10} {'':6} {'':>7} {'':>6} {len(bank.voices()):>7} {bank.hours():>8.3f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voices", default="espeak,flite,festival", help="comma-separated voice families")
    parser.add_argument("--hours", type=float, default=2.0, help="total hours to synthesise (all families)")
    parser.add_argument("--workers", type=int, default=1, help="synthesis processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="data/bank", help="bank root")
    parser.add_argument("--text", default="data/text", help="text corpus folder (made when missing)")
    parser.add_argument("--dev-fraction", type=float, default=0.1, help="share of hours for dev voices")
    parser.add_argument("--backchannels", type=int, default=4, help="backchannel utterances per voice")
    parser.add_argument("--max-voices", type=int, default=None, help="voices per family and split (subset)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    stats = build_bank(
        args.out,
        [f for f in args.voices.split(",") if f],
        args.hours,
        args.seed,
        args.workers,
        args.text,
        dev_fraction=args.dev_fraction,
        backchannels_per_voice=args.backchannels,
        max_voices=args.max_voices,
    )
    wall = max(stats["wall"], 1e-9)
    print(
        f"synthesised {stats['utterances']} utterances, {stats['seconds'] / 3600:.3f} h of audio in "
        f"{wall / 60:.1f} min: {stats['seconds'] / 3600 / (wall / 60):.4f} h of audio per minute"
    )
    print_report(args.out)


if __name__ == "__main__":
    main()
