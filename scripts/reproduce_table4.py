"""A miniature reproduction of the paper's table 4 on the synthetic world: Head3D vs DFT vs Head3D without L_kd
(and, with --methods, the other ablations the presets support), each over several training seeds.

    python scripts/demo.py --outdir runs/demo                                   # once: world, teacher, head_ft
    python scripts/reproduce_table4.py --demo-dir runs/demo --outdir runs/table4 --kimg 2 --seeds 0-2

Each method trains from the same starting point (the demo's face teacher and stage-1 head_ft snapshot) for the
same number of images once per training seed, through train.py (each run dir, <outdir>/<preset>/seed<N>, resumes
when rerun; a snapshot already measured with the same settings is not measured again, so adding methods or seeds
later costs only the new runs). Every cell is the mean +- the sample standard deviation over the seeds (the metrics'
own latents and cameras stay fixed, --metric-seed), so a difference between rows can be read against the seed noise.
The table has the paper's layout (rows: methods; columns: a distance to the real heads, its kernel version x100,
and identity consistency with the teacher) computed with the metrics that work offline: FD/KD in the feature space
of a fixed random conv net (FD-randconv / KD-randconv, not FID/KID) on all views and on back views, and ID-proxy (pixel
likeness of the teacher's and the student's frontal renders of the same latents, not ArcFace), plus columns the
paper does not have: two readings of the back views, the view accuracy (metrics/backview.py: 0 for a mirror face;
at the generator's rendering resolution and at full resolution, where the real backs' hair strands decide the vote)
and the mirror-face similarity (how much of each latent's own face its yaw-180 render repeats; lower is better;
it follows faint faces, which neither view-accuracy vote does) with its share of latents that
show a face behind (above the real same-identity pairs' 90th percentile; 0.10 for real heads) and that share among
the light backs by its upper reading (the crop's top three quarters: on smooth light backs the full reading is
carried by the jaw and neck outline, the upper one follows a blind eye count; docs/metrics.md). The table is
printed, and written as table4.md and table4.json (per-seed values too) in --outdir together with the run time.
"""

import json
import os
import subprocess
import sys
import time

import click
import numpy as np

from dnnlib.util import check_output_path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

METHODS = [                                         # (row label, preset, the snapshot it starts from)
    ('Ours (Head3D)',       'head3d_tiny',              'head_ft'),
    ('DFT',                 'dft_tiny',                 'face'),
    ('W/O L_kd',            'head3d_no_kd_tiny',        'head_ft'),
    ('W/O GAN_front',       'head3d_no_gan_front_tiny', 'head_ft'),
    ('W/O L_img',           'head3d_no_img_tiny',       'head_ft'),
    ('All planes',          'head3d_all_planes_tiny',   'head_ft'),
    ('Single D',            'head3d_single_d_tiny',     'head_ft'),
    ('Ours + template anchor (not in the paper)', 'head3d_tpl_tiny', 'head_ft'),
]
PAPER_METHODS = ('head3d_tiny', 'dft_tiny', 'head3d_no_kd_tiny')     # the default rows: the paper's table 4
# (column key, header, metric[.field], split): the metric's `value`, or the named field of its result line. Lower is
# better for FD/KD, mirror similarity and face behind, higher for ID-proxy and view accuracy.
COLUMNS = [('fd_all', 'FD-randconv all', 'fd_randconv', 'all'),
           ('kd_all', 'KD-randconv x100 all', 'kd_randconv', 'all'),
           ('fd_back', 'FD-randconv back', 'fd_randconv', 'back'),
           ('kd_back', 'KD-randconv x100 back', 'kd_randconv', 'back'),
           ('id_proxy', 'ID-proxy', 'id_proxy', None),
           ('view_back_nr', 'view accuracy back, rendering resolution', 'backview_nr', 'back'),
           ('view_back', 'view accuracy back, full resolution', 'backview', 'back'),
           ('mirror', 'mirror-face similarity', 'mirror', None), ('face_rate', 'face behind', 'mirror.face_rate', None),
           ('upper_light', 'face behind on light backs, upper reading', 'mirror.upper_face_rate_light', None)]

#----------------------------------------------------------------------------
# Run a command from the repository root; a failure stops the script naming the command. threads > 0 fixes torch's
# CPU threads of the command (OMP_NUM_THREADS; train.py also gets num_threads, which it would otherwise set to all cores).

def run(cmd, threads=0):
    cmd = [str(c) for c in cmd]
    print('\n=== ' + ' '.join(cmd), flush=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads)) if threads else None
    if subprocess.run(cmd, cwd=ROOT, env=env).returncode != 0:
        raise click.ClickException(f'command failed: {" ".join(cmd)}')

#----------------------------------------------------------------------------
# The newest snapshot of a run dir, with a clear error when there is none.

def newest(run_dir, what):
    from training.checkpoint import latest_snapshot
    snap = latest_snapshot(run_dir) if os.path.isdir(run_dir) else None
    if snap is None:
        raise click.ClickException(f'{what}: no snapshot in {run_dir} (run `make demo` first, or pass the paths)')
    return snap

#----------------------------------------------------------------------------
# The networks the methods start from, as the demo recorded them (teacher.json / head_ft.json: the shipped files or
# the demo's own runs), with a one-line error when there is none or the file is gone.

def demo_start(demo_dir, stage):
    from training.checkpoint import DEMO_RECORDS, demo_network
    what, record = ('teacher' if stage == 'face' else stage), DEMO_RECORDS[stage]
    path = demo_network(demo_dir, stage)
    if path is None:
        raise click.ClickException(f'{what}: {demo_dir} has no {record} and no {stage}/ run (run `make demo` first)')
    if not os.path.isfile(path):
        raise click.ClickException(f'{what}: {path} (named by {demo_dir}/{record}) does not exist')
    return path

# The value of one table column in a run's metric lines: the metric's `value`, or the field after the dot
# ('mirror.face_rate'); None when the run has no such line.
def column_value(results, metric, split):
    name, _, field = metric.partition('.')
    line = next((r for r in results if r.get('metric') == name and r.get('split') == split), {})
    return line.get(field or 'value')

#----------------------------------------------------------------------------
# The metrics of a run are measured once per snapshot and settings: <run_dir>/table4-metrics.jsonl holds the results
# and table4-metrics.key.json what they were measured on (the snapshot's name and sha256, the sample counts and the
# metric seed). A rerun that adds methods or seeds measures only the new runs; a retrained run or other settings
# measure again.

METRICS = 'fd_randconv,kd_randconv,id_proxy,backview,backview_nr,mirror'
RESULTS_FILE, KEY_FILE = 'table4-metrics.jsonl', 'table4-metrics.key.json'

def metrics_key(snap, num, num_id, metric_seed):
    from training.checkpoint import file_sha256
    return dict(snapshot=os.path.basename(snap), sha256=file_sha256(snap), metrics=METRICS, splits='all,back',
                num=int(num), num_id=int(num_id), metric_seed=int(metric_seed))

# The stored results of a run when its key file matches `key` exactly, else None (missing, unreadable or stale).
def cached_results(run_dir, key):
    try:
        with open(os.path.join(run_dir, KEY_FILE)) as f:
            if json.load(f) != key:
                return None
        with open(os.path.join(run_dir, RESULTS_FILE)) as f:
            results = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError):
        return None
    have = {(r.get('metric'), r.get('split')) for r in results if isinstance(r, dict)}
    return results if all((metric.split('.')[0], split) in have for _, _, metric, split in COLUMNS) else None

# Measure one run's snapshot; the key file is written only after the results are complete.
def measure(py, run_dir, snap, key, heads, teacher, threads=0):
    out, key_path = os.path.join(run_dir, RESULTS_FILE), os.path.join(run_dir, KEY_FILE)
    for path in (key_path, out):
        if os.path.exists(path):
            os.remove(path)
    run([py, 'scripts/calc_metrics.py', '--network', snap, '--data', heads, '--teacher', teacher,
         '--metrics', METRICS, '--split', key['splits'], '--num', key['num'], '--num-id', key['num_id'], '--out', out,
         '--device', 'cpu', '--seed', key['metric_seed']], threads)
    with open(out) as f:
        results = [json.loads(line) for line in f if line.strip()]
    with open(key_path, 'w') as f:
        json.dump(key, f)
    return results

#----------------------------------------------------------------------------
# Parse '0-2' or '0,3,5' into a list of distinct training seeds.

def parse_seeds(text):
    from training.generate import parse_range
    try:
        seeds = parse_range(text)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint='--seeds') from None
    return list(dict.fromkeys(seeds))

# Parse 'paper', 'all' or a comma list of presets into METHODS rows.
def parse_methods(text):
    if text == 'paper':
        return [m for m in METHODS if m[1] in PAPER_METHODS]
    if text == 'all':
        return list(METHODS)
    by_preset = {m[1]: m for m in METHODS}
    names = [n.strip() for n in text.split(',') if n.strip()]
    unknown = [n for n in names if n not in by_preset]
    if unknown or not names:
        raise click.BadParameter(f'unknown method(s) {", ".join(unknown) or "(none)"}; choose paper, all or presets '
                                 f'from {", ".join(by_preset)}', param_hint='--methods')
    return [by_preset[n] for n in dict.fromkeys(names)]

#----------------------------------------------------------------------------
# One method's cells over its seeds: dict(key -> (mean, std, n)); std is the sample standard deviation (ddof 1),
# None with a single seed; a column that no seed produced is (None, None, 0).

def aggregate(per_seed):
    cells = {}
    for key, *_ in COLUMNS:
        values = np.array([v[key] for v in per_seed if v.get(key) is not None], dtype=np.float64)
        if values.size == 0:
            cells[key] = (None, None, 0)
        else:
            std = float(values.std(ddof=1)) if values.size > 1 else None
            cells[key] = (float(values.mean()), std, int(values.size))
    return cells

# 'mean +- std' of one cell.
def format_cell(cell):
    mean, std, _n = cell
    if mean is None:
        return '-'
    return f'{mean:.3f}' if std is None else f'{mean:.3f} +- {std:.3f}'

#----------------------------------------------------------------------------

@click.command()
@click.option('--demo-dir',    help='Output of scripts/demo.py (world/, teacher.json, head_ft.json)', default='runs/demo', show_default=True)
@click.option('--outdir',      help='Where the runs and the table go', default='runs/table4', show_default=True)
@click.option('--methods',     help='paper (Head3D, DFT, W/O L_kd), all, or a comma list of presets', default='paper', show_default=True)
@click.option('--seeds',       help='Training seeds of every method (e.g. 0-2)', default='0-2', show_default=True)
@click.option('--kimg',        help='Training length of each run', type=click.FloatRange(min=0, min_open=True), default=2.0, show_default=True)
@click.option('--num',         help='Generated images per metric split', type=click.IntRange(min=16), default=200, show_default=True)
@click.option('--num-id',      help='Latents for ID-proxy', type=click.IntRange(min=4), default=200, show_default=True)
@click.option('--metric-seed', help='Seed of the metrics\' latents and cameras (the same for every run)', type=click.IntRange(min=0), default=0, show_default=True)
@click.option('--threads',     help='Torch CPU threads of every run and measurement (0 = all cores); two processes at once, each with --threads 1 under taskset -c 0 / -c 1, train different methods in parallel', type=click.IntRange(min=0), default=0, show_default=True)
def main(demo_dir, outdir, methods, seeds, kimg, num, num_id, metric_seed, threads):
    """Head3D vs DFT vs "without L_kd" (and other ablations) on the synthetic world, mean +- std over training seeds."""
    check_output_path(outdir, '--outdir')
    t0 = time.time()
    py = sys.executable
    methods, seeds = parse_methods(methods), parse_seeds(seeds)
    faces, heads = (os.path.join(demo_dir, 'world', n) for n in ('faces.zip', 'heads.zip'))
    for path in (faces, heads):
        if not os.path.isfile(path):
            raise click.ClickException(f'{path} not found (run `make demo` first)')
    starts = {stage: demo_start(demo_dir, stage) for stage in ('face', 'head_ft')}
    # Every method's generator gets the XY depth layers (and hand-over sharpness) of the head_ft the Head3D rows start
    # from (2 and 2.5 for the shipped one, not in the paper: configs/head_ft_world.yaml), DFT too, so that the rows
    # differ only in the method.
    from training.snapshot import SnapshotError, xy_depth_layers_overrides
    try:
        xy_layers = xy_depth_layers_overrides(starts['head_ft'])
    except SnapshotError as err:
        raise click.ClickException(f'head_ft: {err}') from None
    os.makedirs(outdir, exist_ok=True)

    rows, measured = [], 0
    for label, preset, start in methods:
        per_seed = []
        for seed in seeds:
            run_dir = os.path.join(outdir, preset, f'seed{seed}')
            cmd = [py, 'train.py', '--config', preset, '--faces', faces, '--heads', heads, '--init', starts[start],
                   '--outdir', run_dir, '--kimg', kimg, '--seed', seed]
            if preset.startswith('head3d'):
                cmd += ['--teacher', starts['face']]
            cmd += xy_layers
            if threads:
                cmd += ['--set', f'num_threads={threads}']
            run(cmd, threads)
            snap = newest(run_dir, f'{preset} seed {seed}')
            key = metrics_key(snap, num, num_id, metric_seed)
            results = cached_results(run_dir, key)
            if results is None:
                results = measure(py, run_dir, snap, key, heads, starts['face'], threads)
                measured += 1
            else:
                print(f'{run_dir}: metrics of {key["snapshot"]} already measured with these settings, reused',
                      flush=True)
            per_seed.append(dict(seed=seed, run_dir=run_dir,
                                 **{key: column_value(results, metric, split) for key, _, metric, split in COLUMNS}))
        rows.append(dict(method=label, preset=preset, seeds=per_seed, cells=aggregate(per_seed)))

    minutes, total = (time.time() - t0) / 60, len(methods) * len(seeds)
    lines = [f'Table 4 (miniature, synthetic world, {kimg:g} kimg per run, {len(seeds)} training seed(s) per method '
             f'({",".join(map(str, seeds))}), {num} samples per split, {num_id} latents for ID-proxy; '
             f'this invocation {minutes:.1f} min' + (f', which measured {measured} of the {total} runs (the others '
             f'trained and were measured by an earlier invocation)' if measured < total else '') + ')', '',
             '| method | ' + ' | '.join(header for _, header, _, _ in COLUMNS) + ' |',
             '|---|' + '---|' * len(COLUMNS)]
    for r in rows:
        lines.append(f'| {r["method"]} | ' + ' | '.join(format_cell(r['cells'][key]) for key, *_ in COLUMNS) + ' |')
    lines += ['', 'Each cell: mean +- sample standard deviation over the training seeds (metrics on the same latents '
              'and cameras). Lower is better for FD/KD and mirror-face similarity, higher for ID-proxy and view '
              'accuracy. FD/KD-randconv use a fixed random conv net, not Inception: compare rows with each other, not '
              'with the paper\'s FID/KID values. The last five columns are not in the paper: the fraction of yaw-180 '
              'renders whose nearest real views are back views (metrics/backview.py; a mirror face scores 0), with '
              'real views and renders resampled through the generator\'s rendering resolution (real back views of '
              'heads.zip score 0.975) and at full resolution, where the real backs\' hair strands decide the vote '
              '(real back views 0.960; a featureless back scores 0), and the '
              'mirror-face similarity of the same renders (docs/metrics.md; real same-identity pairs of heads.zip score '
              'about 0.12, the face teacher 0.56) and the share of latents above the real pairs\' 90th percentile '
              '(face behind: 0.10 for real heads by construction, 1.00 for the face teacher), and that share among '
              'the light backs by the upper reading (the crop\'s top three quarters, without the jaw and neck '
              'outline that a front and a back share; there it follows a blind eye count; real pairs about 0.05).']
    text = '\n'.join(lines)
    print('\n' + text)
    with open(os.path.join(outdir, 'table4.md'), 'w') as f:
        f.write(text + '\n')
    with open(os.path.join(outdir, 'table4.json'), 'w') as f:
        json.dump(dict(kimg=kimg, num=num, num_id=num_id, seeds=seeds, metric_seed=metric_seed, minutes=minutes,
                       measured_here=measured,
                       rows=[dict(r, cells={k: dict(zip(('mean', 'std', 'n'), c)) for k, c in r['cells'].items()})
                             for r in rows]), f, indent=1)


if __name__ == '__main__':
    main()
