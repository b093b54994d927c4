"""Bundle a trained checkpoint as the package's default model, with its model card.

    python -m model.bundle exp/sts/averaged --run exp/sts --bank data/bank --eval exp/eval.md --out model/pretrained

``--run`` may be given once per training stage, oldest first, when a run continued from an earlier one's model.
The stages live on with the model (``training.json``: one summary per stage), so a later bundle that continued
from this one lists them without the old run folders: ``--continues model/pretrained --run exp/next``.

Writes ``model.safetensors`` (weights only, no optimizer; stored as float16 unless ``--store float32``, loaded back
as float32) + ``config.json`` and ``MODEL_CARD.md``: architecture,
parameter count, training run (steps, audio hours seen, data mix, voice families and hours in the bank) and the
evaluation table produced by ``sts-eval``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from model.char_lm import LM_FILE, CharNgram
from model.checkpoint import load_model, save_model, stored_dtype
from model.config import StreamingConfig, add_search_options, search_overrides
from model.lexicon import LEXICON_FILE, Lexicon

TRAINING_FILE = "training.json"  # in a model folder: [stage summary, ...], oldest first


def training_summary(run: Path) -> dict[str, Any]:
    """Steps, audio seen and settings of a training run, from its log and run config."""
    steps, audio_seconds, last_loss, dev = 0, 0.0, None, None
    for line in (run / "log.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "dev_loss" in rec:
            dev = rec["dev_loss"]
        elif "loss" in rec:
            steps = rec["step"]
            last_loss = rec.get("smoothed", rec["loss"])
            audio_seconds = rec.get("audio_seen", audio_seconds)
    cfg = json.loads((run / "run_config.json").read_text()) if (run / "run_config.json").exists() else {}
    return {
        "run": str(run),
        "steps": steps,
        "last_loss": last_loss,
        "dev_loss": dev,
        "config": cfg,
        "audio_seen_hours": audio_seconds / 3600,
    }


def family_hours(t: dict[str, Any]) -> dict[str, float]:
    """Expected hours of training audio per voice family: the audio seen, shared by the families' weights."""
    spec = t["config"].get("data", {}).get("families", "")
    weights = {f: float(w or 1) for f, _, w in (x.partition(":") for x in spec.split(",") if x)}
    total = sum(weights.values())
    return {f: t["audio_seen_hours"] * w / total for f, w in weights.items() if w > 0} if total else {}


def earlier_stages(model_dir: Path) -> list[dict[str, Any]]:
    """The stage summaries stored with a bundled model (``[]`` when it has none)."""
    path = model_dir / TRAINING_FILE
    return json.loads(path.read_text()) if path.is_file() else []


def training_lines(stages: list[dict[str, Any]]) -> list[str]:
    """The model card's training section: one entry per stage (a :func:`training_summary`), then the totals."""
    lines = ["## Training"]
    steps = hours = 0.0
    by_family: dict[str, float] = {}
    for k, t in enumerate(stages, 1):
        steps, hours = steps + t["steps"], hours + t["audio_seen_hours"]
        fam = family_hours(t)
        for f, h in fam.items():
            by_family[f] = by_family.get(f, 0.0) + h
        mix = ", ".join(f"{f} {h:.1f} h" for f, h in fam.items())
        hours_k = t["audio_seen_hours"]
        note = f" {t['note']}" if t.get("note") else ""
        lines += [f"- Stage {k}, run `{t['run']}`: {t['steps']} optimizer steps, about {hours_k:.1f} hours of "
                  f"simulated meeting audio ({mix or 'families not recorded'}).{note}", "", "```json",
                  json.dumps(t["config"], indent=1), "```", ""]  # fmt: skip
    if len(stages) > 1:
        mix = ", ".join(f"{f} {h:.1f} h" for f, h in sorted(by_family.items()))
        lines += [f"- In all: {steps:.0f} steps, about {hours:.1f} hours of audio ({mix}).", ""]
    return lines


def bank_summary(bank: Path) -> dict[str, Any]:
    from model.data.bank import Bank

    return Bank(bank).summary()


def _search(s: StreamingConfig) -> str:
    """The kind of search in words, e.g. "Streaming beam search (a token pending at most 500 ms)"."""
    if s.beam == 1:
        return "Greedy search"
    bound = f"a token pending at most {s.max_pending_ms} ms" if s.max_pending_ms else "no bound on pending tokens"
    return f"Streaming beam search ({bound})"


def _blocks(n: int) -> str:
    """The residual blocks ``model.grow`` added after a stack, in words ("" for none)."""
    return f" + {n} residual LSTM block{'s' if n > 1 else ''} (added by `model.grow`)" if n else ""


def card(model_dir: Path, stages: list[dict[str, Any]], bank: Path | None, eval_md: Path | None) -> str:
    model = load_model(model_dir)
    cfg = model.cfg
    params = sum(p.numel() for p in model.parameters())
    stored = stored_dtype(model_dir)
    m = cfg.model
    lines = [
        f"# Model card: `{cfg.name}`",
        "",
        "Separator-transducer-segmenter for streaming two-channel transcription of overlapped speech "
        "(Sklyar et al., Interspeech 2022).",
        "",
        "## Architecture",
        f"- {params / 1e6:.2f}M parameters (stored as {stored}, computed in float32); 80-bin log-mel (25 ms / 10 ms), "
        "causal, right context 0.",
        f"- Stride-4 conv + causal conv (40 ms frames), {m.mixture_layers} mixture LSTM layers of {m.d_model}"
        + _blocks(m.mixture_blocks)
        + ", "
        + (
            f"separator ({m.separator_layers} LSTM layer + 2 sigmoid masks), "
            if m.num_channels == 2
            else "no separator, "
        )
        + f"{m.channel_layers} channel LSTM layers{_blocks(m.channel_blocks)} tied across {m.num_channels} channel(s).",
        f"- Stateless prediction network (context {m.context_size}), joiner {m.joiner_dim}, vocabulary {m.vocab_size} "
        "(blank, a-z, space, apostrophe, <sot>, <eot>). "
        + _search(cfg.streaming)
        + f", {cfg.streaming.chunk_frames * cfg.features.hop_length * 1000 // cfg.features.sample_rate} ms chunks"
        + cfg.streaming.search_note()
        + ".",
    ]
    lm = CharNgram.load_if_present(model_dir)
    if lm is not None:
        lines.append(
            f"- Character {lm.order}-gram LM fused in the search ({len(lm.keys):,} contexts, interpolated "
            "Witten-Bell, trained on the text corpus's train split: `python -m model.char_lm data/text/train.txt "
            f"--order {lm.order} --min-count {lm.min_count}`)."
        )
    lexicon = Lexicon.load_if_present(model_dir)
    if lexicon is not None:
        lines.append(
            f"- Word lexicon ({len(lexicon):,} words of the text corpus's train split: `python -m model.lexicon "
            "data/text/train.txt`): a completed word it does not hold becomes its most frequent word one edit away."
        )
    lines.append("")
    if stages:
        lines += training_lines(stages)
    if bank is not None and bank.exists():
        lines += ["## Voice bank when bundled (hours of speech by family and split; earlier stages trained on banks "
                  "of other sizes)", "",
                  "| family | split | utterances | voices | hours |", "|---|---|---|---|---|"]  # fmt: skip
        for fam, splits in bank_summary(bank).items():
            for split, s in splits.items():
                lines.append(f"| {fam} | {split} | {s['utterances']} | {s['voices']} | {s['hours']:.2f} |")
        lines += ["", "Dev voices (held out of training): espeak variants m6, f4, klatt3, john, shelby; flite slt; "
                  "one Pico setting (en-GB, pitch 1.35/1.5); Kokoro mixes weighting both jf_tebukuro and jm_kumo. "
                  "No piper or festival HTS voice is used anywhere.", ""]  # fmt: skip
    if eval_md is not None and eval_md.exists():
        lines += ["## Scores (`sts-eval`, streaming decode)", "", eval_md.read_text(), ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--run", type=Path, action="append", default=[],
                   help="training run folder (log.jsonl, run_config.json); once per stage, oldest first")  # fmt: skip
    p.add_argument("--continues", type=Path, default=None,
                   help="bundled model folder this checkpoint continued from: its stages come first")  # fmt: skip
    p.add_argument("--note", default=None,
                   help="a sentence on the newest run that its config does not tell (e.g. an option added when "
                   "it was resumed), printed with its stage")  # fmt: skip
    p.add_argument("--bank", type=Path, default=None)
    p.add_argument("--eval", type=Path, default=None, help="Markdown table from sts-eval --out")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "pretrained")
    p.add_argument("--lm", type=Path, default=None, help="folder of the character LM to ship with the model")
    p.add_argument("--lexicon", type=Path, default=None,
                   help="folder of the word lexicon to ship (default: the checkpoint's own)")  # fmt: skip
    p.add_argument("--store", choices=("float16", "float32"), default="float16",
                   help="how the weights are stored (the model computes in float32 either way)")  # fmt: skip
    add_search_options(p, "store this search setting with the model")
    a = p.parse_args(argv)
    if a.note and not a.run:
        p.error("--note describes the newest --run: give the run")
    stages = (earlier_stages(a.continues) if a.continues else []) + [training_summary(r) for r in a.run]
    if a.note:
        stages[-1]["note"] = a.note
    model = load_model(a.checkpoint)
    streaming = model.cfg.streaming.overridden(**search_overrides(a))
    model.cfg = replace(model.cfg, streaming=streaming)
    save_model(model, a.out, half=a.store == "float16")
    lm = CharNgram.load(a.lm) if a.lm is not None else CharNgram.load_if_present(a.checkpoint)
    if lm is not None:
        lm.save(a.out)
    elif (a.out / LM_FILE).exists():
        (a.out / LM_FILE).unlink()  # an LM left from an earlier bundle belongs to another model
    lexicon = Lexicon.load(a.lexicon) if a.lexicon is not None else Lexicon.load_if_present(a.checkpoint)
    if lexicon is not None:
        lexicon.save(a.out)
    elif (a.out / LEXICON_FILE).exists():
        (a.out / LEXICON_FILE).unlink()
    (a.out / TRAINING_FILE).write_text(json.dumps(stages, indent=1) + "\n")
    (a.out / "MODEL_CARD.md").write_text(card(a.out, stages, a.bank, a.eval))
    print(f"bundled {a.checkpoint} into {a.out}")


if __name__ == "__main__":
    main()
