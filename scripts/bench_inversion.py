"""Inversion benchmark with ground truth from behind: invert new synthetic identities from ONE frontal view and compare
the inverted heads with the world's own renders of the same identities at yaw 45, 90, 135 and 180.

For each network (e.g. the face teacher, head_ft and head3d of `make demo`) and each of N identities that are in
neither faces.zip nor heads.zip (training.synthetic.novel_identities):
  1. render the identity at yaw 0 (the input) and at 45, 90, 135, 180 degrees (pitch 0) with the world's renderer
  2. invert the yaw-0 render: W projection, W+ projection, and pivotal tuning from the W+ pivot (W+ + PTI)
  3. render each inverted head at the same cameras and compare with the ground truth: PSNR and perceptual distance
     per yaw; at 180 also the back-view accuracy (metrics/backview.py's classifier, from --heads: is the render from
     behind classified as a back view of a head, or as a face?)
Baselines read against: the w-average start (the projection's initial latent) and chance (another new identity's
ground truth compared with this one's).

Writes OUTDIR/results_<network>.json per network and OUTDIR/table.md from every results_*.json in OUTDIR (so two
processes with different --networks can share one OUTDIR).

Example (the demo's networks, CPU):

\b
  python scripts/bench_inversion.py --demo runs/demo --outdir runs/bench_inversion --num 4 --steps 50 --pti-steps 25
"""

import copy
import json
import os
import time

import click
import numpy as np
import torch

from metrics import backview
from training import generate, inversion, synthetic
from training.checkpoint import demo_network
from training.losses.perceptual import PERCEPTUAL_KINDS, PerceptualError, build_perceptual

YAWS = (0.0, 45.0, 90.0, 135.0, 180.0)       # yaw 0 is the input view
CONFIGS = ('w', 'w+', 'w+pti')
DEMO_STAGES = ('face', 'head_ft', 'head3d')

#----------------------------------------------------------------------------
# Comparisons of renders [V,3,H,W] with the ground truth [V,3,H,W]: per-yaw PSNR and perceptual distance, and the
# back-view verdict of the yaw-180 render (1 = classified as a back view, None without reference views).

@torch.no_grad()
def compare(renders, truth, P, ref):
    row = dict(psnr=[round(float(v), 3) for v in inversion.psnr(renders, truth)])
    if P is not None:
        row['perceptual'] = [round(float(v), 4) for v in P(renders.clamp(-1, 1), truth)]
    if ref is not None:
        p = backview.back_probability(backview.view_features(renders[-1:].clamp(-1, 1)), ref)
        row['back_view'] = float(p[0] > 0.5)
    return row

# Ground-truth renders [N,V,3,H,W] of the identities at the benchmark's yaws (the world's renderer and cameras).
def ground_truth(identities, labels, res):
    return torch.stack([synthetic.render_heads([params] * labels.shape[0], labels, res) for params in identities])

#----------------------------------------------------------------------------
# Benchmark one generator: returns the results dict that is written as results_<name>.json.

def bench_network(name, path, identities, P, kind, ref, steps, pti_steps, configs, seed, device, log):
    G = generate.load_generator(path, device=device)
    views = [(y, 0.0) for y in YAWS]
    labels = generate.view_labels(views, device=device, G=G)
    truth = ground_truth(identities, labels.cpu(), G.img_resolution).to(device)      # [N,V,3,H,W]
    N = len(identities)
    rows = {k: [] for k in ('w_avg', 'chance', 'truth') + tuple(configs)}
    times = {k: [] for k in configs}
    for i in range(N):
        target, c = truth[i, :1], labels[:1]
        # Chance: another identity's ground truth; the truth row is the ground truth against itself (the
        # back-view classifier's verdict on real renders of new identities: the ceiling of that column).
        rows['chance'].append(compare(truth[(i + 1) % N], truth[i], P, ref))
        rows['truth'].append(compare(truth[i], truth[i], None, ref))

        def run(ws, G_eval):
            out = generate.render_ws(G_eval, ws.expand(len(views), -1, -1), labels, batch=len(views))
            return compare(out['image'].to(device), truth[i], P, ref)

        w_plus = None
        for space in [s for s in ('w', 'w+') if s in configs or (s == 'w+' and 'w+pti' in configs)]:
            proj = inversion.project(G, target, c, space=space, steps=steps, perceptual=P, seed=seed + i)
            if len(rows['w_avg']) == i:                 # the start (w average, G's own noise): once per identity
                rows['w_avg'].append(run(proj['w_avg'], G))
            if space in configs:
                rows[space].append(dict(run(proj['ws'], _with_noise(G, proj['noise'])), time_s=round(proj['time'], 2)))
                times[space].append(proj['time'])
            if space == 'w+':
                w_plus = proj
            log(f'{name} id {i}: {space} input PSNR {proj["curve"][-1]["psnr"]:.2f} dB ({proj["time"]:.1f} s)')
        if 'w+pti' in configs:
            pti = inversion.pivotal_tune(G, w_plus['ws'], w_plus['noise'], target, c, steps=pti_steps, perceptual=P,
                                         w_dist=w_plus['w_dist'], seed=seed + i)
            total = w_plus['time'] + pti['time']
            rows['w+pti'].append(dict(run(w_plus['ws'], pti['G']), time_s=round(total, 2)))
            times['w+pti'].append(total)
            log(f'{name} id {i}: w+pti input PSNR {pti["curve"][-1]["psnr"]:.2f} dB ({total:.1f} s)')
    return dict(network=name, path=os.path.abspath(path), yaws=list(YAWS), num=N, steps=steps, pti_steps=pti_steps,
                perceptual=kind, resolution=G.img_resolution, device=str(device), torch_threads=torch.get_num_threads(),
                rows=rows, summary={k: summarize(v) for k, v in rows.items()},
                time_per_image_s={k: round(float(np.mean(v)), 2) for k, v in times.items()})

# A copy of G with the given synthesis noise maps.
def _with_noise(G, noise):
    G2 = copy.deepcopy(G)
    inversion.set_noise(G2, noise)
    return G2

# Mean over identities of each per-yaw list and of the back-view verdicts.
def summarize(rows):
    if not rows:
        return {}
    out = {}
    for key in ('psnr', 'perceptual'):
        if key in rows[0]:
            out[key] = [round(float(v), 3 if key == 'psnr' else 4) for v in np.mean([r[key] for r in rows], axis=0)]
    if 'back_view' in rows[0]:
        out['back_view'] = round(float(np.mean([r['back_view'] for r in rows])), 3)
    return out

#----------------------------------------------------------------------------
# The markdown table of every results_*.json in outdir.

ROW_NAMES = dict(w_avg='w-average start', w='W', **{'w+': 'W+', 'w+pti': 'W+ + PTI'})

def write_table(outdir):
    results = []
    for f in sorted(os.listdir(outdir)):
        if f.startswith('results_') and f.endswith('.json'):
            with open(os.path.join(outdir, f)) as fh:
                results.append(json.load(fh))
    order = {n: k for k, n in enumerate(DEMO_STAGES)}
    results.sort(key=lambda r: order.get(r['network'], len(order)))
    if not results:
        return None
    yaws = results[0]['yaws']
    lines = [f'PSNR in dB / perceptual distance ({results[0]["perceptual"]}) per yaw, mean over identities; yaw 0 is '
             f'the input view. Back: fraction of yaw-180 renders classified as back views (metrics/backview.py).', '',
             '| network | latent | ' + ' | '.join(f'yaw {y:g}' + (' (input)' if y == 0 else '') for y in yaws)
             + ' | back | s/image |',
             '|---|---|' + '---|' * len(yaws) + '---|---|']

    def cells(summary):
        p = summary.get('perceptual')
        return [f'{summary["psnr"][k]:.2f}' + (f' / {p[k]:.3f}' if p else '') for k in range(len(yaws))]

    for r in results:
        for key in ('w_avg',) + CONFIGS:
            s = r['summary'].get(key)
            if not s:
                continue
            t = r['time_per_image_s'].get(key)
            back = s.get('back_view')
            lines.append(f'| {r["network"]} | {ROW_NAMES[key]} | ' + ' | '.join(cells(s)) + f' | '
                         f'{"-" if back is None else f"{back:.2f}"} | {"-" if t is None else f"{t:.0f}"} |')
    for key, label in (('chance', "chance: another identity's ground truth"), ('truth', 'ground truth itself')):
        s = results[0]['summary'].get(key)
        if s:
            c = cells(s) if key == 'chance' else ['-'] * len(yaws)
            back = s.get('back_view') if key == 'truth' else None       # the classifier's verdict on real renders
            lines.append(f'| world | {label} | ' + ' | '.join(c) + f' | {"-" if back is None else f"{back:.2f}"} | - |')
    r = results[0]
    lines += ['', f'{r["num"]} new identities, {r["steps"]} projection steps, {r["pti_steps"]} PTI steps, '
              f'{r["resolution"]}x{r["resolution"]} images, device {r["device"]} ({r["torch_threads"]} torch thread(s)).']
    text = '\n'.join(lines) + '\n'
    with open(os.path.join(outdir, 'table.md'), 'w') as f:
        f.write(text)
    return text

#----------------------------------------------------------------------------

def _parse_networks(text):
    out = []
    for part in text.split(','):
        name, sep, path = part.partition('=')
        if not sep or not name.strip() or not path.strip():
            raise click.BadParameter(f'{part!r} must look like NAME=PATH', param_hint='--networks')
        out.append((name.strip(), path.strip()))
    return out

@click.command()
@click.option('--networks', help='NAME=PATH pairs, comma-separated (snapshots or run dirs)', default=None)
@click.option('--demo', 'demo_dir', help="A `make demo` output folder: its face, head_ft and head3d runs and world",
              metavar='DIR', default=None)
@click.option('--heads', help="Multi-view set for the back-view classifier (default: the demo's world/heads.zip)",
              metavar='ZIP', default=None)
@click.option('--outdir', help='Where to write results_<network>.json and table.md', metavar='DIR', required=True)
@click.option('--num', help='New identities', type=click.IntRange(min=2), default=4, show_default=True)
@click.option('--steps', help='Projection steps', type=click.IntRange(min=1), default=50, show_default=True)
@click.option('--pti-steps', help='Pivotal tuning steps', type=click.IntRange(min=1), default=25, show_default=True)
@click.option('--configs', help=f'Latent configurations among {",".join(CONFIGS)}', default=','.join(CONFIGS),
              show_default=True)
@click.option('--perceptual', type=click.Choice(PERCEPTUAL_KINDS[:2]), default='lpips_vgg_randtrunk',
              show_default=True, help='Perceptual loss and distance (the randtrunk stand-in is labelled as such)')
@click.option('--seed', help='Seed of the identities and the projections', type=click.IntRange(min=0), default=0,
              show_default=True)
@click.option('--threads', help='torch CPU threads', type=click.IntRange(min=1), default=1, show_default=True)
@click.option('--device', type=click.Choice(['auto', 'cpu', 'cuda']), default='auto', show_default=True)
def main(networks, demo_dir, heads, outdir, num, steps, pti_steps, configs, perceptual, seed, threads, device):
    """Invert new synthetic identities from one frontal view; compare with their ground truth up to yaw 180."""
    torch.set_num_threads(threads)
    configs = [c.strip() for c in configs.split(',')]
    bad = [c for c in configs if c not in CONFIGS]
    if bad:
        raise click.BadParameter(f'{bad[0]!r} is not one of {", ".join(CONFIGS)}', param_hint='--configs')
    if networks:
        nets = _parse_networks(networks)
    elif demo_dir:
        # The shipped teacher and head_ft (teacher.json, head_ft.json), unless the demo trained its own; head3d's run.
        paths = {s: (demo_network(demo_dir, s) if s != 'head3d' else None) or os.path.join(demo_dir, s)
                 for s in DEMO_STAGES}
        nets = list(paths.items())
    else:
        raise click.UsageError('give --networks NAME=PATH,... or --demo DIR')
    if heads is None and demo_dir:
        heads = os.path.join(demo_dir, 'world', 'heads.zip')
    device = generate.resolve_device(device)
    try:
        P = build_perceptual(perceptual, device=device)
    except PerceptualError as e:
        raise click.ClickException(str(e))
    kind = {'lpips_vgg': 'LPIPS-VGG', 'lpips_vgg_randtrunk': 'lpips_randtrunk, an offline stand-in (random VGG '
            'trunk), not LPIPS'}[perceptual]
    ref = None
    if heads:
        try:
            ref = backview.reference_views(heads)
        except (ValueError, OSError) as e:
            raise click.ClickException(f'--heads {heads}: {e}')
    identities = synthetic.novel_identities(num, seed=seed)
    os.makedirs(outdir, exist_ok=True)
    for name, path in nets:
        t0 = time.time()
        try:
            result = bench_network(name, path, identities, P, kind, ref, steps, pti_steps, configs, seed, device,
                                   log=click.echo)
        except (OSError, ValueError, RuntimeError) as e:
            raise click.ClickException(f'{name} ({path}): {e}')
        result['wall_s'] = round(time.time() - t0, 1)
        with open(os.path.join(outdir, f'results_{name}.json'), 'w') as f:
            json.dump(result, f, indent=1)
        click.echo(f'{name}: {result["wall_s"]:.0f} s')
    click.echo(write_table(outdir))

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()
