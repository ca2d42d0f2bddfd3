"""Calibrate the view accuracy's classifier on a dataset: what does it call real back views degraded on purpose?

The back-view accuracy (metrics/backview.py) asks of each yaw-180 render whether the layout of edges in the image
centre is that of a real back view or of a real front view, whatever the edges' strength. A generated back can be
"not a back" for two different reasons: it lacks what real backs have (hair strands, sharpness), or it carries a
trace of a face. This tool measures both on real back views of --heads, each classified against the views of the
other identities (as the ceiling in the metric's report):

  blur R         each real back view resampled down to R x R px and up again (strands and sharpness go)
  smooth         resampled through --smooth-res px (no strands left: about as smooth as a 64^2 render's back)
  smooth + a     the same with a face added at contrast a: the high-passed yaw-0 render of a --teacher latent
                 (the render minus its own 8 px blur), one latent per view, times a

If blurred and smoothed backs still read as backs and a faint face turns them into fronts, a generator's low view
accuracy on smooth backs points at faint face structure, not at missing strands (README, "Which reading to trust").
Writes OUTDIR/controls.json and prints a table.

\b
  python scripts/backview_controls.py --heads runs/demo/world/heads.zip --teacher weights/face_world.pt \\
      --outdir runs/backview_controls
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

def resample(images, res):
    return filtered_resizing(filtered_resizing(images, res), images.shape[-1])

# Share of images [N,3,H,W] in [-1, 1] classified as back views; groups [N]: each one's identity (its own views are
# left out of the vote).
def back_rate(images, ref, groups):
    p = backview.back_probability(backview.view_features(images), ref, exclude_groups=groups)
    return float((p > 0.5).float().mean())

def controls(heads, teacher_G, blur_res, smooth_res, alphas, num, seed=0):
    ref = backview.reference_views(heads)
    ds = ImageLabelDataset(heads)
    rows = torch.nonzero(ref['is_back']).flatten()
    if num is not None and rows.numel() > num:
        rows = rows[torch.randperm(rows.numel(), generator=torch.Generator().manual_seed(seed))[:num]].sort().values
    groups = ref['groups'][rows]
    backs = torch.stack([torch.as_tensor(ds[int(ref['index'][r])][0]) for r in rows]).float() / 127.5 - 1
    out = [dict(control='real back views', value=back_rate(backs, ref, groups))]
    out += [dict(control=f'blur {r}', value=back_rate(resample(backs, r), ref, groups)) for r in blur_res]
    smooth = resample(backs, smooth_res)
    out.append(dict(control=f'smooth ({smooth_res} px)', value=back_rate(smooth, ref, groups)))
    if teacher_G is not None and alphas:
        seeds = list(range(seed, seed + backs.shape[0]))
        with torch.no_grad():
            face = generate.render_seed_views(teacher_G, seeds, [(0.0, 0.0)], batch=16)['image'][:, 0].float().clamp(-1, 1)
        face = filtered_resizing(face, backs.shape[-1]) if face.shape[-1] != backs.shape[-1] else face
        detail = face - resample(face, 8)
        for a in alphas:
            out.append(dict(control=f'smooth + {a:g} x face', value=back_rate((smooth + a * detail).clamp(-1, 1), ref, groups)))
    return out, int(backs.shape[0])

#----------------------------------------------------------------------------

@click.command()
@click.option('--heads', help='Dataset with back and front views, one identity per folder (e.g. heads.zip)', metavar='ZIP|DIR', required=True)
@click.option('--teacher', help='Face generator whose frontal renders give the faint faces (none: no face rows)', metavar='PT', default=None)
@click.option('--blur', 'blur_res', help='Resolutions of the blur rows', default='32,24,16', show_default=True)
@click.option('--smooth-res', help='Resolution of the smoothing', type=click.IntRange(min=2), default=20, show_default=True)
@click.option('--alphas', help='Contrasts of the added face', default='0.02,0.05,0.1,0.2', show_default=True)
@click.option('--num', help='Real back views used at most (a seeded subset)', type=click.IntRange(min=1), default=200, show_default=True)
@click.option('--outdir', help='Where controls.json goes', metavar='DIR', required=True)
@click.option('--threads', help='torch CPU threads (0 = all cores)', type=click.IntRange(min=0), default=1, show_default=True)
def main(heads, teacher, blur_res, smooth_res, alphas, num, outdir, threads):
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
        try:
            teacher_G = generate.load_generator(teacher)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
            raise click.ClickException(f'cannot load --teacher {teacher!r}: {e}')
    try:
        rows, n = controls(heads, teacher_G, blur_list, smooth_res, alpha_list, num)
    except (OSError, ValueError) as e:             # a DatasetError is a ValueError
        raise click.ClickException(f'--heads {heads!r}: {e}')
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, 'controls.json'), 'w') as f:
        json.dump(dict(heads=heads, teacher=teacher, num=n, rows=rows), f, indent=1)
    click.echo(f'{n} real back views of {heads}, each against the other identities\' views\n'
               '| control | classified as back views |\n|---|---|')
    for r in rows:
        click.echo(f'| {r["control"]} | {r["value"]:.3f} |')

if __name__ == '__main__':
    main()
