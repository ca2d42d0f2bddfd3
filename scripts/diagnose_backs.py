"""Which part of a distilled head generator puts a face on the back of the head?

A Head3D student (stage 2) is rendered with its parts exchanged with those of its own starting point, the
fine-tuned head generator (stage 1), and of the face teacher: the xy plane (which eq. 5 distils), the xz and
third planes (the head template, paper section 3.2), and the renderer's decoder + super-resolution. For every
combination it reports the back-view accuracy of yaw-180 renders (metrics/backview.py, reference views from
--heads; 1 = hair behind, 0 = a face behind), the mirror-face similarity of the same renders (how much of each
latent's own face shows behind; lower is better, real same-identity pairs of --heads give a true back's value) and
the ID-proxy of the frontal render to the teacher's render of the same latent (metrics/identity.py; pixel likeness
of the face region, not ArcFace), each over the same --num latents. Neither measure looks at the side of the head: OUTDIR/diagnose_backs.png shows each combination at yaw
0, 90 and 180 (three rows per combination, in --combos order; one column per seed 0..N-1 of --grid-seeds), where a
mix of parts from different networks can show a broken head shape from the side (as the paper's fig. 12(a) says of
the untrained xy swap). Nothing is trained; only those two files are written.

A combination is written as three letters: the source of the xy plane, of the other two planes and of the
decoder + super-resolution, each T (teacher), F (head_ft) or H (head3d); e.g. HFH is the student with head_ft's
xz/yz planes. With XY depth layers (xy_depth_layers, not in the paper) the xy source brings all its XY layers; one
with fewer layers than the decoder's network (the tri-plane teacher) gets zero layers behind its own. Every part is
driven by its own network's mapping of the same z and frontal conditioning.

Example (the demo's networks):

\b
  python scripts/diagnose_backs.py --teacher weights/face_world.pt --head-ft weights/head_ft_world.pt \\
      --head3d runs/demo/head3d --heads runs/demo/world/heads.zip --outdir runs/diagnose_backs
"""

import json
import os

import click
import numpy as np
import PIL.Image
import torch

from dnnlib.util import check_output_path
from metrics import backview, identity
from training import generate
from training.networks.triplane import PlaneGeneratorMixin

DEFAULT_COMBOS = 'TTT,FFF,HHH,TFF,FHF,HFF,HFH,FFH,HHF'
GRID_VIEWS = [(0.0, 0.0), (90.0, 0.0), (180.0, 0.0)]        # (yaw, pitch) in degrees of the image rows

#----------------------------------------------------------------------------
# A generator whose xy plane, other two planes and renderer (decoder + super-resolution) come from three
# generators of one architecture. Its ws are the three mappings' ws side by side ([N, 3 * num_ws, w_dim]).

class PartsGenerator(PlaneGeneratorMixin, torch.nn.Module):
    def __init__(self, xy_G, rest_G, render_G):
        super().__init__()
        self.parts = torch.nn.ModuleList([xy_G, rest_G, render_G])
        for G in (xy_G, rest_G):
            for attr in ('z_dim', 'c_dim', 'w_dim', 'num_ws', 'plane_channels', 'img_resolution'):
                if getattr(G, attr) != getattr(render_G, attr):
                    raise ValueError(f'the generators differ in {attr} ({getattr(G, attr)} vs {getattr(render_G, attr)})')
        # XY depth layers (xy_depth_layers, not in the paper): the xy part brings all its XY layers; the renderer's
        # count rules, and an xy part with fewer layers gets zero deeper layers (as a tri-plane --init does).
        self.xy_layers = getattr(render_G, 'xy_depth_layers', 1)
        if getattr(xy_G, 'xy_depth_layers', 1) > self.xy_layers:
            raise ValueError(f'the xy part has {xy_G.xy_depth_layers} XY depth layers, the decoder\'s generator '
                             f'{self.xy_layers}: use a decoder with at least as many')
        for attr in ('z_dim', 'c_dim', 'w_dim', 'img_resolution', 'img_channels', 'plane_channels'):
            setattr(self, attr, getattr(render_G, attr))
        self.num_ws = 3 * render_G.num_ws

    @property
    def rendering(self):
        return self.parts[2].rendering

    @property
    def neural_rendering_resolution(self):
        return self.parts[2].neural_rendering_resolution

    def _split(self, ws):
        n = self.parts[0].num_ws
        return [ws[:, i * n:(i + 1) * n] for i in range(3)]

    def mapping(self, z, c_cond, **kwargs):
        return torch.cat([G.mapping(z, c_cond, **kwargs) for G in self.parts], dim=1)

    def synthesis_planes(self, ws, **kwargs):
        ws_xy, ws_rest, _ = self._split(ws)
        xy = self.parts[0].synthesis_planes(ws_xy, **kwargs)
        rest = self.parts[1].synthesis_planes(ws_rest, **kwargs)[:, 1:3]
        deeper = xy[:, 3:]                                  # the XY layers behind the front one, if any
        missing = self.xy_layers - 1 - deeper.shape[1]
        zeros = xy.new_zeros([xy.shape[0], missing, *xy.shape[2:]])
        return torch.cat([xy[:, :1], rest, deeper, zeros], dim=1)

    def render_planes(self, planes, ws, c_render, **kwargs):
        return self.parts[2].render_planes(planes, self._split(ws)[2], c_render, **kwargs)

    def query_field(self, planes, coords, box_warp=None):
        return self.parts[2].query_field(planes, coords, box_warp=box_warp)

#----------------------------------------------------------------------------
# Parse 'HFH,FFF' into a list of three-letter combinations of T, F, H.

def parse_combos(text):
    combos = [c.strip().upper() for c in text.split(',') if c.strip()]
    bad = [c for c in combos if len(c) != 3 or set(c) - set('TFH')]
    if not combos or bad:
        raise ValueError(f'{text!r}: expected comma-separated three-letter combinations of T, F and H (xy plane, '
                         f'xz/yz planes, decoder), e.g. HFH')
    return combos

# Back-view accuracy and ID-proxy to the teacher of every combination: (list of dict rows, uint8 grid image
# [3 * combos * H, grid_seeds * W, 3] or None when grid_seeds is 0).
@torch.no_grad()
def diagnose(nets, combos, ref, num, grid_seeds=8, device='cpu', progress=None):
    rows, strips = [], []
    for combo in combos:
        G = nets[combo[0]] if len(set(combo)) == 1 else PartsGenerator(*[nets[k] for k in combo])
        read = backview.generator_views(G, ref, num, device=device)
        fid = identity.frontal_fidelity(nets['T'], G, num=num, device=device)
        rows.append(dict(combo=combo, back_view=round(read['back'], 4),
                         mirror=round(float(read['mirror'].mean()), 4), id_proxy=round(fid['id_proxy'][0], 4),
                         id_proxy_other_z=round(fid['id_proxy'][1], 4)))
        if grid_seeds:
            views = generate.render_seed_views(G, list(range(grid_seeds)), GRID_VIEWS, device=device)['image']
            images = generate.to_uint8(views.transpose(0, 1).flatten(0, 1))      # view-major: one row per view
            strips.append(generate.make_grid(images, len(GRID_VIEWS), grid_seeds))
        if progress:
            progress(rows[-1])
    return rows, (np.concatenate(strips) if strips else None)

SOURCE = dict(T='teacher', F='head_ft', H='head3d')

def format_row(row):
    xy, rest, render = (SOURCE[k] for k in row['combo'])
    return (f'| {row["combo"]} | {xy} | {rest} | {render} | {row["back_view"]:.3f} | {row["mirror"]:.3f} | '
            f'{row["id_proxy"]:.3f} |')

#----------------------------------------------------------------------------

@click.command()
@click.option('--teacher', help='Face teacher snapshot (T)', metavar='PT', required=True)
@click.option('--head-ft', 'head_ft', help='Fine-tuned head generator, stage 1 (F): snapshot or run dir',
              metavar='PT|DIR', required=True)
@click.option('--head3d', help='Distilled student, stage 2 (H): snapshot or run dir', metavar='PT|DIR', required=True)
@click.option('--heads', help='Multi-view heads set: the reference views of the back-view classifier',
              metavar='ZIP|DIR', required=True)
@click.option('--outdir', help='Where to write diagnose_backs.json', metavar='DIR', required=True)
@click.option('--combos', help='Combinations (xy, xz/yz, decoder sources)', default=DEFAULT_COMBOS, show_default=True)
@click.option('--num', help='Latents per combination', type=click.IntRange(min=1), default=200, show_default=True)
@click.option('--grid-seeds', help='Seeds per row of diagnose_backs.png (0 = no image)', type=click.IntRange(min=0),
              default=8, show_default=True)
@click.option('--threads', help='torch CPU threads (0 = all cores)', type=click.IntRange(min=0), default=0,
              show_default=True)
def main(teacher, head_ft, head3d, heads, outdir, combos, num, grid_seeds, threads):
    """Exchange planes and decoder between teacher, head_ft and head3d; measure backs and identity."""
    check_output_path(outdir, '--outdir')
    try:
        combos = parse_combos(combos)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint='--combos')
    if threads:
        torch.set_num_threads(threads)
    nets, paths = {}, {}
    for key, option, path in (('T', '--teacher', teacher), ('F', '--head-ft', head_ft), ('H', '--head3d', head3d)):
        try:
            nets[key] = generate.load_generator(path)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
            raise click.ClickException(f'cannot load {option} {path!r}: {e}')
        paths[SOURCE[key]] = os.path.abspath(path)
    try:
        ref = backview.reference_views(heads)
    except (OSError, ValueError) as e:
        raise click.ClickException(f'--heads {heads!r}: {e}')
    _, real_back = backview.real_rates(ref)
    click.echo(f'real back views (ceiling): {real_back:.3f}')
    real_mirror, _ = backview.real_mirror(heads)
    if real_mirror:
        click.echo(f'real same-identity front/back pairs, mirror-face similarity (a true back): '
                   f'{real_mirror["value"]:.3f}')
    click.echo('| combo | xy plane | xz/yz planes | decoder + SR | back-view accuracy | mirror-face similarity | '
               'ID-proxy to teacher |')
    click.echo('|---|---|---|---|---|---|---|')
    try:
        rows, grid = diagnose(nets, combos, ref, num, grid_seeds, progress=lambda row: click.echo(format_row(row)))
    except ValueError as e:
        raise click.ClickException(str(e))
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, 'diagnose_backs.json')
    with open(path + '.tmp', 'w') as f:
        json.dump(dict(networks=paths, heads=os.path.abspath(heads), num=num, real_back_view=round(real_back, 4),
                       real_mirror=round(real_mirror['value'], 4) if real_mirror else None, rows=rows), f, indent=1)
    os.replace(path + '.tmp', path)
    click.echo(f'wrote {path}')
    if grid is not None:
        png = os.path.join(outdir, 'diagnose_backs.png')
        PIL.Image.fromarray(grid, 'RGB').save(png + '.tmp', format='PNG')
        os.replace(png + '.tmp', png)
        click.echo(f'wrote {png} (rows: yaw 0, 90, 180 of each combination in order)')

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()
