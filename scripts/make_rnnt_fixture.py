"""Build the stored RNN-T (transducer) loss reference fixture ``tests/fixtures/rnnt_reference.safetensors``.

This script is NOT part of the project's runtime or test dependencies.  It needs torchaudio (and, for the
FastEmit case, ``warprnnt-numba``), which the project does not depend on, so run it in a throwaway venv::

    python3 -m venv /tmp/ta-venv
    /tmp/ta-venv/bin/pip install torch==2.14.1 torchaudio==2.11.0 safetensors numpy \
        warprnnt-numba==0.4.1 numba packaging
    /tmp/ta-venv/bin/python scripts/make_rnnt_fixture.py            # writes the default path
    /tmp/ta-venv/bin/python scripts/make_rnnt_fixture.py --out x.safetensors

Everything runs on CPU.  Inputs come from ``numpy.random.default_rng(SEED)``, so re-running reproduces the
same inputs.  With the same library versions the tensors come out bit-identical (the file bytes do not,
because safetensors writes the metadata JSON in hash order); other versions may differ in the last float32
bits of the reference values.

Contents (one flat safetensors file, no pickles; keys are prefixed per case, ``case0.`` ... ``case3.``):

    caseN.logits          float32 [B, T, U+1, V]  raw joiner logits (NOT log-probs); padding is random junk
    caseN.targets         int32   [B, U]           zero padded past target_lengths
    caseN.logit_lengths   int32   [B]              max(logit_lengths) == T
    caseN.target_lengths  int32   [B]              max(target_lengths) == U
    caseN.loss            float32 [B]              per-sequence loss (reduction="none")
    caseN.grad            float32 [B, T, U+1, V]  d sum_b(loss[b]) / d logits  (zero in padded positions)
    caseN.blank           int32   []               blank index
    caseN.fastemit_lambda float32 []
    caseN.clamp           float32 []               gradient clamp; -1 = no clamping

Cases:

    case0  B=3, T=12, U=6, V=7, varying/padded lengths (one sequence has U > T), blank=0, fastemit 0.
           Reference: torchaudio.functional.rnnt_loss(..., blank=0, clamp=-1, reduction="none",
           fused_log_softmax=True).
    case1  the same inputs as case0 with fastemit_lambda=0.01.  torchaudio has NO FastEmit support
           (its rnnt_loss has no such argument; pytorch/audio issue #2593), so this case comes from
           warprnnt_numba (the NeMo FastEmit implementation; its lambda=0 results match torchaudio).
           Its convention: loss = (1 + lambda) * NLL, and the gradient is the NLL gradient with the
           label-emission part (d NLL / d log p(y_u | t, u)) scaled by (1 + lambda) before the chain rule
           through log_softmax; blank-emission gradients are not scaled.  So the gradient is NOT the
           gradient of the returned loss value.
    case2  B=2, T=40, U=15, V=15, blank=0, fastemit 0, torchaudio.  (V is 15 rather than 31 to keep the
           file under 200 KB; V only enters through log_softmax, the lattice is still 40 x 16.)
    case3  B=4, T=8, U=3, V=5, clamp=-1, target lengths (0, 3, 2, 0) incl. logit length 1, torchaudio.

Semantics (torchaudio, fused_log_softmax=True): with lp = log_softmax(logits, -1), for sequence b with
lengths (T_b, U_b) the loss is -log P(y | x) where
    alpha[0, 0] = 0
    alpha[t, u] = logaddexp(alpha[t-1, u] + lp[t-1, u, blank], alpha[t, u-1] + lp[t, u-1, y[u-1]])
    loss = -(alpha[T_b-1, U_b] + lp[T_b-1, U_b, blank])
and ``grad`` is the gradient of that w.r.t. the raw logits (through the log_softmax).

Before saving, every reference is cross-checked against an independent float64 autograd implementation of
the formulas above (FastEmit: emission log-prob gradients scaled by 1 + lambda, value times 1 + lambda).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from pathlib import Path

import numpy as np
import torch

SEED = 20240611
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "rnnt_reference.safetensors"


def _make_inputs(
    rng: np.random.Generator, logit_lengths: list[int], target_lengths: list[int], vocab: int, blank: int
) -> dict[str, torch.Tensor]:
    batch = len(logit_lengths)
    t_max, u_max = max(logit_lengths), max(target_lengths)
    logits = rng.standard_normal((batch, t_max, u_max + 1, vocab)).astype(np.float32)
    targets = np.zeros((batch, u_max), dtype=np.int32)
    non_blank = np.array([k for k in range(vocab) if k != blank], dtype=np.int32)
    for b, u_len in enumerate(target_lengths):
        targets[b, :u_len] = rng.choice(non_blank, size=u_len)
    return {
        "logits": torch.from_numpy(logits),
        "targets": torch.from_numpy(targets),
        "logit_lengths": torch.tensor(logit_lengths, dtype=torch.int32),
        "target_lengths": torch.tensor(target_lengths, dtype=torch.int32),
    }


def _torchaudio_ref(inp: dict[str, torch.Tensor], blank: int, clamp: float) -> tuple[torch.Tensor, torch.Tensor]:
    import torchaudio.functional as taf

    logits = inp["logits"].clone().requires_grad_(True)
    loss = taf.rnnt_loss(
        logits,
        inp["targets"],
        inp["logit_lengths"],
        inp["target_lengths"],
        blank=blank,
        clamp=clamp,
        reduction="none",
        fused_log_softmax=True,
    )
    loss.sum().backward()
    assert logits.grad is not None
    return loss.detach(), logits.grad.detach()


def _fastemit_ref(
    inp: dict[str, torch.Tensor], blank: int, fastemit_lambda: float
) -> tuple[torch.Tensor, torch.Tensor]:
    from warprnnt_numba.rnnt_loss.rnnt_pytorch import rnnt_loss as numba_rnnt_loss

    logits = inp["logits"].clone().requires_grad_(True)
    loss = numba_rnnt_loss(
        logits,
        inp["targets"],
        inp["logit_lengths"],
        inp["target_lengths"],
        blank=blank,
        reduction="none",
        fastemit_lambda=fastemit_lambda,
        clamp=0.0,  # warprnnt_numba: 0 = no clamping
    )
    loss.sum().backward()
    assert logits.grad is not None
    return loss.detach(), logits.grad.detach()


def _float64_check(
    inp: dict[str, torch.Tensor], blank: int, fastemit_lambda: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Independent float64 autograd reference (plain loops; only for cross-checking)."""
    logits = inp["logits"].double().clone().requires_grad_(True)
    lp = torch.log_softmax(logits, dim=-1)
    losses = []
    for b in range(logits.shape[0]):
        t_len = int(inp["logit_lengths"][b])
        u_len = int(inp["target_lengths"][b])
        y = inp["targets"][b, :u_len].long()
        blank_lp = lp[b, :t_len, : u_len + 1, blank]
        emit_lp = lp[b, :t_len, torch.arange(u_len), y] if u_len > 0 else lp.new_zeros(t_len, 0)
        # FastEmit: value unchanged here, gradient of the emission terms scaled by (1 + lambda).
        emit_lp = (1.0 + fastemit_lambda) * emit_lp - fastemit_lambda * emit_lp.detach()
        alpha: list[list[torch.Tensor]] = [[lp.new_zeros(())] * (u_len + 1) for _ in range(t_len)]
        for t in range(t_len):
            for u in range(u_len + 1):
                if t == 0 and u == 0:
                    continue
                terms = []
                if t > 0:
                    terms.append(alpha[t - 1][u] + blank_lp[t - 1, u])
                if u > 0:
                    terms.append(alpha[t][u - 1] + emit_lp[t, u - 1])
                alpha[t][u] = torch.logsumexp(torch.stack(terms), dim=0)
        losses.append(-(alpha[t_len - 1][u_len] + blank_lp[t_len - 1, u_len]))
    loss = torch.stack(losses)
    loss.sum().backward()
    assert logits.grad is not None
    return (1.0 + fastemit_lambda) * loss.detach(), logits.grad.detach()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    import torchaudio
    from safetensors.torch import save_file

    rng = np.random.default_rng(SEED)
    small = _make_inputs(rng, logit_lengths=[12, 8, 4], target_lengths=[3, 6, 5], vocab=7, blank=0)
    large = _make_inputs(rng, logit_lengths=[40, 33], target_lengths=[12, 15], vocab=15, blank=0)
    empty = _make_inputs(rng, logit_lengths=[5, 8, 1, 1], target_lengths=[0, 3, 2, 0], vocab=5, blank=0)

    # (name, inputs, blank, fastemit_lambda, clamp, reference source)
    specs = [
        ("case0", small, 0, 0.0, -1.0, "torchaudio"),
        ("case1", small, 0, 0.01, -1.0, "warprnnt_numba"),
        ("case2", large, 0, 0.0, -1.0, "torchaudio"),
        ("case3", empty, 0, 0.0, -1.0, "torchaudio"),
    ]

    tensors: dict[str, torch.Tensor] = {}
    metadata = {
        "description": "RNN-T loss reference values; see scripts/make_rnnt_fixture.py",
        "seed": str(SEED),
        "torch_version": torch.__version__,
        "torchaudio_version": torchaudio.__version__,
        "numpy_version": np.__version__,
        "python_version": sys.version.split()[0],
        "loss_semantics": "loss=-log P(y|x) from log_softmax(logits); reduction=none; fused_log_softmax=True",
        "grad_semantics": "grad = d sum(loss) / d raw logits (through log_softmax); zero at padded positions",
        "fastemit_semantics": "warprnnt_numba/NeMo: loss=(1+lambda)*NLL; label-emission grads x(1+lambda)",
    }
    for name, inp, blank, fastemit_lambda, clamp, source in specs:
        if source == "torchaudio":
            loss, grad = _torchaudio_ref(inp, blank, clamp)
        else:
            assert clamp < 0
            loss, grad = _fastemit_ref(inp, blank, fastemit_lambda)
            metadata["warprnnt_numba_version"] = importlib.metadata.version("warprnnt-numba")
        metadata[f"{name}.reference"] = source

        check_loss, check_grad = _float64_check(inp, blank, fastemit_lambda)
        loss_err = (loss.double() - check_loss).abs().max().item()
        grad_err = (grad.double() - check_grad).abs().max().item()
        print(f"{name}: source={source} loss={loss.tolist()} |dloss|={loss_err:.2e} |dgrad|={grad_err:.2e}")
        if loss_err > 1e-4 * max(1.0, check_loss.abs().max().item()) or grad_err > 1e-4:
            raise SystemExit(f"{name}: reference disagrees with the float64 check")

        for key, value in inp.items():
            tensors[f"{name}.{key}"] = value.clone().contiguous()  # no shared storage
        tensors[f"{name}.loss"] = loss.float().contiguous()
        tensors[f"{name}.grad"] = grad.float().contiguous()
        tensors[f"{name}.blank"] = torch.tensor(blank, dtype=torch.int32)
        tensors[f"{name}.fastemit_lambda"] = torch.tensor(fastemit_lambda, dtype=torch.float32)
        tensors[f"{name}.clamp"] = torch.tensor(clamp, dtype=torch.float32)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.out), metadata=metadata)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {len(tensors)} tensors)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
