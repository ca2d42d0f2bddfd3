"""Volume compositing (EG3D's MipRayMarcher2: midpoint quadrature)."""

import torch
import torch.nn.functional as F

#----------------------------------------------------------------------------
# Density activation on raw densities: softplus(sigma + shift) (EG3D: softplus(sigma - 1)) or relu.

def activate_density(sigma, clamp_mode='softplus', density_shift=-1.0):
    if clamp_mode == 'softplus':
        return F.softplus(sigma + density_shift)
    if clamp_mode == 'relu':
        return F.relu(sigma + density_shift)
    raise ValueError(f"clamp_mode must be 'softplus' or 'relu', got {clamp_mode!r}")

#----------------------------------------------------------------------------
# Composite samples sorted by depth along each ray. Each interval between consecutive samples takes the mean
# colour, raw density and depth of its two ends; the activated density gives alpha = 1 - exp(-density * delta),
# weights = alpha * transmittance (the 1 - alpha + 1e-10 product of EG3D). Depth is the weight-normalised
# mean, set to the far end of the sampled range where the weights vanish (0/0) and clamped to the range.
# colors [N,R,S,C] in [0,1], densities [N,R,S,1] raw, depths [N,R,S,1] ->
# rgb [N,R,C] in [-1,1] (x*2-1, after adding 1 - sum(weights) for a white background), depth [N,R,1],
# weights [N,R,S-1,1].

def composite(colors, densities, depths, opts):
    deltas = depths[:, :, 1:] - depths[:, :, :-1]
    colors_mid = (colors[:, :, :-1] + colors[:, :, 1:]) / 2
    densities_mid = (densities[:, :, :-1] + densities[:, :, 1:]) / 2
    depths_mid = (depths[:, :, :-1] + depths[:, :, 1:]) / 2
    densities_mid = activate_density(densities_mid, opts.clamp_mode, opts.density_shift)

    alpha = 1 - torch.exp(-densities_mid * deltas)                                # [N,R,S-1,1]
    shifted = torch.cat([torch.ones_like(alpha[:, :, :1]), 1 - alpha + 1e-10], -2)
    weights = alpha * torch.cumprod(shifted, -2)[:, :, :-1]

    rgb = torch.sum(weights * colors_mid, -2)
    weight_total = weights.sum(2)
    depth = torch.sum(weights * depths_mid, -2) / weight_total
    depth = torch.clamp(torch.nan_to_num(depth, float('inf')), torch.min(depths), torch.max(depths))
    if opts.white_back:
        rgb = rgb + 1 - weight_total
    return rgb * 2 - 1, depth, weights

#----------------------------------------------------------------------------
