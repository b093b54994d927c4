"""Convert the speaker encoder that PyPI's resemblyzer wheel ships into our d-vector format (safetensors + JSON).

    .venv/bin/pip download resemblyzer==0.1.4 --no-deps -d /tmp/rz
    .venv/bin/python scripts/convert_dvector.py /tmp/rz/Resemblyzer-0.1.4-py3-none-any.whl --out DIR

The wheel's ``resemblyzer/pretrained.pt`` is read with ``torch.load(weights_only=True)`` (tensors only, no code
runs); its GE2E similarity scale and bias and the optimizer state are left out. The package is Apache-2.0;
its licence goes along with the weights.
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import torch

from model.speaker import TrainingInfo
from model.speaker_dvector import DVectorConfig, DVectorEmbedder, DVectorNet

MEMBER = "resemblyzer/pretrained.pt"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("wheel", help="Resemblyzer-0.1.4-py3-none-any.whl")
    p.add_argument("--out", required=True, help="folder for speaker.safetensors + speaker.json")
    a = p.parse_args()
    with zipfile.ZipFile(a.wheel) as wheel:
        checkpoint = torch.load(io.BytesIO(wheel.read(MEMBER)), map_location="cpu", weights_only=True)
        licence = next(n for n in wheel.namelist() if n.endswith(".dist-info/LICENSE"))
        licence_text = wheel.read(licence).decode("utf-8")
    state = {k: v for k, v in checkpoint["model_state"].items() if not k.startswith("similarity_")}
    net = DVectorNet(DVectorConfig())
    net.load_state_dict(state)
    info = TrainingInfo(data=f"resemblyzer 0.1.4 (Apache-2.0) pretrained.pt, GE2E step {checkpoint['step']}, "
                        "trained by its authors on real speakers (LibriSpeech, VoxCeleb 1 and 2)")  # fmt: skip
    out = Path(a.out)
    DVectorEmbedder(net, info=info).save(out)
    (out / "LICENSE.resemblyzer").write_text(licence_text, encoding="utf-8")
    print(f"wrote {out} ({sum(v.numel() for v in state.values()):,} parameters)")


if __name__ == "__main__":
    main()
