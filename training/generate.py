"""Sample generation from a tri-plane generator: seeds, views, images, orbit videos, shapes, interpolation and
latent edits. `gen_samples.py` is a thin click wrapper around these functions; metrics and the demo import them.

Everything here renders in the renderer's deterministic mode (no depth jitter, deterministic importance
sampling) with constant synthesis noise, so the same seed, view and settings always give the same pixels.
Angles at the interface are in degrees (yaw 0 = frontal, positive toward +x; pitch positive = camera above).
"""

import math
import os
import re

import numpy as np
import torch

from training import cameras, mesh, snapshot

# The renderer options every generation call uses: repeatable renders.
RENDER_OVERRIDES = dict(deterministic=True)

# Largest |pitch| accepted: the look-at camera degenerates on the vertical axis.
MAX_PITCH_DEG = 89.0

# Named view sets (yaw angles in degrees; pitch 0 unless a 'pitch:' part is given).
VIEW_PRESETS = {
    'front': [0.0],
    'side':  [90.0],
    'back':  [180.0],
    'ring4': [0.0, 90.0, 180.0, -90.0],
    'ring8': [0.0, 45.0, 90.0, 135.0, 180.0, -135.0, -90.0, -45.0],
}

#----------------------------------------------------------------------------
# Parse '0-3,7' into [0, 1, 2, 3, 7]: comma-separated integers and inclusive ascending ranges.

def parse_range(text):
    if not isinstance(text, str) or text.strip() == '':
        raise ValueError(f'empty range {text!r}: expected e.g. "0-3,7"')
    values = []
    for part in text.split(','):
        part = part.strip()
        m = re.fullmatch(r'(-?\d+)-(-?\d+)', part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise ValueError(f'range {part!r} in {text!r} runs backwards: write it as {hi}-{lo}')
            values.extend(range(lo, hi + 1))
        elif re.fullmatch(r'-?\d+', part):
            values.append(int(part))
        else:
            raise ValueError(f'{part!r} in {text!r} is not an integer or a range like "0-3"')
    return values

#----------------------------------------------------------------------------
# Parse a seed list ('0-3,7'); seeds are the non-negative 32-bit integers numpy's RandomState accepts.

def parse_seeds(text):
    seeds = parse_range(text)
    bad = [s for s in seeds if not 0 <= s < 2**32]
    if bad:
        raise ValueError(f'seed {bad[0]} in {text!r} is outside [0, 2^32)')
    return seeds

#----------------------------------------------------------------------------
# Parse a comma-separated list of floats ('-2,-1,0,1,2').

def parse_floats(text, what='value'):
    if not isinstance(text, str) or text.strip() == '':
        raise ValueError(f'empty {what} list {text!r}')
    try:
        return [float(v) for v in text.split(',')]
    except ValueError:
        raise ValueError(f'{what} list {text!r} is not a comma-separated list of numbers') from None

#----------------------------------------------------------------------------
# Wrap an angle in degrees to (-180, 180].

def wrap_deg(angle):
    angle = math.fmod(float(angle), 360.0)
    if angle > 180.0:
        angle -= 360.0
    elif angle <= -180.0:
        angle += 360.0
    return angle

#----------------------------------------------------------------------------
# Parse a view spec into [(yaw_deg, pitch_deg), ...]. A spec is ';'-separated parts, each a preset name
# (front, side, back, ring4, ring8), 'yaw:A,B,...' or 'pitch:A,B,...'; the views are every yaw at every pitch.
# Examples: 'ring8', 'yaw:0,90,180', 'front;pitch:-20,0,20', 'ring4;pitch:15'.

def parse_views(text):
    if not isinstance(text, str) or text.strip() == '':
        raise ValueError(f'empty view spec {text!r}: use a preset ({", ".join(VIEW_PRESETS)}) or "yaw:0,90"')
    yaws, pitches = None, None
    for part in text.split(';'):
        part = part.strip()
        key, _, rest = part.partition(':')
        if part in VIEW_PRESETS:
            new_yaws = VIEW_PRESETS[part]
        elif key in ('yaw', 'pitch') and rest:
            angles = parse_floats(rest, what=f'{key} angle')
            if key == 'pitch':
                if pitches is not None:
                    raise ValueError(f'view spec {text!r} gives pitch twice')
                pitches = angles
                continue
            new_yaws = angles
        else:
            raise ValueError(f'view {part!r} in {text!r} is neither a preset ({", ".join(VIEW_PRESETS)}) '
                             f'nor "yaw:LIST" / "pitch:LIST"')
        if yaws is not None:
            raise ValueError(f'view spec {text!r} gives the yaw angles twice')
        yaws = list(new_yaws)
    yaws = [0.0] if yaws is None else yaws
    pitches = [0.0] if pitches is None else pitches
    bad = [p for p in pitches if not abs(p) <= MAX_PITCH_DEG]
    if bad:
        raise ValueError(f'pitch {bad[0]} deg in {text!r} is impossible: |pitch| must be <= {MAX_PITCH_DEG:g} deg')
    return [(wrap_deg(y), float(p)) for p in pitches for y in yaws]

#----------------------------------------------------------------------------
# Format an angle for file names: '+045' for whole degrees, '+022.5' otherwise.

def format_angle(angle, width):
    angle = float(angle)
    if angle == round(angle):
        return f'{int(round(angle)):+0{width + 1}d}'
    return f'{angle:+0{width + 3}.1f}'

# File stem of one rendered view, e.g. 'seed0000_yaw+000_pitch+00'.
def view_name(seed, yaw_deg, pitch_deg):
    return f'seed{seed:04d}_yaw{format_angle(yaw_deg, 3)}_pitch{format_angle(pitch_deg, 2)}'

#----------------------------------------------------------------------------
# Camera labels [V,25] for views given as (yaw_deg, pitch_deg). fov_deg=None keeps the FFHQ focal (4.2647);
# a float uses EG3D's diagonal-FOV convention (18.837 deg -> 4.2634).

def view_labels(views, fov_deg=None, device='cpu', G=None):
    yaw = torch.tensor([math.radians(y) for y, _ in views], dtype=torch.float32)
    pitch = torch.tensor([math.radians(p) for _, p in views], dtype=torch.float32)
    focal = cameras.FFHQ_FOCAL if fov_deg is None else float(cameras.fov_to_intrinsics(fov_deg)[0, 0])
    return cameras.make_label(yaw, pitch, focal=focal, **camera_orbit(G)).to(device)

# The orbit radius and pivot of the generator's training cameras (EG3D's avg_camera_radius/pivot), or the defaults.
def camera_orbit(G=None):
    return dict(radius=getattr(G, 'avg_camera_radius', cameras.DEFAULT_RADIUS),
                pivot=tuple(getattr(G, 'avg_camera_pivot', cameras.DEFAULT_PIVOT)))

# The frontal conditioning label [N,25] (or [N,0] for an unconditional generator).
def front_labels(G, n, fov_deg=None, device='cpu'):
    if G.c_dim == 0:
        return torch.zeros([n, 0], device=device)
    return view_labels([(0.0, 0.0)] * n, fov_deg=fov_deg, device=device, G=G)

# Conditioning labels matching render labels [N,25] for an unconditional generator too.
def cond_like(G, c_render):
    return c_render if G.c_dim != 0 else c_render.new_zeros([c_render.shape[0], 0])

#----------------------------------------------------------------------------
# Resolve --device: 'auto' picks CUDA when available.

def resolve_device(name):
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if name == 'cuda' and not torch.cuda.is_available():
        raise ValueError('device "cuda" was requested but CUDA is not available on this machine')
    if name not in ('cpu', 'cuda'):
        raise ValueError(f'unknown device {name!r}: use auto, cpu or cuda')
    return torch.device(name)

#----------------------------------------------------------------------------
# Load the generator from a snapshot (or a run dir's newest): G_ema if present, else G, in eval mode without gradients.

def load_generator(path, device='cpu'):
    if os.path.isdir(path):                         # a run dir means its newest snapshot
        from training.checkpoint import latest_snapshot
        run_dir, path = path, latest_snapshot(path)
        if path is None:
            raise FileNotFoundError(f'run dir {run_dir!r} holds no snapshot-NNNNNNNNNN.pt')
    if not os.path.isfile(path):
        raise FileNotFoundError(f'network snapshot {path!r} does not exist')
    snap = snapshot.load_snapshot(path, device=device)
    nets = snap.get('nets', {}) if isinstance(snap, dict) else {}
    name = 'G_ema' if 'G_ema' in nets else 'G' if 'G' in nets else None
    if name is None:
        raise ValueError(f'snapshot {path!r} holds no generator (nets: {sorted(nets) or "none"}); '
                         f'expected G_ema or G')
    G = nets[name]
    for attr in ('mapping', 'synthesis_planes', 'render_planes', 'query_field'):
        if not callable(getattr(G, attr, None)):
            raise ValueError(f'snapshot {path!r}: {name} is a {type(G).__name__}, not a tri-plane generator '
                             f'(it has no {attr}())')
    return G.to(device).eval().requires_grad_(False)

#----------------------------------------------------------------------------
# Latents z [N, z_dim] for seeds, drawn as EG3D does (numpy RandomState(seed).randn).

def seeds_to_z(G, seeds, device='cpu'):
    z = np.stack([np.random.RandomState(seed).randn(G.z_dim) for seed in seeds])
    return torch.from_numpy(z).to(device=device, dtype=torch.float32)

# Mapped latents ws [N, num_ws, w_dim] for seeds, conditioned on c_cond [N, c_dim] (frontal by default).
@torch.no_grad()
def seeds_to_ws(G, seeds, c_cond=None, truncation_psi=1.0, truncation_cutoff=None, device='cpu'):
    z = seeds_to_z(G, seeds, device=device)
    if c_cond is None:
        c_cond = front_labels(G, len(seeds), device=device)
    return G.mapping(z, c_cond, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)

#----------------------------------------------------------------------------
# Render items i = 0..N-1 as (planes[plane_index[i]], ws[plane_index[i]], c_render[i]) in batches; returns CPU
# tensors image [N,3,H,W], image_raw [N,3,h,w] (the first three feature channels), image_depth [N,1,h,w].

@torch.no_grad()
def render_planes_batched(G, planes, ws, c_render, plane_index=None, nrr=None, batch=4, progress=None):
    n = c_render.shape[0]
    index = torch.arange(n) if plane_index is None else torch.as_tensor(plane_index)
    out = {k: [] for k in ('image', 'image_raw', 'image_depth')}
    for i in range(0, n, batch):
        idx = index[i:i + batch].to(planes.device)
        res = G.render_planes(planes[idx], ws[idx], c_render[i:i + batch].to(planes.device),
                              neural_rendering_resolution=nrr, render_overrides=RENDER_OVERRIDES)
        for k in out:
            out[k].append(res[k].float().cpu())
        if progress is not None:
            progress.update(len(idx))
    return {k: torch.cat(v) for k, v in out.items()}

# Tri-planes [N,3,C,H,W] of ws [N, num_ws, w_dim], synthesised in batches.
@torch.no_grad()
def synthesize_planes(G, ws, batch=4):
    return torch.cat([G.synthesis_planes(ws[i:i + batch], noise_mode='const') for i in range(0, ws.shape[0], batch)])

# Render ws [N, num_ws, w_dim] from cameras c_render [N,25] (see render_planes_batched for the outputs).
@torch.no_grad()
def render_ws(G, ws, c_render, nrr=None, batch=4, progress=None):
    planes = synthesize_planes(G, ws, batch=batch)
    return render_planes_batched(G, planes, ws, c_render, nrr=nrr, batch=batch, progress=progress)

#----------------------------------------------------------------------------
# Render every seed from every view. cond_pose='front' conditions the mapping on the frontal camera (one
# identity, one tri-plane per seed); 'render' conditions it on each view's camera (EG3D's pose-dependent
# appearance, one tri-plane per seed and view). Returns dict of [S, V, ...] tensors (image, image_raw, image_depth).

@torch.no_grad()
def render_seed_views(G, seeds, views, truncation_psi=1.0, truncation_cutoff=None, fov_deg=None, cond_pose='front',
                      nrr=None, batch=4, device='cpu', progress=None):
    if cond_pose not in ('front', 'render'):
        raise ValueError(f'cond_pose must be "front" or "render", got {cond_pose!r}')
    S, V = len(seeds), len(views)
    c_render = view_labels(views, fov_deg=fov_deg, device=device, G=G).repeat(S, 1)        # [S*V,25], seed-major
    if cond_pose == 'front':
        ws = seeds_to_ws(G, seeds, c_cond=front_labels(G, S, fov_deg=fov_deg, device=device),
                         truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, device=device)
        planes = synthesize_planes(G, ws, batch=batch)
        plane_index = torch.arange(S).repeat_interleave(V)
        out = render_planes_batched(G, planes, ws, c_render, plane_index, nrr=nrr, batch=batch, progress=progress)
    else:
        z = seeds_to_z(G, seeds, device=device).repeat_interleave(V, dim=0)            # [S*V,z_dim]
        ws = G.mapping(z, cond_like(G, c_render), truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        out = render_ws(G, ws, c_render, nrr=nrr, batch=batch, progress=progress)
    return {k: v.reshape(S, V, *v.shape[1:]) for k, v in out.items()}

#----------------------------------------------------------------------------
# Image conversion: float [-1,1] [N,3,H,W] -> uint8 [N,H,W,3].

def to_uint8(images):
    images = (images.float().clamp(-1, 1) + 1) * 127.5
    return images.round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

# Depth [N,1,H,W] -> uint8 [N,H,W,3] grey, near = bright; normalised per image unless a fixed [near, far]
# range is given (videos use the ray range, so the shading does not flicker between frames).
def depth_to_uint8(depth, near=None, far=None):
    d = depth.float()
    if near is None or far is None:
        near, far = d.amin(dim=(1, 2, 3), keepdim=True), d.amax(dim=(1, 2, 3), keepdim=True)
    d = ((far - d) / torch.as_tensor(far - near).clamp(min=1e-8)).clamp(0, 1)
    return (d * 255).round().to(torch.uint8).repeat(1, 3, 1, 1).permute(0, 2, 3, 1).cpu().numpy()

# Tile uint8 images [R*C,H,W,3] (row-major) into one [R*H, C*W, 3] image.
def make_grid(images, rows, cols):
    images = np.asarray(images)
    n, h, w, ch = images.shape
    if n != rows * cols:
        raise ValueError(f'make_grid needs {rows}x{cols}={rows * cols} images, got {n}')
    return images.reshape(rows, cols, h, w, ch).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, ch)

# Convert one render kind ('image', 'raw' or 'depth') of a render dict with leading dims [N] to uint8;
# depth_range = (near, far) fixes the depth normalisation (default: per image).
def render_to_uint8(out, kind, depth_range=(None, None)):
    if kind == 'image':
        return to_uint8(out['image'])
    if kind == 'raw':
        return to_uint8(out['image_raw'])
    if kind == 'depth':
        return depth_to_uint8(out['image_depth'], *depth_range)
    raise ValueError(f'unknown render kind {kind!r}: use image, raw or depth')

#----------------------------------------------------------------------------
# Write frames (uint8 [H,W,3] each) to an mp4: libx264, yuv420p; odd sizes are padded to even by edge copy.

def write_video(path, frames, fps=30):
    import imageio
    with imageio.get_writer(path, format='FFMPEG', mode='I', fps=fps, codec='libx264', pixelformat='yuv420p',
                            macro_block_size=1, ffmpeg_log_level='error') as writer:
        for frame in frames:
            frame = np.asarray(frame)
            pad = ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0))
            writer.append_data(np.pad(frame, pad, mode='edge') if any(p[1] for p in pad) else frame)

#----------------------------------------------------------------------------
# A 360-degree yaw orbit of a grid of seeds: yields uint8 frames [rows*H, cols*W, 3]. The identity is fixed
# per seed (frontal conditioning); pitch and pitch_wobble in degrees; kind is 'image', 'raw' or 'depth'.

@torch.no_grad()
def orbit_frames(G, seeds, grid, num_frames, kind='image', pitch_deg=0.0, pitch_wobble_deg=0.0, truncation_psi=1.0,
                 truncation_cutoff=None, fov_deg=None, nrr=None, batch=4, device='cpu', progress=None):
    rows, cols = grid
    if len(seeds) != rows * cols:
        raise ValueError(f'a {rows}x{cols} grid needs {rows * cols} seeds, got {len(seeds)}')
    ws = seeds_to_ws(G, seeds, c_cond=front_labels(G, len(seeds), fov_deg=fov_deg, device=device),
                     truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, device=device)
    yield from orbit_frames_ws(G, ws, grid, num_frames, kind=kind, pitch_deg=pitch_deg,
                               pitch_wobble_deg=pitch_wobble_deg, fov_deg=fov_deg, nrr=nrr, batch=batch, device=device,
                               progress=progress)

# The same orbit of given latents ws [rows*cols, num_ws, w_dim] (e.g. inverted photos, invert.py).
@torch.no_grad()
def orbit_frames_ws(G, ws, grid, num_frames, kind='image', pitch_deg=0.0, pitch_wobble_deg=0.0, fov_deg=None, nrr=None,
                    batch=4, device='cpu', progress=None):
    rows, cols = grid
    if ws.shape[0] != rows * cols:
        raise ValueError(f'a {rows}x{cols} grid needs {rows * cols} latents, got {ws.shape[0]}')
    if abs(pitch_deg) + abs(pitch_wobble_deg) > MAX_PITCH_DEG:
        raise ValueError(f'pitch {pitch_deg} +- wobble {pitch_wobble_deg} deg reaches beyond +-{MAX_PITCH_DEG:g} deg')
    focal = cameras.FFHQ_FOCAL if fov_deg is None else float(cameras.fov_to_intrinsics(fov_deg)[0, 0])
    labels = cameras.orbit_labels(num_frames, pitch=math.radians(pitch_deg),
                                  pitch_wobble=math.radians(pitch_wobble_deg), focal=focal,
                                  **camera_orbit(G)).to(device)
    ws = ws.to(device)
    planes = synthesize_planes(G, ws, batch=batch)
    depth_range = (G.rendering.ray_start, G.rendering.ray_end)
    for f in range(num_frames):
        out = render_planes_batched(G, planes, ws, labels[f:f + 1].expand(ws.shape[0], -1), nrr=nrr, batch=batch)
        if progress is not None:
            progress.update(1)
        yield make_grid(render_to_uint8(out, kind, depth_range), rows, cols)

#----------------------------------------------------------------------------
# Shapes. The density grid spans the renderer's box [-box_warp/2, box_warp/2]^3 with res points per axis.
# The array is indexed [z, y, x] (MRC's section/row/column order), so ChimeraX shows the axes as the world's.

def grid_coords(res, box_warp, start=0, stop=None):
    axis = torch.linspace(-box_warp / 2, box_warp / 2, res)
    idx = torch.arange(start, res ** 3 if stop is None else min(stop, res ** 3))     # flat [z, y, x] index
    return torch.stack([axis[idx % res], axis[(idx // res) % res], axis[idx // (res * res)]], dim=-1)  # [M,3] (x,y,z)

# Raw density sigma (G.query_field, before the renderer's shift and activation) of one planes [1,3,C,H,W]
# on the res^3 grid, queried in chunks (the coordinates too, so 512^3 fits in memory): float32 numpy
# [res, res, res] indexed [z, y, x].
@torch.no_grad()
def sample_density(G, planes, res, chunk=1 << 18, progress=None):
    if res < 8:
        raise ValueError(f'shape resolution {res} is too small: use at least 8')
    box_warp = float(G.rendering.box_warp)
    sigma = torch.empty(res ** 3)
    for i in range(0, res ** 3, chunk):
        part = grid_coords(res, box_warp, i, i + chunk).to(planes.device)[None]
        sigma[i:i + part.shape[1]] = G.query_field(planes, part)['sigma'][0, :, 0].float().cpu()
        if progress is not None:
            progress.update(part.shape[1])
    return sigma.reshape(res, res, res).numpy()

# Marching cubes on a [z, y, x] density volume over the box_warp cube at iso level `level` -> (verts [V,3]
# world (x, y, z) float32, faces [F,3] int32, outward normals). The volume is closed with one layer below the
# level so meshes touching the box get caps, which sit on the box faces.
def mesh_from_volume(volume, level, box_warp):
    verts, faces = mesh.marching_cubes(volume, level, order='zyx', inside='above', close=True, what='density')
    spacing = box_warp / (volume.shape[0] - 1)
    verts = np.clip(verts * spacing - box_warp / 2, -box_warp / 2, box_warp / 2)     # index -> world
    return np.ascontiguousarray(verts, dtype=np.float32), faces

# Vertex colours uint8 [V,3] from the generator's colour field: query_field rgb channels 0..2 (the
# sigmoid-space [0,1] colour that image_raw composites), clamped and scaled to 0..255.
@torch.no_grad()
def vertex_colors(G, planes, verts, chunk=1 << 18):
    cols = []
    for i in range(0, verts.shape[0], chunk):
        part = torch.from_numpy(verts[i:i + chunk]).to(planes.device)[None]
        cols.append(G.query_field(planes, part)['rgb'][0, :, :3].float().cpu())
    rgb = torch.cat(cols) if cols else torch.zeros([0, 3])
    return (rgb.clamp(0, 1) * 255).round().to(torch.uint8).numpy()

# Write a float32 density volume [z, y, x] to .mrc with the voxel size and origin of the world box.
def write_mrc(path, volume, box_warp):
    import mrcfile
    res = volume.shape[0]
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.ascontiguousarray(volume, dtype=np.float32))
        mrc.voxel_size = box_warp / (res - 1)
        mrc.header.origin.x = mrc.header.origin.y = mrc.header.origin.z = -box_warp / 2

#----------------------------------------------------------------------------
# Interpolate in w space along seeds: `steps` images per segment including both ends (shared ends once).
# Returns ws [(len(ws_keys)-1)*(steps-1)+1, num_ws, w_dim] and the weights t per segment.

def interpolate_ws(ws, steps):
    if ws.shape[0] < 2:
        raise ValueError(f'interpolation needs at least 2 seeds, got {ws.shape[0]}')
    if steps < 2:
        raise ValueError(f'interpolation needs at least 2 steps, got {steps}')
    out = [ws[:1]]
    t = torch.linspace(0, 1, steps, device=ws.device)[1:, None, None]
    for a, b in zip(ws[:-1], ws[1:]):
        out.append((1 - t) * a[None] + t * b[None])
    return torch.cat(out)

#----------------------------------------------------------------------------
# Edit ws [N, num_ws, w_dim] along a direction ([w_dim], [1, w_dim] or [num_ws, w_dim]) with each strength:
# returns [N, len(strengths), num_ws, w_dim] with w + s * d (InterFaceGAN-style linear editing).

def load_direction(path, num_ws, w_dim):
    if not os.path.isfile(path):
        raise FileNotFoundError(f'direction file {path!r} does not exist')
    try:
        d = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise ValueError(f'direction file {path!r} is not a plain .npy array: {e}') from None
    if not isinstance(d, np.ndarray) or not np.issubdtype(d.dtype, np.floating):
        raise ValueError(f'direction file {path!r} must hold a float array, got {getattr(d, "dtype", type(d))}')
    if d.shape == (w_dim,) or d.shape == (1, w_dim):
        d = np.broadcast_to(d.reshape(1, w_dim), (num_ws, w_dim))
    elif d.shape != (num_ws, w_dim):
        raise ValueError(f'direction in {path!r} has shape {list(d.shape)}; expected [{w_dim}], [1, {w_dim}] '
                         f'or [{num_ws}, {w_dim}] for this generator')
    if not np.isfinite(d).all():
        raise ValueError(f'direction in {path!r} contains NaN or inf')
    return torch.from_numpy(np.array(d, dtype=np.float32))

def edit_ws(ws, direction, strengths):
    s = torch.tensor(strengths, dtype=ws.dtype, device=ws.device)[None, :, None, None]
    return ws[:, None] + s * direction.to(ws)[None, None]
