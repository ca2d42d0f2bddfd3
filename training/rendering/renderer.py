"""Two-pass volume renderer (EG3D's ImportanceRenderer as stateless functions)."""

import torch

from .compositing import composite
from .planes import sample_from_planes
from .sampling import importance_depths, stratified_depths

#----------------------------------------------------------------------------
# Query field_fn at depths [N,R,S,1] along the rays; returns colours [N,R,S,C] and raw densities [N,R,S,1].

def _query(field_fn, origins, dirs, depths):
    N, R, S, _ = depths.shape
    coords = (origins.unsqueeze(-2) + depths * dirs.unsqueeze(-2)).reshape(N, R * S, 3)
    sample_dirs = dirs.unsqueeze(-2).expand(N, R, S, 3).reshape(N, R * S, 3)
    out = field_fn(coords, sample_dirs)
    rgb, sigma = out['rgb'], out['sigma']
    if rgb.ndim != 3 or rgb.shape[:2] != (N, R * S) or sigma.shape != (N, R * S, 1):
        raise ValueError(f'field_fn must return rgb [{N}, {R * S}, C] and sigma [{N}, {R * S}, 1], '
                         f'got {list(rgb.shape)} and {list(sigma.shape)}')
    return rgb.reshape(N, R, S, -1), sigma.reshape(N, R, S, 1)

#----------------------------------------------------------------------------
# Merge two sample sets along each ray and sort them by depth (EG3D's unify_samples).

def merge_samples(depths1, colors1, densities1, depths2, colors2, densities2):
    depths = torch.cat([depths1, depths2], dim=-2)
    colors = torch.cat([colors1, colors2], dim=-2)
    densities = torch.cat([densities1, densities2], dim=-2)
    _, order = torch.sort(depths, dim=-2)
    depths = torch.gather(depths, -2, order)
    colors = torch.gather(colors, -2, order.expand(-1, -1, -1, colors.shape[-1]))
    densities = torch.gather(densities, -2, order)
    return depths, colors, densities

#----------------------------------------------------------------------------
# Render a radiance field along rays origins/dirs [N,R,3]: stratified coarse pass, importance pass from the
# coarse weights, merge, composite. field_fn(coords [N,M,3], dirs [N,M,3]) -> dict(rgb [N,M,C] in [0,1],
# sigma [N,M,1] raw). Random draws (coarse jitter [N,R,S,1], then importance u [N*R,S_imp]) come from
# `generator` (None = the global RNG, matching EG3D) on the rays' device; opts.deterministic draws nothing.
# Returns dict(features [N,R,C] in [-1,1], depth [N,R,1], weights_sum [N,R,1]).

def render_field(field_fn, origins, dirs, opts, generator=None):
    if origins.ndim != 3 or origins.shape[-1] != 3 or dirs.shape != origins.shape:
        raise ValueError(f'origins and dirs must both have shape [N, R, 3], got {list(origins.shape)} and {list(dirs.shape)}')
    N, R, _ = origins.shape
    depths = stratified_depths(opts.ray_start, opts.ray_end, N, R, opts.depth_resolution, origins.device,
                               jitter=not opts.deterministic, generator=generator,
                               disparity_space=opts.disparity_space_sampling)
    colors, densities = _query(field_fn, origins, dirs, depths)

    if opts.depth_resolution_importance > 0:
        with torch.no_grad():
            _, _, weights = composite(colors, densities, depths, opts)
        fine = importance_depths(depths, weights, opts.depth_resolution_importance,
                                 deterministic=opts.deterministic, generator=generator)
        colors_fine, densities_fine = _query(field_fn, origins, dirs, fine)
        depths, colors, densities = merge_samples(depths, colors, densities, fine, colors_fine, densities_fine)

    rgb, depth, weights = composite(colors, densities, depths, opts)
    return dict(features=rgb, depth=depth, weights_sum=weights.sum(2))

#----------------------------------------------------------------------------
# Render a tri-plane: the field is decoder_fn(sample_from_planes(...)), decoder_fn(features [N,P,M,C]) ->
# dict(rgb [N,M,C], sigma [N,M,1]). Same outputs as render_field. (TriPlaneGenerator renders its own query_field,
# which adds its options to this, through render_field.)

def render_planes(planes, decoder_fn, plane_axes, origins, dirs, opts, generator=None):
    plane_axes = plane_axes.to(planes.device)

    def field_fn(coords, _dirs):
        return decoder_fn(sample_from_planes(plane_axes, planes, coords, opts.box_warp))

    return render_field(field_fn, origins, dirs, opts, generator=generator)

#----------------------------------------------------------------------------
