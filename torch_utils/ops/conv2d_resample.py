"""2D convolution with optional up/downsampling (StyleGAN2/EG3D `conv2d_resample`), built on plain
`F.conv2d` / `F.conv_transpose2d` (which differentiate twice natively) and `upfirdn2d`."""

import torch
import torch.nn.functional as F

from . import upfirdn2d

#----------------------------------------------------------------------------
# conv2d or conv_transpose2d. flip_weight=True is PyTorch's correlation; False flips the kernel
# (a true convolution).

def _conv2d_wrapper(x, w, stride=1, padding=0, groups=1, transpose=False, flip_weight=True):
    if not flip_weight and (w.shape[2] > 1 or w.shape[3] > 1):
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)

#----------------------------------------------------------------------------

def conv2d_resample(x, w, f=None, up=1, down=1, padding=0, groups=1, flip_weight=True, flip_filter=False):
    r"""2D convolution with optional upsampling before and downsampling after, where the resampling
    uses the FIR filter `f` exactly as `upfirdn2d.upsample2d()` / `downsample2d()` would.

    Args:
        x:           Input [batch, in_channels, height, width].
        w:           Weight [out_channels, in_channels // groups, kernel_h, kernel_w].
        f:           Resampling filter from `upfirdn2d.setup_filter()`, or None (box).
        up:          Integer upsampling factor.
        down:        Integer downsampling factor.
        padding:     Padding of the convolution in upsampled pixels: int, [x, y] or [x0, x1, y0, y1].
        groups:      Number of groups (as in `F.conv2d`).
        flip_weight: True = correlation (as `F.conv2d`), False = true convolution.
        flip_filter: False = convolve with `f`, True = correlate.

    Returns:
        Tensor [batch, out_channels, out_height, out_width].
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f'conv2d_resample: x must be a 4-D tensor [N, C, H, W], got '
                         f'{list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}')
    if not isinstance(w, torch.Tensor) or w.ndim != 4 or w.dtype != x.dtype:
        raise ValueError(f'conv2d_resample: w must be a 4-D tensor [O, I/groups, kh, kw] of dtype {x.dtype}, got '
                         f'{(list(w.shape), w.dtype) if isinstance(w, torch.Tensor) else type(w).__name__}')
    if f is not None and (not isinstance(f, torch.Tensor) or f.ndim not in (1, 2) or f.dtype != torch.float32):
        raise ValueError('conv2d_resample: f must be None or a float32 1-D/2-D filter from setup_filter()')
    for name, value in (('up', up), ('down', down), ('groups', groups)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f'conv2d_resample: {name} must be an int >= 1, got {value!r}')
    if x.shape[1] != w.shape[1] * groups or w.shape[0] % groups != 0:
        raise ValueError(f'conv2d_resample: x has {x.shape[1]} channels but w {list(w.shape)} with groups={groups} '
                         f'expects {w.shape[1] * groups} (and out_channels divisible by groups)')
    out_channels, in_channels_per_group, kh, kw = w.shape
    fw, fh = upfirdn2d._get_filter_size(f)
    px0, px1, py0, py1 = upfirdn2d._parse_padding(padding)

    # padding that makes the up/downsampling give exact size multiples (as upsample2d/downsample2d)
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2

    # 1x1 kernel, downsampling only: downsample first (cheaper), then convolve
    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d.upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv2d_wrapper(x, w, groups=groups, flip_weight=flip_weight)

    # 1x1 kernel, upsampling only: convolve first (cheaper), then upsample
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv2d_wrapper(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d.upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up ** 2, flip_filter=flip_filter)

    # downsampling only: filter, then a strided convolution
    if down > 1 and up == 1:
        x = upfirdn2d.upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv2d_wrapper(x, w, stride=down, groups=groups, flip_weight=flip_weight)

    # upsampling (and maybe downsampling): a strided transposed convolution does the zero insertion
    # and the convolution at once; the FIR filter follows
    if up > 1:
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_channels // groups, in_channels_per_group, kh, kw)
            w = w.transpose(1, 2).reshape(groups * in_channels_per_group, out_channels // groups, kh, kw)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        # conv_transpose2d crops symmetrically; take the common part there and the rest in upfirdn2d
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv2d_wrapper(x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True,
                            flip_weight=not flip_weight)
        x = upfirdn2d.upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up ** 2,
                                flip_filter=flip_filter)
        if down > 1:
            x = upfirdn2d.upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x

    # no resampling and symmetric non-negative padding: a plain convolution
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv2d_wrapper(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)

    # anything else (asymmetric or negative padding): pad/crop with upfirdn2d, then convolve
    x = upfirdn2d.upfirdn2d(x, None, padding=[px0, px1, py0, py1])
    return _conv2d_wrapper(x, w, groups=groups, flip_weight=flip_weight)
