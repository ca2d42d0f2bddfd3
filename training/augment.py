"""Adaptive discriminator augmentation (ADA, Karras et al. 2020) for camera-labelled images.

Applied to every D input, real and fake, with the same random transform for `image` and `image_raw`. There is no
plain x-flip or 90-degree rotation (they would contradict the camera label): geometric transforms are integer
translation, isotropic/anisotropic scale, a small rotation and fractional translation; colour transforms are
brightness, contrast, luma flip (off by default), hue and saturation. Every transform is applied per sample with
probability `p`, which the training loop adapts toward a target sign rate of D's real logits (`ada_step`).
Resampling goes through torch_utils.ops (upfirdn2d + grid_sample), which are twice differentiable, so R1 works.
"""

import math

import torch

from torch_utils.ops import grid_sample_gradfix, upfirdn2d

# Config keys of the `augment` section that drive the loop's p controller rather than the pipe itself.
ADA_KEYS = ('enabled', 'target', 'adjust_kimg', 'interval')

#----------------------------------------------------------------------------
# Homogeneous 2D transforms [N,3,3] in normalised image coordinates ([-1, 1] across the image).

def _translate(tx, ty):
    m = torch.eye(3, device=tx.device).repeat(len(tx), 1, 1)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m

def _scale(sx, sy):
    m = torch.eye(3, device=sx.device).repeat(len(sx), 1, 1)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m

def _rotate(theta):
    m = torch.eye(3, device=theta.device).repeat(len(theta), 1, 1)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = theta.cos(), -theta.sin(), theta.sin(), theta.cos()
    return m

#----------------------------------------------------------------------------
# Homogeneous 3D colour transforms [N,4,4] on RGB in [-1, 1].

def _translate3(t):
    m = torch.eye(4, device=t.device).repeat(len(t), 1, 1)
    m[:, :3, 3] = t[:, None]
    return m

def _scale3(s):
    m = torch.eye(4, device=s.device).repeat(len(s), 1, 1)
    m[:, 0, 0] = m[:, 1, 1] = m[:, 2, 2] = s
    return m

def _rotate3(axis, theta):
    # Rodrigues' formula about a unit axis [3].
    x, y, z = axis
    c, s = theta.cos(), theta.sin()
    cc = 1 - c
    m = torch.eye(4, device=theta.device).repeat(len(theta), 1, 1)
    m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = x * x * cc + c, x * y * cc - z * s, x * z * cc + y * s
    m[:, 1, 0], m[:, 1, 1], m[:, 1, 2] = y * x * cc + z * s, y * y * cc + c, y * z * cc - x * s
    m[:, 2, 0], m[:, 2, 1], m[:, 2, 2] = z * x * cc - y * s, z * y * cc + x * s, z * z * cc + c
    return m

#----------------------------------------------------------------------------

class AugmentPipe(torch.nn.Module):
    def __init__(self,
        p               = 0.0,      # Initial probability of each transform (adapted by the loop when augment.target is set).
        xint            = 1,        # Probability multiplier for integer translation.
        xint_max        = 0.125,    # Range of integer translation, as a fraction of the image size.
        scale           = 1,        # Probability multiplier for isotropic scaling.
        scale_std       = 0.2,      # Log2 standard deviation of isotropic scaling.
        rotate          = 1,        # Probability multiplier for the small rotation.
        rotate_max_deg  = 10.0,     # Range of the small rotation, in degrees (uniform in +-max).
        aniso           = 1,        # Probability multiplier for anisotropic scaling.
        aniso_std       = 0.2,      # Log2 standard deviation of anisotropic scaling.
        xfrac           = 1,        # Probability multiplier for fractional translation.
        xfrac_std       = 0.125,    # Standard deviation of fractional translation, as a fraction of the image size.
        brightness      = 1,        # Probability multiplier for brightness.
        brightness_std  = 0.2,      # Standard deviation of the brightness offset.
        contrast        = 1,        # Probability multiplier for contrast.
        contrast_std    = 0.5,      # Log2 standard deviation of contrast.
        lumaflip        = 0,        # Probability multiplier for luma flip (off: it inverts skin tones).
        hue             = 1,        # Probability multiplier for hue rotation.
        hue_max         = 1.0,      # Range of hue rotation, 1 = full circle.
        saturation      = 1,        # Probability multiplier for saturation.
        saturation_std  = 1.0,      # Log2 standard deviation of saturation.
    ):
        super().__init__()
        self.register_buffer('p', torch.tensor(float(p)))
        self.xint, self.xint_max = float(xint), float(xint_max)
        self.scale, self.scale_std = float(scale), float(scale_std)
        self.rotate, self.rotate_max = float(rotate), math.radians(rotate_max_deg)
        self.aniso, self.aniso_std = float(aniso), float(aniso_std)
        self.xfrac, self.xfrac_std = float(xfrac), float(xfrac_std)
        self.brightness, self.brightness_std = float(brightness), float(brightness_std)
        self.contrast, self.contrast_std = float(contrast), float(contrast_std)
        self.lumaflip, self.hue, self.hue_max = float(lumaflip), float(hue), float(hue_max)
        self.saturation, self.saturation_std = float(saturation), float(saturation_std)
        self.register_buffer('filter', upfirdn2d.setup_filter([1, 3, 3, 1]))

    # Per-sample mask: 1 where a transform with probability multiplier `mult` fires, else 0.
    def _fire(self, n, mult, device, generator):
        return (torch.rand(n, device=device, generator=generator) < self.p * mult).float()

    # Random inverse geometric transform [N,3,3] (output coords -> input coords); `min_res` grids integer shifts.
    def _geometry(self, n, min_res, device, g):
        G = torch.eye(3, device=device).repeat(n, 1, 1)
        rand = lambda *s: torch.rand(*s, device=device, generator=g)
        randn = lambda *s: torch.randn(*s, device=device, generator=g)
        if self.xint > 0:
            t = (rand(n, 2) * 2 - 1) * self.xint_max * self._fire(n, self.xint, device, g)[:, None]
            t = torch.round(t * min_res) / min_res * 2        # whole pixels of the coarsest image; [-1,1] spans 2
            G = G @ _translate(t[:, 0], t[:, 1])
        if self.scale > 0:
            s = torch.exp2(randn(n) * self.scale_std * self._fire(n, self.scale, device, g))
            G = G @ _scale(s, s)
        if self.rotate > 0:
            r = (rand(n) * 2 - 1) * self.rotate_max * self._fire(n, self.rotate, device, g)
            G = G @ _rotate(r)
        if self.aniso > 0:
            s = torch.exp2(randn(n) * self.aniso_std * self._fire(n, self.aniso, device, g))
            G = G @ _scale(s, 1 / s)
        if self.xfrac > 0:
            t = randn(n, 2) * self.xfrac_std * 2 * self._fire(n, self.xfrac, device, g)[:, None]
            G = G @ _translate(t[:, 0], t[:, 1])
        return G

    # Random colour transform [N,4,4].
    def _colour(self, n, device, g):
        C = torch.eye(4, device=device).repeat(n, 1, 1)
        rand = lambda *s: torch.rand(*s, device=device, generator=g)
        randn = lambda *s: torch.randn(*s, device=device, generator=g)
        luma = torch.tensor([1.0, 1.0, 1.0], device=device) / math.sqrt(3)
        if self.brightness > 0:
            C = _translate3(randn(n) * self.brightness_std * self._fire(n, self.brightness, device, g)) @ C
        if self.contrast > 0:
            C = _scale3(torch.exp2(randn(n) * self.contrast_std * self._fire(n, self.contrast, device, g))) @ C
        if self.lumaflip > 0:
            flip = torch.floor(rand(n) * 2) * self._fire(n, self.lumaflip, device, g)   # Householder reflection
            m = torch.eye(4, device=device).repeat(n, 1, 1)
            m[:, :3, :3] -= 2 * torch.outer(luma, luma)[None] * flip[:, None, None]
            C = m @ C
        if self.hue > 0:
            C = _rotate3(luma, (rand(n) * 2 - 1) * math.pi * self.hue_max * self._fire(n, self.hue, device, g)) @ C
        if self.saturation > 0:
            s = torch.exp2(randn(n) * self.saturation_std * self._fire(n, self.saturation, device, g))
            ll = torch.outer(luma, luma)
            m = torch.eye(4, device=device).repeat(n, 1, 1)
            m[:, :3, :3] = ll[None] + (torch.eye(3, device=device)[None] - ll[None]) * s[:, None, None]
            C = m @ C
        return C

    # Resample x [N,C,H,W] through the inverse transform G at 2x supersampling. The image is reflect-padded by half
    # its size per side first (grid_sample pads with zeros); the output grid gets a margin of m pixels (at 2x) so
    # that the downsampling filter never sees the border, and the margin is cropped off at the end.
    def _warp(self, x, G, m=4):
        n, c, h, w = x.shape
        pad_y, pad_x = h // 2, w // 2
        x = torch.nn.functional.pad(x, [pad_x, pad_x, pad_y, pad_y], mode='reflect')
        x = upfirdn2d.upsample2d(x, self.filter, up=2)
        # Output pixel centres in normalised coords, the centre 2h x 2w spanning [-1, 1]; [N, H', W', 2].
        base = torch.nn.functional.affine_grid(torch.eye(2, 3, device=x.device)[None].expand(n, 2, 3),
                                               [n, c, h * 2 + 2 * m, w * 2 + 2 * m], align_corners=False)
        base = base * torch.tensor([(2 * w + 2 * m) / (2 * w), (2 * h + 2 * m) / (2 * h)], device=x.device)
        grid = base @ G[:, None, :2, :2].transpose(-1, -2) + G[:, None, None, :2, 2]
        grid = grid * torch.tensor([w / (w + 2 * pad_x), h / (h + 2 * pad_y)], device=x.device)
        x = grid_sample_gradfix.grid_sample(x, grid)
        x = upfirdn2d.downsample2d(x, self.filter, down=2)
        return x[:, :, m // 2: m // 2 + h, m // 2: m // 2 + w]

    # Augment a dict of images (e.g. image [N,3,H,W], image_raw [N,3,h,w]) with one transform per sample.
    def forward(self, images, generator=None):
        first = next(iter(images.values()))
        n, device = first.shape[0], first.device
        min_res = min(v.shape[-1] for v in images.values())
        G = self._geometry(n, min_res, device, generator)
        C = self._colour(n, device, generator)
        out = {}
        for key, x in images.items():
            x = self._warp(x, G)
            if x.shape[1] == 3:
                flat = x.flatten(2)
                x = (C[:, :3, :3] @ flat + C[:, :3, 3:]).reshape(x.shape)
            out[key] = x
        return out

#----------------------------------------------------------------------------
# One ADA controller update: move p toward the target rate of positive real logits (signs mean in [-1, 1]).
# `nimg` images were seen since the last update; the speed makes p go 0 -> 1 in `adjust_kimg` kimg.
# Pure tensor arithmetic on p's device, so it adds no host sync.

@torch.no_grad()
def ada_step(pipe, mean_sign, target, nimg, adjust_kimg):
    adjust = torch.sign(mean_sign - target) * (nimg / (adjust_kimg * 1000))
    pipe.p.copy_((pipe.p + adjust).clamp(0, 1))
