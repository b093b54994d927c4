"""Average the weights of several checkpoints (e.g. the last snapshots of a run) into one model.

python -m model.average exp/sts/step-* --out exp/sts/averaged

With ``--weights`` the mean is weighted: ``python -m model.average START END --weights 0.5,0.5`` interpolates
between a run's starting point and its end (weight-space ensembling, as in WiSE-FT, Wortsman et al. 2022), which
keeps some of what the start did better than the end.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from safetensors.torch import load_file

from model.checkpoint import WEIGHTS, load_config, save_model
from model.sts import StsModel


def average_checkpoints(dirs: list[Path], weights: list[float] | None = None) -> StsModel:
    """Element-wise mean of the weights in ``dirs`` (same features and architecture), weighted by ``weights`` (one
    per checkpoint, non-negative, normalised to sum to 1; equal when None); returns a model in eval mode with the
    first checkpoint's config (its search settings included)."""
    assert dirs, "nothing to average"
    weights = [1.0] * len(dirs) if weights is None else list(weights)
    if len(weights) != len(dirs) or not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"need {len(dirs)} finite non-negative weights with a positive sum, got {weights}")
    weights = [w / sum(weights) for w in weights]
    cfg = load_config(dirs[0])
    mean: dict[str, torch.Tensor] = {}
    for d, w in zip(dirs, weights, strict=True):
        other = load_config(d)
        if (other.features, other.model) != (cfg.features, cfg.model):
            raise ValueError(f"{d} has other features or another architecture than {dirs[0]}")
        for k, v in load_file(str(d / WEIGHTS)).items():
            mean[k] = mean[k] + w * v.double() if k in mean else w * v.double()
    model = StsModel(cfg)
    dtypes = {k: v.dtype for k, v in model.state_dict().items()}
    model.load_state_dict({k: (v if dtypes[k].is_floating_point else v.round()).to(dtypes[k]) for k, v in mean.items()})
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--weights", default=None, help="comma-separated weight per checkpoint (default: equal)")
    a = p.parse_args(argv)
    try:
        weights = None if a.weights is None else [float(w) for w in a.weights.split(",")]
        model = average_checkpoints(a.checkpoints, weights)
    except (ValueError, FileNotFoundError) as e:
        p.error(str(e))
    save_model(model, a.out)
    print(f"averaged {len(a.checkpoints)} checkpoints into {a.out}")


if __name__ == "__main__":
    main()
