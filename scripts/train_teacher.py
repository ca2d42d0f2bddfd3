"""Train the synthetic world's face teacher reproducibly and export the snapshot the repository ships.

    python scripts/train_teacher.py --outdir runs/teacher                    # world + training + export
    python scripts/train_teacher.py --outdir runs/teacher                    # rerun: resumes, then exports again
    python scripts/train_teacher.py --outdir runs/teacher --kimg 0.02 --export /tmp/t.pt   # a smoke run

Three steps, each a plain command that the script prints:
  1. world   scripts/make_synthetic.py with the demo's settings (skipped when --world already holds faces.zip)
  2. train   train.py --config face_world (configs/face_world.yaml); the run dir resumes exactly when rerun, so a
             long CPU run can go in pieces (Ctrl-C, rerun the same command)
  3. export  the newest snapshot's G_ema and D only (no optimiser or training state), tensors and plain data
             (loads with torch.load(weights_only=True)), at most 10 MB, to --export (default weights/face_world.pt),
             and its sha256, config and training length into the README beside it (weights/README.md)
The export is written beside the target and renamed over it only once complete and within the size limit, so an
earlier shipped file is never lost to a failed export.
"""

import datetime
import os
import platform
import shlex
import subprocess
import sys

import click

from training.checkpoint import file_sha256, latest_snapshot, latest_snapshot_config
from training.snapshot import SnapshotError, load_snapshot, save_snapshot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = 'face_world'
MAX_BYTES = 10 * 1024 * 1024     # the shipped file's size limit
WORLD_ARGS = ['--faces', 1000, '--head-ids', 50, '--views', 24, '--res', 64]   # the demo's world (scripts/demo.py)

#----------------------------------------------------------------------------
# Run one step's command from the repository root; a failure stops the script naming the command.

def run(cmd):
    line = ' '.join(shlex.quote(str(c)) for c in cmd)
    print(f'\n=== {line}', flush=True)
    if subprocess.run([str(c) for c in cmd], cwd=ROOT).returncode != 0:
        raise click.ClickException(f'command failed: {line}')
    return line

#----------------------------------------------------------------------------
# Write the shipped snapshot: G_ema and D of a training snapshot, plus the config and training length as plain data.
# Returns dict(path, bytes, sha256, kimg). Fails (leaving any earlier file in place) above MAX_BYTES.

def export_teacher(snapshot_path, export_path, config, max_bytes=MAX_BYTES):
    try:
        snap = load_snapshot(snapshot_path)
    except SnapshotError as err:
        raise click.ClickException(str(err)) from None
    nets = snap['nets']
    missing = [n for n in ('G_ema', 'D') if n not in nets]
    if missing:
        raise click.ClickException(f'{snapshot_path}: no {" or ".join(missing)} in the snapshot '
                                   f'(nets: {", ".join(sorted(nets))})')
    kimg = snap.get('cur_nimg', 0) / 1000
    tmp = f'{export_path}.new'
    save_snapshot(tmp, {'G_ema': nets['G_ema'], 'D': nets['D']}, config=config, kimg=kimg,
                  source=os.path.basename(snapshot_path))
    size = os.path.getsize(tmp)
    if size > max_bytes:
        os.remove(tmp)
        raise click.ClickException(f'the export would be {size / 2**20:.1f} MB, over the {max_bytes / 2**20:.0f} MB '
                                   f'limit; {export_path} is unchanged')
    os.replace(tmp, export_path)
    return dict(path=export_path, bytes=size, sha256=file_sha256(export_path), kimg=kimg)

#----------------------------------------------------------------------------
# The README beside the shipped file: what it is, how it was made, and how to check it.

def write_readme(path, info, command, steps):
    name = os.path.basename(info['path'])
    text = f"""# Shipped weights

## {name}

The synthetic world's face teacher (the analogue of the paper's pretrained EG3D), made by this project.

| field | value |
|---|---|
| file | `{name}` ({info['bytes'] / 2**20:.2f} MB): nets `G_ema` and `D` only, tensors and plain data (`torch.load(weights_only=True)`) |
| sha256 | `{info['sha256']}` |
| config | `configs/{CONFIG}.yaml` (the resolved config is also stored in the file, key `config`) |
| training length | {info['kimg']:g} kimg (key `kimg` in the file) |
| data | the synthetic world's `faces.zip`: `scripts/make_synthetic.py {' '.join(map(str, WORLD_ARGS))} --seed 0` |
| made on | {datetime.date.today().isoformat()}, {platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores |

Rebuild it (the run dir resumes when the command is rerun):

```bash
{command}
```

which ran these steps:

```bash
{chr(10).join(steps)}
```

Check a copy: `sha256sum {name}` must print the sha256 above.
"""
    with open(path, 'w') as f:
        f.write(text)

#----------------------------------------------------------------------------

@click.command()
@click.option('--outdir',   help='Training run dir (rerun to resume)', default='runs/teacher', show_default=True)
@click.option('--world',    help='World folder (faces.zip); built when missing', default='runs/demo/world', show_default=True)
@click.option('--kimg',     help='Training length [default: the config\'s]', type=click.FloatRange(min=0, min_open=True))
@click.option('--export',   help='Shipped snapshot path', default='weights/face_world.pt', show_default=True)
@click.option('--readme/--no-readme', help='Write the README beside the export', default=True, show_default=True)
def main(outdir, world, kimg, export, readme):
    """Train the synthetic-world face teacher (configs/face_world.yaml) and export G_ema + D for shipping."""
    py = sys.executable
    outdir, world, export = (os.path.abspath(p) for p in (outdir, world, export))
    commands = []

    faces = os.path.join(world, 'faces.zip')
    if not os.path.isfile(os.path.join(world, 'identities.json')):     # written last: a complete world
        commands.append(run([py, 'scripts/make_synthetic.py', '--outdir', world] + WORLD_ARGS + ['--seed', 0]))
    else:
        print(f'=== world: reusing {world}', flush=True)
    train = [py, 'train.py', '--config', CONFIG, '--data', faces, '--outdir', outdir]
    if kimg is not None:
        train += ['--kimg', kimg]
    commands.append(run(train))

    snap = latest_snapshot(outdir)
    if snap is None:
        raise click.ClickException(f'{outdir} holds no snapshot after training')
    _, config = latest_snapshot_config(outdir)          # the resolved config the run was trained with
    config['data']['main']['path'] = 'faces.zip'        # no machine-specific path in the shipped file
    os.makedirs(os.path.dirname(export), exist_ok=True)
    info = export_teacher(snap, export, config)
    print(f'=== exported {export}: {info["bytes"] / 2**20:.2f} MB, {info["kimg"]:g} kimg, sha256 {info["sha256"]}')
    if readme:
        path = os.path.join(os.path.dirname(export), 'README.md')
        command = 'python scripts/train_teacher.py ' + shlex.join(sys.argv[1:])
        write_readme(path, info, command, [c.replace(py, 'python').replace(ROOT + os.sep, '') for c in commands])
        print(f'=== wrote {path}')


if __name__ == '__main__':
    main()
