"""Average the weights of several checkpoints (e.g. the last snapshots of a run) into one model.

python -m model.average exp/sts/step-* --out exp/sts/averaged
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import load_file

from model.checkpoint import WEIGHTS, load_config, save_model
from model.sts import StsModel


def average_checkpoints(dirs: list[Path]) -> StsModel:
    """Element-wise mean of the weights in ``dirs`` (same config); returns a model in eval mode."""
    assert dirs, "nothing to average"
    cfg = load_config(dirs[0])
    total: dict[str, torch.Tensor] = {}
    for d in dirs:
        assert load_config(d) == cfg, f"{d} has another config than {dirs[0]}"
        for k, v in load_file(str(d / WEIGHTS)).items():
            total[k] = total[k] + v.double() if k in total else v.double()
    model = StsModel(cfg)
    model.load_state_dict({k: (v / len(dirs)).to(model.state_dict()[k].dtype) for k, v in total.items()})
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    save_model(average_checkpoints(a.checkpoints), a.out)
    print(f"averaged {len(a.checkpoints)} checkpoints into {a.out}")


if __name__ == "__main__":
    main()
