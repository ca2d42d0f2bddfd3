"""conv2d_resample: every fast path against the generic definition (pad + upsample with upfirdn2d,
plain correlation, downsample with upfirdn2d), derivatives to second order; fma; grid_sample."""

import pytest
import torch
import torch.nn.functional as F

from torch_utils.ops import upfirdn2d as ud
from torch_utils.ops.conv2d_resample import conv2d_resample
from torch_utils.ops.fma import fma
from torch_utils.ops.grid_sample_gradfix import grid_sample

# The generic definition: upsample + pad with f, then a plain valid convolution, then downsample with f.
def generic_conv2d_resample(x, w, f, up, down, padding, groups, flip_weight, flip_filter):
    fw, fh = (1, 1) if f is None else (f.shape[-1], f.shape[0])
    px0, px1, py0, py1 = ud._parse_padding(padding)
    if up > 1:
        px0, px1, py0, py1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2, py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    x = ud.upfirdn2d(x, f if up > 1 else None, up=up, padding=[px0, px1, py0, py1], gain=up ** 2, flip_filter=flip_filter)
    x = F.conv2d(x, w if flip_weight else w.flip([2, 3]), groups=groups)
    if down > 1:
        x = ud.upfirdn2d(x, f, down=down, flip_filter=flip_filter)
    return x

CASES = [  # (kernel, up, down, padding, groups)
    (3, 1, 1, 1, 1), (3, 1, 1, [2, 0, 1, 1], 1), (3, 1, 1, -1, 1),     # plain conv / generic pad-crop
    (1, 1, 2, 0, 1), (1, 2, 1, 0, 1),                                  # 1x1 with down / up
    (3, 1, 2, 1, 1), (3, 1, 2, 1, 2),                                  # strided conv
    (3, 2, 1, 1, 1), (3, 2, 1, 1, 2), (4, 2, 1, [1, 2, 2, 1], 1),      # transposed conv
    (3, 2, 2, 1, 1),                                                   # up and down
]

@pytest.mark.parametrize('k,up,down,padding,groups', CASES)
@pytest.mark.parametrize('flip_weight', [True, False])
@pytest.mark.parametrize('flip_filter', [False, True])
def test_fast_paths_match_generic(k, up, down, padding, groups, flip_weight, flip_filter):
    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 7, dtype=torch.float64)
    w = torch.randn(6, 4 // groups, k, k, dtype=torch.float64)
    f = ud.setup_filter([1, 2, 3, 1])  # asymmetric, so filter flips matter
    args = (x, w, f, up, down, padding, groups, flip_weight, flip_filter)
    got = conv2d_resample(x, w, f=f, up=up, down=down, padding=padding, groups=groups,
                          flip_weight=flip_weight, flip_filter=flip_filter)
    torch.testing.assert_close(got, generic_conv2d_resample(*args))

@pytest.mark.parametrize('k,up,down,padding,groups', [(3, 1, 1, 1, 1), (3, 2, 1, 1, 1), (3, 1, 2, 1, 2), (1, 2, 1, 0, 1)])
def test_gradgradcheck(k, up, down, padding, groups):
    torch.manual_seed(0)
    x = torch.randn(1, groups, 3, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(groups, 1, k, k, dtype=torch.float64, requires_grad=True)
    f = ud.setup_filter([1, 3, 3, 1])
    fn = lambda x, w: conv2d_resample(x, w, f=f, up=up, down=down, padding=padding, groups=groups, flip_weight=(up == 1))
    assert torch.autograd.gradcheck(fn, (x, w))
    assert torch.autograd.gradgradcheck(fn, (x, w), fast_mode=True)

def test_conv2d_resample_errors():
    x = torch.randn(1, 4, 6, 6)
    with pytest.raises(ValueError, match='w must'):
        conv2d_resample(x, torch.randn(3, 4, 3))
    with pytest.raises(ValueError, match='channels'):
        conv2d_resample(x, torch.randn(3, 3, 3, 3))
    with pytest.raises(ValueError, match='up'):
        conv2d_resample(x, torch.randn(3, 4, 3, 3), up=0)

#----------------------------------------------------------------------------

def test_fma_values_and_derivatives():
    torch.manual_seed(0)
    a = torch.randn(3, 1, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, 1, dtype=torch.float64, requires_grad=True)
    c = torch.randn(4, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(fma(a, b, c), a * b + c)
    assert fma(a, b, c).shape == (3, 5, 4)
    assert torch.autograd.gradcheck(fma, (a, b, c))
    assert torch.autograd.gradgradcheck(fma, (a, b, c))
    with pytest.raises(ValueError, match='broadcast'):
        fma(a, torch.randn(2, 2), c)

def test_grid_sample_identity_and_double_backward():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    theta = torch.eye(2, 3, dtype=torch.float64)[None].repeat(2, 1, 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    torch.testing.assert_close(grid_sample(x, grid), x)  # the identity grid reproduces the input

    # the double backward R1 needs: through the gradient w.r.t. the input
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    grid = (torch.rand(1, 3, 3, 2, dtype=torch.float64) * 2.2 - 1.1).requires_grad_()
    assert torch.autograd.gradcheck(grid_sample, (x, grid))
    assert torch.autograd.gradgradcheck(grid_sample, (x, grid.detach()))
    with pytest.raises(NotImplementedError, match='second derivatives with respect to the sampling grid'):
        torch.autograd.gradgradcheck(grid_sample, (x, grid))   # not provided: an error, never a silent zero
    y = torch.randn(2, 3, 5, 6, dtype=torch.float32)
    g32 = torch.rand(2, 4, 7, 2) * 2.2 - 1.1
    torch.testing.assert_close(grid_sample(y, g32), F.grid_sample(y, g32, mode='bilinear', padding_mode='zeros',
                                                                  align_corners=False))   # PyTorch's numbers

    # R1-style use: penalty on d(sum D(aug(x)))/dx, then backprop into a parameter behind the sampling
    p = torch.randn(1, 2, 1, 1, dtype=torch.float64, requires_grad=True)
    img = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    out = (grid_sample(img * p, grid.detach()) ** 2).sum()
    g, = torch.autograd.grad(out, img, create_graph=True)
    g.square().sum().backward()
    assert p.grad is not None and torch.isfinite(p.grad).all()

def test_grid_sample_errors():
    with pytest.raises(ValueError, match='grid must'):
        grid_sample(torch.randn(2, 3, 4, 4), torch.randn(1, 4, 4, 2))
    with pytest.raises(ValueError, match='input must'):
        grid_sample(torch.randn(3, 4, 4), torch.randn(1, 4, 4, 2))
