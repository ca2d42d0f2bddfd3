"""Train the networks this repository ships for the synthetic world reproducibly, and export them.

    python scripts/train_teacher.py --outdir runs/teacher                    # world + training + export
    python scripts/train_teacher.py --outdir runs/teacher                    # rerun: resumes, then exports again
    python scripts/train_teacher.py --stage head_ft --outdir runs/head_ft_world   # stage 1, from the shipped teacher
    python scripts/train_teacher.py --outdir runs/teacher --kimg 0.02 --export /tmp/t.pt   # a smoke run

Two shipped networks (--stage), each made by three steps, each a plain command that the script prints:
  face     the face teacher (the paper's pretrained EG3D): configs/face_world.yaml on the world's faces.zip,
           exported as weights/face_world.pt (G_ema and D)
  head_ft  the stage-1 head generator the demo's stage 2 starts from: configs/head_ft_world.yaml on heads.zip from
           the shipped teacher (--init, or --teacher FILE), exported as weights/head_ft_world.pt (G, G_ema and D:
           stage 2 starts its G from G, G_ema from G_ema and D_back from D, exactly as from the training snapshot)

  1. world   scripts/make_synthetic.py with the demo's settings (skipped when --world already holds the world)
  2. train   train.py --config CONFIG; the run dir resumes exactly when rerun, so a long CPU run can go in pieces
             (Ctrl-C, rerun the same command)
  3. export  the newest snapshot's networks only (no optimiser or training state), tensors and plain data (loads
             with torch.load(weights_only=True)), at most 10 MB, to --export (default weights/<name>.pt), and its
             sha256, config and training length into its section of the README beside it (weights/README.md)
The export is written beside the target and renamed over it only once complete and within the size limit, so an
earlier shipped file is never lost to a failed export.
"""

import datetime
import os
import platform
import shlex
import subprocess
import sys
from typing import NamedTuple

import click

from training.checkpoint import SHIPPED_TEACHER, file_sha256, latest_snapshot, latest_snapshot_config
from training.snapshot import SnapshotError, load_snapshot, save_snapshot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What each shipped network is: its config, data set, the nets exported, the default export path and its title.
class Shipped(NamedTuple):
    config: str
    data: str
    nets: tuple
    export: str
    title: str

STAGES = dict(
    face=Shipped('face_world', 'faces.zip', ('G_ema', 'D'), 'weights/face_world.pt',
                 "The synthetic world's face teacher (the analogue of the paper's pretrained EG3D), made by this "
                 "project."),
    head_ft=Shipped('head_ft_world', 'heads.zip', ('G', 'G_ema', 'D'), 'weights/head_ft_world.pt',
                    "The synthetic world's stage-1 head generator (head_ft: the face teacher fine-tuned on the heads "
                    "set, the paper's stage 1), made by this project from `face_world.pt`. `make demo` starts stage 2 "
                    "from it (`scripts/demo.py --train-head-ft` trains it again)."))
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
# Write the shipped snapshot: the named nets of a training snapshot (the teacher's G_ema and D by default), plus the
# config and training length as plain data. Returns dict(path, bytes, sha256, kimg). Fails (leaving any earlier
# file in place) when a net is missing or the file would be above MAX_BYTES.

def export_snapshot(snapshot_path, export_path, config, nets=('G_ema', 'D'), max_bytes=MAX_BYTES):
    try:
        snap = load_snapshot(snapshot_path)
    except SnapshotError as err:
        raise click.ClickException(str(err)) from None
    found = snap['nets']
    missing = [n for n in nets if n not in found]
    if missing:
        raise click.ClickException(f'{snapshot_path}: no {" or ".join(missing)} in the snapshot '
                                   f'(nets: {", ".join(sorted(found))})')
    kimg = snap.get('cur_nimg', 0) / 1000
    tmp = f'{export_path}.new'
    save_snapshot(tmp, {n: found[n] for n in nets}, config=config, kimg=kimg, source=os.path.basename(snapshot_path))
    size = os.path.getsize(tmp)
    if size > max_bytes:
        os.remove(tmp)
        raise click.ClickException(f'the export would be {size / 2**20:.1f} MB, over the {max_bytes / 2**20:.0f} MB '
                                   f'limit; {export_path} is unchanged')
    os.replace(tmp, export_path)
    return dict(path=export_path, bytes=size, sha256=file_sha256(export_path), kimg=kimg)

#----------------------------------------------------------------------------
# The README beside the shipped files: one section per file (what it is, how it was made, how to check it). Writing
# one file's section keeps the others as they are.

README_HEAD = '# Shipped weights\n'

def readme_section(stage, info, command, steps, data_args):
    name, spec = os.path.basename(info['path']), STAGES[stage]
    nets = ', '.join(f'`{n}`' for n in spec.nets[:-1]) + f' and `{spec.nets[-1]}`'
    return f"""## {name}

{spec.title}

| field | value |
|---|---|
| file | `{name}` ({info['bytes'] / 2**20:.2f} MB): nets {nets} only, tensors and plain data (`torch.load(weights_only=True)`) |
| sha256 | `{info['sha256']}` |
| config | `configs/{spec.config}.yaml` (the resolved config is also stored in the file, key `config`) |
| training length | {info['kimg']:g} kimg (key `kimg` in the file) |
| data | the synthetic world's `{spec.data}`: `scripts/make_synthetic.py {data_args}` |
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

def write_readme(path, info, command, steps, stage='face'):
    data_args = ' '.join(map(str, WORLD_ARGS)) + ' --seed 0'
    sections = {}
    if os.path.isfile(path):        # keep the other files' sections: split at each '## <file>' heading
        with open(path) as f:
            parts = f.read().split('\n## ')
        for part in parts[1:]:
            sections[part.split('\n', 1)[0].strip()] = '## ' + part.rstrip('\n') + '\n'
    sections[os.path.basename(info['path'])] = readme_section(stage, info, command, steps, data_args)
    order = [os.path.basename(s.export) for s in STAGES.values()]
    names = sorted(sections, key=lambda n: (order.index(n) if n in order else len(order), n))
    tmp = f'{path}.new'
    with open(tmp, 'w') as f:
        f.write(README_HEAD + '\n' + '\n'.join(sections[n] for n in names))
    os.replace(tmp, path)

#----------------------------------------------------------------------------

@click.command()
@click.option('--stage',    help='Which shipped network', type=click.Choice(sorted(STAGES)), default='face', show_default=True)
@click.option('--outdir',   help='Training run dir (rerun to resume)  [default: runs/teacher, runs/head_ft_world]', default=None)
@click.option('--world',    help='World folder (faces.zip, heads.zip); built when missing', default='runs/demo/world', show_default=True)
@click.option('--teacher',  help='With --stage head_ft: the face teacher to start from  [default: the shipped weights/face_world.pt]', metavar='PT', default=None)
@click.option('--kimg',     help='Training length [default: the config\'s]', type=click.FloatRange(min=0, min_open=True))
@click.option('--export',   help='Shipped snapshot path  [default: weights/face_world.pt, weights/head_ft_world.pt]', default=None)
@click.option('--readme/--no-readme', help='Write the file\'s section of the README beside the export', default=True, show_default=True)
def main(stage, outdir, world, teacher, kimg, export, readme):
    """Train one of the synthetic world's shipped networks (the face teacher, or the stage-1 head generator) and
    export it for shipping."""
    spec = STAGES[stage]
    if teacher is not None and stage != 'head_ft':
        raise click.BadParameter('the face teacher trains from scratch; --teacher is for --stage head_ft',
                                 param_hint='--teacher')
    py = sys.executable
    outdir = os.path.abspath(outdir or ('runs/teacher' if stage == 'face' else 'runs/head_ft_world'))
    world, export = os.path.abspath(world), os.path.abspath(export or os.path.join(ROOT, spec.export))
    init = None
    if stage == 'head_ft':
        init = os.path.abspath(teacher or SHIPPED_TEACHER)
        if not os.path.isfile(init):
            raise click.ClickException(f'{init}: the face teacher to start from is missing (weights/README.md says '
                                       f'how it is made: scripts/train_teacher.py --stage face)')
    commands = []

    data = os.path.join(world, spec.data)
    if not os.path.isfile(os.path.join(world, 'identities.json')):     # written last: a complete world
        commands.append(run([py, 'scripts/make_synthetic.py', '--outdir', world] + WORLD_ARGS + ['--seed', 0]))
    else:
        print(f'=== world: reusing {world}', flush=True)
    train = [py, 'train.py', '--config', spec.config, '--data', data]
    train += ['--init', init] if init else []
    train += ['--outdir', outdir]
    if kimg is not None:
        train += ['--kimg', kimg]
    commands.append(run(train))

    snap = latest_snapshot(outdir)
    if snap is None:
        raise click.ClickException(f'{outdir} holds no snapshot after training')
    _, config = latest_snapshot_config(outdir)          # the resolved config the run was trained with
    config['data']['main']['path'] = spec.data       # no machine-specific path in the shipped file
    if init:
        config['init_path'] = os.path.relpath(init, ROOT) if init.startswith(ROOT + os.sep) else os.path.basename(init)
    os.makedirs(os.path.dirname(export), exist_ok=True)
    info = export_snapshot(snap, export, config, nets=spec.nets)
    print(f'=== exported {export}: {info["bytes"] / 2**20:.2f} MB, {info["kimg"]:g} kimg, sha256 {info["sha256"]}')
    if readme:
        path = os.path.join(os.path.dirname(export), 'README.md')
        command = 'python scripts/train_teacher.py ' + shlex.join(sys.argv[1:])
        steps = [c.replace(py, 'python').replace(ROOT + os.sep, '') for c in commands]
        write_readme(path, info, command, steps, stage=stage)
        print(f'=== wrote {path}')


if __name__ == '__main__':
    main()
