"""3D consistency (paper table 3; the GRAM-HD protocol): render V views of one identity on a sphere around the
head, fit an explicit radiance field on half of them and report the PSNR of the field's renders of the other
half. A generator whose views agree with one 3D scene is reproduced well from new angles (high PSNR); views that
change the content with the camera cannot all be explained by one field (low PSNR).

The field is a small TensoRF-style vector-matrix (VM) decomposition (Chen et al. 2022) written here: density and
appearance are sums over the three axis-aligned (plane x line) pairs of rank-R factors, on a grid over the
renderer's cube [-box/2, box/2]^3. Colour is view independent (a linear map of the appearance features and a
sigmoid), so view-dependent inconsistency is not absorbed by a shading network. A learnable background colour is
composited behind the field, so white- and black-background renders both fit.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from metrics.features import RENDER_OVERRIDES, cond_for
from training import cameras, generate
from training.rendering import sample_rays

# Plane axes and the matching line axis of each VM component (TensoRF's mat_mode / vec_mode).
_PLANE_AXES = ((0, 1), (0, 2), (1, 2))
_LINE_AXES = (2, 1, 0)

#----------------------------------------------------------------------------
# TensoRF VM field on a cube of side `box` centred at the origin.

class TensoRFVM(torch.nn.Module):
    def __init__(self,
        grid            = 32,       # Plane/line resolution along each axis.
        density_rank    = 8,        # Components per plane-line pair for the density.
        app_rank        = 16,       # Components per plane-line pair for the appearance.
        box             = 1.0,      # Side of the cube the grid spans (the renderer's box_warp).
        density_shift   = -4.0,     # Added before softplus: the field starts almost empty.
        density_scale   = 25.0,     # Multiplies the activated density.
        seed            = 0,        # Seed of the initial factors.
    ):
        super().__init__()
        gen = torch.Generator().manual_seed(int(seed))
        self.box = float(box)
        self.density_rank = int(density_rank)
        self.density_shift = float(density_shift)
        self.density_scale = float(density_scale)
        # Density and appearance factors share one tensor per kind (first density_rank channels = density),
        # so each point needs one plane lookup and one line lookup.
        ranks = int(density_rank) + int(app_rank)
        self.planes = torch.nn.Parameter(0.1 * torch.randn([3, ranks, grid, grid], generator=gen))   # [3,R,G,G]
        self.lines = torch.nn.Parameter(0.1 * torch.randn([3, ranks, grid], generator=gen))          # [3,R,G]
        # The colour basis starts like torch's default Linear (uniform in +-1/sqrt(fan_in)), but drawn from the seeded
        # generator: the global RNG would make every fit, and so the metric, differ from run to run.
        self.basis = torch.nn.Linear(3 * int(app_rank), 3)
        bound = 1 / np.sqrt(3 * int(app_rank))
        with torch.no_grad():
            self.basis.weight.copy_((torch.rand(self.basis.weight.shape, generator=gen) * 2 - 1) * bound)
            self.basis.bias.copy_((torch.rand([3], generator=gen) * 2 - 1) * bound)
        self.background = torch.nn.Parameter(torch.zeros(3))  # sigmoid -> 0.5 grey at the start

    # Lines [3,R,G] at coordinates [3,M] in [-1,1], linearly interpolated (as a width-1 image for grid_sample).
    def _sample_lines(self, coord):
        grid = torch.stack([torch.zeros_like(coord), coord], dim=-1)[:, None]             # [3,1,M,2]
        return F.grid_sample(self.lines[..., None], grid, mode='bilinear', align_corners=True)[:, :, 0]

    # Density [M] (>= 0) and RGB [M,3] in [0,1] at world points [M,3]; zero density outside the cube.
    def forward(self, points):
        coords = points / (self.box / 2)                                                   # [M,3], cube = [-1,1]^3
        inside = (coords.abs() <= 1).all(dim=-1)
        plane_grid = torch.stack([coords[:, list(a)] for a in _PLANE_AXES])[:, None]      # [3,1,M,2]
        plane_feat = F.grid_sample(self.planes, plane_grid, mode='bilinear', align_corners=True)[:, :, 0]  # [3,R,M]
        line_feat = self._sample_lines(torch.stack([coords[:, a] for a in _LINE_AXES]))  # [3,R,M]
        feat = plane_feat * line_feat
        dens = feat[:, :self.density_rank].sum(dim=(0, 1))                                 # [M]
        sigma = F.softplus(dens + self.density_shift) * self.density_scale * inside
        app = feat[:, self.density_rank:].flatten(0, 1).T.contiguous()                    # [M, 3*app_rank]
        return sigma, torch.sigmoid(self.basis(app))

    # Background colour [3] in [0,1].
    def background_rgb(self):
        return torch.sigmoid(self.background)

    # Regularisers of the factors: L1 of the density factors (sparsity: no floaters) and total variation of all
    # planes (smoothness), as TensoRF uses them for sparse views.
    def regularizers(self):
        d = self.density_rank
        l1 = self.planes[:, :d].abs().mean() + self.lines[:, :d].abs().mean()
        tv = ((self.planes[..., 1:, :] - self.planes[..., :-1, :]) ** 2).mean() + \
             ((self.planes[..., :, 1:] - self.planes[..., :, :-1]) ** 2).mean() + \
             ((self.lines[..., 1:] - self.lines[..., :-1]) ** 2).mean()
        return l1, tv

#----------------------------------------------------------------------------
# Volume-render rays (origins, dirs [R,3]) through the field with `samples` depths in [near, far]; jittered
# (stratified) when a torch.Generator is given, midpoints otherwise. Returns RGB [R,3] in [0,1].

def render_rays(field, origins, dirs, near, far, samples, generator=None):
    r = origins.shape[0]
    edges = torch.linspace(near, far, samples + 1, device=origins.device)
    if generator is None:
        depths = ((edges[:-1] + edges[1:]) / 2).expand(r, samples)
    else:
        u = torch.rand([r, samples], generator=generator).to(origins.device)
        depths = edges[:-1] + u * (edges[1:] - edges[:-1])                # [R,S]
    points = origins[:, None] + dirs[:, None] * depths[..., None]          # [R,S,3]
    sigma, rgb = field(points.reshape(-1, 3))
    sigma, rgb = sigma.reshape(r, samples), rgb.reshape(r, samples, 3)
    deltas = torch.cat([depths[:, 1:] - depths[:, :-1], torch.full_like(depths[:, :1], (far - near) / samples)], 1)
    alpha = 1 - torch.exp(-sigma * deltas)
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha + 1e-10], 1), 1)[:, :-1]
    weights = alpha * trans                                                # [R,S]
    color = (weights[..., None] * rgb).sum(1)
    return color + (1 - weights.sum(1, keepdim=True)) * field.background_rgb()

# World rays of labels [V,25] at `resolution`: origins, dirs [V, res*res, 3].
def label_rays(labels, resolution):
    cam2world, intrinsics = cameras.unpack_label(labels)
    return sample_rays(cam2world, intrinsics, resolution)

#----------------------------------------------------------------------------
# Fit a TensoRFVM to images [V,3,H,W] in [-1,1] seen from labels [V,25] with Adam on random ray batches
# (gradients on even when the caller runs under no_grad).

@torch.enable_grad()
def fit_field(images, labels, near, far, box=1.0, grid=32, iters=200, batch_rays=2048, samples=48, lr=0.02,
              density_rank=8, app_rank=16, l1_weight=1e-3, tv_weight=0.1, seed=0):
    device = images.device
    res = images.shape[-1]
    origins, dirs = label_rays(labels.to(device), res)
    origins, dirs = origins.reshape(-1, 3), dirs.reshape(-1, 3)
    target = ((images.float() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).reshape(-1, 3)  # row-major like the rays
    field = TensoRFVM(grid=grid, density_rank=density_rank, app_rank=app_rank, box=box, seed=seed).to(device)
    opt = torch.optim.Adam([
        dict(params=[field.planes, field.lines], lr=lr),
        dict(params=list(field.basis.parameters()) + [field.background], lr=lr * 0.1),
    ], betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(int(seed))
    for _ in range(int(iters)):
        idx = torch.randint(0, target.shape[0], [int(batch_rays)], generator=gen).to(device)
        pred = render_rays(field, origins[idx], dirs[idx], near, far, samples, generator=gen)
        l1, tv = field.regularizers()
        loss = F.mse_loss(pred, target[idx]) + l1_weight * l1 + tv_weight * tv
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return field.eval()

# Render the field from labels [V,25] at `resolution`: images [V,3,res,res] in [0,1].
@torch.no_grad()
def render_field_images(field, labels, resolution, near, far, samples=48, chunk=1 << 14):
    origins, dirs = label_rays(labels, resolution)
    out = []
    for v in range(labels.shape[0]):
        rows = [render_rays(field, origins[v, i:i + chunk], dirs[v, i:i + chunk], near, far, samples)
                for i in range(0, origins.shape[1], chunk)]
        out.append(torch.cat(rows).reshape(resolution, resolution, 3).permute(2, 0, 1))
    return torch.stack(out)

# PSNR (dB) per image of predictions and targets, both [V,3,H,W] in [0,1].
def psnr(pred, target):
    mse = ((pred.float() - target.float()) ** 2).flatten(1).mean(1)
    return -10 * torch.log10(mse.clamp_min(1e-10))

#----------------------------------------------------------------------------
# Views on a sphere around the head: yaw evenly spaced over 360 degrees from a random start, pitch uniform in
# [-pitch_range, pitch_range] degrees. Returns labels [V,25]; consecutive views alternate train/test.

def sphere_views(num_views, pitch_range_deg=20.0, seed=0, radius=cameras.DEFAULT_RADIUS, focal=cameras.FFHQ_FOCAL,
                 pivot=cameras.DEFAULT_PIVOT):
    if int(num_views) < 2:
        raise ValueError(f'num_views must be >= 2 (half train, half test), got {num_views}')
    rng = np.random.default_rng(seed)
    yaw = rng.uniform(0, 2 * math.pi) + 2 * math.pi * np.arange(int(num_views)) / int(num_views)
    yaw = (yaw + math.pi) % (2 * math.pi) - math.pi
    pitch = rng.uniform(-1, 1, size=int(num_views)) * math.radians(pitch_range_deg)
    return cameras.make_label(torch.tensor(yaw, dtype=torch.float32), torch.tensor(pitch, dtype=torch.float32),
                              radius=radius, focal=focal, pivot=pivot)

#----------------------------------------------------------------------------
# Consistency PSNR of one identity's views: images [V,3,H,W] in [-1,1] with labels [V,25]; even views train the
# field, odd views are held out. Returns the mean held-out PSNR in dB.

def views_psnr(images, labels, near, far, box=1.0, grid=32, iters=200, batch_rays=2048, samples=48, lr=0.02,
               density_rank=8, app_rank=16, seed=0):
    train, test = slice(0, None, 2), slice(1, None, 2)
    labels = labels.to(images.device)
    field = fit_field(images[train], labels[train], near, far, box=box, grid=grid, iters=iters,
                      batch_rays=batch_rays, samples=samples, lr=lr, density_rank=density_rank, app_rank=app_rank,
                      seed=seed)
    pred = render_field_images(field, labels[test], images.shape[-1], near, far, samples=samples)
    target = ((images[test].float() + 1) / 2).clamp(0, 1)
    return float(psnr(pred, target).mean())

#----------------------------------------------------------------------------
# Views [V,3,res,res] in [-1,1] of one latent z from labels [V,25]: one w (mapped with the frontal conditioning
# pose) for every view, deterministic rendering, resized to `resolution`.

@torch.no_grad()
def _render_identity(G, z, labels, resolution, batch, truncation_psi, device):
    c_front = cameras.make_label(torch.zeros(1), torch.zeros(1), **generate.camera_orbit(G)).to(device)
    ws = G.mapping(z[None].to(device), cond_for(G, c_front), truncation_psi=truncation_psi)
    images = []
    for i in range(0, labels.shape[0], batch):
        c = labels[i:i + batch].to(device)
        out = G.synthesis(ws.expand(c.shape[0], -1, -1), c, noise_mode='const',
                          render_overrides=RENDER_OVERRIDES)
        img = out['image'].float()
        if img.shape[-1] != resolution:
            img = F.interpolate(img, size=(resolution, resolution), mode='bilinear', align_corners=False,
                                antialias=True)
        images.append(img)
    return torch.cat(images)

# The generator metric: for `num_identities` latents, render `num_views` sphere views each, fit on the even
# views and average the held-out PSNR over identities. near/far/box come from the generator's rendering options.
def generator_consistency(G, num_identities=50, num_views=100, resolution=128, grid=128, iters=3000,
                          batch_rays=4096, samples=64, lr=0.02, pitch_range_deg=20.0, truncation_psi=1.0, seed=0,
                          batch=8, device='cpu', progress=None):
    opts = G.rendering
    gen = torch.Generator().manual_seed(int(seed))
    z_all = torch.randn([int(num_identities), G.z_dim], generator=gen)
    scores = []
    for i in range(int(num_identities)):
        labels = sphere_views(num_views, pitch_range_deg, seed=seed + i, **generate.camera_orbit(G)).to(device)
        images = _render_identity(G, z_all[i], labels, resolution, batch, truncation_psi, device)
        scores.append(views_psnr(images, labels, opts.ray_start, opts.ray_end, box=opts.box_warp, grid=grid,
                                 iters=iters, batch_rays=batch_rays, samples=samples, lr=lr, seed=seed + i))
        if progress is not None:
            progress.update(1)
    return float(np.mean(scores))

#----------------------------------------------------------------------------
