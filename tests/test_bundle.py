"""Bundling a checkpoint: weights + config (with a stored search setting) and a model card of every stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model.bundle import main as bundle
from model.checkpoint import load_model, random_model, save_model
from model.config import StsConfig


def _run(folder: Path, steps: int, seconds: float, families: str) -> Path:
    folder.mkdir(parents=True)
    log = [{"step": s, "loss": 1.0, "audio_seen": seconds * s / steps} for s in range(10, steps + 1, 10)]
    (folder / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    (folder / "run_config.json").write_text(json.dumps({"data": {"families": families}}))
    return folder


def test_bundle_writes_model_and_card_of_all_stages(tmp_path: Path) -> None:
    ckpt = save_model(random_model(StsConfig.tiny(), seed=0), tmp_path / "ckpt")
    first = _run(tmp_path / "run1", 100, 3600.0, "espeak:1,kokoro:3")
    second = _run(tmp_path / "run2", 50, 7200.0, "espeak:1,kokoro:1")
    out = tmp_path / "bundled"
    bundle([str(ckpt), "--run", str(first), "--run", str(second), "--blank-penalty", "0.5", "--out", str(out)])
    model = load_model(out)
    assert model.cfg.streaming.blank_penalty == 0.5
    assert model.cfg.model == StsConfig.tiny().model
    card = (out / "MODEL_CARD.md").read_text()
    assert "Stage 1, run" in card and "Stage 2, run" in card and "blank penalty 0.5" in card
    assert "espeak 0.2 h, kokoro 0.8 h" in card  # 1 h of audio shared 1:3
    assert "In all: 150 steps, about 3.0 hours of audio (espeak 1.2 h, kokoro 1.8 h)" in card


def test_a_bundle_that_continues_another_keeps_its_stages_without_the_old_runs(tmp_path: Path) -> None:
    import shutil

    ckpt = save_model(random_model(StsConfig.tiny(), seed=0), tmp_path / "ckpt")
    first = _run(tmp_path / "run1", 100, 3600.0, "espeak:1,kokoro:3")
    bundle([str(ckpt), "--run", str(first), "--out", str(tmp_path / "v1")])
    shutil.rmtree(first)  # a fresh machine: only the bundled model folder is left of stage 1
    second = _run(tmp_path / "run2", 50, 7200.0, "espeak:1,kokoro:1")
    out = tmp_path / "v2"
    note = "From step 30 with --data-floor-prob 0.8."
    bundle([str(ckpt), "--continues", str(tmp_path / "v1"), "--run", str(second), "--note", note, "--out", str(out)])
    stages = json.loads((out / "training.json").read_text())
    assert [(s["run"], s["steps"]) for s in stages] == [(str(first), 100), (str(second), 50)]
    assert [s.get("note") for s in stages] == [None, note]
    card = (out / "MODEL_CARD.md").read_text()
    assert f"Stage 1, run `{first}`: 100 optimizer steps" in card and f"Stage 2, run `{second}`: 50" in card
    assert f"(espeak 1.0 h, kokoro 1.0 h). {note}" in card
    with pytest.raises(SystemExit):
        bundle([str(ckpt), "--note", note, "--out", str(tmp_path / "v3")])  # a note without a run to describe
    assert "In all: 150 steps, about 3.0 hours of audio (espeak 1.2 h, kokoro 1.8 h)" in card


def test_bundle_ships_the_character_lm_lexicon_and_search_settings(tmp_path: Path) -> None:
    from model.char_lm import LM_FILE, CharNgram
    from model.lexicon import LEXICON_FILE, Lexicon
    from model.recognizer import Recognizer

    ckpt = save_model(random_model(StsConfig.tiny(), seed=0), tmp_path / "ckpt")
    CharNgram.build(["the cat sat on the mat", "a dog and a cat"], order=3, min_count=1).save(tmp_path / "lm")
    Lexicon.build(["the cat sat on the mat", "a dog and a cat"]).save(tmp_path / "lex")
    out = tmp_path / "bundled"
    bundle([str(ckpt), "--lm", str(tmp_path / "lm"), "--lexicon", str(tmp_path / "lex"), "--beam", "4",
            "--lm-weight", "0.4", "--out", str(out)])  # fmt: skip
    rec = Recognizer.from_pretrained(out)
    assert rec.lm is not None and rec.lm.order == 3
    assert rec.spell("dgo") == "dog" and rec.lexicon is not None and len(rec.lexicon) == 8
    assert (rec.config.streaming.beam, rec.config.streaming.lm_weight) == (4, 0.4)
    card = (out / "MODEL_CARD.md").read_text()
    assert (
        "Streaming beam search (a token pending at most 500 ms)" in card
        and "beam 4" in card
        and "lm weight 0.4" in card
    )
    assert "Character 3-gram LM" in card and "Word lexicon (8 words" in card
    bundle([str(ckpt), "--out", str(out)])  # a model without LM and lexicon: the old ones must not stay beside it
    assert not (out / LM_FILE).exists() and Recognizer.from_pretrained(out).lm is None
    assert not (out / LEXICON_FILE).exists() and Recognizer.from_pretrained(out).lexicon is None


def test_bundle_stores_float16_weights_that_load_as_float32(tmp_path: Path) -> None:
    import torch

    model = random_model(StsConfig.tiny(), seed=0)
    ckpt = save_model(model, tmp_path / "ckpt")
    half, full = tmp_path / "half", tmp_path / "full"
    bundle([str(ckpt), "--out", str(half)])
    bundle([str(ckpt), "--store", "float32", "--out", str(full)])
    size = (half / "model.safetensors").stat().st_size
    assert size < 0.55 * (full / "model.safetensors").stat().st_size
    loaded = load_model(half)
    for (name, p), q in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert q.dtype == p.dtype, name  # computed in float32 again
        assert torch.allclose(q, p, rtol=1e-3, atol=1e-4), name  # float16 keeps ~3 significant digits
    assert torch.equal(load_model(full).state_dict()["joiner.out.weight"], model.state_dict()["joiner.out.weight"])
    assert "stored as float16" in (half / "MODEL_CARD.md").read_text()
    assert "stored as float32" in (full / "MODEL_CARD.md").read_text()
