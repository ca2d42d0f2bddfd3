"""Convert an official EG3D network pickle into a Head3D snapshot, without executing code from the pickle.

    python scripts/import_eg3d.py --src ffhq512-128.pkl --dst runs/eg3d-ffhq512-128.pt
"""

import json
import os
import click

from dnnlib.util import check_output_path
from training.eg3d_import import EG3DImportError, import_eg3d
from training.snapshot import save_snapshot

#----------------------------------------------------------------------------

@click.command()
@click.option('--src',      help='EG3D network pickle (.pkl)', metavar='PKL', type=click.Path(exists=True, dir_okay=False), required=True)
@click.option('--dst',      help='Head3D snapshot to write (.pt)', metavar='PT', type=click.Path(dir_okay=False), required=True)
@click.option('--strict/--no-strict', help='Fail unless every tensor maps both ways', default=True, show_default=True)
def main(src, dst, strict):
    """Import G, D and G_ema from an EG3D pickle into a Head3D snapshot (plane_axes='eg3d')."""
    check_output_path(dst, '--dst', kind='file')
    try:
        nets, report, training_set_kwargs = import_eg3d(src, strict=strict)
    except EG3DImportError as e:
        raise click.ClickException(str(e))
    save_snapshot(dst, nets, source=os.path.abspath(src), import_report=report,
                  eg3d_training_set_kwargs=training_set_kwargs)
    for name, rep in report.items():
        click.echo(f'{name}: {rep["eg3d_class"]} -> {type(nets[name]).__name__}, {rep["mapped"]} tensors mapped')
        for key in ('unmapped_src', 'missing_dst', 'shape_mismatch', 'ignored_constants', 'unused_kwargs'):
            if rep[key]:
                click.echo(f'  {key}: {json.dumps(rep[key])}')
        if 'dataset_label_std' in rep:
            click.echo(f'  dataset_label_std: recorded in the snapshot\'s import_report ({len(rep["dataset_label_std"])} values; '
                       'not a weight)')
    click.echo(f'Wrote {dst}')

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()
