"""Checkpoints as safetensors weights + JSON config (never pickles)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from model.config import StsConfig
from model.sts import StsModel
from model.tokenizer import BLANK_ID

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
BUNDLED_DIR = Path(__file__).resolve().parent / "pretrained"
STORED_DTYPE = "stored_dtype"  # safetensors metadata key: how the weights are stored


def save_model(model: StsModel, directory: str | Path, half: bool = False) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``directory``.

    With ``half`` the floating-point weights are stored as float16 (half the bytes; the bundled model ships so);
    ``load_model`` turns them back into float32, so the model always computes in float32.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    meta = {"format": "pt", "name": model.cfg.name, STORED_DTYPE: "float16" if half else "float32"}
    save_file(state, str(out / WEIGHTS), metadata=meta)
    (out / CONFIG).write_text(model.cfg.to_json() + "\n")
    return out


def stored_dtype(directory: str | Path) -> str:
    """How the weights in ``directory`` are stored ("float16" or "float32"), from the safetensors metadata."""
    from safetensors import safe_open

    with safe_open(str(Path(directory) / WEIGHTS), framework="pt") as f:
        return (f.metadata() or {}).get(STORED_DTYPE, "float32")


def load_config(directory: str | Path) -> StsConfig:
    return StsConfig.from_dict(json.loads((Path(directory) / CONFIG).read_text()))


def checkpoint_dir(directory: str | Path | None = None) -> Path:
    """``directory`` as a path; the bundled model's folder when None."""
    return Path(directory) if directory is not None else BUNDLED_DIR


def load_model(directory: str | Path | None = None) -> StsModel:
    """Rebuild a model from ``directory`` (the bundled model when None), in eval mode on the CPU."""
    path = checkpoint_dir(directory)
    if not (path / WEIGHTS).is_file() or not (path / CONFIG).is_file():
        raise FileNotFoundError(f"no checkpoint ({WEIGHTS} + {CONFIG}) in {path}")
    model = StsModel(load_config(path))
    model.load_state_dict(load_file(str(path / WEIGHTS), device="cpu"))  # copies (and widens float16) into float32
    return model.eval()


def random_model(cfg: StsConfig, seed: int = 0, lively: bool = True) -> StsModel:
    """A model with seeded random weights (tests and service development).

    With ``lively`` the joiner is sharpened (output weights x10, encoder projection x5, blank bias +2) so that
    the untrained model emits a varied, input-dependent mix of tokens and blanks instead of all blanks or one
    token on every frame; tests that compare decodes then compare something.
    """
    torch.manual_seed(seed)
    model = StsModel(cfg).eval()
    if lively:
        with torch.no_grad():
            model.joiner.out.weight.mul_(10.0)
            model.joiner.enc_proj.weight.mul_(5.0)
            model.joiner.out.bias[BLANK_ID] += 2.0
    return model
