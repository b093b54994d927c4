"""Voice families and the voice bank: allowed voices only, manifest layout, determinism and resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from model.data.bank import Bank, read_manifest
from model.data.families import FAMILY_NAMES, available_families, get_family
from model.data.text import BACKCHANNELS
from model.data.voices import FORBIDDEN_VOICE_MARKERS, SAMPLE_RATE, check_allowed, identity_of
from tests.bank_fixture import DEV_SENTENCES, TRAIN_SENTENCES, build_tiny_bank, tiny_bank_root

MANIFEST_FIELDS = {
    "utt_id", "path", "text", "voice_id", "family", "split", "speech_start", "speech_end", "duration",
    "sample_rate", "kind",
}  # fmt: skip
OURS = ("espeak", "flite", "festival")


@pytest.fixture(scope="session")
def tiny_bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bank_root(tmp_path_factory)


def _installed(name: str) -> None:
    if not get_family(name).available():
        pytest.skip(f"voice family {name} is not installed (see scripts/setup.sh)")


def test_registry() -> None:
    assert set(OURS) <= set(FAMILY_NAMES)
    for name in OURS:
        assert get_family(name).name == name
    with pytest.raises(KeyError):
        get_family("piper")
    assert set(available_families()) <= set(FAMILY_NAMES)


@pytest.mark.parametrize("name", OURS)
def test_voices_allowed_split_and_unique(name: str) -> None:
    voices = get_family(name).voices(seed=0)
    assert voices and voices == get_family(name).voices(seed=0)
    assert len({v.voice_id for v in voices}) == len(voices)
    for v in voices:
        check_allowed(v)
        text = f"{v.voice_id} {v.spec}".lower()
        assert not any(m in text for m in FORBIDDEN_VOICE_MARKERS), v
        assert v.family == name and v.split in ("train", "dev")
    assert any(v.split == "train" for v in voices)
    if name in ("espeak", "flite"):
        assert any(v.split == "dev" for v in voices), "no held-out voices"
    if name == "flite":
        assert {v.spec for v in voices if v.split == "dev"} == {"slt"}
        assert "slt" not in {v.spec for v in voices if v.split == "train"}


@pytest.mark.parametrize("name", OURS)
def test_synthesize(name: str) -> None:
    _installed(name)
    family = get_family(name)
    voice = family.voices(seed=0)[1]
    audio = family.synthesize(voice, "hello there how are you")
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 0.5 * SAMPLE_RATE < len(audio) < 5 * SAMPLE_RATE, len(audio)
    assert 0.1 < np.abs(audio).max() <= 1.0


def test_manifest_layout(tiny_bank: Path) -> None:
    for family in ("espeak", "flite"):
        records = read_manifest(tiny_bank / family / "manifest.jsonl")
        assert records, family
        for r in records:
            assert set(r) == MANIFEST_FIELDS, set(r) ^ MANIFEST_FIELDS
            assert r["family"] == family and r["sample_rate"] == SAMPLE_RATE
            assert r["path"] == f"{family}/audio/{r['utt_id']}.flac"
            info = sf.info(str(tiny_bank / r["path"]))
            assert info.samplerate == SAMPLE_RATE and info.channels == 1 and info.format == "FLAC"
            assert abs(info.frames / SAMPLE_RATE - r["duration"]) < 1e-3
            assert 0 <= r["speech_start"] < r["speech_end"] <= r["duration"] + 1e-6
            assert r["speech_start"] <= 0.06 and r["duration"] - r["speech_end"] <= 0.06  # trimmed
            if r["kind"] == "backchannel":
                assert r["text"] in BACKCHANNELS
            else:
                sentences = TRAIN_SENTENCES if r["split"] == "train" else DEV_SENTENCES
                assert r["text"] in sentences, r
        voice_split = {v.voice_id: v.split for v in get_family(family).voices(seed=0)}
        assert all(voice_split[r["voice_id"]] == r["split"] for r in records)
        # synthesised dev voices first (backchannels included), so dev sets can be made before the train part
        splits = [r["split"] for r in records]
        assert "dev" in splits and splits == sorted(splits), splits


def test_resume_gives_the_same_bank(tiny_bank: Path, tmp_path: Path) -> None:
    root = tmp_path / "bank"
    shutil.copytree(tiny_bank, root)
    manifest = root / "espeak" / "manifest.jsonl"
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text("".join(lines[: len(lines) // 2]) + lines[len(lines) // 2][:30])  # killed mid-line
    stats = build_tiny_bank(root)
    assert 0 < stats["utterances"] <= len(lines) - len(lines) // 2
    key = lambda r: (r["utt_id"], r["voice_id"], r["text"], r["split"])  # noqa: E731
    for family in ("espeak", "flite"):
        want = sorted(map(key, read_manifest(tiny_bank / family / "manifest.jsonl")))
        assert sorted(map(key, read_manifest(root / family / "manifest.jsonl"))) == want
    assert build_tiny_bank(root)["utterances"] == 0  # complete: nothing to do
    for line in manifest.read_text().splitlines():
        json.loads(line)


def test_bank_reader(tiny_bank: Path) -> None:
    bank = Bank(tiny_bank)
    assert bank.families == ["espeak", "flite"]
    train, dev = bank.voices("train"), bank.voices("dev")
    assert train and dev and not set(train) & set(dev)
    assert all(u.split == "train" for u in bank.utterances("train"))
    voice = train[0]
    utts = bank.utterances_of(voice)
    assert utts and all(u.voice_id == voice and u.kind == "sentence" for u in utts)
    assert all(u.text in BACKCHANNELS for u in bank.backchannels_of(voice))
    audio = utts[0].load()
    assert audio.dtype == np.float32 and abs(len(audio) / SAMPLE_RATE - utts[0].duration) < 1e-3
    rng = np.random.default_rng(0)
    chosen = bank.sample_voices(rng, "train", 4)
    assert len(set(chosen)) == 4 and set(chosen) <= set(train)
    only_flite = Bank(tiny_bank, weights={"espeak": 0.0, "flite": 1.0, "kokoro": 2.0})
    assert only_flite.families == ["flite"]
    assert all(only_flite.family_of(v) == "flite" for v in only_flite.sample_voices(rng, "train", 3))
    assert bank.hours() > 0.02


def test_identity_of_strips_perturbations() -> None:
    assert identity_of("espeak:en-gb-scotland+f4:p54:s188") == identity_of("espeak:en-us+f4:p42:s209") == "espeak:f4"
    assert identity_of("espeak:en-us+m6:p37:s203") != identity_of("espeak:en-us+f4:p37:s203")
    assert identity_of("flite:slt:p0.90:s0.90") == identity_of("flite:slt:p1.00:s1.09") == "flite:slt"
    assert identity_of("pico:en-GB:p1.50:s1.08") == "pico:en-GB" != identity_of("pico:en-US:p1.50:s1.08")
    assert identity_of("kokoro:dev05:jf_tebukuro*0.517+jm_kumo*0.483:s1.10") == "kokoro:jf_tebukuro"
    assert identity_of("kokoro:dev04:jf_tebukuro*0.411+jm_kumo*0.589:s0.96") == "kokoro:jm_kumo"
    assert identity_of("festival:kal_diphone:p1.00:s1.00") == "festival:kal_diphone"


def test_distinct_people(tiny_bank: Path) -> None:
    """With ``distinct_people`` no two voices of a draw share an identity; without, they may."""
    bank = Bank(tiny_bank)
    people = {identity_of(v) for v in bank.voices("train")}
    shared = [False, False]
    for seed in range(30):
        for k, distinct in enumerate((False, True)):
            chosen = bank.sample_voices(np.random.default_rng(seed), "train", len(people), distinct)
            ids = [identity_of(v) for v in chosen]
            shared[k] |= len(set(ids)) < len(ids)
            if distinct:
                assert len(set(ids)) == len(ids) == len(people)
    assert shared == [True, False]


def test_packed_copy_is_a_smaller_bank_of_the_same_speech(tiny_bank: Path, tmp_path: Path) -> None:
    from model.data.pack import pack

    hours = {"espeak": 0.005, "flite": 0.005}
    size = pack(tiny_bank, tmp_path / "packed", hours, dev_utterances=2, seed=0, level=0.95)
    packed, whole = Bank(tmp_path / "packed"), Bank(tiny_bank)
    kept = {u.utt_id: u for u in packed.utterances(kind=None)}
    originals = {u.utt_id: u for u in whole.utterances(kind=None)}
    assert set(kept) < set(originals) and packed.families == ["espeak", "flite"]
    for family, h in hours.items():
        train = [u for u in kept.values() if u.family == family and u.split == "train" and u.kind == "sentence"]
        seconds = sum(u.duration for u in train)
        assert h * 3600 <= seconds <= h * 3600 + max(u.duration for u in train)  # drawn up to the budget
        assert len([u for u in kept.values() if u.family == family and u.split == "dev"]) == 2
        assert {
            u.utt_id for u in whole.utterances(kind="backchannel") if u.family == family and u.split == "train"
        } <= set(kept)
    flac = sum(originals[k].path.stat().st_size for k in kept)
    assert size == sum(u.path.stat().st_size for u in kept.values()) and size < flac / 2
    for utt_id in list(kept)[:5]:
        a, b = kept[utt_id].load(), originals[utt_id].load()
        assert len(a) == len(b) and kept[utt_id].text == originals[utt_id].text
        snr = 10 * np.log10(np.sum(b**2) / np.sum((a - b) ** 2))
        assert snr > 10, f"{utt_id}: {snr:.1f} dB"  # the same speech, aligned, through a speech codec
