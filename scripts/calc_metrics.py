"""Compute quality metrics of a Head3D / EG3D-style generator snapshot.

Writes one JSON line per result {metric, label, split, value, num, network, detector, detector_digest, time,
timestamp} to --out, or by default to metric-<name>.jsonl in the snapshot's folder (the run dir), and prints
each line. Metrics (metrics/metric_main.py): fid, kid (Inception, needs inception-2015-12-05.pkl; see
docs/metrics.md), fd_<net>/kd_<net> for the offline networks pixels and randconv, pr / pr_<net> (precision and
recall, k = 3 nearest neighbours, on Inception / an offline network: two lines per split), id (needs --teacher and a
TorchScript face model), id_proxy (needs --teacher), consistency3d, backview (view accuracy: do yaw-180 renders
look like real back views or like a second face; needs --data with front and back views), mirror (how much of each
latent's own face its yaw-180 render repeats; same renders and data as backview). KID values are x100 as in the
paper.

Examples:

\b
  # FID and KID x100 on front and back views (paper table 3), 50k generated images per split
  python scripts/calc_metrics.py --network runs/head3d --data heads.zip --metrics fid,kid --split front,back
\b
  # precision and recall (StyleGAN's pr50k3 protocol, Inception features) on all views
  python scripts/calc_metrics.py --network runs/head3d --data heads.zip --metrics pr --split all
\b
  # 3D-consistency PSNR, GRAM-HD protocol (paper table 3)
  python scripts/calc_metrics.py --network runs/head3d --metrics consistency3d
\b
  # offline smoke test on CPU
  python scripts/calc_metrics.py --network runs/demo/head3d --data heads.zip --metrics fd_randconv,kd_randconv \\
      --split all,back --num 200 --device cpu
"""

import json
import os
import sys

import click

from dnnlib.util import check_output_path
from metrics import metric_main
from metrics.detectors import DetectorError
from training import checkpoint, generate
from training.snapshot import SnapshotError

#----------------------------------------------------------------------------
# Append result dicts as JSON lines to `path` (folders created as needed).

def write_jsonl(path, results):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, 'a') as f:
        for r in results:
            f.write(json.dumps(r) + '\n')

#----------------------------------------------------------------------------
# A snapshot path as given, or the latest snapshot-NNNNNNNNNN.pt of a run dir.

def resolve_snapshot(path, what='--network'):
    if os.path.isdir(path):
        latest = checkpoint.latest_snapshot(path)
        if latest is None:
            raise FileNotFoundError(f'{what}: run dir {path} holds no snapshot-NNNNNNNNNN.pt')
        return latest
    return path

#----------------------------------------------------------------------------
# A note (one line) when the generator's resolution differs from the dataset's, which is allowed: generated images
# are resized (antialiased bilinear) to the dataset's resolution before any detector sees them.

def resolution_note(G, data):
    from training.dataset import peek_resolution
    data_res = peek_resolution(data)[0]
    if data_res == G.img_resolution:
        return None
    return (f'note: the generator renders {G.img_resolution}x{G.img_resolution} and --data {data} holds '
            f'{data_res}x{data_res} images: generated images are resized to {data_res}x{data_res} '
            '(antialiased bilinear) before the detector')

#----------------------------------------------------------------------------
# Load the networks, run the metrics, write and print the results; returns the result dicts.

def calc_metrics(network, metrics, data=None, split_list='all', teacher=None, detector=None, face_model=None,
                 cache_dir=None, out=None, device='auto', progress=True, **options):
    names = metric_main.parse_metric_list(metrics)
    metric_main.parse_split_list(split_list)
    metric_main.make_options(**options)          # validate before loading anything
    device = generate.resolve_device(device)
    network = resolve_snapshot(network)
    G = generate.load_generator(network, device=device)
    T = generate.load_generator(resolve_snapshot(teacher, '--teacher'), device=device) if teacher is not None else None
    note = resolution_note(G, data) if data is not None else None
    if note is not None:
        print(note, file=sys.stderr)             # stdout stays JSON lines
    # One call for all metrics, so that fid and kid (or fd_x and kd_x) share their features.
    results = metric_main.run_metrics(names, G, data=data, split_list=split_list, teacher=T, detector=detector,
                                      face_model=face_model, cache_dir=cache_dir, device=device, progress=progress,
                                      **options)
    for r in results:
        r['network'] = os.path.abspath(network)
        print(json.dumps(r))
    for name in names:
        target = out or os.path.join(os.path.dirname(os.path.abspath(network)), f'metric-{name}.jsonl')
        write_jsonl(target, [r for r in results if r['metric'] == name])
    return results

#----------------------------------------------------------------------------

@click.command()
# Main options
@click.option('--network',      help='Generator snapshot (G_ema, else G), or a run dir (its latest snapshot)', metavar='PATH', required=True)
@click.option('--metrics',      help='Comma-separated metrics: ' + ', '.join(metric_main.METRICS), default='fid', show_default=True)
@click.option('--data',         help='Dataset (folder or zip) for fid/kid/fd/kd/pr/backview', metavar='PATH')
@click.option('--split',        help='View splits for fid/kid/fd/kd/pr/backview: all, front, back (comma list)', default='all', show_default=True)
@click.option('--num',          help='Generated images per split (fid/kid/fd/kd/pr); latents for backview', type=click.IntRange(min=2), default=50000, show_default=True)
@click.option('--max-real',     help='Real images per split [default: all]', type=click.IntRange(min=2))
@click.option('--detector',     help='Inception TorchScript file, or a URL to download it [default: the cache]', metavar='PATH|URL')
@click.option('--teacher',      help='Teacher (face generator) snapshot or run dir for id / id_proxy', metavar='PATH')
@click.option('--face-model',   help='TorchScript face-recognition model for id [default: <cache>/detectors/arcface.pt]', metavar='PATH')
# Protocol details
@click.option('--back-cond',    help='Conditioning pose for the back split', type=click.Choice(['frontal', 'front_labels']), default='frontal', show_default=True)
@click.option('--trunc',        help='Truncation psi', type=click.FloatRange(min=0), default=1.0, show_default=True)
@click.option('--seed',         help='Seed of latents, cameras and KID subsets', type=click.IntRange(min=0), default=0, show_default=True)
@click.option('--num-id',       help='Latents for id / id_proxy', type=click.IntRange(min=1), default=10000, show_default=True)
@click.option('--id-crop',      help='Central crop (fraction of the side) given to the face model', type=click.FloatRange(min=0, max=1, min_open=True), default=0.5, show_default=True)
@click.option('--c3d-ids',      help='consistency3d: identities', type=click.IntRange(min=1), default=50, show_default=True)
@click.option('--c3d-views',    help='consistency3d: views per identity (half fit, half held out)', type=click.IntRange(min=2), default=100, show_default=True)
@click.option('--c3d-res',      help='consistency3d: view resolution', type=click.IntRange(min=4), default=128, show_default=True)
@click.option('--c3d-grid',     help='consistency3d: TensoRF grid resolution', type=click.IntRange(min=2), default=128, show_default=True)
@click.option('--c3d-iters',    help='consistency3d: fitting iterations per identity', type=click.IntRange(min=1), default=3000, show_default=True)
@click.option('--c3d-rays',     help='consistency3d: rays per fitting iteration', type=click.IntRange(min=1), default=4096, show_default=True)
@click.option('--c3d-samples',  help='consistency3d: samples per ray', type=click.IntRange(min=2), default=64, show_default=True)
@click.option('--pr-k',         help='pr: neighbourhood size k of the manifold balls', type=click.IntRange(min=1), default=3, show_default=True)
# Performance and I/O
@click.option('--batch',        help='Generator batch size', type=click.IntRange(min=1), default=16, show_default=True)
@click.option('--workers',      help='Data-loading processes for the real images (at most the usable cores)', type=click.IntRange(min=0), default=3, show_default=True)
@click.option('--device',       help='auto, cpu or cuda', default='auto', show_default=True)
@click.option('--cache',        help='Cache folder for detector files and real-set statistics [default: ~/.cache/head3d/metrics]', metavar='DIR')
@click.option('--out',          help='JSON lines file for all results [default: metric-<name>.jsonl beside the snapshot]', metavar='FILE')
def main(network, metrics, data, split, num, max_real, detector, teacher, face_model, back_cond, trunc, seed, num_id,
         id_crop, c3d_ids, c3d_views, c3d_res, c3d_grid, c3d_iters, c3d_rays, c3d_samples, pr_k, batch, workers, device,
         cache, out):
    """Compute FID/KID and precision/recall (all/front/back), identity consistency and 3D consistency of a generator snapshot."""
    if out is not None:
        check_output_path(out, '--out', kind='file')
    try:
        calc_metrics(network, metrics, data=data, split_list=split, teacher=teacher, detector=detector,
                     face_model=face_model, cache_dir=cache, out=out, device=device, num=num, max_real=max_real,
                     batch=batch, workers=workers, seed=seed, truncation_psi=trunc, back_conditioning=back_cond,
                     id_num=num_id, id_crop=id_crop, c3d_identities=c3d_ids, c3d_views=c3d_views, c3d_resolution=c3d_res,
                     c3d_grid=c3d_grid, c3d_iters=c3d_iters, c3d_batch_rays=c3d_rays, c3d_samples=c3d_samples,
                     pr_k=pr_k)
    except (DetectorError, SnapshotError, ValueError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from err

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()
