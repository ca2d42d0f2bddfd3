"""Calibrate the view accuracy's classifier on a dataset: what does it call real back views degraded on purpose,
and does its vote on a generator's backs follow the faces that show through?

The back-view accuracy (metrics/backview.py) asks of each yaw-180 render whether the layout of edges in the image
centre is that of a real back view or of a real front view, whatever the edges' strength. A generated back can be
"not a back" for two different reasons: it lacks what real backs have (hair strands, sharpness), or it carries a
trace of a face. This tool measures both on real back views of --heads, each classified against the views of the
other identities (as the ceiling in the metric's report):

  blur R         each real back view resampled down to R x R px and up again (strands and sharpness go)
  smooth         resampled through --smooth-res px (little strand structure left)
  smooth + a     the same with a face added at contrast a: the high-passed yaw-0 render of a --teacher latent
                 (the render minus its own 8 px blur), one latent per view, times a
  featureless    each view replaced by its own mean colour plus faint grey noise (std 0.01): a back of the head
                 without any structure

Each row is read twice: at full resolution (metric backview) and resampled through --fraction of the size, reference
views included (metric backview_nr, the generator's rendering resolution; 0.5 for the tiny preset).

With --network (one or more snapshots), it also renders --num-latents latents of each at yaw 0 and 180 and compares
the classifier's vote with the mirror-face similarity (the per-latent face-behind reading, same module): the share of
yaw-180 renders read as back views among the latents whose face shows through (similarity above the real pairs'
90th percentile) and among the others. A classifier that saw faint faces would read fewer of the first as backs.
Writes OUTDIR/controls.json and prints tables.

\b
  python scripts/backview_controls.py --heads runs/demo/world/heads.zip --teacher weights/face_world.pt \\
      --network runs/demo/head3d --outdir runs/backview_controls
"""

import json
import math
import os

import click
import torch

from dnnlib.util import check_output_path
from metrics import backview
from training import generate
from training.dataset import ImageLabelDataset
from training.networks.dual_discriminator import filtered_resizing

#----------------------------------------------------------------------------

resample = backview.resample
FEATURELESS_NOISE = 0.01

# Share of images [N,3,H,W] in [-1, 1] classified as back views against the reference ref (read at its own fraction);
# groups [N]: each one's identity (its own views are left out of the vote).
def back_rate(images, ref, groups):
    p = backview.back_probability(backview.view_features(images, ref.get('fraction')), ref, exclude_groups=groups)
    return float((p > 0.5).float().mean())

# The classifier's references of a dataset, by result key: 'value' (full resolution) and, with a fraction below 1,
# 'value_matched' (the views resampled through that fraction of their size). Built once for all rows and networks.
def references(heads, fraction=None):
    refs = {'value': backview.reference_views(heads)}
    if fraction is not None and fraction < 1:
        refs['value_matched'] = backview.reference_views(heads, fraction=fraction)
    return refs

# The rows: dict(control, value (full resolution), value_matched (through `fraction`; only with a fraction)).
def controls(heads, teacher_G, blur_res, smooth_res, alphas, num, seed=0, fraction=None, refs=None):
    refs = refs or references(heads, fraction)
    ref = refs['value']
    ds = ImageLabelDataset(heads)
    rows = torch.nonzero(ref['is_back']).flatten()
    if num is not None and rows.numel() > num:
        rows = rows[torch.randperm(rows.numel(), generator=torch.Generator().manual_seed(seed))[:num]].sort().values
    groups = ref['groups'][rows]
    backs = torch.stack([torch.as_tensor(ds[int(ref['index'][r])][0]) for r in rows]).float() / 127.5 - 1
    row = lambda name, images: dict(control=name, **{key: back_rate(images, r, groups) for key, r in refs.items()})
    out = [row('real back views', backs)]
    out += [row(f'blur {r}', resample(backs, r)) for r in blur_res]
    smooth = resample(backs, smooth_res)
    out.append(row(f'smooth ({smooth_res} px)', smooth))
    if teacher_G is not None and alphas:
        seeds = list(range(seed, seed + backs.shape[0]))
        with torch.no_grad():
            face = generate.render_seed_views(teacher_G, seeds, [(0.0, 0.0)], batch=16)['image'][:, 0].float().clamp(-1, 1)
        face = filtered_resizing(face, backs.shape[-1]) if face.shape[-1] != backs.shape[-1] else face
        detail = face - resample(face, 8)
        for a in alphas:
            out.append(row(f'smooth + {a:g} x face', (smooth + a * detail).clamp(-1, 1)))
    noise = torch.randn(backs.shape[0], 1, *backs.shape[2:], generator=torch.Generator().manual_seed(seed))
    flat = backs.mean((2, 3), keepdim=True).expand_as(backs) + FEATURELESS_NOISE * noise
    out.append(row(f'featureless (mean colour + noise {FEATURELESS_NOISE:g})', flat.clamp(-1, 1)))
    return out, int(backs.shape[0])

# Per network: does the vote follow the faces behind? dict(network, latents, face_behind (how many latents the mirror
# reading says show the face), and per reading ('full', 'matched') the share read as back views among those latents
# and among the others (None where a side has none)).
# refs: from references() (built here when not given); real: backview.real_mirror's (None, note) pair likewise.
def vote_vs_face(G, heads, num, seed=0, fraction=None, refs=None, real=None):
    refs = refs or references(heads, fraction)
    real, note = real or backview.real_mirror(heads, seed=seed)
    if real is None:
        raise ValueError(f'no real front/back pairs for the mirror reading: {note}')
    views = backview.generator_views(G, refs['value'], num, seed=seed, matched=refs.get('value_matched'))
    face = views['mirror'] > real['p90']
    rate = lambda p, m: float((p[m] > 0.5).float().mean()) if bool(m.any()) else None
    out = dict(latents=int(num), face_behind=int(face.sum()), p90=real['p90'])
    for key, prob in (('full', views['back_prob']), ('matched', views.get('back_prob_matched'))):
        if prob is not None:
            out[key] = dict(all=float((prob > 0.5).float().mean()), face_behind=rate(prob, face), others=rate(prob, ~face))
    return out

#----------------------------------------------------------------------------

@click.command()
@click.option('--heads', help='Dataset with back and front views, one identity per folder (e.g. heads.zip)', metavar='ZIP|DIR', required=True)
@click.option('--teacher', help='Face generator whose frontal renders give the faint faces (none: no face rows)', metavar='PT', default=None)
@click.option('--blur', 'blur_res', help='Resolutions of the blur rows', default='32,24,16', show_default=True)
@click.option('--smooth-res', help='Resolution of the smoothing', type=click.IntRange(min=2), default=20, show_default=True)
@click.option('--alphas', help='Contrasts of the added face', default='0.02,0.05,0.1,0.2', show_default=True)
@click.option('--num', help='Real back views used at most (a seeded subset)', type=click.IntRange(min=1), default=200, show_default=True)
@click.option('--fraction', help='The matched reading: resample through this fraction of the size (0.5 = the tiny preset\'s rendering resolution; 1 = no matched reading)',
              type=click.FloatRange(min=0, max=1, min_open=True), default=0.5, show_default=True)
@click.option('--network', 'networks', help='Generator snapshot whose vote to compare with its faces behind (repeatable)', metavar='PT', multiple=True)
@click.option('--num-latents', help='Latents rendered per --network', type=click.IntRange(min=4), default=200, show_default=True)
@click.option('--outdir', help='Where controls.json goes', metavar='DIR', required=True)
@click.option('--threads', help='torch CPU threads (0 = all cores)', type=click.IntRange(min=0), default=1, show_default=True)
def main(heads, teacher, blur_res, smooth_res, alphas, num, fraction, networks, num_latents, outdir, threads):
    """Classify degraded real back views with the view accuracy's kNN classifier."""
    if threads:
        torch.set_num_threads(threads)
    try:
        blur_list = generate.parse_floats(blur_res, 'resolution') if blur_res.strip() else []
        if any(not math.isfinite(v) or v != int(v) or v < 2 for v in blur_list):
            raise ValueError(f'{blur_res!r}: resolutions must be whole numbers >= 2')
        blur_list = [int(v) for v in blur_list]
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint='--blur')
    try:
        alpha_list = generate.parse_floats(alphas, 'contrast') if alphas.strip() else []
        if any(not 0 < a <= 1 for a in alpha_list):
            raise ValueError(f'{alphas!r}: contrasts must be in (0, 1]')
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint='--alphas')
    check_output_path(outdir, '--outdir')
    teacher_G = None
    if teacher is not None and alpha_list:
        teacher_G = _load(teacher, '--teacher')
    nets = {path: _load(path, '--network') for path in networks}      # every file fails before the long part
    fraction = None if fraction >= 1 else fraction
    try:
        refs = references(heads, fraction)
        rows, n = controls(heads, teacher_G, blur_list, smooth_res, alpha_list, num, fraction=fraction, refs=refs)
        real = backview.real_mirror(heads) if nets else None
        votes = [dict(network=path, **vote_vs_face(G, heads, num_latents, fraction=fraction, refs=refs, real=real))
                 for path, G in nets.items()]
    except (OSError, ValueError) as e:             # a DatasetError is a ValueError
        raise click.ClickException(f'--heads {heads!r}: {e}')
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, 'controls.json'), 'w') as f:
        json.dump(dict(heads=heads, teacher=teacher, num=n, fraction=fraction, rows=rows, networks=votes), f, indent=1)
    matched = f' | at {fraction:g} of the size' if fraction else ''
    click.echo(f'{n} real back views of {heads}, each against the other identities\' views\n'
               f'| control | classified as back views{matched} |\n|---|---|' + ('---|' if fraction else ''))
    for r in rows:
        click.echo(f'| {r["control"]} | {r["value"]:.3f}' + (f' | {r["value_matched"]:.3f}' if fraction else '') + ' |')
    if votes:
        click.echo('\nread as back views: among the latents whose face shows through (mirror reading) | among the others')
        for v in votes:
            for key in ('full', 'matched'):
                if key in v:
                    r = v[key]
                    fmt = lambda x: 'none' if x is None else f'{x:.3f}'
                    click.echo(f'{v["network"]} ({key}, {v["face_behind"]} of {v["latents"]} with the face behind): '
                               f'{fmt(r["face_behind"])} | {fmt(r["others"])} (all {r["all"]:.3f})')

def _load(path, option):
    try:
        return generate.load_generator(path)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
        raise click.ClickException(f'cannot load {option} {path!r}: {e}')

if __name__ == '__main__':
    main()
