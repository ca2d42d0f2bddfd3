"""Fused bias + activation + gain + clamp (StyleGAN2/EG3D `bias_act`), with a CUDA kernel and a
pure-PyTorch reference. Both paths support first and second derivatives."""

import math
import os
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .. import custom_ops

#----------------------------------------------------------------------------
# One row per activation. `ref` says which saved tensor the CUDA backward needs to get f'(x):
# 'x' (the input), 'y' (the output) or '' (none). Activations with `has_2nd_grad` have f'' != 0,
# so their CUDA backward also keeps the input for double backward.

@dataclass(frozen=True)
class ActSpec:
    func: Callable          # reference implementation f(x, alpha)
    def_alpha: float        # default alpha (only lrelu uses it)
    def_gain: float         # default gain
    cuda_idx: int           # activation index inside bias_act.cu
    ref: str                # 'x', 'y' or ''
    has_2nd_grad: bool      # f'' is not identically zero

activation_funcs = {
    'linear':   ActSpec(lambda x, alpha: x,                               0.0, 1.0,          1, '',  False),
    'relu':     ActSpec(lambda x, alpha: F.relu(x),                       0.0, math.sqrt(2), 2, 'y', False),
    'lrelu':    ActSpec(lambda x, alpha: F.leaky_relu(x, alpha),          0.2, math.sqrt(2), 3, 'y', False),
    'tanh':     ActSpec(lambda x, alpha: torch.tanh(x),                   0.0, 1.0,          4, 'y', True),
    'sigmoid':  ActSpec(lambda x, alpha: torch.sigmoid(x),                0.0, 1.0,          5, 'y', True),
    'elu':      ActSpec(lambda x, alpha: F.elu(x),                        0.0, 1.0,          6, 'y', True),
    'selu':     ActSpec(lambda x, alpha: F.selu(x),                       0.0, 1.0,          7, 'y', True),
    'softplus': ActSpec(lambda x, alpha: F.softplus(x),                   0.0, 1.0,          8, 'y', True),
    'swish':    ActSpec(lambda x, alpha: torch.sigmoid(x) * x,            0.0, math.sqrt(2), 9, 'x', True),
}

#----------------------------------------------------------------------------
# Build spec of the CUDA plugin (also used by the compile test and scripts/gpu_check.py).

PLUGIN_SPEC = dict(
    module_name = 'head3d_bias_act_plugin',
    sources     = ['bias_act.cpp', 'bias_act.cu'],
    headers     = ['bias_act.h'],
    source_dir  = os.path.dirname(os.path.abspath(__file__)),
)

_plugin = None
_init_done = False

#----------------------------------------------------------------------------
# Build (or load) the CUDA plugin once. A failed build warns once and the op falls back to the
# reference implementation for the rest of the process.

def _init():
    global _plugin, _init_done
    if not _init_done:
        _init_done = True
        _plugin = custom_ops.load_plugin_or_warn('bias_act', PLUGIN_SPEC)
    return _plugin is not None

#----------------------------------------------------------------------------

def bias_act(x, b=None, dim=1, act='linear', alpha=None, gain=None, clamp=None, impl='cuda'):
    r"""Fused bias, activation, scaling and clamping: `clamp(act(x + b) * gain, -clamp, clamp)`.

    Args:
        x:      Input tensor of any shape and a floating dtype.
        b:      Bias, a 1-D tensor of shape `[x.shape[dim]]`, or None. Cast to `x.dtype`.
        dim:    Dimension of `x` that `b` runs along (default 1, the channel dimension).
        act:    Activation name, a key of `activation_funcs`.
        alpha:  Activation parameter (lrelu slope). None = the activation's default.
        gain:   Output scale. None = the activation's default (e.g. sqrt(2) for relu/lrelu).
        clamp:  Clamp the output to [-clamp, clamp]; None = no clamping. Must be >= 0.
        impl:   'cuda' (fast kernel for CUDA tensors, reference elsewhere) or 'ref'.
                The environment variable HEAD3D_OPS_IMPL=ref forces the reference path.

    Returns:
        Tensor of the same shape and dtype as `x`.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f'bias_act: x must be a floating-point tensor, got {type(x).__name__}'
                        f'{"" if not isinstance(x, torch.Tensor) else " of dtype " + str(x.dtype)}')
    if act not in activation_funcs:
        raise ValueError(f'bias_act: act must be one of {sorted(activation_funcs)}, got {act!r}')
    if not isinstance(dim, int) or not -x.ndim <= dim < max(x.ndim, 1):
        raise ValueError(f'bias_act: dim={dim!r} is out of range for x of shape {list(x.shape)}')
    dim = dim % x.ndim
    if b is not None:
        if not isinstance(b, torch.Tensor) or b.ndim != 1 or b.shape[0] != x.shape[dim]:
            raise ValueError(f'bias_act: b must be a 1-D tensor of length x.shape[{dim}]={x.shape[dim]}, '
                             f'got {list(b.shape) if isinstance(b, torch.Tensor) else type(b).__name__}')
        b = b.to(x.dtype)
    spec = activation_funcs[act]
    alpha = float(alpha if alpha is not None else spec.def_alpha)
    gain = float(gain if gain is not None else spec.def_gain)
    clamp = float(clamp if clamp is not None else -1)
    if clamp != -1 and clamp < 0:
        raise ValueError(f'bias_act: clamp must be None or >= 0, got {clamp}')
    if custom_ops.wants_cuda(x, impl, 'bias_act') and _init():
        # make operands dense outside the Function so that saved inputs stay in the autograd graph
        x = x.contiguous(memory_format=_memory_format(x))
        b = b.contiguous() if b is not None else None
        return _BiasActCuda.apply(x, b, dim, act, alpha, gain, clamp)
    return _bias_act_ref(x, b, dim, act, alpha, gain, clamp)

#----------------------------------------------------------------------------
# Reference implementation in plain PyTorch ops (autograd gives all derivatives).

def _bias_act_ref(x, b, dim, act, alpha, gain, clamp):
    if b is not None:
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = activation_funcs[act].func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x

#----------------------------------------------------------------------------
# CUDA path. The plugin call is
#   bias_act(x, b, xref, yref, dy, grad, dim, act, alpha, gain, clamp)
# grad=0: y = clamp(f(x + b) * gain); grad=1: dx = x * gain * f'(s) * mask;
# grad=2: d2 = x * dy * gain * f''(s) * mask, where s is rebuilt from xref + b (or f' from yref)
# and mask zeroes clamped outputs. Empty tensors stand for "not given".

_empty_cache = {}

# An empty tensor of the right dtype/device standing for a missing operand.
def _empty(like):
    key = (like.dtype, like.device)
    if key not in _empty_cache:
        _empty_cache[key] = torch.empty([0], dtype=like.dtype, device=like.device)
    return _empty_cache[key]

# The dense memory format of x that the kernel will iterate in (NCHW or channels-last).
def _memory_format(x):
    if x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format

# Sum a per-element gradient down to the bias shape.
def _sum_to_bias(t, dim):
    return t.sum([i for i in range(t.ndim) if i != dim])

class _BiasActCuda(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, dim, act, alpha, gain, clamp):
        spec = activation_funcs[act]
        fmt = _memory_format(x)
        b = b if b is not None else _empty(x)
        e = _empty(x)
        y = _plugin.bias_act(x, b, e, e, e, 0, dim, spec.cuda_idx, alpha, gain, clamp)
        keep_x = 'x' in spec.ref or spec.has_2nd_grad
        keep_y = not keep_x and ('y' in spec.ref or clamp >= 0)
        ctx.save_for_backward(x if keep_x else e, b if keep_x else e, y if keep_y else e)
        ctx.params = (dim, act, alpha, gain, clamp, fmt, b.numel() > 0)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, b, y = ctx.saved_tensors
        dim, act, alpha, gain, clamp, fmt, has_b = ctx.params
        dx = db = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            dx = _BiasActCudaGrad.apply(dy.contiguous(memory_format=fmt), x, b, y, dim, act, alpha, gain, clamp, fmt)
        if ctx.needs_input_grad[1] and has_b:
            db = _sum_to_bias(dx, dim)
        return dx, db, None, None, None, None, None

class _BiasActCudaGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, dy, x, b, y, dim, act, alpha, gain, clamp, fmt):
        spec = activation_funcs[act]
        dx = _plugin.bias_act(dy, b, x, y, _empty(dy), 1, dim, spec.cuda_idx, alpha, gain, clamp)
        ctx.save_for_backward(dy if spec.has_2nd_grad else _empty(dy), x, b, y)
        ctx.params = (dim, act, alpha, gain, clamp, fmt)
        return dx

    @staticmethod
    def backward(ctx, d_dx):
        dy, x, b, y = ctx.saved_tensors
        dim, act, alpha, gain, clamp, fmt = ctx.params
        spec = activation_funcs[act]
        d_dx = d_dx.contiguous(memory_format=fmt)
        d_dy = d_x = d_b = None
        if ctx.needs_input_grad[0]:
            d_dy = _BiasActCudaGrad.apply(d_dx, x, b, y, dim, act, alpha, gain, clamp, fmt)
        if spec.has_2nd_grad and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):
            d_x = _plugin.bias_act(d_dx, b, x, y, dy, 2, dim, spec.cuda_idx, alpha, gain, clamp)
            if ctx.needs_input_grad[2] and b.numel() > 0:
                d_b = _sum_to_bias(d_x, dim)
        return d_dy, d_x, d_b, None, None, None, None, None, None, None
