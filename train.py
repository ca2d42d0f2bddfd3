"""Train any Head3D stage from a config preset: face (EG3D teacher), head_ft (stage 1), head3d (stage 2), baselines.

    python train.py --config face_tiny --data world/faces.zip --outdir runs/face_tiny
    torchrun --nproc_per_node 8 train.py --config head_ft --data heads.zip --init face.pt --outdir runs/head_ft

--outdir is the run dir itself: rerunning the same command resumes from its latest snapshot (only --kimg and
the machine settings num_threads, workers, progress may change). --set KEY.SUB=VALUE overrides any config value
(VALUE is YAML); --dry-run prints the resolved config.
Ctrl-C or SIGTERM stops at the current step with a snapshot; --metrics fid50k_full,... runs metrics at each snapshot.
"""

import os
import signal
import sys

import click

from dnnlib.util import Logger, check_output_path
from metrics import during_training
from metrics.detectors import DetectorError
from torch_utils import distributed as dist
from training import training_loop
from training.checkpoint import latest_snapshot_config
from training.config import (IGNORED_ON_RESUME, ConfigError, diff_configs, dump_yaml, load_config, read_preset,
                             save_config)
from training.dataset import DatasetError
from training.resolution import resolve_resolution
from training.snapshot import SnapshotError

#----------------------------------------------------------------------------
# CLI values -> dotted config keys (None = not given); a data flag must name a set the preset has.

def cli_values(cfg_name, data, faces, heads, **scalars):
    sets = (read_preset(cfg_name).get('data') or {}).keys()
    values = {}
    for flag, set_name, path in (('--data', 'main', data), ('--faces', 'faces', faces), ('--heads', 'heads', heads)):
        if path is None:
            continue
        if set_name not in sets:
            raise ConfigError(f'{flag} sets data.{set_name}, but config {cfg_name!r} has the data sets {sorted(sets)}')
        values[f'data.{set_name}.path'] = os.path.abspath(path)
    for key, value in scalars.items():
        if value is not None and key in ('init_path', 'teacher_path', 'resume'):
            if not os.path.isfile(value):
                raise ConfigError(f'--{key.split("_")[0]}: no such file {value}')
            value = os.path.abspath(value)
        values[key] = value
    return values

#----------------------------------------------------------------------------

@click.command(context_settings=dict(help_option_names=['-h', '--help']))
# Main options.
@click.option('--config', 'cfg_name', help='Preset name in configs/ or a YAML path', metavar='NAME|PATH', required=True)
@click.option('--outdir',       help='Run dir (rerun to resume)', metavar='DIR', type=str, default=None)
@click.option('--data',         help='Main data set (face, head_ft)', metavar='ZIP|DIR', type=str, default=None)
@click.option('--faces',        help='Faces set (head3d, dft, fh)', metavar='ZIP|DIR', type=str, default=None)
@click.option('--heads',        help='Multi-view heads set (head3d, dft, fh)', metavar='ZIP|DIR', type=str, default=None)
@click.option('--init',         help='Snapshot to initialise from (config `init`)', metavar='PT', type=str, default=None)
@click.option('--teacher',      help='Frozen teacher snapshot', metavar='PT', type=str, default=None)
@click.option('--resume',       help='Training snapshot to continue when the run dir has none', metavar='PT', type=str, default=None)
# Overrides.
@click.option('--set', 'overrides', help='Override KEY.SUB=VALUE (repeatable)', metavar='KEY=VALUE', multiple=True)
@click.option('--kimg',         help='Training length in kimg', type=click.FloatRange(min=0, min_open=True), default=None)
@click.option('--batch',        help='Global batch size', type=click.IntRange(min=1), default=None)
@click.option('--batch-gpu',    help='Batch per rank and round', type=click.IntRange(min=1), default=None)
@click.option('--seed',         help='Random seed', type=click.IntRange(min=0), default=None)
# Metrics and I/O.
@click.option('--metrics',      help='Metrics at each snapshot, e.g. fid50k_full,kid50k_full,fid50k_back,fd_randconv', metavar='LIST', default=None)
@click.option('--metrics-cache', help='Cache folder of detector files and real statistics [default: ~/.cache/head3d/metrics]', metavar='DIR', default=None)
@click.option('--dry-run',      help='Print the resolved config and exit', is_flag=True)
def main(cfg_name, outdir, data, faces, heads, init, teacher, resume, overrides, kimg, batch, batch_gpu, seed, metrics,
         metrics_cache, dry_run):
    """Train a Head3D stage (see configs/ for the presets)."""
    try:
        values = cli_values(cfg_name, data, faces, heads, init_path=init, teacher_path=teacher, resume=resume,
                            kimg=kimg, batch=batch, batch_gpu=batch_gpu, seed=seed)
        cfg = load_config(cfg_name, overrides, values)
        resolution_note = resolve_resolution(cfg)   # before anything is built: the data fixes or checks it
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    if dry_run:
        click.echo(f'# {resolution_note}\n' + dump_yaml(cfg), nl=False)
        return
    if outdir is None:
        raise click.ClickException('--outdir is required (the run dir; rerunning the same command resumes it)')
    check_output_path(outdir, '--outdir')

    hooks = metric_hooks(metrics, cfg, os.path.abspath(outdir), metrics_cache)    # missing detector: fail now
    dist.init()
    run_dir = os.path.abspath(outdir)
    if dist.get_rank() == 0:
        os.makedirs(run_dir, exist_ok=True)
        check_rerun_config(run_dir, cfg)
        save_config(cfg, run_dir)
    dist.barrier()

    logger = Logger(os.path.join(run_dir, 'log.txt')) if dist.get_rank() == 0 else None
    try:
        dist.print0(f'Run dir: {run_dir}\n{resolution_note}\n' + dump_yaml(cfg))
        training_loop.training_loop(run_dir=run_dir, snapshot_hooks=hooks, **cfg)
        dist.barrier()      # leave together: no rank tears its process group down while another still writes or sends
    except training_loop.TrainingStopped as e:
        dist.print0(f'Stopped by {signal.Signals(e.signum).name} at kimg {e.cur_nimg / 1000:.3f}; snapshot {e.snapshot_path}.\n'
                    f'To resume, rerun the same command (same --outdir).', flush=True)
        sys.exit(128 + e.signum)
    except (DatasetError, SnapshotError, DetectorError, ValueError, RuntimeError) as e:
        raise click.ClickException(str(e)) from None
    finally:
        if logger is not None:
            logger.close()
        dist.shutdown()

#----------------------------------------------------------------------------
# A rerun must have the config of the run dir's snapshot (only the IGNORED_ON_RESUME keys may change). Compared with
# the copy inside the newest snapshot, so a run dir whose config.json/config.yaml was deleted or edited is checked
# all the same.

def check_rerun_config(run_dir, cfg):
    path, old = latest_snapshot_config(run_dir)
    diffs = diff_configs(old, cfg) if old is not None else []
    if diffs:
        allowed = ', '.join(k for k in IGNORED_ON_RESUME if k != 'resume')
        raise click.ClickException(f'{run_dir} holds a run with another config ({os.path.basename(path)}); only '
                                   f'{allowed} may change on resume. Differences:\n  ' + '\n  '.join(diffs))

# The snapshot hooks of --metrics (metrics/during_training.py), built and checked before any training.
def metric_hooks(metrics, cfg, run_dir, cache_dir):
    if not metrics:
        return ()
    try:
        hook = during_training.snapshot_hook(metrics, cfg, run_dir, cache_dir=cache_dir)
    except (DetectorError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    return (hook,) if hook is not None else ()

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()
