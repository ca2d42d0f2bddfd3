"""Fused multiply-add `a * b + c` with broadcasting (as StyleGAN2's `fma`)."""

import torch

#----------------------------------------------------------------------------
# a * b + c in one op. torch.addcmul broadcasts all three operands and its autograd reduces each
# gradient back to the operand's shape, to any order.

def fma(a, b, c):
    for name, t in (('a', a), ('b', b), ('c', c)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f'fma: {name} must be a tensor, got {type(t).__name__}')
    try:
        shape = torch.broadcast_shapes(a.shape, b.shape, c.shape)
    except RuntimeError:
        raise ValueError(f'fma: shapes a={list(a.shape)}, b={list(b.shape)}, c={list(c.shape)} do not broadcast') from None
    if tuple(c.shape) != tuple(shape):
        c = c.expand(shape)  # addcmul's output takes the shape of c
    return torch.addcmul(c, a, b)
