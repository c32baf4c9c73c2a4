"""STSC: projection head, sampled STCL (bounded, equal to eq. 1-2 on the sample), losses, gradients, training."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from vidseg.models import build
from vidseg.models.losses import stcl_loss
from vidseg.models.video.stsc import STSC, _grid_centres


@pytest.fixture(scope="module")
def model() -> STSC:
    torch.manual_seed(0)
    return build("stsc_upernet_swin_t", num_classes=4)


def _data(b=2, t=2, h=64, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t, 3, h, w, generator=g)
    labels = torch.zeros(b, t, h, w, dtype=torch.long)
    labels[..., w // 2:] = 1
    labels[..., h // 2:, :] = 2
    labels[:, :, :4] = 255
    return x, labels


def test_structure_and_defaults(model):
    assert model.support_offsets == () and model.train_support_offsets == (-3,)
    assert model.temperature == 0.07 and model.stcl_weight == 0.2 and model.seg_weight == 1.0
    assert model.projection.fc.out_features == 512
    assert model.projection.fc.in_features == sum(model.backbone.out_channels) == 96 * 15
    with torch.device("meta"):
        big = build("stsc_upernet_swin_l")
    assert big.backbone.model.config.window_size == 12


def test_grid_centres_sample_cell_centres():
    feat = torch.arange(12.0).reshape(1, 1, 3, 4)
    pts = _grid_centres(3, 4, torch.arange(12))
    got = F.grid_sample(feat, pts[None, None], mode="bilinear", align_corners=False)[0, 0, 0]
    assert torch.allclose(got, torch.arange(12.0), atol=1e-5)


def test_losses_and_gradients(model):
    model.train()
    model.zero_grad()
    x, labels = _data()
    out = model(x)
    terms = model.losses(out, labels)
    assert set(terms) == {"loss_seg", "loss_aux", "loss_stcl"}
    assert all(torch.isfinite(v) for v in terms.values())
    sum(terms.values()).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    model.zero_grad()
    single = model.losses(model(x[:, -1:]), labels[:, -1:])
    assert "loss_stcl" not in single  # one frame: no temporal pair
    sum(single.values()).backward()
    unused = sorted(n for n, p in model.named_parameters() if p.grad is None)
    assert unused == ["projection.bn.bias", "projection.bn.weight", "projection.fc.bias", "projection.fc.weight"]


def test_sampled_stcl_equals_eq1_on_the_sample(model):
    """With a budget above the number of grid cells, the loss is eq. 1-2 over every labelled stride-8 pixel."""
    model.train()
    x, labels = _data(b=1)
    out = model(x)
    old = model.stcl_samples
    model.stcl_samples = 10_000
    try:
        ours = model.stcl(out, labels)
        grid = F.interpolate(labels.flatten(0, 1)[:, None].float(), size=(8, 8), mode="nearest")[:, 0].long()
        embs, labs = [], []
        for n in range(2):
            keep = torch.nonzero(grid[n].flatten() != 255).squeeze(1)
            embs.append(model._embed(out["levels"], n, _grid_centres(8, 8, keep)))
            labs.append(grid[n].flatten()[keep])
        emb = list(torch.split(model.projection(torch.cat(embs)), [len(e) for e in embs]))
        contrast, clab = torch.cat(emb), torch.cat(labs)
        pos = torch.arange(len(labs[0]), len(clab))  # the target is the last frame
        ref = stcl_loss(emb[1], labs[1], contrast, clab, pos, 0.07)
    finally:
        model.stcl_samples = old
    assert torch.allclose(ours, ref, atol=1e-5)


def test_memory_is_bounded_by_the_budget(model):
    model.train()
    model.stcl_samples, old = 16, model.stcl_samples
    try:
        idx, labs, h, w = model._sample(torch.randint(0, 4, (2, 768, 768)))
    finally:
        model.stcl_samples = old
    assert (h, w) == (96, 96)
    assert all(len(i) <= 16 for i in idx)
    assert all(torch.bincount(lab, minlength=4).tolist() == [4, 4, 4, 4] for lab in labs)


def test_eval_is_per_frame(model):
    model.eval()
    x, _ = _data(b=1, h=65, w=97)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (1, 4, 65, 97)
        assert torch.allclose(out, model(x[:, -1:]), atol=1e-5)


def test_short_training_run_loss_falls():
    torch.manual_seed(0)
    m = build("stsc_upernet_swin_t", num_classes=3).train()
    x, labels = _data(h=32, w=32)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = sum(m.losses(m(x), labels).values())
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
