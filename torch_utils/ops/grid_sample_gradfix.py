"""Bilinear `grid_sample` with double backward, as ADA's geometric augmentation needs inside R1.

StyleGAN2-ADA needed a private-API "gradfix" because `F.grid_sample` could not be differentiated twice.
PyTorch 2.x differentiates it twice natively, so this module is a thin wrapper that fixes ADA's settings and
gives callers one stable import. tests/test_ops_conv2d_resample.py checks it with gradgradcheck.

What is supported: first derivatives with respect to `input` and `grid`, and second derivatives with respect
to `input` (what R1 needs: ADA's grid does not require grad). On torch 2.14 gradgradcheck also passes with
respect to `grid`; that is tested but not relied on.
"""

import torch
import torch.nn.functional as F

#----------------------------------------------------------------------------
# Bilinear sampling, zeros padding, align_corners=False (ADA's settings).

def grid_sample(input, grid):
    if not isinstance(input, torch.Tensor) or input.ndim != 4:
        raise ValueError(f'grid_sample: input must be a 4-D tensor [N, C, H, W], got '
                         f'{list(input.shape) if isinstance(input, torch.Tensor) else type(input).__name__}')
    if not isinstance(grid, torch.Tensor) or grid.ndim != 4 or grid.shape[-1] != 2 or grid.shape[0] != input.shape[0]:
        raise ValueError(f'grid_sample: grid must be [N, H_out, W_out, 2] with N={input.shape[0]}, got '
                         f'{list(grid.shape) if isinstance(grid, torch.Tensor) else type(grid).__name__}')
    return F.grid_sample(input, grid, mode='bilinear', padding_mode='zeros', align_corners=False)
