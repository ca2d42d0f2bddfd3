"""Generate images, 360-degree orbit videos, shapes (.mrc + coloured .ply), latent interpolations and latent
edits from a Head3D / EG3D tri-plane generator snapshot.

Examples:

\b
  python gen_samples.py images --network run/snapshot.pt --outdir out --seeds 0-3 --views ring8
  python gen_samples.py video  --network run/snapshot.pt --outdir out --seeds 0-3 --grid 2x2 --frames 120
  python gen_samples.py shapes --network run/snapshot.pt --outdir out --seeds 0 --shape-res 256
  python gen_samples.py interp --network run/snapshot.pt --outdir out --seeds 0,1,2 --steps 7
  python gen_samples.py edit   --network run/snapshot.pt --outdir out --seeds 0 --direction smile.npy
  python gen_samples.py edit   --network inv/photo/G_pti.pt --outdir out --latent inv/photo/latent.npz --direction smile.npy
"""

import json
import os

import click
import numpy as np
import PIL.Image
from tqdm import tqdm

from dnnlib.util import check_output_path
from training import generate, mesh

#----------------------------------------------------------------------------
# Parameter types: the parsers live in training.generate; a ValueError becomes click's BadParameter, which
# names the option and the value.

class _ParsedType(click.ParamType):
    def __init__(self, name, parse):
        self.name = name
        self._parse = parse

    # Parse strings; pass through values that are already parsed (defaults given as lists).
    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        try:
            return self._parse(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)

# 'RxC' -> (rows, cols).
def _parse_grid(text):
    parts = text.lower().split('x')
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f'grid {text!r} must look like "2x2" (rows x columns, both positive)')
    return int(parts[0]), int(parts[1])

SEEDS = _ParsedType('seeds', generate.parse_seeds)
VIEWS = _ParsedType('views', generate.parse_views)
FLOATS = _ParsedType('floats', generate.parse_floats)
GRID = _ParsedType('grid', _parse_grid)

#----------------------------------------------------------------------------
# Options shared by every subcommand, and those of the subcommands that render images.

def _apply(fn, options):
    for option in reversed(options):
        fn = option(fn)
    return fn

def _common_options(fn):
    return _apply(fn, [
        click.option('--network', 'network_path', help='Network snapshot (.pt) or run dir (its newest snapshot); uses G_ema if present, else G',
                     metavar='PATH', required=True),
        click.option('--outdir', help='Where to write the outputs', metavar='DIR', required=True),
        click.option('--device', help='Device', type=click.Choice(['auto', 'cpu', 'cuda']), default='auto',
                     show_default=True),
        click.option('--trunc', 'truncation_psi', help='Truncation psi', type=float, default=1.0, show_default=True),
        click.option('--trunc-cutoff', 'truncation_cutoff', help='Truncation cutoff (layers; default all)',
                     type=click.IntRange(min=0), default=None),
        click.option('--fov-deg', help='Field of view in degrees (EG3D diagonal convention) of the cameras, the '
                     'conditioning one included; default: FFHQ focal 4.2647',
                     type=click.FloatRange(min=0, max=180, min_open=True, max_open=True), default=None),
    ])

def _render_options(fn):
    return _apply(fn, [
        click.option('--batch', help='Renders per forward pass', type=click.IntRange(min=1), default=4,
                     show_default=True),
        click.option('--nrr', help='Neural rendering resolution override (default: the network\'s)',
                     type=int, default=None),
    ])

# Load the generator and prepare the output folder; every failure is a ClickException naming the cause.
def _setup(network_path, outdir, device, nrr=None):
    if nrr is not None and nrr <= 0:
        raise click.BadParameter(f'{nrr} is not a positive resolution', param_hint='--nrr')
    check_output_path(outdir, '--outdir')
    try:
        device = generate.resolve_device(device)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint='--device')
    try:
        G = generate.load_generator(network_path, device=device)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
        raise click.ClickException(f'cannot load --network {network_path!r}: {e}')
    os.makedirs(outdir, exist_ok=True)
    return G, device

# Save a uint8 [H,W,3] image as PNG.
def _save_png(image, path):
    PIL.Image.fromarray(np.asarray(image), 'RGB').save(path)

# Run a generation call; a ValueError from bad values becomes a ClickException.
def _checked(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except ValueError as e:
        raise click.ClickException(str(e))

#----------------------------------------------------------------------------

@click.group()
def cli():
    """Generate samples from a tri-plane generator snapshot.

    \b
    images  multi-view PNGs and a seeds x views grid
    video   360-degree orbit mp4s of a grid of seeds
    shapes  density .mrc and coloured marching-cubes .ply (.obj)
    interp  w-space interpolation strips (and mp4)
    edit    w + strength * direction strips

    Run "gen_samples.py COMMAND --help" for the options of each command.
    """

#----------------------------------------------------------------------------

@cli.command()
@_common_options
@_render_options
@click.option('--seeds', help='Seeds, e.g. 0-3,7', type=SEEDS, required=True)
@click.option('--views', help='Preset (front, side, back, ring4, ring8) and/or yaw:LIST, pitch:LIST in degrees, '
              'joined by ";"', type=VIEWS, default='front', show_default=True)
@click.option('--cond-pose', help='Mapping conditioned on the frontal pose or on each render pose',
              type=click.Choice(['front', 'render']), default='front', show_default=True)
@click.option('--depth', is_flag=True, help='Also write depth maps (near = bright)')
@click.option('--raw', is_flag=True, help='Also write the raw neural renderings (before super-resolution)')
def images(network_path, outdir, device, batch, truncation_psi, truncation_cutoff, fov_deg, nrr, seeds, views,
           cond_pose, depth, raw):
    """Multi-view images: a seeds x views grid and one PNG per view."""
    G, device = _setup(network_path, outdir, device, nrr)
    with tqdm(total=len(seeds) * len(views), desc='images', unit='img') as bar:
        out = _checked(generate.render_seed_views, G, seeds, views, truncation_psi=truncation_psi,
                       truncation_cutoff=truncation_cutoff, fov_deg=fov_deg, cond_pose=cond_pose, nrr=nrr,
                       batch=batch, device=device, progress=bar)
    S, V = len(seeds), len(views)
    kinds = ['image'] + (['depth'] if depth else []) + (['raw'] if raw else [])
    for kind in kinds:
        flat = {k: v.flatten(0, 1) for k, v in out.items()}
        pixels = generate.render_to_uint8(flat, kind)                                # [S*V,H,W,3]
        suffix = '' if kind == 'image' else f'_{kind}'
        _save_png(generate.make_grid(pixels, S, V), os.path.join(outdir, f'grid{suffix}.png'))
        for i, seed in enumerate(seeds):
            for j, (yaw, pitch) in enumerate(views):
                _save_png(pixels[i * V + j], os.path.join(outdir, generate.view_name(seed, yaw, pitch) + f'{suffix}.png'))
    click.echo(f'wrote {S * V * len(kinds)} images and {len(kinds)} grid(s) to {outdir}')

#----------------------------------------------------------------------------

@cli.command()
@_common_options
@_render_options
@click.option('--seeds', help='Seeds, e.g. 0-3 (rows x columns of them)', type=SEEDS, default=None)
@click.option('--latent', 'latent_path', help='Orbit an inverted latent instead of seeds (latent.npz of invert.py; '
              'with its G_pti.pt as --network when pivotal tuning ran)', metavar='NPZ', default=None)
@click.option('--grid', help='Grid of seeds, rows x columns', type=GRID, default='1x1', show_default=True)
@click.option('--frames', help='Frames in the 360-degree orbit', type=click.IntRange(min=1), default=120,
              show_default=True)
@click.option('--fps', help='Frames per second', type=click.IntRange(min=1), default=30, show_default=True)
@click.option('--pitch', 'pitch_deg', help='Camera pitch in degrees', type=float, default=0.0, show_default=True)
@click.option('--pitch-wobble', 'pitch_wobble_deg', help='Pitch amplitude (degrees) of one sine over the orbit',
              type=float, default=0.0, show_default=True)
@click.option('--mode', 'kind', help='What to show', type=click.Choice(['image', 'raw', 'depth']), default='image',
              show_default=True)
def video(network_path, outdir, device, batch, truncation_psi, truncation_cutoff, fov_deg, nrr, seeds, latent_path,
          grid, frames, fps, pitch_deg, pitch_wobble_deg, kind):
    """A 360-degree yaw orbit of a grid of seeds as mp4 (libx264, yuv420p); one video per grid of seeds."""
    rows, cols = grid
    if (seeds is None) == (latent_path is None):
        raise click.UsageError('give exactly one of --seeds and --latent')
    if latent_path is not None:
        G, device = _setup(network_path, outdir, device, nrr)
        ws = _load_inverted(G, latent_path)
        if ws.shape[0] != rows * cols:
            raise click.BadParameter(f'{latent_path} holds {ws.shape[0]} latent(s); --grid {rows}x{cols} needs '
                                     f'{rows * cols}', param_hint='--grid')
        path = os.path.join(outdir, f'orbit_{kind}_{os.path.splitext(os.path.basename(latent_path))[0]}.mp4')
        with tqdm(total=frames, desc=os.path.basename(path), unit='frame') as bar:
            frame_iter = _checked(generate.orbit_frames_ws, G, ws, grid, frames, kind=kind, pitch_deg=pitch_deg,
                                  pitch_wobble_deg=pitch_wobble_deg, fov_deg=fov_deg, nrr=nrr, batch=batch,
                                  device=device, progress=bar)
            _checked(generate.write_video, path, frame_iter, fps=fps)
        click.echo(f'wrote {path}')
        return
    if len(seeds) % (rows * cols) != 0:
        raise click.BadParameter(f'{len(seeds)} seeds do not fill {rows}x{cols} grids evenly', param_hint='--seeds')
    G, device = _setup(network_path, outdir, device, nrr)
    n = rows * cols
    for start in range(0, len(seeds), n):
        group = seeds[start:start + n]
        path = os.path.join(outdir, f'orbit_{kind}_seed{group[0]:04d}' + (f'-{group[-1]:04d}' if n > 1 else '') + '.mp4')
        with tqdm(total=frames, desc=os.path.basename(path), unit='frame') as bar:
            frame_iter = _checked(generate.orbit_frames, G, group, grid, frames, kind=kind, pitch_deg=pitch_deg,
                                  pitch_wobble_deg=pitch_wobble_deg, truncation_psi=truncation_psi,
                                  truncation_cutoff=truncation_cutoff, fov_deg=fov_deg, nrr=nrr, batch=batch,
                                  device=device, progress=bar)
            _checked(generate.write_video, path, frame_iter, fps=fps)
        click.echo(f'wrote {path}')

#----------------------------------------------------------------------------

@cli.command()
@_common_options
@click.option('--seeds', help='Seeds, e.g. 0-3', type=SEEDS, required=True)
@click.option('--shape-res', help='Density grid points per axis', type=int, default=256, show_default=True)
@click.option('--level', help='Iso level of the raw density for the mesh (ChimeraX: about 10)', type=float,
              default=10.0, show_default=True)
@click.option('--obj', is_flag=True, help='Also write a Wavefront .obj (vertex colours as v x y z r g b)')
@click.option('--chunk', help='Points per query_field call', type=click.IntRange(min=1), default=1 << 18,
              show_default=True)
def shapes(network_path, outdir, device, truncation_psi, truncation_cutoff, fov_deg, seeds, shape_res, level, obj,
           chunk):
    """Density volumes (.mrc, float32 sigma) and coloured marching-cubes meshes (.ply, optional .obj)."""
    if shape_res < 8:
        raise click.BadParameter(f'{shape_res} is too small: use at least 8', param_hint='--shape-res')
    G, device = _setup(network_path, outdir, device)
    box = float(G.rendering.box_warp)
    ws = generate.seeds_to_ws(G, seeds, c_cond=generate.front_labels(G, len(seeds), fov_deg=fov_deg, device=device),
                              truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, device=device)
    for i, seed in enumerate(seeds):
        planes = generate.synthesize_planes(G, ws[i:i + 1])
        with tqdm(total=shape_res ** 3, desc=f'seed{seed:04d} density', unit='pt', unit_scale=True) as bar:
            sigma = generate.sample_density(G, planes, shape_res, chunk=chunk, progress=bar)
        stem = os.path.join(outdir, f'seed{seed:04d}')
        generate.write_mrc(stem + '.mrc', sigma, box)
        try:
            verts, faces = generate.mesh_from_volume(sigma, level, box)
        except ValueError as e:
            raise click.ClickException(f'seed {seed}: {e} (--level; the volume is in {stem}.mrc)')
        colors = generate.vertex_colors(G, planes, verts, chunk=chunk)
        mesh.write_ply(stem + '.ply', verts, faces, colors)
        if obj:
            mesh.write_obj(stem + '.obj', verts, faces, colors)
        click.echo(f'seed {seed}: {stem}.mrc, {stem}.ply{" + .obj" if obj else ""} ({len(verts)} vertices, '
                   f'{len(faces)} faces, density range [{sigma.min():.3g}, {sigma.max():.3g}])')

#----------------------------------------------------------------------------

@cli.command()
@_common_options
@_render_options
@click.option('--seeds', help='Two or more seeds to interpolate between, e.g. 0,1,5', type=SEEDS, required=True)
@click.option('--steps', help='Images per segment in the strip, both ends included', type=click.IntRange(min=2),
              default=7, show_default=True)
@click.option('--yaw', 'yaws', help='Yaw angles in degrees, one strip row each (e.g. 0,180)', type=FLOATS,
              default='0', show_default=True)
@click.option('--video-frames', help='Also write an mp4 with this many frames per segment (0 = none)',
              type=click.IntRange(min=0), default=0, show_default=True)
@click.option('--fps', help='Video frames per second', type=click.IntRange(min=1), default=30, show_default=True)
def interp(network_path, outdir, device, batch, truncation_psi, truncation_cutoff, fov_deg, nrr, seeds, steps, yaws,
           video_frames, fps):
    """Linear interpolation in w space between seeds (paper figures 14-15): a strip PNG, optional mp4."""
    if len(seeds) < 2:
        raise click.BadParameter(f'{seeds} has fewer than 2 seeds', param_hint='--seeds')
    G, device = _setup(network_path, outdir, device, nrr)
    ws = generate.seeds_to_ws(G, seeds, c_cond=generate.front_labels(G, len(seeds), fov_deg=fov_deg, device=device),
                              truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, device=device)
    views = [(generate.wrap_deg(y), 0.0) for y in yaws]
    labels = generate.view_labels(views, fov_deg=fov_deg, device=device, G=G)
    name = 'interp_' + '-'.join(f'{s:04d}' for s in seeds)
    path_ws = generate.interpolate_ws(ws, steps)                                     # [T, num_ws, w_dim]
    T = path_ws.shape[0]
    with tqdm(total=T * len(views), desc='interp', unit='img') as bar:
        rows = []
        for v in range(len(views)):
            out = generate.render_ws(G, path_ws, labels[v:v + 1].expand(T, -1), nrr=nrr, batch=batch, progress=bar)
            rows.append(generate.to_uint8(out['image']))
    _save_png(generate.make_grid(np.concatenate(rows), len(views), T), os.path.join(outdir, name + '.png'))
    click.echo(f'wrote {os.path.join(outdir, name + ".png")} ({len(views)} x {T} images)')
    if video_frames > 0:
        frames_ws = generate.interpolate_ws(ws, video_frames)
        n = frames_ws.shape[0]
        path = os.path.join(outdir, name + '.mp4')

        # One video frame: every yaw side by side.
        def frame_iter(bar):
            for f in range(n):
                out = generate.render_ws(G, frames_ws[f:f + 1].expand(len(views), -1, -1), labels, nrr=nrr, batch=batch)
                bar.update(1)
                yield generate.make_grid(generate.to_uint8(out['image']), 1, len(views))

        with tqdm(total=n, desc=os.path.basename(path), unit='frame') as bar:
            generate.write_video(path, frame_iter(bar), fps=fps)
        click.echo(f'wrote {path} ({n} frames)')

#----------------------------------------------------------------------------

@cli.command()
@_common_options
@_render_options
@click.option('--seeds', help='Seeds to edit, one strip row each', type=SEEDS, default=None)
@click.option('--latent', 'latent_path', help='Edit an inverted latent instead of seeds (latent.npz of invert.py; '
              'pass its G_pti.pt as --network when pivotal tuning ran)', metavar='NPZ', default=None)
@click.option('--direction', 'direction_path', help='Direction in w space (.npy: [w_dim], [1, w_dim] or '
              '[num_ws, w_dim]), e.g. an InterFaceGAN boundary', metavar='NPY', required=True)
@click.option('--strengths', help='Step sizes along the direction', type=FLOATS, default='-2,-1,0,1,2',
              show_default=True)
@click.option('--yaw', 'yaw_deg', help='Yaw of the renders in degrees', type=float, default=0.0, show_default=True)
def edit(network_path, outdir, device, batch, truncation_psi, truncation_cutoff, fov_deg, nrr, seeds, latent_path,
         direction_path, strengths, yaw_deg):
    """Move w along a direction (InterFaceGAN-style editing, paper figure 16): a seeds x strengths strip, or one row
    for an inverted photo (--latent)."""
    if (seeds is None) == (latent_path is None):
        raise click.UsageError('give exactly one of --seeds and --latent')
    G, device = _setup(network_path, outdir, device, nrr)
    try:
        direction = generate.load_direction(direction_path, G.num_ws, G.w_dim)
    except (OSError, ValueError) as e:
        raise click.BadParameter(str(e), param_hint='--direction')
    if latent_path is not None:
        ws = _load_inverted(G, latent_path).to(device)
        seeds = [os.path.abspath(latent_path)] * ws.shape[0]
    else:
        ws = generate.seeds_to_ws(G, seeds, c_cond=generate.front_labels(G, len(seeds), fov_deg=fov_deg, device=device),
                                  truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, device=device)
    edited = generate.edit_ws(ws, direction, strengths).flatten(0, 1)              # [S*K, num_ws, w_dim]
    labels = generate.view_labels([(generate.wrap_deg(yaw_deg), 0.0)], fov_deg=fov_deg, device=device, G=G)
    with tqdm(total=edited.shape[0], desc='edit', unit='img') as bar:
        out = generate.render_ws(G, edited, labels.expand(edited.shape[0], -1), nrr=nrr, batch=batch, progress=bar)
    stem = os.path.join(outdir, f'edit_{os.path.splitext(os.path.basename(direction_path))[0]}')
    _save_png(generate.make_grid(generate.to_uint8(out['image']), len(seeds), len(strengths)), stem + '.png')
    with open(stem + '.json', 'w') as f:
        json.dump(dict(direction=os.path.abspath(direction_path), strengths=strengths, yaw_deg=yaw_deg,
                       **(dict(latent=seeds[0]) if latent_path else dict(seeds=seeds, truncation_psi=truncation_psi))),
                  f, indent=2)
    click.echo(f'wrote {stem}.png ({len(seeds)} {"latent" if latent_path else "seeds"} x {len(strengths)} strengths)')

# An inverted latent (invert.py's latent.npz) for G: ws [N, num_ws, w_dim]; its synthesis noise maps, when stored,
# are put into G (the projection optimised them with w; a tuned G_pti.pt already holds the same maps).
def _load_inverted(G, path):
    from training import inversion
    try:
        ws, noise = inversion.load_latent(path, G.num_ws, G.w_dim)
        if noise:
            inversion.set_noise(G, noise)
    except (OSError, ValueError) as e:
        raise click.BadParameter(f'{path}: {e}', param_hint='--latent')
    return ws

#----------------------------------------------------------------------------

if __name__ == '__main__':
    cli()
