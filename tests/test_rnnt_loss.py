"""Our RNN-T loss against the stored torchaudio (and warprnnt-numba FastEmit) reference fixture."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from model.rnnt_loss import rnnt_loss, transducer_nll

FIXTURE = Path(__file__).parent / "fixtures" / "rnnt_reference.safetensors"


def load_case(i: int) -> dict[str, torch.Tensor]:
    with safe_open(str(FIXTURE), "pt") as f:
        return {k.split(".", 1)[1]: f.get_tensor(k) for k in f.keys() if k.startswith(f"case{i}.")}


@pytest.mark.parametrize("case", [0, 1, 2, 3])
def test_loss_and_grad_match_reference(case: int) -> None:
    c = load_case(case)
    lam = float(c["fastemit_lambda"])
    logits = c["logits"].clone().requires_grad_(True)
    loss = rnnt_loss(
        logits, c["targets"], c["logit_lengths"], c["target_lengths"], blank=int(c["blank"]), fastemit_lambda=lam
    )
    loss.sum().backward()
    assert logits.grad is not None
    # the FastEmit reference reports (1 + lambda) * NLL; ours reports the NLL itself (same gradients)
    torch.testing.assert_close(loss * (1 + lam), c["loss"], rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(logits.grad, c["grad"], rtol=1e-3, atol=1e-5)


def test_fastemit_changes_gradient_not_value() -> None:
    c = load_case(0)
    args = (c["targets"], c["logit_lengths"], c["target_lengths"])
    a = c["logits"].clone().requires_grad_(True)
    b = c["logits"].clone().requires_grad_(True)
    la, lb = rnnt_loss(a, *args), rnnt_loss(b, *args, fastemit_lambda=0.5)
    la.sum().backward()
    lb.sum().backward()
    assert a.grad is not None and b.grad is not None
    torch.testing.assert_close(la, lb)
    assert (a.grad - b.grad).abs().max() > 1e-3


def test_label_penalty_raises_loss_of_late_paths() -> None:
    torch.manual_seed(0)
    logits = torch.randn(1, 10, 3, 5)
    targets = torch.tensor([[1, 2]])
    lens = (torch.tensor([10]), torch.tensor([2]))
    base = rnnt_loss(logits, targets, *lens)
    penalty = torch.zeros(1, 10, 2)
    penalty[0, 5:, 0] = 3.0  # emitting the first label at frame >= 5 costs 3 nats
    penalised = rnnt_loss(logits, targets, *lens, label_penalty=penalty)
    assert float(penalised) > float(base)
    # a penalty no path can avoid (every frame) adds exactly its amount
    everywhere = torch.zeros(1, 10, 2)
    everywhere[0, :, 1] = 2.0
    torch.testing.assert_close(rnnt_loss(logits, targets, *lens, label_penalty=everywhere), base + 2.0)


def test_handwritten_backward_passes_gradcheck() -> None:
    """The beta-recursion gradients against finite differences, with ragged lengths and an empty target."""
    g = torch.Generator().manual_seed(3)
    n, t, u = 3, 6, 4
    blank = torch.log_softmax(torch.randn(n, t, u + 1, 2, generator=g, dtype=torch.float64), -1)[..., 0]
    label = torch.log_softmax(torch.randn(n, t, u, 2, generator=g, dtype=torch.float64), -1)[..., 0]
    label[1, :, 2] = -1.0e4  # a pruned node, as the pruned loss writes them
    blank.requires_grad_(True)
    label.requires_grad_(True)
    lengths, target_lengths = torch.tensor([6, 4, 5]), torch.tensor([4, 3, 0])
    assert torch.autograd.gradcheck(lambda b, y: transducer_nll(b, y, lengths, target_lengths), (blank, label))
