"""Upsample, FIR filter, downsample (StyleGAN2/EG3D `upfirdn2d`), with a CUDA kernel and a pure-PyTorch
reference. Both paths support first and second derivatives with respect to `x`."""

import os

import torch
import torch.nn.functional as F

from .. import custom_ops

#----------------------------------------------------------------------------
# Build spec of the CUDA plugin (also used by the compile test and scripts/gpu_check.py).

PLUGIN_SPEC = dict(
    module_name = 'head3d_upfirdn2d_plugin',
    sources     = ['upfirdn2d.cpp', 'upfirdn2d.cu'],
    headers     = ['upfirdn2d.h'],
    source_dir  = os.path.dirname(os.path.abspath(__file__)),
)

_plugin = None
_init_done = False

#----------------------------------------------------------------------------
# Build (or load) the CUDA plugin once; a failed build warns once and falls back to the reference.

def _init():
    global _plugin, _init_done
    if not _init_done:
        _init_done = True
        _plugin = custom_ops.load_plugin_or_warn('upfirdn2d', PLUGIN_SPEC)
    return _plugin is not None

#----------------------------------------------------------------------------
# Argument parsing: scaling factors as int or [x, y]; padding as int, [x, y] or [x0, x1, y0, y1].

def _parse_scaling(value, name):
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if not (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)):
        raise ValueError(f'{name} must be an int >= 1 or a pair [x, y] of them, got {value!r}')
    return int(value[0]), int(value[1])

def _parse_padding(padding):
    if isinstance(padding, int) and not isinstance(padding, bool):
        padding = [padding, padding]
    if not (isinstance(padding, (list, tuple)) and len(padding) in (2, 4)
            and all(isinstance(p, int) and not isinstance(p, bool) for p in padding)):
        raise ValueError(f'padding must be an int, [x, y] or [x0, x1, y0, y1] of ints, got {padding!r}')
    if len(padding) == 2:
        padx, pady = padding
        padding = [padx, padx, pady, pady]
    return [int(p) for p in padding]

# Filter width and height; a 1-D filter is separable and square.
def _get_filter_size(f):
    if f is None:
        return 1, 1
    _check_filter(f)
    return f.shape[-1], f.shape[0]

def _check_filter(f):
    if not isinstance(f, torch.Tensor) or f.ndim not in (1, 2) or f.numel() == 0:
        raise ValueError(f'f must be a non-empty 1-D or 2-D filter tensor (see setup_filter), got '
                         f'{list(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__}')
    if f.dtype != torch.float32:
        raise TypeError(f'f must be float32 (see setup_filter), got {f.dtype}')

#----------------------------------------------------------------------------

def setup_filter(f, device=torch.device('cpu'), normalize=True, flip_filter=False, gain=1, separable=None):
    r"""Make a filter tensor for `upfirdn2d()` from a list or tensor of taps.

    Args:
        f:           Taps: None (identity), a number, a 1-D list (e.g. [1, 3, 3, 1]) or a 2-D array.
        device:      Device of the result.
        normalize:   Scale the taps to sum to 1 (applied before `gain`).
        flip_filter: Flip the taps here instead of inside `upfirdn2d()`.
        gain:        Overall magnitude: the filter is scaled by `gain ** (ndim / 2)` so that a separable
                     filter, applied twice, gives `gain`.
        separable:   Keep a 1-D filter separable. None = only when it has >= 8 taps (as StyleGAN2).

    Returns:
        float32 tensor of shape [taps] (separable) or [height, width].
    """
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim not in (0, 1, 2) or f.numel() == 0:
        raise ValueError(f'setup_filter: f must be a number or a non-empty 1-D or 2-D array, got shape {list(f.shape)}')
    if f.ndim == 0:
        f = f[None]
    if separable is None:
        separable = (f.ndim == 1 and f.numel() >= 8)
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if f.ndim != (1 if separable else 2):
        raise ValueError(f'setup_filter: separable={separable} needs a 1-D f, got a {f.ndim}-D one')
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)

#----------------------------------------------------------------------------

def upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1, impl='cuda'):
    r"""Pad, upsample, filter and downsample a batch of 2D images.

    For each channel: (1) upsample by inserting `up - 1` zeros after each pixel, (2) pad with zeros
    (negative padding crops), (3) convolve with `f` (a true convolution; `flip_filter=True` makes it a
    correlation), keeping only the fully covered positions, (4) keep every `down`-th pixel, (5) scale by
    `gain`. The output size along x is `(in_w * up_x + pad_x0 + pad_x1 - f_w) // down_x + 1`.

    Args:
        x:           Input, float tensor [batch, channels, height, width].
        f:           Filter, float32 [taps] (separable) or [height, width], or None (identity).
        up:          Upsampling factor, int or [x, y].
        down:        Downsampling factor, int or [x, y].
        padding:     int, [x, y] or [x0, x1, y0, y1], in upsampled pixels; may be negative.
        flip_filter: False = convolution, True = correlation.
        gain:        Overall scale of the result.
        impl:        'cuda' (kernel for CUDA tensors, reference elsewhere) or 'ref'.
                     The environment variable HEAD3D_OPS_IMPL=ref forces the reference path.

    Returns:
        Tensor [batch, channels, out_height, out_width] of the dtype of `x`.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f'upfirdn2d: x must be a 4-D float tensor [N, C, H, W], got '
                         f'{(list(x.shape), x.dtype) if isinstance(x, torch.Tensor) else type(x).__name__}')
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    _check_filter(f)
    upx, upy = _parse_scaling(up, 'up')
    downx, downy = _parse_scaling(down, 'down')
    padding = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    _, _, h, w = x.shape
    out_w = (w * upx + padding[0] + padding[1] - fw) // downx + 1
    out_h = (h * upy + padding[2] + padding[3] - fh) // downy + 1
    if w * upx + padding[0] + padding[1] < fw or h * upy + padding[2] + padding[3] < fh:
        raise ValueError(f'upfirdn2d: x of shape {list(x.shape)} with up={up}, padding={padding} is smaller '
                         f'than the filter ({fh}x{fw}); the output would be empty')
    gain = float(gain)
    # the kernel has no gradient for f, so a trainable filter takes the (differentiable) reference path
    if custom_ops.wants_cuda(x, impl, 'upfirdn2d') and not f.requires_grad and _init():
        return _upfirdn2d_cuda(x, f, upx, upy, downx, downy, padding, flip_filter, gain)
    y = _upfirdn2d_ref(x, f, upx, upy, downx, downy, padding, flip_filter, gain)
    assert y.shape[2:] == (out_h, out_w)
    return y

#----------------------------------------------------------------------------
# Reference implementation: zero insertion (reshape + pad), pad/crop, depthwise conv2d, strided slice.

def _upfirdn2d_ref(x, f, upx, upy, downx, downy, padding, flip_filter, gain):
    n, c, h, w = x.shape
    px0, px1, py0, py1 = padding

    # upsample by inserting zeros after each pixel
    x = x.reshape([n, c, h, 1, w, 1])
    x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
    x = x.reshape([n, c, h * upy, w * upx])

    # pad, then crop for negative padding
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]

    # filter: conv2d is a correlation, so flip the taps for a true convolution
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:
        x = F.conv2d(x, f[None, None].expand(c, 1, *f.shape), groups=c)
    else:
        x = F.conv2d(x, f[None, None, None, :].expand(c, 1, 1, -1), groups=c)
        x = F.conv2d(x, f[None, None, :, None].expand(c, 1, -1, 1), groups=c)

    # downsample by keeping every down-th pixel
    return x[:, :, ::downy, ::downx]

#----------------------------------------------------------------------------
# CUDA path. A separable filter runs as two passes (x, then y), each a 2-D kernel call.

def _upfirdn2d_cuda(x, f, upx, upy, downx, downy, padding, flip_filter, gain):
    px0, px1, py0, py1 = padding
    f = f.to(x.device)
    if f.ndim == 2:
        return _UpFirDn2dCuda.apply(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain)
    g = gain ** 0.5
    x = _UpFirDn2dCuda.apply(x, f[None, :], upx, 1, downx, 1, px0, px1, 0, 0, flip_filter, g)
    return _UpFirDn2dCuda.apply(x, f[:, None], 1, upy, 1, downy, 0, 0, py0, py1, flip_filter, g)

class _UpFirDn2dCuda(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain):
        y = _plugin.upfirdn2d(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain)
        ctx.save_for_backward(f)
        ctx.params = (x.shape, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain)
        return y

    # The gradient is another upfirdn2d: up and down swap, the filter flips and the padding becomes
    # what lines the transposed windows up with the input again. Calling the Function itself keeps
    # this differentiable, so double backward works.
    @staticmethod
    def backward(ctx, dy):
        f, = ctx.saved_tensors
        x_shape, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain = ctx.params
        dx = None
        if ctx.needs_input_grad[0]:
            fh, fw = f.shape
            _, _, ih, iw = x_shape
            _, _, oh, ow = dy.shape
            qx0 = fw - 1 - px0
            qx1 = iw * upx - ow * downx + px0 - upx + 1
            qy0 = fh - 1 - py0
            qy1 = ih * upy - oh * downy + py0 - upy + 1
            dx = _UpFirDn2dCuda.apply(dy, f, downx, downy, upx, upy, qx0, qx1, qy0, qy1, not flip_filter, gain)
            assert dx.shape == x_shape
        return dx, None, None, None, None, None, None, None, None, None, None, None

#----------------------------------------------------------------------------

def filter2d(x, f, padding=0, flip_filter=False, gain=1, impl='cuda'):
    r"""Filter a batch of images with `f`, keeping their size (for odd filters, and padding=0).

    Args: as `upfirdn2d()`; `padding` is added to the padding that keeps the size.
    """
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [padx0 + fw // 2, padx1 + (fw - 1) // 2, pady0 + fh // 2, pady1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)

#----------------------------------------------------------------------------

def upsample2d(x, f, up=2, padding=0, flip_filter=False, gain=1, impl='cuda'):
    r"""Upsample a batch of images by `up` with the interpolation filter `f`, giving exactly
    `up` times the size (padding=0). The gain is multiplied by `up_x * up_y` to keep the DC level.

    Args: as `upfirdn2d()`; `padding` is added to the padding that gives the exact size.
    """
    upx, upy = _parse_scaling(up, 'up')
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [padx0 + (fw + upx - 1) // 2, padx1 + (fw - upx) // 2,
         pady0 + (fh + upy - 1) // 2, pady1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=up, padding=p, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)

#----------------------------------------------------------------------------

def downsample2d(x, f, down=2, padding=0, flip_filter=False, gain=1, impl='cuda'):
    r"""Downsample a batch of images by `down` after filtering with `f`, giving exactly
    1/`down` of the size (for sizes divisible by `down`, padding=0).

    Args: as `upfirdn2d()`; `padding` is added to the padding that gives the exact size.
    """
    downx, downy = _parse_scaling(down, 'down')
    padx0, padx1, pady0, pady1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [padx0 + (fw - downx + 1) // 2, padx1 + (fw - downx) // 2,
         pady0 + (fh - downy + 1) // 2, pady1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=down, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)
