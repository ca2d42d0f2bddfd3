"""upfirdn2d: reference path against an independent numpy/scipy implementation over up/down/padding/flip/
gain and separable and full filters, the resampling wrappers, derivatives (float64 gradcheck), argument
errors, and CUDA-vs-reference parity when a GPU is present."""

import itertools

import numpy as np
import pytest
import scipy.signal
import torch

from torch_utils.ops import upfirdn2d as ud

# Independent model: zero insertion, np.pad/crop, scipy convolve2d 'valid', strided slicing.
def np_upfirdn2d(x, f, up, down, padding, flip_filter, gain):
    (upx, upy), (downx, downy) = up, down
    px0, px1, py0, py1 = padding
    n, c, h, w = x.shape
    f = np.outer(f, f) if f.ndim == 1 else f
    if flip_filter:
        f = f[::-1, ::-1]
    out = []
    for img in x.reshape(n * c, h, w):
        u = np.zeros([h * upy, w * upx])
        u[::upy, ::upx] = img
        u = np.pad(u, [[max(py0, 0), max(py1, 0)], [max(px0, 0), max(px1, 0)]])
        u = u[max(-py0, 0) : u.shape[0] - max(-py1, 0), max(-px0, 0) : u.shape[1] - max(-px1, 0)]
        v = scipy.signal.convolve2d(u, f, mode='valid') * gain
        out.append(v[::downy, ::downx])
    return np.stack(out).reshape(n, c, *out[0].shape)

FILTERS = {
    'sep4': [1, 3, 3, 1],                                   # StyleGAN2's resampling filter, separable
    'sep3': [1, 2, 1],
    'full': [[1, 2, 0], [0.5, -1, 3], [2, 1, 1], [0, 1, -2]],  # asymmetric 4x3, catches flips/transposes
}

@pytest.mark.parametrize('fname', list(FILTERS))
@pytest.mark.parametrize('up,down', list(itertools.product([1, 2, [2, 1]], [1, 2, [1, 2]])))
@pytest.mark.parametrize('padding', [[2, 1], [3, 1, 2, 0], [-1, 2, 1, -2]])
@pytest.mark.parametrize('flip_filter', [False, True])
def test_ref_matches_numpy(fname, up, down, padding, flip_filter):
    rng = np.random.default_rng(0)
    x = rng.standard_normal([1, 2, 7, 6])
    f = ud.setup_filter(FILTERS[fname], separable=(fname != 'full'), normalize=False).double()
    gain = 1.7
    y = ud.upfirdn2d(torch.from_numpy(x), f.float(), up=up, down=down, padding=padding,
                     flip_filter=flip_filter, gain=gain).numpy()
    up2 = ud._parse_scaling(up, 'up'); down2 = ud._parse_scaling(down, 'down')
    expect = np_upfirdn2d(x, f.numpy(), up2, down2, ud._parse_padding(padding), flip_filter, gain)
    np.testing.assert_allclose(y, expect, rtol=1e-5, atol=1e-5)

@pytest.mark.parametrize('up,down', [(1, 1), (2, 1), (1, 3), (3, 2)])
def test_matches_scipy_upfirdn_1d(up, down):
    # scipy.signal.upfirdn = full convolution of the zero-upsampled signal; in upfirdn2d terms that is
    # padding [fw - 1, fw - up] along x with a [1, fw] filter
    rng = np.random.default_rng(1)
    x = rng.standard_normal([1, 2, 3, 9])
    taps = np.array([0.5, 1.0, -2.0, 0.25, 3.0])
    f = torch.tensor(taps[None], dtype=torch.float32)
    y = ud.upfirdn2d(torch.from_numpy(x), f, up=[up, 1], down=[down, 1], padding=[4, 5 - up, 0, 0]).numpy()
    for row_in, row_out in zip(x.reshape(-1, 9), y.reshape(-1, y.shape[-1])):
        np.testing.assert_allclose(row_out, scipy.signal.upfirdn(taps.astype(np.float32), row_in, up, down), atol=1e-5)

def test_setup_filter():
    f = ud.setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and f.dtype == torch.float32 and torch.isclose(f.sum(), torch.tensor(1.0))
    assert ud.setup_filter([1] * 8).ndim == 1                      # >= 8 taps: separable by default
    g = ud.setup_filter([1, 2, 3], separable=True, normalize=False, gain=4, flip_filter=True)
    torch.testing.assert_close(g, torch.tensor([6.0, 4.0, 2.0]))  # gain ** (1/2) per pass, flipped
    torch.testing.assert_close(ud.setup_filter(None), torch.ones(1, 1))
    with pytest.raises(ValueError, match='setup_filter'):
        ud.setup_filter(np.ones([2, 2]), separable=True)

@pytest.mark.parametrize('fname', list(FILTERS))
def test_resampling_wrappers(fname):
    torch.manual_seed(0)
    f = ud.setup_filter(FILTERS[fname], separable=(fname != 'full'))
    x = torch.randn(2, 3, 8, 12)
    assert ud.filter2d(x, f).shape == x.shape
    assert ud.upsample2d(x, f).shape == (2, 3, 16, 24)
    assert ud.upsample2d(x, f, up=[3, 2]).shape == (2, 3, 16, 36)
    assert ud.downsample2d(x, f).shape == (2, 3, 4, 6)
    assert ud.downsample2d(x, f, padding=1).shape == (2, 3, 5, 7)
    if fname == 'full':
        return
    # a constant image keeps its level away from the borders (normalised lowpass; upsample gain = up^2)
    one = torch.ones(1, 1, 12, 12)
    assert torch.allclose(ud.upsample2d(one, f)[..., 6:-6, 6:-6], torch.ones(1))
    assert torch.allclose(ud.downsample2d(one, f)[..., 2:-2, 2:-2], torch.ones(1))
    assert torch.allclose(ud.filter2d(one, f)[..., 3:-3, 3:-3], torch.ones(1))

@pytest.mark.parametrize('fname,up,down,padding', [('sep4', 1, 1, 1), ('full', 2, 1, [1, 2, 0, 1]),
                                                    ('sep4', 1, 2, [-1, 2, 1, 0]), ('sep3', 2, 2, 1)])
def test_gradcheck_and_gradgradcheck(fname, up, down, padding):
    torch.manual_seed(0)
    f = ud.setup_filter(FILTERS[fname], separable=(fname != 'full'))
    x = torch.randn(1, 1, 4, 3, dtype=torch.float64, requires_grad=True)
    fn = lambda x: ud.upfirdn2d(x, f, up=up, down=down, padding=padding, gain=2)
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))

def test_argument_errors():
    x = torch.randn(1, 2, 6, 6)
    f = ud.setup_filter([1, 3, 3, 1])
    with pytest.raises(ValueError, match='x must'):
        ud.upfirdn2d(torch.randn(2, 6, 6), f)
    with pytest.raises(TypeError, match='f must be float32'):
        ud.upfirdn2d(x, f.double())
    with pytest.raises(ValueError, match='f must'):
        ud.upfirdn2d(x, torch.ones(1, 2, 2))
    with pytest.raises(ValueError, match='padding'):
        ud.upfirdn2d(x, f, padding=[1, 2, 3])
    with pytest.raises(ValueError, match='up'):
        ud.upfirdn2d(x, f, up=0)
    with pytest.raises(ValueError, match='down'):
        ud.upfirdn2d(x, f, down=[2, 2, 2])
    with pytest.raises(ValueError, match='smaller than the filter'):
        ud.upfirdn2d(x, f, padding=-2)

#----------------------------------------------------------------------------
# CUDA parity: forward, first and second derivatives w.r.t. x, fp32 and fp16.

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')

def _derivatives(impl, x, f, dy, v, **kwargs):
    x = x.detach().requires_grad_()
    dy = dy.detach().requires_grad_()
    y = ud.upfirdn2d(x, f, impl=impl, **kwargs)
    dx, = torch.autograd.grad(y, x, dy, create_graph=True)
    ddy, = torch.autograd.grad((dx * v).sum(), dy)
    return [t.float() for t in (y, dx, ddy)]

@needs_gpu
@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
@pytest.mark.parametrize('fname', list(FILTERS))
@pytest.mark.parametrize('up,down,padding', [(1, 1, 1), (2, 1, [2, 1, 2, 1]), (1, 2, [1, 1, 1, 1]),
                                             ([2, 1], [1, 2], [-1, 3, 2, -1]), (2, 2, [1, 2, 0, 1])])
@pytest.mark.parametrize('flip_filter', [False, True])
def test_cuda_matches_reference(dtype, fname, up, down, padding, flip_filter):
    assert ud._init(), 'the upfirdn2d CUDA plugin failed to build'
    torch.manual_seed(0)
    dev = torch.device('cuda')
    f = ud.setup_filter(FILTERS[fname], device=dev, separable=(fname != 'full'))
    x = torch.randn(3, 5, 17, 12, device=dev, dtype=dtype)
    kwargs = dict(up=up, down=down, padding=padding, flip_filter=flip_filter, gain=1.5)
    y = ud.upfirdn2d(x, f, impl='ref', **kwargs)
    dy, v = torch.randn_like(y), torch.randn_like(x)
    got = _derivatives('cuda', x, f, dy, v, **kwargs)
    ref = _derivatives('ref', x, f, dy, v, **kwargs)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-2, atol=1e-2)
    for name, g, r in zip(['y', 'dx', 'ddy'], got, ref):
        torch.testing.assert_close(g, r, **tol, msg=lambda m: f'{name}: {m}')

@needs_gpu
def test_cuda_channels_last_input():
    assert ud._init()
    x = torch.randn(2, 8, 16, 16, device='cuda').contiguous(memory_format=torch.channels_last)
    f = ud.setup_filter([1, 3, 3, 1], device='cuda')
    torch.testing.assert_close(ud.upsample2d(x, f), ud.upsample2d(x, f, impl='ref'), rtol=1e-4, atol=1e-4)
