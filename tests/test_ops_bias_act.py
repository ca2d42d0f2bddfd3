"""bias_act: reference path against numpy formulas, derivatives (float64 gradcheck), argument errors,
and CUDA-vs-reference parity (forward, grad, grad-grad; fp32 and fp16) when a GPU is present."""

import math
import types

import numpy as np
import pytest
import torch

from torch_utils import custom_ops
from torch_utils.ops import bias_act as ba

ACTS = list(ba.activation_funcs)

# Activation formulas written out in numpy, independent of torch.
def np_act(s, act, alpha):
    if act == 'linear':   return s
    if act == 'relu':     return np.maximum(s, 0)
    if act == 'lrelu':    return np.where(s > 0, s, alpha * s)
    if act == 'tanh':     return np.tanh(s)
    if act == 'sigmoid':  return 1 / (1 + np.exp(-s))
    if act == 'elu':      return np.where(s > 0, s, np.expm1(s))
    if act == 'selu':     return 1.0507009873554805 * np.where(s > 0, s, 1.6732632423543772 * np.expm1(s))
    if act == 'softplus': return np.logaddexp(0, s)
    if act == 'swish':    return s / (1 + np.exp(-s))
    raise KeyError(act)

def np_bias_act(x, b, dim, act, alpha, gain, clamp):
    shape = [1] * x.ndim
    shape[dim] = -1
    s = x + (b.reshape(shape) if b is not None else 0)
    y = np_act(s, act, alpha) * gain
    return np.clip(y, -clamp, clamp) if clamp is not None else y

#----------------------------------------------------------------------------

@pytest.mark.parametrize('act', ACTS)
def test_defaults_table(act):
    spec = ba.activation_funcs[act]
    assert spec.def_alpha == (0.2 if act == 'lrelu' else 0.0)
    assert spec.def_gain == pytest.approx(math.sqrt(2) if act in ('relu', 'lrelu', 'swish') else 1.0)

@pytest.mark.parametrize('act', ACTS)
@pytest.mark.parametrize('alpha,gain,clamp', [(None, None, None), (0.3, 1.7, None), (None, 2.0, 0.8)])
@pytest.mark.parametrize('dim', [1, 2, -1])
def test_ref_matches_numpy(act, alpha, gain, clamp, dim):
    rng = np.random.default_rng(0)
    x = rng.standard_normal([3, 4, 5, 6]) * 2
    b = rng.standard_normal([x.shape[dim]])
    spec = ba.activation_funcs[act]
    y = ba.bias_act(torch.from_numpy(x), torch.from_numpy(b), dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)
    expect = np_bias_act(x, b, dim, act, spec.def_alpha if alpha is None else alpha,
                         spec.def_gain if gain is None else gain, clamp)
    np.testing.assert_allclose(y.numpy(), expect, rtol=1e-12, atol=1e-12)

def test_no_bias_and_dtype_kept():
    x = torch.randn(2, 3, 4, dtype=torch.float16)
    y = ba.bias_act(x, torch.randn(3), act='lrelu')  # float32 bias is cast to x.dtype
    assert y.dtype == torch.float16
    np.testing.assert_allclose(ba.bias_act(x.double(), act='tanh', gain=3).numpy(), 3 * np.tanh(x.double().numpy()))

@pytest.mark.parametrize('act', ACTS)
def test_gradcheck_and_gradgradcheck(act):
    torch.manual_seed(1)
    x = (torch.randn(2, 3, 4, dtype=torch.float64) * 2).requires_grad_()
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    fn = lambda x, b: ba.bias_act(x, b, act=act, gain=1.3, clamp=2.5)
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))

def test_argument_errors():
    x = torch.randn(2, 3, 4)
    with pytest.raises(ValueError, match='act'):
        ba.bias_act(x, act='gelu')
    with pytest.raises(ValueError, match='b must'):
        ba.bias_act(x, torch.randn(4))
    with pytest.raises(ValueError, match='dim'):
        ba.bias_act(x, dim=3)
    with pytest.raises(ValueError, match='clamp'):
        ba.bias_act(x, clamp=-2)
    with pytest.raises(ValueError, match='impl'):
        ba.bias_act(x, impl='triton')
    with pytest.raises(TypeError, match='x must'):
        ba.bias_act(torch.ones(3, dtype=torch.int64))

def test_env_var_forces_reference(monkeypatch):
    fake_cuda = types.SimpleNamespace(device=types.SimpleNamespace(type='cuda'))
    monkeypatch.delenv(custom_ops.OPS_IMPL_ENV, raising=False)
    assert custom_ops.wants_cuda(fake_cuda, 'cuda')
    assert not custom_ops.wants_cuda(fake_cuda, 'ref')
    assert not custom_ops.wants_cuda(torch.zeros(1), 'cuda')
    monkeypatch.setenv(custom_ops.OPS_IMPL_ENV, 'ref')
    assert not custom_ops.wants_cuda(fake_cuda, 'cuda')
    monkeypatch.setenv(custom_ops.OPS_IMPL_ENV, 'fast')
    with pytest.raises(ValueError, match=custom_ops.OPS_IMPL_ENV):
        custom_ops.wants_cuda(fake_cuda, 'cuda')

#----------------------------------------------------------------------------
# CUDA parity. Each case compares y, (dx, db) for a random dy, and the second derivatives of
# <dx, v> with respect to x, b and dy, between impl='cuda' and impl='ref' on the same CUDA tensors.

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')

def _derivatives(impl, x, b, dy, v, **kwargs):
    x = x.detach().requires_grad_()
    b = b.detach().requires_grad_()
    dy = dy.detach().requires_grad_()
    y = ba.bias_act(x, b, impl=impl, **kwargs)
    dx, db = torch.autograd.grad(y, [x, b], dy, create_graph=True)
    ddx, ddb, ddy = torch.autograd.grad((dx * v).sum(), [x, b, dy], allow_unused=True)
    ddx = torch.zeros_like(x) if ddx is None else ddx
    ddb = torch.zeros_like(b) if ddb is None else ddb
    return [t.float() for t in (y, dx, db, ddx, ddb, ddy)]

@needs_gpu
@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
@pytest.mark.parametrize('act', ACTS)
@pytest.mark.parametrize('clamp', [None, 1.0])
@pytest.mark.parametrize('channels_last', [False, True])
def test_cuda_matches_reference(dtype, act, clamp, channels_last):
    if clamp is not None and dtype == torch.float16:
        pytest.skip('fp16 outputs land exactly on the clamp limit, where the kernel (which clamps in fp32) and the '
                    'fp16 reference legitimately disagree about passing the gradient')
    assert ba._init(), 'the bias_act CUDA plugin failed to build'
    torch.manual_seed(0)
    dev = torch.device('cuda')
    x = torch.randn(4, 16, 8, 8, device=dev, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    b, dy, v = torch.randn(16, device=dev, dtype=dtype), torch.randn_like(x), torch.randn_like(x)
    got = _derivatives('cuda', x, b, dy, v, act=act, clamp=clamp)
    ref = _derivatives('ref', x, b, dy, v, act=act, clamp=clamp)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-2, atol=2e-2)
    for name, g, r in zip(['y', 'dx', 'db', 'ddx', 'ddb', 'ddy'], got, ref):
        scale = 16 if name.endswith('b') and dtype == torch.float16 else 1  # sums of 256 rounded fp16 terms
        torch.testing.assert_close(g, r, rtol=tol['rtol'], atol=tol['atol'] * scale, msg=lambda m: f'{name}: {m}')
