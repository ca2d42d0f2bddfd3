"""The main job in one command: the whole Head3D pipeline on the embedded synthetic world, with its report.

    python scripts/demo.py --outdir runs/demo          (what `make demo` runs)

Stages, each a plain CLI call that you can also run by hand (the report lists the exact commands):
  1. world    scripts/make_synthetic.py: faces.zip (near-frontal, the FFHQ analogue) + heads.zip (50 identities x 360
              degrees, the H3DH analogue)
  2. face     the pretrained face teacher (the paper's EG3D): the shipped weights/face_world.pt, made by this
              project's scripts/train_teacher.py; --train-teacher trains it again with train.py --config face_world
  3. head_ft  stage 1, the head generator fine-tuned from the teacher on heads.zip: the shipped
              weights/head_ft_world.pt (6 kimg, made by scripts/train_teacher.py --stage head_ft); --train-head-ft
              trains it again with train.py --config head_ft_world (about 30 min on 2 cores)
  4. head3d   train.py --config head3d_tiny   (stage 2: tri-plane distillation with dual discriminators)
  5. samples  gen_samples.py images (front/side/back), video (360-degree orbit), shapes (coloured mesh)
  6. metrics  scripts/calc_metrics.py with the metrics that work offline, and the back view of each student's
              snapshot before the final one
  7. report   report.md + report.html in --outdir

A rerun reuses finished stages: the world is kept once complete, and train.py resumes a run dir from its latest
snapshot (a finished run exits at once). Ctrl-C and rerun continues where it stopped.
"""

import glob
import html
import json
import os
import shlex
import subprocess
import sys
import time

import click

from dnnlib.util import check_output_path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUDENT_METRICS = 'fd_randconv,kd_randconv,pr_randconv,backview,backview_nr,mirror,fidelity,consistency3d'
# The identity-transfer grid's columns, (stage, yaw in degrees): the teacher's face, both students' faces for the same
# latent, head3d around the head, and the teacher from behind (its mirror face).
COMPARE_COLUMNS = (('face', 0), ('head_ft', 0), ('head3d', 0), ('head3d', 90), ('head3d', 180), ('face', 180))
STAGE_TITLES = dict(face='teacher', head_ft='head_ft', head3d='head3d')
SNAP_KIMG = 0.2        # a snapshot every 0.2 kimg (~30 s), so Ctrl-C loses little: the rerun resumes from it
TEACHER_CONFIG = 'face_world'
TEACHER_WORLD = dict(faces=1000, seed=0)    # the world the shipped teacher was trained on (scripts/train_teacher.py)
HEAD_FT_CONFIG = 'head_ft_world'
HEAD_FT_WORLD = dict(head_ids=50, views=24, seed=0)    # the world the shipped head_ft was trained on

#----------------------------------------------------------------------------
# A starting network (the teacher or head_ft: shipped, given or trained here), checked before use: one line naming
# the file when it is missing or unreadable. Returns dict(path, kimg = training length, sha256), as written to
# teacher.json / head_ft.json.

SHIPPED = dict(face=('the face teacher', 'face_world.pt', '--train-teacher'),
               head_ft=('the stage-1 head generator (head_ft)', 'head_ft_world.pt', '--train-head-ft'))

def check_start(path, stage='face'):
    from training.checkpoint import file_sha256
    from training.snapshot import SnapshotError, load_snapshot, xy_depth_layers_overrides
    what, name, flag = SHIPPED[stage]
    if os.path.isdir(path):         # a run dir: its newest snapshot
        newest = latest_snapshot(path)
        if newest is None:
            raise click.ClickException(f'{path}: a folder without snapshot-*.pt files, not {what}')
        path = newest
    if not os.path.isfile(path):
        raise click.ClickException(f'{path}: {what} is missing. It ships with the repository (weights/{name}, see '
                                   f'weights/README.md); restore it with `git checkout -- weights/{name}`, or train '
                                   f'one with {flag}')
    try:
        snap = load_snapshot(path, build=False)
    except SnapshotError as err:
        raise click.ClickException(str(err)) from None
    if not any(k in snap['nets'] for k in ('G_ema', 'G')):
        raise click.ClickException(f'{path}: no generator (G_ema or G) in the file; it holds {", ".join(snap["nets"])}')
    try:
        xy_layers = xy_depth_layers_overrides(path)
    except SnapshotError as err:
        raise click.ClickException(str(err)) from None
    return dict(path=path, kimg=float(snap.get('kimg') or snap.get('cur_nimg', 0) / 1000), sha256=file_sha256(path),
                xy_layers=xy_layers)

#----------------------------------------------------------------------------
# Run one stage's command with its output streaming to the terminal; a failure stops the demo with the command,
# unless the output is optional (required=False): then it returns False and the demo goes on.

def run_stage(name, cmd, timings, log, required=True):
    line = ' '.join(shlex.quote(str(c)) for c in cmd)
    print(f'\n=== [{name}] {line}', flush=True)
    log.append((name, line))
    t0 = time.time()
    proc = subprocess.run([str(c) for c in cmd], cwd=ROOT)
    timings[name] = timings.get(name, 0.0) + time.time() - t0
    if proc.returncode != 0:
        if required:
            raise click.ClickException(f'stage {name!r} failed (exit {proc.returncode}): {line}')
        print(f'=== [{name}] failed (exit {proc.returncode}); going on without this output', flush=True)
        return False
    return True

#----------------------------------------------------------------------------
# The newest training snapshot of a run dir (None if there is none).

def latest_snapshot(run_dir):
    from training.checkpoint import latest_snapshot as latest
    return latest(run_dir) if os.path.isdir(run_dir) else None

def list_snapshots(run_dir):
    from training.checkpoint import list_snapshots as snapshots
    return snapshots(run_dir)

# The training length of a snapshot file (snapshot-<nimg>.pt) in kimg.
def snapshot_kimg(path):
    from training.checkpoint import SNAPSHOT_RE
    return int(SNAPSHOT_RE.match(os.path.basename(path)).group(1)) / 1000

#----------------------------------------------------------------------------
# Last logged value of each loss term of a run (from stats.jsonl), for the report.

def last_stats(run_dir):
    path = os.path.join(run_dir, 'stats.jsonl')
    if not os.path.isfile(path):
        return {}
    last = None
    with open(path) as f:
        for line in f:
            if line.strip():
                last = json.loads(line)
    if not last:
        return {}
    out = {}
    for key, value in last.items():
        if key.startswith('Loss/') and isinstance(value, dict) and 'mean' in value:
            out[key] = value['mean']
        elif key.startswith('Loss/') and isinstance(value, (int, float)):
            out[key] = value
    return out

#----------------------------------------------------------------------------
# Read the metric JSON lines written by calc_metrics.

def read_metrics(path):
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]

#----------------------------------------------------------------------------
# The identity-transfer grid: one row per seed, the same latent (frontal conditioning) through every stage, in
# COMPARE_COLUMNS order under a header naming each column. snaps = dict(stage -> snapshot path).

def write_compare_grid(path, snaps, seeds):
    import numpy as np
    import PIL.Image
    import PIL.ImageDraw
    from training import generate
    tiles = {}
    for stage, snap in snaps.items():
        G = generate.load_generator(snap)
        yaws = sorted({yaw for name, yaw in COMPARE_COLUMNS if name == stage})
        out = generate.render_seed_views(G, seeds, [(yaw, 0.0) for yaw in yaws])
        side = out['image'].shape[-1]
        images = generate.to_uint8(out['image'].flatten(0, 1)).reshape(len(seeds), len(yaws), side, side, 3)
        for v, yaw in enumerate(yaws):
            for i in range(len(seeds)):
                tiles[(stage, yaw, i)] = images[i, v]
    res = max(t.shape[0] for t in tiles.values())       # stages of another resolution are resized to the largest
    grid = np.stack([np.asarray(PIL.Image.fromarray(tiles[(stage, yaw, i)]).resize((res, res), PIL.Image.NEAREST))
                     for i in range(len(seeds)) for stage, yaw in COMPARE_COLUMNS])
    body = generate.make_grid(grid, len(seeds), len(COMPARE_COLUMNS))
    header = PIL.Image.new('RGB', (body.shape[1], 14), 'white')
    draw = PIL.ImageDraw.Draw(header)
    for col, (stage, yaw) in enumerate(COMPARE_COLUMNS):
        draw.text((col * res + 2, 1), f'{STAGE_TITLES[stage]} {yaw}', fill='black')
    page = PIL.Image.new('RGB', (body.shape[1], body.shape[0] + 14), 'white')
    page.paste(header, (0, 0))
    page.paste(PIL.Image.fromarray(body), (0, 14))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    page.save(path)

#----------------------------------------------------------------------------
# The report's reading of the metrics: identity transfer against its baselines, complete heads against the real
# ceiling, precision/recall. metric_rows = [(stage, result dict)]; each function returns markdown lines.

def _find(metric_rows, stage, metric, split=None, part=None):
    for net, row in metric_rows:
        if net == stage and row['metric'] == metric and row.get('split') == split and row.get('part') == part:
            return row
    return None

def _fmt(value, digits=3):
    return '-' if value is None else f'{value:.{digits}f}'

FIDELITY_PARTS = (('id_proxy', 'ID-proxy (higher = closer)'), ('psnr', 'frontal PSNR, dB (higher = closer)'),
                  ('lpips', 'LPIPS-VGG (lower = closer)'))

def identity_section(metric_rows):
    parts = [(p, title) for p, title in FIDELITY_PARTS if _find(metric_rows, 'head3d', 'fidelity', part=p)]
    if not parts:
        return []
    get = lambda stage, p, key='value': (_find(metric_rows, stage, 'fidelity', part=p) or {}).get(key)
    md = ['## Identity transfer: the teacher\'s face for the same latent', '',
          'Frontal renders (yaw 0, frontal conditioning) of the same latents by the teacher and by each student. '
          'A score alone says little, so it is read against two references: the **different-z baseline** (the teacher against '
          'itself with other latents: unrelated faces of this world) and the **real** pairs of heads.zip (the two most '
          'frontal views of one identity, 15 degrees apart at 24 views per identity, vs the most frontal views of two '
          'identities).', '',
          '| pair | ' + ' | '.join(title for _, title in parts) + ' |', '|---|' + '---|' * len(parts)]
    table = [('head_ft vs teacher, same z', 'head_ft', 'value'), ('head3d vs teacher, same z', 'head3d', 'value'),
             ('teacher vs teacher, other z (baseline)', 'head3d', 'baseline'),
             ('real: one identity, its two most frontal views', 'head3d', 'real_value'),
             ('real: two identities, their most frontal views', 'head3d', 'real_baseline')]
    for title, stage, key in table:
        cells = [_fmt(get(stage, p, key), 2 if p == 'psnr' else 3) for p, _ in parts]
        md.append(f'| {title} | ' + ' | '.join(cells) + ' |')
    lift = lambda stage: get(stage, 'id_proxy') - get(stage, 'id_proxy', 'baseline')
    real_gap = (get('head3d', 'id_proxy', 'real_value') or 0) - (get('head3d', 'id_proxy', 'real_baseline') or 0)
    md += ['', f'ID-proxy above the different-z baseline: head3d {lift("head3d"):+.3f}, head_ft {lift("head_ft"):+.3f} '
           f'(real same identity above two identities: {real_gap:+.3f}). Samples: '
           f'{get("head3d", "id_proxy", "num")} latents. LPIPS-VGG appears only when torchvision\'s VGG16 weights '
           'are on disk (nothing is downloaded).', '']
    return md

def heads_section(metric_rows):
    stages = ('face', 'head_ft', 'head3d')
    rows = [(STAGE_TITLES[s], _find(metric_rows, s, 'backview', 'back'), _find(metric_rows, s, 'mirror'),
             _find(metric_rows, s, 'backview_nr', 'back')) for s in stages]
    if not any(r or m for _, r, m, _ in rows):
        return []
    frac = next((n['fraction'] for _, _, _, n in rows if n and n.get('fraction')), None)
    md = ['## Complete heads: what the back of the head looks like', '',
          'Two readings of the same yaw-180 renders (each latent also rendered at yaw 0, frontal conditioning). '
          '**View accuracy (kNN)**: the fraction classified as real back views (hair), not as a face; a mirror face '
          'scores near 0, the ceiling is the same classifier on real back views of held-out identities. It sees only '
          'the layout of edges, whatever their strength. **At the rendering resolution**: the same with the real '
          'views and the renders first resampled through the generator\'s neural rendering resolution'
          + (f' ({frac:g} of the image size)' if frac else '') + ', so that both are compared at the detail the '
          'generator renders; **at full resolution** the real backs\' hair strands, finer than that, decide the vote: '
          'a featureless back reads as a face (scripts/backview_controls.py). Neither vote detects a faint face: '
          'measured on this world\'s students, the latents whose face shows through (below) read as backs as often '
          'as the others, or more often (docs/metrics.md). **Mirror-face similarity**: how much of its own face each latent repeats behind (correlation '
          'of the flipped yaw-180 render with its yaw-0 render, high-passed; lower is better); read against the same '
          'network with another latent\'s face ("other z") and against real same-identity front / back pairs, what a '
          'true back of the head scores; **face behind** is the share of latents whose similarity is above the 90th '
          'percentile of those real pairs (0.10 for real heads by construction). These follow how strongly a faint '
          'face shows, which the kNN votes do not (docs/metrics.md). **Where**: the face-behind share among light '
          'backs and among the others, split at the brightness of the real back views that a third of them exceed '
          '(light hair), with the share of light backs in brackets (about 1/3 for real heads): a face shows more '
          'easily through light hair. **Upper reading**: the same face-behind shares from the top three quarters of '
          'the crop only (eyes, brows, nose), with its own real-pairs threshold: on smooth light backs the full '
          'reading is carried by the jaw and neck outline that front and back views share, which this one leaves out; '
          'on dark, nearly flat backs it fires on faint structure (docs/metrics.md).', '',
          '| network | back-view accuracy at the rendering resolution | at full resolution | mirror-face similarity | '
          'the same, other z | face behind | face behind: light / other backs (light share) | '
          'upper reading: face behind, light / other backs | samples |',
          '|---|---|---|---|---|---|---|---|---|']
    where = lambda m, p='': (f'{_fmt(m.get(p + "face_rate_light"))} / {_fmt(m.get(p + "face_rate_dark"))} '
                             f'({_fmt(m.get(p + "light_share"), 2)})' if m and m.get(p + 'light_share') is not None
                             else '-')
    def upper(rate, light, dark):          # a mirror row from before the upper reading: an empty cell
        return '-' if light is None and dark is None else f'{_fmt(rate)}, {_fmt(light)} / {_fmt(dark)}'
    md += [f'| {title} | {_fmt(n["value"]) if n else "-"} | {_fmt(r["value"]) if r else "-"} | '
           f'{_fmt(m["value"]) if m else "-"} | '
           f'{_fmt(m.get("other_z")) if m else "-"} | {_fmt(m.get("face_rate")) if m else "-"} | {where(m)} | '
           f'{upper(m.get("upper_face_rate"), m.get("upper_face_rate_light"), m.get("upper_face_rate_dark")) if m else "-"} | '
           f'{(r or m or n)["num"]} |' for title, r, m, n in rows if r or m or n]
    real = next((r.get('real_value') for _, r, _, _ in rows if r), None)
    real_nr = next((n.get('real_value') for _, _, _, n in rows if n), None)
    mreal = next((m for _, _, m, _ in rows if m and m.get('real_value') is not None), None)
    from metrics.backview import MIRROR_REAL_QUANTILE          # face_rate's threshold: real pairs above it by design
    md += [f'| real views (ceiling / true backs) | {_fmt(real_nr)} | {_fmt(real)} | {_fmt(mreal["real_value"]) if mreal else "-"} | '
           f'{_fmt(mreal.get("real_other")) if mreal else "-"} | {_fmt(1 - MIRROR_REAL_QUANTILE) if mreal else "-"} | '
           f'{where(mreal, "real_")} | '
           f'{upper(1 - MIRROR_REAL_QUANTILE, mreal.get("real_upper_face_rate_light"), mreal.get("real_upper_face_rate_dark")) if mreal else "-"} | '
           f'{mreal["real_pairs"] if mreal else "-"} pairs |', '']
    earlier = {}
    for s in ('head_ft', 'head3d'):
        for net, row in metric_rows:
            if net.startswith(f'{s} at ') and row['metric'] in ('backview', 'backview_nr', 'mirror'):
                entry = earlier.setdefault(s, {}).setdefault(net.removeprefix(f'{s} at '), {})
                entry[row['metric']] = row['value']
                if row['metric'] == 'mirror':
                    entry['face_rate'] = row.get('face_rate')
    if earlier:
        md += ['The same values on the snapshot before the final one (one value per snapshot is one point of a curve '
               'that moves during training):', '']
        md += [f'- {s}: ' + ', '.join(f'{when}: back-view accuracy {_fmt(v.get("backview_nr"))} at the rendering '
                                      f'resolution, {_fmt(v.get("backview"))} at full resolution, mirror-face similarity '
                                      f'{_fmt(v.get("mirror"))}, face behind {_fmt(v.get("face_rate"))}'
                                      for when, v in found.items())
               for s, found in earlier.items()]
        md += ['']
    md += [
           'Which part of head3d shows a face from behind (its xy plane, its xz/yz planes or its decoder) is measured '
           'by exchanging them with head_ft\'s: `python scripts/diagnose_backs.py --teacher TEACHER --head-ft '
           'HEAD_FT --head3d OUT/head3d --heads OUT/world/heads.zip --outdir OUT/diagnose_backs`, with TEACHER and '
           'HEAD_FT the teacher and head_ft of the settings above and OUT this report\'s folder (about 7 min on 2 '
           'cores; README, "Where the face behind comes from").', '']
    return md

def pr_section(metric_rows):
    rows = []
    for stage, data in (('face', 'faces.zip'), ('head_ft', 'heads.zip'), ('head3d', 'heads.zip')):
        p = _find(metric_rows, stage, 'pr_randconv', 'all', 'precision')
        r = _find(metric_rows, stage, 'pr_randconv', 'all', 'recall')
        if p and r:
            rows.append(f'| {STAGE_TITLES[stage]} | {data} | {_fmt(p["value"])} | {_fmt(r["value"])} | {p["num"]} |')
    if not rows:
        return []
    return ['## Precision and recall (blur vs variety)', '',
            'k-NN manifold precision / recall (k = 3, Kynkaenniemi et al. 2019) in the randconv feature space, '
            'all views: precision = share of generated images inside the real set\'s manifold (low = unrealistic or blurry), '
            'recall = share of real images covered by the generated manifold (low = too little variety).', '',
            '| network | real set | precision | recall | generated |', '|---|---|---|---|---|'] + rows + ['']

#----------------------------------------------------------------------------
# Write report.md and report.html: images, per-stage time, final losses and metrics.

def write_report(outdir, timings, commands, stage_runs, metric_rows, images, settings):
    md = ['# Head3D demo report', '',
          'The whole Head3D pipeline on the synthetic world (tiny CPU presets). Settings: ' +
          ', '.join(f'{k}={v}' for k, v in settings.items()), '']
    md += ['## Stages', '', '| stage | time (s, this invocation) | run dir | final losses |', '|---|---|---|---|']
    for name in ['world', 'face', 'head_ft', 'head3d', 'samples', 'metrics']:
        run_dir = stage_runs.get(name, '')
        losses = last_stats(run_dir) if run_dir else {}
        loss_text = '<br>'.join(f'{k} {v:.4g}' for k, v in sorted(losses.items())) or '-'
        md.append(f'| {name} | {timings.get(name, 0.0):.1f} | {os.path.relpath(run_dir, outdir) if run_dir else "-"} '
                  f'| {loss_text} |')
    md += ['', 'A stage that was already finished by an earlier invocation shows only the time to confirm it.', '']
    md += identity_section(metric_rows) + heads_section(metric_rows) + pr_section(metric_rows)
    md += ['## Metrics (offline)', '', '| network | metric | split | value | samples |', '|---|---|---|---|---|']
    real_rows = {}
    for net, row in metric_rows:
        md.append(f'| {net} | {row.get("label", row.get("metric"))} | {row.get("split") or "-"} | '
                  f'{row["value"]:.4g} | {row.get("num", "-")} |')
        if row.get('real_value') is not None and row['metric'] in ('backview', 'backview_nr'):
            real_rows[(row.get('label'), row.get('split'))] = row['real_value']
    for (label, split), value in real_rows.items():     # the ceiling of the view classifier: real views held out
        md.append(f'| real views (held out) | {label} | {split or "-"} | {value:.4g} | - |')
    md += ['', 'FD-/KD-<net> are Frechet / kernel distances in the feature space of the named offline network, '
           'not FID/KID (the Inception detector is not available offline; see docs/metrics.md). KD is x100. '
           'Precision/Recall-randconv: k-NN manifolds in the same space (face teacher: against faces.zip). '
           'The "to teacher, same z" rows compare teacher and student frontal renders of the same latents (baselines in '
           'the identity table above). 3D consistency is the PSNR of '
           'a radiance field fitted to half of the views, on the other half. View accuracy (kNN): the fraction of '
           'renders at yaw 180 (split back) / yaw 0 (split front) whose 5 nearest real views, by the edge orientations '
           'of the image centre (blind to brightness: a dim face still counts as a face), are back / '
           'front views, one 3D head per latent (frontal conditioning); a mirror face scores 0 on back. The face '
           'teacher shows that failure; "real views (held out)" is the same classifier on real views of other '
           'identities, the ceiling to read the others against; "at the rendering resolution" reads real views and '
           'renders resampled through the generator\'s neural rendering resolution. Mirror-face similarity: the correlation of each '
           'latent\'s flipped yaw-180 render with its own yaw-0 render (high-passed centres; lower is better; '
           'references in the complete-heads table).', '']
    md += ['## Samples', '']
    for title, rel in images:
        if rel is None:                              # an optional output that was not written
            md.append(f'- {title}')
        elif not rel.endswith('.png'):               # videos and meshes are links
            md.append(f'- {title}: [{rel}]({rel})')
        else:
            md += [f'### {title}', '', f'![{title}]({rel})', '']
    md += ['## Commands', '', 'Each stage is a plain command; rerun any of them by hand:', '', '```']
    md += [f'# {name}\n{line}' for name, line in commands]
    md += ['```', '']
    with open(os.path.join(outdir, 'report.md'), 'w') as f:
        f.write('\n'.join(md))

    # The same content as a self-contained HTML page (images referenced relatively).
    body = []
    for line in md:
        if line.startswith('![') and '](' in line:
            title, rel = line[2:].split('](', 1)
            body.append(f'<figure><img src="{html.escape(rel[:-1])}" style="image-rendering:pixelated;max-width:100%">'
                        f'<figcaption>{html.escape(title)}</figcaption></figure>')
        elif line.startswith('#'):
            level = len(line) - len(line.lstrip('#'))
            body.append(f'<h{level}>{html.escape(line.lstrip("#").strip())}</h{level}>')
        elif line.startswith('|'):
            if set(line) <= set('|-'):
                continue
            cells = [html.escape(c.strip()).replace('&lt;br&gt;', '<br>') for c in line.strip('|').split('|')]
            body.append('<tr>' + ''.join(f'<td>{c}</td>' for c in cells) + '</tr>')
        elif line.startswith('- ') and '](' in line:
            title, rel = line[2:].split(': [', 1)
            href = rel.split('](')[1][:-1]
            body.append(f'<p>{html.escape(title)}: <a href="{html.escape(href)}">{html.escape(href)}</a></p>')
        elif line == '```':
            continue
        elif line:
            body.append(f'<p>{html.escape(line)}</p>')
    page = ('<!doctype html><meta charset="utf-8"><title>Head3D demo report</title>'
            '<style>body{font-family:sans-serif;max-width:1100px;margin:auto}td{border:1px solid #ccc;padding:2px 6px}'
            'table{border-collapse:collapse}</style>')
    text, in_table = [], False
    for item in body:
        if item.startswith('<tr>') and not in_table:
            text.append('<table>')
            in_table = True
        if not item.startswith('<tr>') and in_table:
            text.append('</table>')
            in_table = False
        text.append(item)
    if in_table:
        text.append('</table>')
    with open(os.path.join(outdir, 'report.html'), 'w') as f:
        f.write(page + '\n'.join(text))

#----------------------------------------------------------------------------

@click.command()
@click.option('--outdir',       help='Output folder (rerun to continue)', default='runs/demo', show_default=True)
@click.option('--faces',        help='Faces in the synthetic faces set', type=click.IntRange(min=16), default=1000, show_default=True)
@click.option('--head-ids',     help='Identities in the heads set', type=click.IntRange(min=2), default=50, show_default=True)
@click.option('--views',        help='Views per head identity', type=click.IntRange(min=4), default=24, show_default=True)
@click.option('--teacher',      help='Face teacher snapshot or run dir  [default: the shipped weights/face_world.pt]', metavar='PT', default=None)
@click.option('--train-teacher', help='Train the face teacher from scratch (configs/face_world.yaml) in OUTDIR/face', is_flag=True)
@click.option('--face-kimg',    help='Training length with --train-teacher  [default: the config\'s]', type=click.FloatRange(min=0, min_open=True), default=None)
@click.option('--head-ft',      help='Stage-1 head generator snapshot or run dir  [default: the shipped weights/head_ft_world.pt]', metavar='PT', default=None)
@click.option('--train-head-ft', help='Train stage 1 (configs/head_ft_world.yaml) in OUTDIR/head_ft  [implied by --train-teacher or another --teacher]', is_flag=True)
@click.option('--head-ft-kimg', help='Training length of stage 1 with --train-head-ft  [default: the config\'s, 6]', type=click.FloatRange(min=0, min_open=True), default=None)
@click.option('--head3d-kimg',  help='Training length of stage 2', type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option('--metric-num',   help='Generated images per metric split', type=click.IntRange(min=16), default=96, show_default=True)
@click.option('--c3d-iters',    help='Fitting iterations of the 3D-consistency metric per identity', type=click.IntRange(min=1), default=150, show_default=True)
@click.option('--seed',         help='Seed of the world and the runs', type=click.IntRange(min=0), default=0, show_default=True)
@click.option('--threads',      help='CPU threads of every stage, the same on any machine (0 = all cores); --train-head-ft keeps its config\'s one thread', type=click.IntRange(min=0), default=2, show_default=True)
def main(outdir, faces, head_ids, views, teacher, train_teacher, face_kimg, head_ft, train_head_ft, head_ft_kimg,
         head3d_kimg, metric_num, c3d_iters, seed, threads):
    """Run the whole Head3D pipeline on the synthetic world and write a report."""
    check_output_path(outdir, '--outdir')
    if train_teacher and teacher is not None:
        raise click.BadParameter('give --teacher or --train-teacher, not both', param_hint='--teacher')
    if face_kimg is not None and not train_teacher:
        raise click.BadParameter('sets the length of a teacher trained here: add --train-teacher', param_hint='--face-kimg')
    if train_head_ft and head_ft is not None:
        raise click.BadParameter('give --head-ft or --train-head-ft, not both', param_hint='--head-ft')
    # made by scripts/train_teacher.py (weights/README.md)
    from training.checkpoint import SHIPPED_HEAD_FT, SHIPPED_TEACHER
    teacher_info = None if train_teacher else check_start(os.path.abspath(teacher or SHIPPED_TEACHER))
    if teacher is None and not train_teacher and (faces, seed) != (TEACHER_WORLD['faces'], TEACHER_WORLD['seed']):
        print(f'Note: the shipped teacher was trained on the world of --faces {TEACHER_WORLD["faces"]} --seed '
              f'{TEACHER_WORLD["seed"]}; this world differs (--train-teacher trains one on it)', file=sys.stderr)
    # The shipped head_ft was fine-tuned from the shipped teacher: another teacher needs its own stage 1.
    own_teacher = train_teacher or (teacher is not None and os.path.abspath(teacher) != SHIPPED_TEACHER)
    if own_teacher and head_ft is None and not train_head_ft:
        print('Note: the shipped head_ft starts from the shipped teacher; with this teacher stage 1 is trained here '
              '(--train-head-ft)', file=sys.stderr)
        train_head_ft = True
    if head_ft_kimg is not None and not train_head_ft:
        raise click.BadParameter('sets the length of a stage 1 trained here: add --train-head-ft',
                                 param_hint='--head-ft-kimg')
    head_ft_info = None if train_head_ft else check_start(os.path.abspath(head_ft or SHIPPED_HEAD_FT), 'head_ft')
    shipped_world = (HEAD_FT_WORLD['head_ids'], HEAD_FT_WORLD['views'], HEAD_FT_WORLD['seed'])
    if head_ft is None and not train_head_ft and (head_ids, views, seed) != shipped_world:
        print(f'Note: the shipped head_ft was trained on the world of --head-ids {HEAD_FT_WORLD["head_ids"]} --views '
              f'{HEAD_FT_WORLD["views"]} --seed {HEAD_FT_WORLD["seed"]}; this world differs (--train-head-ft trains '
              f'one on it)', file=sys.stderr)
    outdir = os.path.abspath(outdir)
    os.makedirs(outdir, exist_ok=True)
    py = sys.executable
    timings, commands, runs = {}, [], {}
    t_start = time.time()
    # The arithmetic of torch's CPU kernels depends on the thread count, not on the cores: a fixed count gives the
    # same networks and numbers on a 1-core and a 2-core machine (measured, README). Every stage inherits it.
    train_threads = []
    if threads:
        os.environ['OMP_NUM_THREADS'] = str(threads)
        train_threads = ['--set', f'num_threads={threads}']

    # 1. The synthetic world (kept once complete: identities.json is written last).
    world = os.path.join(outdir, 'world')
    if not os.path.isfile(os.path.join(world, 'identities.json')):
        run_stage('world', [py, 'scripts/make_synthetic.py', '--outdir', world, '--faces', faces,
                            '--head-ids', head_ids, '--views', views, '--res', 64, '--seed', seed], timings, commands)
    else:
        print(f'=== [world] reusing {world}', flush=True)
        commands.append(('world', f'{py} scripts/make_synthetic.py --outdir {world} --faces {faces} --head-ids '
                                  f'{head_ids} --views {views} --res 64 --seed {seed}'))
    faces_zip, heads_zip = os.path.join(world, 'faces.zip'), os.path.join(world, 'heads.zip')

    # 2-4. The three training stages; each rerun resumes its run dir (a finished one returns at once).
    face_dir, ft_dir, h3_dir = (os.path.join(outdir, n) for n in ('face', 'head_ft', 'head3d'))
    if train_teacher:
        run_stage('face', [py, 'train.py', '--config', TEACHER_CONFIG, '--data', faces_zip, '--outdir', face_dir,
                           '--seed', seed, '--set', f'snap_kimg={SNAP_KIMG}'] +
                  (['--kimg', face_kimg] if face_kimg is not None else []) + train_threads, timings, commands)
        runs['face'] = face_dir
        teacher = latest_snapshot(face_dir)
        teacher_info = check_start(teacher)
    else:
        teacher = teacher_info['path']
        commands.append(('face', f'# the pretrained teacher {teacher} ({teacher_info["kimg"]:g} kimg, sha256 '
                                 f'{teacher_info["sha256"]}); rebuild: python scripts/train_teacher.py'))
    if train_head_ft:
        # The config's one thread (not --threads): a rerun with the shipped settings rebuilds weights/head_ft_world.pt.
        run_stage('head_ft', [py, 'train.py', '--config', HEAD_FT_CONFIG, '--data', heads_zip, '--init', teacher,
                              '--outdir', ft_dir, '--seed', seed, '--set', f'snap_kimg={SNAP_KIMG}'] +
                  (['--kimg', head_ft_kimg] if head_ft_kimg is not None else []), timings, commands)
        runs['head_ft'] = ft_dir
        head_ft = latest_snapshot(ft_dir)
        head_ft_info = check_start(head_ft, 'head_ft')
    else:
        head_ft = head_ft_info['path']
        commands.append(('head_ft', f'# stage 1: {head_ft} ({head_ft_info["kimg"]:g} kimg, sha256 '
                                    f'{head_ft_info["sha256"]}); rebuild: python scripts/train_teacher.py --stage head_ft'))
    for name, info in (('teacher', teacher_info), ('head_ft', head_ft_info)):   # for reproduce_table4 / bench_inversion
        with open(os.path.join(outdir, f'{name}.json'), 'w') as f:
            json.dump(info, f, indent=1)
    # Stage 2's generator has the XY depth layers of the head_ft it starts from, and their hand-over sharpness (2 and
    # 2.5 for the shipped one: not in the paper, configs/head_ft_world.yaml says why; none for a tri-plane head_ft).
    run_stage('head3d', [py, 'train.py', '--config', 'head3d_tiny', '--faces', faces_zip, '--heads', heads_zip,
                         '--teacher', teacher, '--init', head_ft, '--outdir', h3_dir, '--kimg', head3d_kimg,
                         '--seed', seed, '--set', f'snap_kimg={SNAP_KIMG}'] + head_ft_info['xy_layers'] + train_threads,
              timings, commands)
    runs['head3d'] = h3_dir
    student = latest_snapshot(h3_dir)

    # 5. Samples: multi-view grids of every stage, a 360-degree orbit video and a coloured mesh of the student.
    samples = os.path.join(outdir, 'samples')
    images = []
    # First the identity-transfer grid (rendered here, in this process): the result in one picture.
    t0 = time.time()
    compare = os.path.join(samples, 'compare.png')
    if threads:
        import torch
        torch.set_num_threads(threads)
    write_compare_grid(compare, dict(face=teacher, head_ft=head_ft, head3d=student), seeds=list(range(6)))
    timings['samples'] = timings.get('samples', 0.0) + time.time() - t0
    commands.append(('samples', '# samples/compare.png: rendered by scripts/demo.py itself (write_compare_grid)'))
    images.append(('identity transfer and complete heads, seeds 0-5 (rows), the same latent in every column: teacher '
                   'yaw 0 | head_ft yaw 0 | head3d yaw 0 | head3d yaw 90 | head3d yaw 180 | teacher yaw 180 (its '
                   'mirror face)', os.path.relpath(compare, outdir)))
    view_spec = 'yaw:0,45,90,135,180,-90'
    for name, snap in (('face', teacher), ('head_ft', head_ft), ('head3d', student)):
        sub = os.path.join(samples, name)
        run_stage('samples', [py, 'gen_samples.py', 'images', '--network', snap, '--seeds', '0-5', '--views', view_spec,
                              '--outdir', sub, '--device', 'cpu'], timings, commands)
        grid = sorted(glob.glob(os.path.join(sub, 'grid*.png')))
        if grid:
            images.append((f'{name}: seeds 0-5 (rows) x yaw 0, 45, 90, 135, 180, -90 degrees (columns)', os.path.relpath(grid[0], outdir)))
    run_stage('samples', [py, 'gen_samples.py', 'video', '--network', student, '--seeds', '0-3', '--grid', '2x2',
                          '--frames', 48, '--fps', 24, '--outdir', os.path.join(samples, 'video'), '--device', 'cpu'],
              timings, commands)
    for mp4 in sorted(glob.glob(os.path.join(samples, 'video', '*.mp4'))):
        images.append(('360-degree orbit video (head3d, seeds 0-3)', os.path.relpath(mp4, outdir)))
    # The mesh is optional: a barely trained field (a very short --head3d-kimg) may have no surface at the level.
    if run_stage('samples', [py, 'gen_samples.py', 'shapes', '--network', student, '--seeds', '0', '--shape-res', 64,
                             '--outdir', os.path.join(samples, 'shapes'), '--device', 'cpu'], timings, commands,
                 required=False):
        images.append(('coloured mesh (head3d, seed 0; open in MeshLab or Blender)',
                       os.path.relpath(os.path.join(samples, 'shapes', 'seed0000.ply'), outdir)))
    else:
        images.append(('coloured mesh: not written (gen_samples.py shapes failed; its message is in the output above; '
                       'usually the field is too short-trained to reach the iso level)', None))

    # 6. Offline metrics for the student (and teacher vs student identity), written as JSON lines.
    metrics_file = os.path.join(outdir, 'metrics.jsonl')
    if os.path.exists(metrics_file):
        os.remove(metrics_file)    # the report shows this invocation's values only
    metric_rows = []
    # The teacher: view accuracy (its back view is the mirror face that Head3D removes) and precision/recall against
    # its own faces set. One calc_metrics call per network and dataset: features and renders are shared between metrics.
    c3d = ['--c3d-ids', 2, '--c3d-views', 24, '--c3d-res', 32, '--c3d-grid', 32, '--c3d-iters', c3d_iters, '--c3d-rays', 1024,
           '--c3d-samples', 24]
    jobs = (('face', 'face', teacher, 'backview,backview_nr,mirror', heads_zip, 'all,front,back', []),
            ('face', 'face-faces', teacher, 'pr_randconv', faces_zip, 'all', []),
            ('head_ft', 'head_ft', head_ft, STUDENT_METRICS, heads_zip, 'all,front,back', ['--teacher', teacher] + c3d),
            ('head3d', 'head3d', student, STUDENT_METRICS, heads_zip, 'all,front,back', ['--teacher', teacher] + c3d))
    for name, tag, snap, metrics, data, split, extra in jobs:
        out = os.path.join(outdir, f'metrics-{tag}.jsonl')
        if os.path.exists(out):
            os.remove(out)
        run_stage('metrics', [py, 'scripts/calc_metrics.py', '--network', snap, '--data', data, '--metrics', metrics,
                              '--split', split, '--num', metric_num, '--num-id', metric_num] + extra +
                             ['--out', out, '--device', 'cpu'], timings, commands)
        metric_rows += [(name, row) for row in read_metrics(out)]
    # The back view of each student's previous kept snapshot (0.2 kimg earlier): how far the final value can move
    # (one snapshot each, about 12 s apiece on 2 cores, to keep the demo within its 15 minutes).
    for name, run_dir, final in (('head_ft', ft_dir, head_ft), ('head3d', h3_dir, student)):
        out = os.path.join(outdir, f'metrics-{name}-previous.jsonl')
        if os.path.exists(out):
            os.remove(out)
        if name not in runs:        # a shipped or given head_ft: no earlier snapshot here
            continue
        for snap in [s for s in list_snapshots(run_dir) if os.path.abspath(s) != os.path.abspath(final)][:1]:
            run_stage('metrics', [py, 'scripts/calc_metrics.py', '--network', snap, '--data', heads_zip,
                                  '--metrics', 'backview,backview_nr,mirror', '--split', 'back', '--num', metric_num,
                                  '--out', out, '--device', 'cpu'], timings, commands)
        metric_rows += [(f'{name} at {snapshot_kimg(row["network"]):g} kimg', row) for row in read_metrics(out)]

    # 7. Report.
    def start_text(path, info, trained):
        shown = os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path
        return f'{shown} ({"trained here, " if trained else ""}{info["kimg"]:g} kimg, sha256 {info["sha256"][:12]})'
    settings = dict(faces=faces, head_ids=head_ids, views=views, teacher=start_text(teacher, teacher_info, train_teacher),
                    head_ft=start_text(head_ft, head_ft_info, train_head_ft), head3d_kimg=head3d_kimg, seed=seed,
                    threads=threads or 'all cores')
    write_report(outdir, timings, commands, runs, metric_rows, images, settings)
    print(f'\nDone in {time.time() - t_start:.0f} s. Report: {os.path.join(outdir, "report.md")} (and report.html)')


if __name__ == '__main__':
    main()
