"""Exactly resumable training checkpoints as safetensors + JSON (no pickles).

A checkpoint directory holds ``model.safetensors`` + ``config.json`` (a loadable model), ``optimizer.safetensors``
(every tensor of the optimizer state), and ``train_state.json`` (step, data position, scheduler, the optimizer's
non-tensor state and the RNG state).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from model.checkpoint import WEIGHTS, save_model
from model.sts import StsModel

OPTIMIZER = "optimizer.safetensors"
STATE = "train_state.json"


def save_training(directory: Path, model: StsModel, optimizer: torch.optim.Optimizer, info: dict[str, Any]) -> None:
    """Write a resumable checkpoint; written to a temporary folder first and renamed, so never half-written."""
    tmp = directory.with_name(directory.name + ".tmp")
    save_model(model, tmp)
    opt = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in opt["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{pid}.{k}"] = v.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(pid), {})[k] = v
    save_file(tensors, str(tmp / OPTIMIZER))
    state = dict(info, optimizer_param_groups=opt["param_groups"], optimizer_scalars=scalars)
    state["torch_rng"] = torch.get_rng_state().tolist()
    (tmp / STATE).write_text(json.dumps(state))
    if directory.exists():
        old = directory.with_name(directory.name + ".old")
        directory.rename(old)
        tmp.rename(directory)
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    else:
        tmp.rename(directory)


def load_training(directory: Path, model: StsModel, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore model, optimizer and RNG from ``directory``; returns the saved info (step, ...)."""
    model.load_state_dict(load_file(str(directory / WEIGHTS)))
    state = json.loads((directory / STATE).read_text())
    tensors = load_file(str(directory / OPTIMIZER))
    opt_state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        pid, name = key.split(".", 1)
        opt_state.setdefault(int(pid), {})[name] = v
    for pid, sc in state.pop("optimizer_scalars").items():
        opt_state.setdefault(int(pid), {}).update(sc)
    optimizer.load_state_dict({"state": opt_state, "param_groups": state.pop("optimizer_param_groups")})
    torch.set_rng_state(torch.tensor(state.pop("torch_rng"), dtype=torch.uint8))
    return state
