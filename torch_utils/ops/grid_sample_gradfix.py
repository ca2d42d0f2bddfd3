"""Bilinear `grid_sample` with double backward, as ADA's geometric augmentation needs inside R1.

PyTorch's own `F.grid_sample` is differentiable twice on recent releases (2.14) but not on older ones: torch 2.11
(the GPU machines' version) raises "derivative for aten::grid_sampler_2d_backward is not implemented" when R1
differentiates through ADA's resampling. So the sampling here is a pair of autograd Functions built on the public
aten kernels (`grid_sampler_2d` / `grid_sampler_2d_backward`) with the same numbers on every version:

- first derivatives with respect to `input` and `grid`;
- second derivatives through the gradient with respect to `input` (what R1 needs). Sampling is linear in the
  input, so d(grad_input)/d(grad_output) applied to a vector v is grid_sample(v, grid), and grad_input does
  not depend on the input at all.

Second derivatives with respect to `grid` are not provided (ADA's grid never requires grad); asking for them
raises an error that says so rather than returning a wrong zero.
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
    return _GridSample.apply(input, grid)

_BILINEAR, _ZEROS, _ALIGN_CORNERS = 0, 0, False

def _sample(input, grid):
    return F.grid_sample(input, grid, mode='bilinear', padding_mode='zeros', align_corners=_ALIGN_CORNERS)

#----------------------------------------------------------------------------

class _GridSample(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, grid):
        ctx.save_for_backward(input, grid)
        return _sample(input, grid)

    @staticmethod
    def backward(ctx, grad_output):
        input, grid = ctx.saved_tensors
        grad_input, grad_grid = _GridSampleBackward.apply(grad_output, input, grid, ctx.needs_input_grad[1])
        return (grad_input if ctx.needs_input_grad[0] else None), (grad_grid if ctx.needs_input_grad[1] else None)

class _GridSampleBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, grad_output, input, grid, want_grid):
        ctx.save_for_backward(grid)
        ctx.set_materialize_grads(False)    # an output nobody differentiates arrives as None
        grad_input, grad_grid = torch.ops.aten.grid_sampler_2d_backward(
            grad_output, input, grid, _BILINEAR, _ZEROS, _ALIGN_CORNERS, [True, bool(want_grid)])
        return grad_input, (grad_grid if want_grid else torch.zeros_like(grid))

    @staticmethod
    def backward(ctx, grad2_grad_input, grad2_grad_grid):
        grid, = ctx.saved_tensors
        if ctx.needs_input_grad[2] or grad2_grad_grid is not None:
            raise NotImplementedError('grid_sample_gradfix: second derivatives with respect to the sampling grid are '
                                      'not supported (detach the grid; ADA never needs them)')
        grad2_grad_output = None
        if ctx.needs_input_grad[0] and grad2_grad_input is not None:
            grad2_grad_output = _GridSample.apply(grad2_grad_input, grid)
        return grad2_grad_output, None, None, None
