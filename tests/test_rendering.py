"""Analytic tests of training/rendering: rays, plane lookup, depth sampling, compositing, the two-pass renderer."""

import math

import pytest
import torch
import torch.nn.functional as F

from training import cameras as cam
from training.rendering import (RenderOptions, composite, generate_plane_axes, importance_depths,
                                project_onto_planes, render_field, render_planes, sample_from_planes, sample_pdf,
                                sample_rays, stratified_depths)

#----------------------------------------------------------------------------
# Helpers: rays of a few cameras and simple analytic fields.

def rays(yaws=(0.0, 0.7), pitches=(0.0, -0.2), resolution=8):
    c2w, K = cam.unpack_label(cam.make_label(torch.tensor(yaws), torch.tensor(pitches)))
    return sample_rays(c2w, K, resolution)


def constant_field(sigma, color=(0.2, 0.4, 0.6)):
    def field(coords, dirs):
        N, M, _ = coords.shape
        return dict(rgb=torch.tensor(color).expand(N, M, 3), sigma=torch.full((N, M, 1), float(sigma)))
    return field


def sphere_field(radius, inside=1e3, outside=-1e3):
    def field(coords, dirs):
        hit = coords.norm(dim=-1, keepdim=True) < radius
        return dict(rgb=torch.ones_like(coords) * 0.5, sigma=torch.where(hit, inside, outside))
    return field


def ray_sphere_distance(origins, dirs, radius):
    b = (origins * dirs).sum(-1)
    disc = b ** 2 - (origins.square().sum(-1) - radius ** 2)
    return -b - torch.sqrt(disc.clamp_min(0)), disc > 0

#----------------------------------------------------------------------------
# Rays.

def test_rays_unit_and_through_pixel_centres():
    c = cam.make_label(torch.tensor([0.4]), torch.tensor([0.15]))
    c2w, K = cam.unpack_label(c)
    K = K.clone()
    K[:, 0, 1] = 0.3  # with skew
    res = 4
    origins, dirs = sample_rays(c2w, K, res)
    assert origins.shape == (1, 16, 3) and dirs.shape == (1, 16, 3)
    assert torch.allclose(dirs.norm(dim=-1), torch.ones(1, 16), atol=1e-6)
    assert torch.allclose(origins, c2w[:, None, :3, 3].expand(1, 16, 3))
    # a point along each ray projects back to its pixel centre (ray index = row * res + col)
    R, t = c2w[0, :3, :3].double(), c2w[0, :3, 3].double()
    Kd = K[0].double()
    for r in range(16):
        x, y, z = R.T @ (origins[0, r].double() + 2.0 * dirs[0, r].double() - t)
        u = Kd[0, 0] * x / z + Kd[0, 1] * y / z + Kd[0, 2]
        v = Kd[1, 1] * y / z + Kd[1, 2]
        row, col = divmod(r, res)
        assert (u.item(), v.item()) == pytest.approx(((col + 0.5) / res, (row + 0.5) / res), abs=1e-5)


def test_frontal_rays_orientation():
    origins, dirs = rays(yaws=(0.0,), pitches=(0.0,), resolution=2)
    # row 0 (top) looks up (+y), column 0 (left) looks toward -x, all rays look toward -z
    assert dirs[0, 0, 1] > 0 and dirs[0, 2, 1] < 0
    assert dirs[0, 0, 0] < 0 and dirs[0, 1, 0] > 0
    assert (dirs[0, :, 2] < 0).all()
    with pytest.raises(ValueError):
        sample_rays(torch.eye(4)[None], torch.eye(3)[None].expand(2, 3, 3), 4)

#----------------------------------------------------------------------------
# Planes.

def test_plane_axes_projection():
    pts = torch.tensor([[[1.0, 2.0, 3.0]]])
    proj = project_onto_planes(generate_plane_axes('eg3d'), pts)[0, :, 0]
    assert proj.tolist() == [[1.0, 2.0], [1.0, 3.0], [3.0, 1.0]]        # XY, XZ, ZX (EG3D's bug)
    proj = project_onto_planes(generate_plane_axes('xyz'), pts)[0, :, 0]
    assert proj.tolist() == [[1.0, 2.0], [1.0, 3.0], [2.0, 3.0]]        # XY, XZ, YZ
    # same as EG3D's definition: coords @ inverse(axes), first two entries
    axes = torch.linalg.qr(torch.randn(3, 3, 3, generator=torch.Generator().manual_seed(0)))[0]
    pts = torch.randn(2, 5, 3)
    ref = torch.stack([(pts @ torch.linalg.inv(a))[..., :2] for a in axes], 1)
    assert torch.allclose(project_onto_planes(axes, pts), ref, atol=1e-5)
    with pytest.raises(ValueError):
        generate_plane_axes('yzx')


def test_sample_from_planes_picks_the_right_texels():
    # planes [1,3,1,4,4] with value 100*plane + 10*row + col
    p, i, j = torch.meshgrid(torch.arange(3.0), torch.arange(4.0), torch.arange(4.0), indexing='ij')
    planes = (100 * p + 10 * i + j)[None, :, None]
    # texel centres of a 4-wide plane over the box [-0.5, 0.5]: index k -> ((2k + 1) / 4 - 1) / 2
    centre = lambda k: ((2 * k + 1) / 4 - 1) / 2
    pts = torch.tensor([[[centre(1), centre(2), centre(3)]]])          # x -> 1, y -> 2, z -> 3
    out = sample_from_planes(generate_plane_axes('eg3d'), planes, pts, box_warp=1.0)
    assert out.shape == (1, 3, 1, 1)
    # XY: col x=1, row y=2; XZ: col x=1, row z=3; ZX: col z=3, row x=1
    assert torch.allclose(out.flatten(), torch.tensor([21.0, 131.0, 213.0]), atol=1e-4)
    out = sample_from_planes(generate_plane_axes('xyz'), planes, pts, box_warp=1.0)
    assert torch.allclose(out.flatten(), torch.tensor([21.0, 131.0, 232.0]), atol=1e-4)  # YZ: col y=2, row z=3
    # box_warp scales the box; outside it the zero padding fades the value out
    out = sample_from_planes(generate_plane_axes('eg3d'), planes, pts * 2, box_warp=2.0)
    assert torch.allclose(out.flatten(), torch.tensor([21.0, 131.0, 213.0]), atol=1e-4)
    assert sample_from_planes(generate_plane_axes('eg3d'), planes, torch.full((1, 1, 3), 2.0), 1.0).abs().max() == 0

#----------------------------------------------------------------------------
# Depth sampling.

def test_stratified_depths():
    d = stratified_depths(2.0, 3.0, 2, 3, 5, 'cpu', jitter=False)
    assert d.shape == (2, 3, 5, 1)
    assert torch.allclose(d[1, 2, :, 0], torch.linspace(2.0, 3.0, 5))
    # jitter: one uniform draw [N,R,S,1] times the spacing, from the given generator or the global RNG
    torch.manual_seed(5)
    u = torch.rand(2, 3, 5, 1)
    torch.manual_seed(5)
    assert torch.allclose(stratified_depths(2.0, 3.0, 2, 3, 5, 'cpu'), d + u * 0.25)
    g = torch.Generator().manual_seed(5)
    assert torch.allclose(stratified_depths(2.0, 3.0, 2, 3, 5, 'cpu', generator=g), d + u * 0.25)
    disp = stratified_depths(2.0, 3.0, 1, 1, 3, 'cpu', jitter=False, disparity_space=True)
    assert torch.allclose(1 / disp.flatten(), torch.tensor([1 / 2, (1 / 2 + 1 / 3) / 2, 1 / 3]))


def test_importance_samples_concentrate_on_weights():
    depths = torch.linspace(2.0, 3.0, 21).reshape(1, 1, 21, 1).repeat(2, 3, 1, 1)
    weights = torch.zeros(2, 3, 20, 1)
    weights[..., 10, 0] = 1.0  # all mass in the interval [2.5, 2.55]
    g = torch.Generator().manual_seed(0)
    for det in (True, False):
        fine = importance_depths(depths, weights, 64, deterministic=det, generator=g)
        assert fine.shape == (2, 3, 64, 1)
        # smoothing spreads the mass over three midpoint bins, [2.425, 2.575] (EG3D's pdf: 2 of 2.18 there)
        near = ((fine > 2.42) & (fine < 2.58)).float().mean()
        assert near > 0.85
        assert fine.min() >= 2.025 - 1e-6 and fine.max() <= 2.975 + 1e-6
    # deterministic: sorted and identical on every call
    a = importance_depths(depths, weights, 16, deterministic=True)
    assert torch.equal(a, importance_depths(depths, weights, 16, deterministic=True))
    assert (a[..., 1:, 0] >= a[..., :-1, 0]).all()
    with pytest.raises(ValueError):
        importance_depths(depths, weights[:, :, :5], 8)


def test_sample_pdf_inverse_cdf():
    # two bins [0,1] and [1,3] with weights 1:3 -> the median sits at 1 + (0.5 - 0.25) / 0.75 * 2
    bins = torch.tensor([[0.0, 1.0, 3.0]])
    w = torch.tensor([[1.0, 3.0]])
    s = sample_pdf(bins, w, 3, u=torch.tensor([[0.0, 0.25, 0.5]]), eps=0.0)
    assert torch.allclose(s, torch.tensor([[0.0, 1.0, 1.0 + 0.25 / 0.75 * 2]]), atol=1e-6)

#----------------------------------------------------------------------------
# Compositing.

def test_composite_single_interval_and_depth():
    opts = RenderOptions()
    depths = torch.tensor([2.0, 2.5]).reshape(1, 1, 2, 1)
    colors = torch.tensor([[0.2], [0.6]]).reshape(1, 1, 2, 1)
    sigma = torch.tensor([1.0, 3.0]).reshape(1, 1, 2, 1)
    rgb, depth, w = composite(colors, sigma, depths, opts)
    alpha = 1 - math.exp(-F.softplus(torch.tensor(2.0 - 1.0)).item() * 0.5)  # midpoint density, shifted by -1
    assert w.shape == (1, 1, 1, 1) and w.item() == pytest.approx(alpha, rel=1e-6)
    assert rgb.item() == pytest.approx(alpha * 0.4 * 2 - 1, rel=1e-6)
    assert depth.item() == pytest.approx(2.25, rel=1e-6)
    # no density at all: depth falls back to the far end, white_back gives +1, black gives -1
    rgb, depth, w = composite(colors, torch.full_like(sigma, -1e4), depths, opts)
    assert depth.item() == 2.5 and rgb.item() == -1.0
    rgb, _, _ = composite(colors, torch.full_like(sigma, -1e4), depths, opts.replace(white_back=True))
    assert rgb.item() == 1.0


def test_constant_density_closed_form_opacity():
    origins, dirs = rays()
    for s in (0.0, 1.5, 3.0):
        opts = RenderOptions(deterministic=True, depth_resolution=12, depth_resolution_importance=12)
        out = render_field(constant_field(s), origins, dirs, opts)
        expected = 1 - math.exp(-F.softplus(torch.tensor(s - 1.0)).item() * (opts.ray_end - opts.ray_start))
        assert torch.allclose(out['weights_sum'], torch.full_like(out['weights_sum'], expected), atol=1e-5)
        color = torch.tensor([0.2, 0.4, 0.6])
        assert torch.allclose(out['features'], (expected * color * 2 - 1).expand_as(out['features']), atol=1e-5)


def test_sphere_depth_and_weights():
    origins, dirs = rays(resolution=12)
    radius = 0.4
    opts = RenderOptions(ray_start=2.0, deterministic=True, depth_resolution=24, depth_resolution_importance=24)
    out = render_field(sphere_field(radius), origins, dirs, opts)
    dist, hit = ray_sphere_distance(origins, dirs, radius)
    assert hit.sum() > 20 and (~hit).sum() > 20
    # opaque where the ray hits, empty elsewhere; depth at the surface within the sample spacing
    assert (out['weights_sum'][..., 0][hit] > 0.99).all() and (out['weights_sum'][..., 0][~hit] < 1e-3).all()
    err = (out['depth'][..., 0] - dist)[hit].abs()
    assert err.max() < (opts.ray_end - opts.ray_start) / (opts.depth_resolution - 1)
    assert err.mean() < 0.02
    assert (out['depth'][..., 0][~hit] == out['depth'].max()).all()  # empty rays: far end


def test_weights_sum_at_most_one_and_white_back():
    origins, dirs = rays()
    g = torch.Generator().manual_seed(1)

    def noisy(coords, _dirs):
        N, M, _ = coords.shape
        return dict(rgb=torch.rand(N, M, 4, generator=g), sigma=torch.randn(N, M, 1, generator=g) * 20)

    out = render_field(noisy, origins, dirs, RenderOptions(), generator=torch.Generator().manual_seed(2))
    assert out['features'].shape == (2, 64, 4)
    assert (out['weights_sum'] <= 1 + 1e-6).all() and (out['weights_sum'] >= 0).all()
    assert (out['features'] >= -1 - 1e-6).all() and (out['features'] <= 1 + 1e-6).all()
    empty = render_field(constant_field(-1e4), origins, dirs, RenderOptions(white_back=True))
    assert torch.allclose(empty['features'], torch.ones_like(empty['features']))


def test_determinism_and_seeding():
    origins, dirs = rays()
    field = sphere_field(0.4, inside=5.0, outside=0.0)
    det = RenderOptions(deterministic=True, depth_resolution=8, depth_resolution_importance=8)
    a, b = render_field(field, origins, dirs, det), render_field(field, origins, dirs, det)
    assert all(torch.equal(a[k], b[k]) for k in a)
    opts = det.replace(deterministic=False)
    a = render_field(field, origins, dirs, opts, generator=torch.Generator().manual_seed(7))
    b = render_field(field, origins, dirs, opts, generator=torch.Generator().manual_seed(7))
    c = render_field(field, origins, dirs, opts, generator=torch.Generator().manual_seed(8))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a['features'], c['features'])
    # without a generator the global RNG is used (EG3D's behaviour), so torch.manual_seed reproduces it
    torch.manual_seed(7)
    d = render_field(field, origins, dirs, opts)
    assert all(torch.equal(a[k], d[k]) for k in a)


def test_render_planes_matches_field():
    g = torch.Generator().manual_seed(0)
    planes = torch.randn(2, 3, 5, 6, 6, generator=g)
    axes = generate_plane_axes('eg3d')

    def decoder(feats):  # [N,3,M,C] -> mean over planes, like EG3D's OSGDecoder
        x = feats.mean(1)
        return dict(rgb=torch.sigmoid(x[..., 1:]), sigma=x[..., :1] * 10)

    origins, dirs = rays(resolution=4)
    opts = RenderOptions(deterministic=True, depth_resolution=8, depth_resolution_importance=8)
    out = render_planes(planes, decoder, axes, origins, dirs, opts)
    ref = render_field(lambda x, d: decoder(sample_from_planes(axes, planes, x, opts.box_warp)), origins, dirs, opts)
    assert out['features'].shape == (2, 16, 4)
    assert all(torch.equal(out[k], ref[k]) for k in out)
    # gradients reach the planes
    planes.requires_grad_(True)
    render_planes(planes, decoder, axes, origins, dirs, opts)['features'].sum().backward()
    assert planes.grad.abs().sum() > 0


def test_options_validation_and_field_contract():
    with pytest.raises(ValueError, match='ray_start'):
        RenderOptions(ray_start=3.0, ray_end=2.0)
    with pytest.raises(ValueError, match='clamp_mode'):
        RenderOptions(clamp_mode='exp')
    with pytest.raises(TypeError):
        RenderOptions(no_such_field=1)
    origins, dirs = rays(resolution=2)
    bad = lambda x, d: dict(rgb=torch.zeros(x.shape[0], x.shape[1], 3), sigma=torch.zeros(x.shape[0], x.shape[1]))
    with pytest.raises(ValueError, match='sigma'):
        render_field(bad, origins, dirs, RenderOptions(deterministic=True))

#----------------------------------------------------------------------------
