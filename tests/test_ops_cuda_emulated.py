"""The CUDA paths' autograd wiring (saved tensors, derivative modes, the transposed upfirdn2d padding of
the backward pass, recursion for double backward) checked on the CPU: the compiled plugin is replaced by a
line-by-line Python transliteration of the kernels in bias_act.cu / upfirdn2d.cu, and the results are
compared with the reference path. The real kernels are compared with the reference in the GPU tests."""

import math

import numpy as np
import pytest
import torch

from torch_utils import custom_ops
from torch_utils.ops import bias_act as ba
from torch_utils.ops import upfirdn2d as ud

#----------------------------------------------------------------------------
# Transliteration of bias_act.cu (act_eval, act_d1_from_output, bias_act_kernel), vectorised in torch.

def _act_eval(act, s, alpha):
    sig = torch.sigmoid(s)
    zero = torch.zeros_like(s)
    if act == 1: return s, torch.ones_like(s), zero
    if act == 2: return s.clamp(min=0), (s > 0).to(s), zero
    if act == 3: return torch.where(s > 0, s, s * alpha), torch.where(s > 0, 1.0, alpha).to(s), zero
    if act == 4:
        f = torch.tanh(s); d1 = 1 - f * f
        return f, d1, -2 * f * d1
    if act == 5:
        d1 = sig * (1 - sig)
        return sig, d1, d1 * (1 - 2 * sig)
    if act == 6:
        e = torch.exp(s)
        return torch.where(s > 0, s, torch.expm1(s)), torch.where(s > 0, 1.0, e), torch.where(s > 0, 0.0, e)
    if act == 7:
        lam, a = 1.0507009873554805, 1.6732632423543772
        e = lam * a * torch.exp(s)
        return torch.where(s > 0, lam * s, lam * a * torch.expm1(s)), torch.where(s > 0, lam, e), torch.where(s > 0, 0.0, e)
    if act == 8:
        return torch.where(s > 20, s, torch.log1p(torch.exp(s))), sig, sig * (1 - sig)
    if act == 9:
        return s * sig, sig * (1 + s * (1 - sig)), sig * (1 - sig) * (2 + s * (1 - 2 * sig))
    raise KeyError(act)

class FakeBiasActPlugin:
    @staticmethod
    def bias_act(x, b, xref, yref, dy, grad, dim, act, alpha, gain, clamp):
        assert x.is_contiguous(memory_format=torch.contiguous_format)
        for t in (xref, yref, dy):
            assert t.numel() == 0 or (t.shape == x.shape and t.stride() == x.stride() and t.dtype == x.dtype)
        bias = b.reshape([-1 if i == dim else 1 for i in range(x.ndim)]) if b.numel() else 0
        if grad == 0:
            out = _act_eval(act, x + bias, alpha)[0] * gain
            return out.clamp(-clamp, clamp) if clamp >= 0 else out
        if xref.numel():
            f, d1, d2 = _act_eval(act, xref + bias, alpha)
            passed = (f * gain).abs() <= clamp if clamp >= 0 else torch.ones_like(x, dtype=torch.bool)
        else:
            yv = yref if yref.numel() else torch.zeros_like(x)
            t = yv * gain
            d1 = {2: (t > 0).to(x), 3: torch.where(t > 0, 1.0, alpha).to(x)}.get(act, torch.ones_like(x))
            d2 = torch.zeros_like(x)
            passed = yv.abs() < clamp if clamp >= 0 else torch.ones_like(x, dtype=torch.bool)
        out = x * gain * d1 if grad == 1 else x * dy * gain * d2
        return torch.where(passed, out, torch.zeros_like(out))

#----------------------------------------------------------------------------
# Transliteration of upfirdn2d.cu (first_aligned_tap, upfirdn2d_kernel), with C++ integer semantics.

def _first_aligned_tap(start, up):
    r = int(math.fmod(start, up))  # C++ % truncates toward zero
    return 0 if r == 0 else (up - r if r > 0 else -r)

class FakeUpFirDn2dPlugin:
    @staticmethod
    def upfirdn2d(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip, gain):
        assert f.ndim == 2 and f.dtype == torch.float32
        n, c, in_h, in_w = x.shape
        fh, fw = f.shape
        out_h = (in_h * upy + pady0 + pady1 - fh) // downy + 1
        out_w = (in_w * upx + padx0 + padx1 - fw) // downx + 1
        xs, fs = x.detach().numpy(), f.numpy().astype(np.float64)
        y = np.zeros([n, c, out_h, out_w])
        for oy in range(out_h):
            uy0 = oy * downy - pady0
            for ox in range(out_w):
                ux0 = ox * downx - padx0
                acc = np.zeros([n, c])
                for ky in range(_first_aligned_tap(uy0, upy), fh, upy):
                    iy = int((uy0 + ky) / upy)
                    if uy0 + ky < 0 or iy >= in_h:
                        continue
                    fy = ky if flip else fh - 1 - ky
                    for kx in range(_first_aligned_tap(ux0, upx), fw, upx):
                        ix = int((ux0 + kx) / upx)
                        if ux0 + kx < 0 or ix >= in_w:
                            continue
                        fx = kx if flip else fw - 1 - kx
                        acc += xs[:, :, iy, ix] * fs[fy, fx]
                y[:, :, oy, ox] = acc * gain
        return torch.from_numpy(y).to(x.dtype)

@pytest.fixture
def emulated(monkeypatch):
    monkeypatch.setattr(custom_ops, 'wants_cuda', lambda x, impl, op_name='op': impl == 'cuda')
    for op, fake in ((ba, FakeBiasActPlugin), (ud, FakeUpFirDn2dPlugin)):
        monkeypatch.setattr(op, '_plugin', fake)
        monkeypatch.setattr(op, '_init_done', True)

#----------------------------------------------------------------------------

def _bias_act_derivatives(impl, x, b, dy, v, **kwargs):
    x, b, dy = (t.detach().requires_grad_() for t in (x, b, dy))
    y = ba.bias_act(x, b, impl=impl, **kwargs)
    dx, db = torch.autograd.grad(y, [x, b], dy, create_graph=True)
    grads = torch.autograd.grad((dx * v).sum() + (db * v[0, :, 0]).sum(), [x, b, dy], allow_unused=True)
    return [y, dx, db] + [torch.zeros_like(t) if g is None else g for g, t in zip(grads, (x, b, dy))]

@pytest.mark.parametrize('act', list(ba.activation_funcs))
@pytest.mark.parametrize('clamp', [None, 1.5])
def test_bias_act_cuda_path_matches_reference(emulated, act, clamp):
    torch.manual_seed(0)
    x = torch.randn(2, 5, 7, dtype=torch.float64) * 2
    b, dy, v = torch.randn(5, dtype=torch.float64), torch.randn_like(x), torch.randn_like(x)
    got = _bias_act_derivatives('cuda', x, b, dy, v, act=act, clamp=clamp)
    ref = _bias_act_derivatives('ref', x, b, dy, v, act=act, clamp=clamp)
    for name, g, r in zip(['y', 'dx', 'db', 'ddx', 'ddb', 'ddy'], got, ref):
        torch.testing.assert_close(g, r, msg=lambda m: f'{name}: {m}')

def test_bias_act_cuda_path_gradgradcheck(emulated):
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    fn = lambda x, b: ba.bias_act(x, b, act='swish', clamp=1.0)
    assert torch.autograd.gradgradcheck(fn, (x, b))

@pytest.mark.parametrize('fname,up,down,padding,flip', [
    ('sep', 1, 1, 1, False), ('full', 2, 1, [2, 1, 1, 2], False), ('full', 1, 2, [1, 1, 2, 0], True),
    ('sep', [2, 1], [1, 3], [-1, 3, 2, -1], False), ('full', 3, 2, [3, 2, 1, 2], True)])
def test_upfirdn2d_cuda_path_matches_reference(emulated, fname, up, down, padding, flip):
    torch.manual_seed(0)
    taps = [1, 3, 3, 1] if fname == 'sep' else [[1, 2, 0], [0.5, -1, 3], [2, 1, 1], [0, 1, -2]]
    f = ud.setup_filter(taps, separable=(fname == 'sep'), normalize=False)
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    kwargs = dict(up=up, down=down, padding=padding, flip_filter=flip, gain=1.5)
    y_ref = ud.upfirdn2d(x, f, impl='ref', **kwargs)
    y = ud.upfirdn2d(x, f, impl='cuda', **kwargs)
    tol = dict(rtol=1e-6, atol=1e-6)  # the reference scales the float32 taps by sqrt(gain) in float32
    torch.testing.assert_close(y, y_ref, **tol)
    dy = torch.randn_like(y, requires_grad=True)
    v = torch.randn_like(x)
    dx, = torch.autograd.grad(y, x, dy, create_graph=True)
    dx_ref, = torch.autograd.grad(y_ref, x, dy, create_graph=True)
    torch.testing.assert_close(dx, dx_ref, **tol)
    ddy, = torch.autograd.grad((dx * v).sum(), dy)
    ddy_ref, = torch.autograd.grad((dx_ref * v).sum(), dy)
    torch.testing.assert_close(ddy, ddy_ref, **tol)
