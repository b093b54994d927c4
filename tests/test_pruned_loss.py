"""The pruned transducer loss: exact with a full band, close to the full loss with a narrow one."""

from __future__ import annotations

import torch

from model.config import StsConfig
from model.pruned import prune_ranges, simple_lattice
from model.sts import LossConfig, StsModel


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(2, 160, 80, generator=g)
    feat_lens = torch.tensor([160, 120])
    targets = torch.randint(1, 31, (4, 9), generator=g)
    target_lens = torch.tensor([9, 4, 0, 6])
    ref = torch.full((4, 9), -1)
    ref[:, 0] = 3
    return feats, feat_lens, targets, target_lens, ref


def test_full_band_equals_full_loss() -> None:
    torch.manual_seed(0)
    model = StsModel(StsConfig.tiny())
    args = batch()
    full = model.loss(*args, LossConfig(prune_range=0))
    band = model.loss(*args, LossConfig(prune_range=10, simple_scale=0.0))  # U + 1 = 10: nothing pruned
    torch.testing.assert_close(band, full, rtol=1e-5, atol=1e-4)
    g_full = torch.autograd.grad(full.sum(), list(model.parameters()), allow_unused=True)
    g_band = torch.autograd.grad(model.loss(*args, LossConfig(prune_range=10, simple_scale=0.0)).sum(),
                                 list(model.parameters()), allow_unused=True)  # fmt: skip
    for a, b in zip(g_full, g_band, strict=True):
        if a is not None and b is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_narrow_band_is_finite_upper_bound() -> None:
    torch.manual_seed(0)
    model = StsModel(StsConfig.tiny())
    args = batch(1)
    full = model.loss(*args, LossConfig(prune_range=0))
    pruned = model.loss(*args, LossConfig(prune_range=3, simple_scale=0.0))
    assert torch.isfinite(pruned).all(), pruned
    # pruning removes paths, so the pruned NLL can only be higher (up to float error)
    assert bool((pruned >= full - 1e-3).all()), (pruned, full)
    pruned.sum().backward()


def test_prune_ranges_are_connected() -> None:
    g = torch.Generator().manual_seed(2)
    am, lm = torch.randn(3, 20, 7, generator=g), torch.randn(3, 9, 7, generator=g)
    targets = torch.randint(1, 7, (3, 8), generator=g)
    t_lens, u_lens = torch.tensor([20, 15, 6]), torch.tensor([8, 3, 8])
    blank, label = simple_lattice(am, lm, targets, 0)
    s = 4
    start = prune_ranges(blank, label, t_lens, u_lens, s)
    for n in range(3):
        st = start[n, : int(t_lens[n])]
        assert int(st[0]) == 0
        assert bool((st[1:] >= st[:-1]).all()) and bool((st[1:] - st[:-1] <= s - 1).all())
        assert int(st[-1]) <= int(u_lens[n]) <= int(st[-1]) + s - 1
