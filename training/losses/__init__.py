"""Loss building blocks shared by the training stages (EG3D, Head3D and the baselines).

A loss object owns its phases and terms; the training loop only calls `phases()` and
`accumulate_gradients()` and steps the optimisers (docs/ARCHITECTURE.md, "Training").
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

#----------------------------------------------------------------------------
# One optimisation phase: `net` gets a step every `interval` steps (interval > 1 = lazy regularisation).

@dataclass(frozen=True)
class Phase:
    name: str
    net: str
    interval: int = 1

#----------------------------------------------------------------------------
# Non-saturating logistic loss for the generator: softplus(-D(G(z))), per sample.

def nonsaturating_g(fake_logits):
    return F.softplus(-fake_logits)

#----------------------------------------------------------------------------
# Non-saturating logistic loss for the discriminator, split into the fake and real halves (per sample).

def nonsaturating_d_fake(fake_logits):
    return F.softplus(fake_logits)

def nonsaturating_d_real(real_logits):
    return F.softplus(-real_logits)

#----------------------------------------------------------------------------
# R1 gradient penalty (Mescheder et al. 2018): sum over the D inputs of |dD/dx|^2, per sample.
# `inputs` must require grad and be the tensors D was evaluated on; create_graph keeps it trainable.

def r1_penalty(real_logits, inputs):
    grads = torch.autograd.grad(outputs=[real_logits.sum()], inputs=list(inputs), create_graph=True, only_inputs=True)
    return sum(g.square().flatten(1).sum(1) for g in grads)

#----------------------------------------------------------------------------
# Draw n camera labels uniformly (with replacement) from a pool [L, 25] on its device.

def sample_labels(pool, n, generator=None):
    idx = torch.randint(len(pool), (n,), device=pool.device, generator=generator)
    return pool[idx]
