"""A miniature reproduction of the paper's table 4 on the synthetic world: Head3D vs DFT vs Head3D without L_kd.

    python scripts/demo.py --outdir runs/demo                                   # once: world, teacher, head_ft
    python scripts/reproduce_table4.py --demo-dir runs/demo --outdir runs/table4 --kimg 2

Each method trains from the same starting point (the demo's face teacher and stage-1 head_ft snapshot) for the
same number of images with the same seed, through train.py (each run dir resumes when rerun). The table has the
paper's layout (rows: methods; columns: a distance to the real heads, its kernel version x100, and identity
consistency with the teacher) computed with the metrics that work offline: FD/KD in the feature space of a fixed
random conv net (FD-randconv / KD-randconv, not FID/KID) on all views and on back views, and ID-proxy (pixel
likeness of the teacher's and the student's frontal renders of the same latents, not ArcFace), plus one column the
paper does not have: the view accuracy of the back views (metrics/backview.py: 0 for a mirror face). The table is
printed, and written as table4.md and table4.json in --outdir together with the run time.
"""

import json
import os
import subprocess
import sys
import time

import click

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

METHODS = [                                         # (row label, preset, the snapshot it starts from)
    ('Ours (Head3D)',  'head3d_tiny',       'head_ft'),
    ('DFT',            'dft_tiny',          'face'),
    ('W/O L_kd',       'head3d_no_kd_tiny', 'head_ft'),
]

#----------------------------------------------------------------------------
# Run a command from the repository root; a failure stops the script naming the command.

def run(cmd):
    cmd = [str(c) for c in cmd]
    print('\n=== ' + ' '.join(cmd), flush=True)
    if subprocess.run(cmd, cwd=ROOT).returncode != 0:
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

@click.command()
@click.option('--demo-dir', help='Output of scripts/demo.py (world/, face/, head_ft/)', default='runs/demo', show_default=True)
@click.option('--outdir',   help='Where the three runs and the table go', default='runs/table4', show_default=True)
@click.option('--kimg',     help='Training length of each method', type=click.FloatRange(min=0, min_open=True), default=2.0, show_default=True)
@click.option('--num',      help='Generated images per metric split', type=click.IntRange(min=16), default=200, show_default=True)
@click.option('--num-id',   help='Latents for ID-proxy', type=click.IntRange(min=4), default=200, show_default=True)
@click.option('--seed',     help='Seed of every run', type=click.IntRange(min=0), default=0, show_default=True)
def main(demo_dir, outdir, kimg, num, num_id, seed):
    """Head3D vs DFT vs "without L_kd" on the synthetic world, in the layout of the paper's table 4."""
    from dnnlib.util import check_output_path
    check_output_path(outdir, '--outdir')
    t0 = time.time()
    py = sys.executable
    faces, heads = (os.path.join(demo_dir, 'world', n) for n in ('faces.zip', 'heads.zip'))
    for path in (faces, heads):
        if not os.path.isfile(path):
            raise click.ClickException(f'{path} not found (run `make demo` first)')
    starts = dict(face=newest(os.path.join(demo_dir, 'face'), 'teacher'),
                  head_ft=newest(os.path.join(demo_dir, 'head_ft'), 'head_ft'))
    os.makedirs(outdir, exist_ok=True)

    rows = []
    for label, preset, start in METHODS:
        run_dir = os.path.join(outdir, preset)
        cmd = [py, 'train.py', '--config', preset, '--faces', faces, '--heads', heads, '--init', starts[start],
               '--outdir', run_dir, '--kimg', kimg, '--seed', seed]
        if preset.startswith('head3d'):
            cmd += ['--teacher', starts['face']]
        run(cmd)
        out = os.path.join(run_dir, 'table4-metrics.jsonl')
        if os.path.exists(out):
            os.remove(out)
        run([py, 'scripts/calc_metrics.py', '--network', run_dir, '--data', heads, '--teacher', starts['face'],
             '--metrics', 'fd_randconv,kd_randconv,id_proxy,backview', '--split', 'all,back', '--num', num,
             '--num-id', num_id, '--out', out, '--device', 'cpu', '--seed', seed])
        with open(out) as f:
            results = [json.loads(line) for line in f if line.strip()]
        value = {(r['metric'], r.get('split')): r['value'] for r in results}
        rows.append(dict(method=label, preset=preset, run_dir=run_dir,
                         fd_all=value.get(('fd_randconv', 'all')), kd_all=value.get(('kd_randconv', 'all')),
                         fd_back=value.get(('fd_randconv', 'back')), kd_back=value.get(('kd_randconv', 'back')),
                         id_proxy=value.get(('id_proxy', None)),
                         view_back=value.get(('backview', 'back'))))

    minutes = (time.time() - t0) / 60
    fmt = lambda v: '-' if v is None else f'{v:.3f}'
    lines = [f'Table 4 (miniature, synthetic world, {kimg:g} kimg per method, {num} samples per split, '
             f'{num_id} latents for ID-proxy; run time {minutes:.1f} min)', '',
             '| method | FD-randconv all | KD-randconv x100 all | FD-randconv back | KD-randconv x100 back | ID-proxy '
             '| view accuracy back |',
             '|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f'| {r["method"]} | {fmt(r["fd_all"])} | {fmt(r["kd_all"])} | {fmt(r["fd_back"])} | '
                     f'{fmt(r["kd_back"])} | {fmt(r["id_proxy"])} | {fmt(r["view_back"])} |')
    lines += ['', 'Lower is better for FD/KD, higher for ID-proxy and view accuracy. FD/KD-randconv use a fixed random '
              'conv net, not Inception: compare rows with each other, not with the paper\'s FID/KID values. The last '
              'column is not in the paper: the fraction of yaw-180 renders whose nearest real views are back views '
              '(metrics/backview.py; a mirror face scores 0).']
    text = '\n'.join(lines)
    print('\n' + text)
    with open(os.path.join(outdir, 'table4.md'), 'w') as f:
        f.write(text + '\n')
    with open(os.path.join(outdir, 'table4.json'), 'w') as f:
        json.dump(dict(kimg=kimg, num=num, num_id=num_id, seed=seed, minutes=minutes, rows=rows), f, indent=1)


if __name__ == '__main__':
    main()
