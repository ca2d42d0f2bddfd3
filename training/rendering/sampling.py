"""Depths along rays: stratified (coarse) samples and importance (fine) samples from the coarse weights."""

import torch
import torch.nn.functional as F

#----------------------------------------------------------------------------
# Coarse depths [N,R,S,1]: S evenly spaced depths from ray_start to ray_end, each shifted forward by
# U(0, 1) * spacing when jitter is on (EG3D's sample_stratified: one uniform draw of shape [N,R,S,1], so a
# seeded run reproduces EG3D). With disparity_space the spacing is uniform in 1/depth.

def stratified_depths(ray_start, ray_end, N, R, S, device, jitter=True, generator=None, disparity_space=False):
    if S < 2:
        raise ValueError(f'need at least 2 depth samples per ray, got {S}')
    lo, hi = (0.0, 1.0) if disparity_space else (float(ray_start), float(ray_end))
    depths = torch.linspace(lo, hi, S, device=device).reshape(1, 1, S, 1).repeat(N, R, 1, 1)
    if jitter:
        depths = depths + torch.rand((N, R, S, 1), device=device, generator=generator) * ((hi - lo) / (S - 1))
    if disparity_space:
        depths = 1.0 / (1.0 / ray_start * (1.0 - depths) + 1.0 / ray_end * depths)
    return depths

#----------------------------------------------------------------------------
# Inverse-CDF sampling (NeRF's sample_pdf as EG3D uses it): `num` samples [B,num] from the piecewise-uniform
# distribution with weights [B,K] over the K bins whose edges are bins[:, :K+1] (extra edges are ignored).
# u [B,num] in [0,1) may be given; otherwise it is linspace(0, 1) when deterministic, else uniform draws.

def sample_pdf(bins, weights, num, deterministic=False, generator=None, u=None, eps=1e-5):
    B, K = weights.shape
    pdf = (weights + eps) / torch.sum(weights + eps, -1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], -1)          # [B,K+1]
    if u is None and deterministic:
        u = torch.linspace(0, 1, num, device=bins.device).expand(B, num)
    elif u is None:
        u = torch.rand((B, num), device=bins.device, generator=generator)
    u = u.contiguous()

    # bracket each u between two cdf entries and interpolate linearly inside that bin
    idx = torch.searchsorted(cdf, u, right=True)
    below = torch.clamp_min(idx - 1, 0)
    above = torch.clamp_max(idx, K)
    pairs = torch.stack([below, above], -1).view(B, 2 * num)
    cdf_g = torch.gather(cdf, 1, pairs).view(B, num, 2)
    bins_g = torch.gather(bins, 1, pairs).view(B, num, 2)
    denom = cdf_g[..., 1] - cdf_g[..., 0]
    denom = torch.where(denom < eps, torch.ones_like(denom), denom)  # empty bin: never chosen, any value works
    return bins_g[..., 0] + (u - cdf_g[..., 0]) / denom * (bins_g[..., 1] - bins_g[..., 0])

#----------------------------------------------------------------------------
# Fine depths [N,R,num,1] from coarse depths [N,R,S,1] and their compositing weights [N,R,L,1] (L = S - 1
# from composite(), or S). EG3D's sample_importance: the weights are smoothed by a max-pool (k=2, s=1, pad=1)
# and an avg-pool (k=2, s=1), lifted by 0.01, and their interior entries define a pdf over the bins between
# the midpoints of the coarse depths. No gradient flows through the fine depths.

@torch.no_grad()
def importance_depths(depths, weights, num, deterministic=False, generator=None, u=None):
    N, R, S, _ = depths.shape
    if weights.shape[:2] != (N, R) or weights.shape[2] not in (S - 1, S):
        raise ValueError(f'weights must have shape [{N}, {R}, {S - 1} or {S}, 1], got {list(weights.shape)}')
    z = depths.reshape(N * R, S)
    w = weights.reshape(N * R, 1, -1).float()
    if w.shape[-1] < 3:
        raise ValueError(f'importance sampling needs at least 3 weights per ray, got {w.shape[-1]}')
    w = F.avg_pool1d(F.max_pool1d(w, 2, 1, padding=1), 2, 1).squeeze(1) + 0.01   # [B,L]
    z_mid = 0.5 * (z[:, :-1] + z[:, 1:])                                         # [B,S-1]
    fine = sample_pdf(z_mid, w[:, 1:-1], num, deterministic=deterministic, generator=generator, u=u)
    return fine.reshape(N, R, num, 1)

#----------------------------------------------------------------------------
