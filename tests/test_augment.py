"""ADA pipe: consistency of image/image_raw, near-identity at p=0, double backward for R1, the p controller."""

import torch

from training.augment import AugmentPipe, ada_step

def _smooth(n, res):
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, res), torch.linspace(-1, 1, res), indexing='ij')
    img = torch.stack([torch.sin(xx * 2), torch.cos(yy * 2), xx * yy])
    return img[None].repeat(n, 1, 1, 1)

def test_p0_is_near_identity_and_keeps_shapes():
    x = {'image': _smooth(2, 32), 'image_raw': _smooth(2, 16)}
    y = AugmentPipe(p=0.0)(x)
    assert y['image'].shape == (2, 3, 32, 32) and y['image_raw'].shape == (2, 3, 16, 16)
    assert (y['image'] - x['image'])[..., 4:-4, 4:-4].abs().max() < 0.02

def test_p1_changes_images_and_is_consistent_across_resolutions():
    torch.manual_seed(0)
    x = {'image': _smooth(4, 32), 'image_raw': _smooth(4, 16)}
    y = AugmentPipe(p=1.0)(x)
    assert (y['image'] - x['image']).abs().mean() > 0.05
    # the same transform on both: the downsampled augmented image matches the augmented raw image
    down = torch.nn.functional.interpolate(y['image'], size=16, mode='bilinear', antialias=True, align_corners=False)
    assert (down - y['image_raw'])[..., 3:-3, 3:-3].abs().mean() < 0.1

def test_r1_double_backward_through_pipe():
    torch.manual_seed(0)
    pipe = AugmentPipe(p=1.0)
    x = {'image': _smooth(2, 16).requires_grad_(True), 'image_raw': _smooth(2, 8).requires_grad_(True)}
    w = torch.nn.Parameter(torch.ones(1))
    y = pipe(x)
    logits = (w * y['image'].square()).sum() + (w * y['image_raw']).sum()
    grads = torch.autograd.grad(logits, [x['image'], x['image_raw']], create_graph=True)
    sum(g.square().sum() for g in grads).backward()
    assert w.grad is not None and torch.isfinite(w.grad).all() and w.grad.abs() > 0

def test_ada_step_moves_p_toward_target():
    pipe = AugmentPipe(p=0.5)
    ada_step(pipe, torch.tensor(0.9), target=0.6, nimg=100, adjust_kimg=1)   # D overfits -> more augmentation
    assert abs(float(pipe.p) - 0.6) < 1e-6
    ada_step(pipe, torch.tensor(0.0), target=0.6, nimg=1000, adjust_kimg=0.5)
    assert float(pipe.p) == 0.0                                                # clamped at 0
