"""Build the synthetic 3D head world: faces.zip (FFHQ analogue), heads.zip (H3DH analogue), identities.json.

    python scripts/make_synthetic.py --outdir data/synthetic                       # 2000 faces, 50 x 24 heads, 64^2
    python scripts/make_synthetic.py --outdir data/tiny --faces 64 --head-ids 8 --views 12 --res 32 --mesh

Same arguments give byte-identical files. See docs/datasets.md.
"""

import time

import click
import tqdm

from dnnlib.util import check_output_path
from training import synthetic

#----------------------------------------------------------------------------

@click.command()
@click.option('--outdir',   help='Output folder', metavar='DIR', type=click.Path(file_okay=False), required=True)
@click.option('--faces',    help='Identities in faces.zip (one near-frontal view each)', type=click.IntRange(min=1), default=2000, show_default=True)
@click.option('--head-ids', help='Identities in heads.zip', type=click.IntRange(min=1), default=50, show_default=True)
@click.option('--views',    help='Views per head identity over 360 degrees of yaw', type=click.IntRange(min=1), default=24, show_default=True)
@click.option('--res',      help='Image resolution', type=click.IntRange(min=8), default=64, show_default=True)
@click.option('--seed',     help='Random seed', type=click.IntRange(min=0), default=0, show_default=True)
@click.option('--mesh',     help='Also write meshes/head_XXXX.ply (marching cubes) per head identity', is_flag=True)
@click.option('--batch',    help='Identities rendered per batch', type=click.IntRange(min=1), default=16, show_default=True)
@click.option('--threads',  help='CPU threads for torch while rendering (1 is fastest here)', type=click.IntRange(min=1), default=1, show_default=True)
@click.option('--jobs',     help='Processes: 2 renders faces and heads at the same time (same files)', type=click.IntRange(min=1, max=2), default=2, show_default=True)
def main(outdir, faces, head_ids, views, res, seed, mesh, batch, threads, jobs):
    """Render the synthetic head world into OUTDIR."""
    check_output_path(outdir, '--outdir')
    total = faces + head_ids * views
    start = time.time()
    with tqdm.tqdm(total=total, unit='img', desc='rendering') as bar:
        synthetic.build_world(outdir, num_faces=faces, num_head_ids=head_ids, views_per_head=views, resolution=res,
                              seed=seed, progress=bar.update, mesh=mesh, batch_size=batch,
                              num_threads=threads, jobs=jobs)
    print(f'wrote {faces} faces and {head_ids} x {views} head views at {res}x{res} to {outdir} '
          f'in {time.time() - start:.1f} s')

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()
