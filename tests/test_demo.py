"""The main job, scripts/demo.py, end to end at toy lengths: every stage runs through its CLI and the report holds
the stage table, the identity-transfer grid and table (with the different-z baseline and the real pairs), the
back-view accuracy with its real ceiling, precision/recall, the metrics and the samples."""

import json
import os
import subprocess
import sys

import pytest
from _scripts import load_program
from click.testing import CliRunner

from training.checkpoint import SHIPPED_HEAD_FT, SHIPPED_TEACHER, demo_network

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

@pytest.mark.slow
def test_demo_runs_every_stage_and_writes_the_report(tmp_path):
    out = tmp_path / 'demo'
    # The default path of `make demo`: the shipped teacher (weights/face_world.pt) teaches head3d, which starts from
    # the shipped stage-1 head generator (weights/head_ft_world.pt).
    cmd = [sys.executable, os.path.join(ROOT, 'scripts', 'demo.py'), '--outdir', str(out), '--faces', '16',
           '--head-ids', '2', '--views', '8', '--head3d-kimg', '0.008', '--metric-num', '16', '--c3d-iters', '10']
    env = dict(os.environ, OMP_NUM_THREADS='2')
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]

    report = (out / 'report.md').read_text()
    assert (out / 'report.html').is_file()
    for stage in ('world', 'face', 'head_ft', 'head3d', 'samples', 'metrics'):
        assert f'| {stage} |' in report
    assert not (out / 'face').exists() and not (out / 'head_ft').exists()   # nothing trained: the shipped ones
    assert json.loads((out / 'teacher.json').read_text())['path'] == SHIPPED_TEACHER
    assert json.loads((out / 'head_ft.json').read_text())['path'] == SHIPPED_HEAD_FT == demo_network(out, 'head_ft')
    assert 'teacher=weights/face_world.pt (' in report and 'Note: the shipped teacher was trained on' in res.stderr
    assert 'head_ft=weights/head_ft_world.pt (6 kimg' in report and 'Note: the shipped head_ft was' in res.stderr
    assert (out / 'head3d' / 'snapshot-0000000008.pt').is_file()
    for name in ('face', 'head_ft', 'head3d'):
        assert (out / 'samples' / name / 'grid.png').is_file()
        assert f'![{name}: seeds 0-5' in report
    assert (out / 'samples' / 'compare.png').is_file() and '](samples/compare.png)' in report
    assert list((out / 'samples' / 'video').glob('orbit_image_seed0000-0003.mp4'))
    # Two training steps leave no surface at the default iso level: the mesh is then reported as not written.
    assert 'samples/shapes/seed0000.ply' in report or 'coloured mesh: not written' in report
    rows = [line for line in report.splitlines() if line.startswith('| ')]
    for net in ('face', 'head_ft', 'head3d', 'real views (held out)'):
        assert any(line.startswith(f'| {net} | View accuracy (kNN) | back |') for line in rows), net
    for label in ('FD-randconv', 'KD-randconv x100', 'Precision-randconv', 'Recall-randconv',
                  'ID-proxy to teacher, same z', 'Frontal PSNR to teacher, same z (dB)', '3D-consistency PSNR (dB)'):
        assert any(line.startswith(f'| head3d | {label} |') for line in rows), label
    # The reading of the result: identity against its baselines, backs against the real ceiling, blur vs variety.
    for line in ('| head3d vs teacher, same z |', '| teacher vs teacher, other z (baseline) |',
                 '| real: one identity, its two most frontal views |', '| real views (ceiling / true backs) |'):
        assert any(row.startswith(line) for row in rows), line
    for net in ('face', 'head_ft', 'head3d'):       # the mirror-face reading of the same renders
        assert any(line.startswith(f'| {net} | Mirror-face similarity | - |') for line in rows), net
    for net, data in (('teacher', 'faces.zip'), ('head_ft', 'heads.zip'), ('head3d', 'heads.zip')):
        assert any(row.startswith(f'| {net} | {data} |') for row in rows), net
    assert 'worker processes' not in res.stderr     # loader workers are capped at the usable cores
    assert 'scripts/calc_metrics.py --network' in report and 'train.py --config head3d_tiny' in report
    assert 'threads=2' in report and '--set num_threads=2' in report     # the same arithmetic on any machine

# The complete-heads table gives both readings of the backs (view accuracy, mirror-face similarity with its other-z
# and real-pair references) and lists each student's earlier snapshots under the final values (the demo measures the
# one before the final; the toy run above keeps one snapshot per stage, so the list is checked here on made-up rows).

def test_heads_section_lists_both_readings_and_the_earlier_snapshots_of_each_student():
    demo = load_program('scripts/demo.py')
    assert demo.snapshot_kimg('/x/head_ft/snapshot-0000000600.pt') == 0.6

    def row(value):
        return dict(metric='backview', split='back', value=value, num=96, real_value=0.96)

    def nr(value):
        return dict(metric='backview_nr', split='back', value=value, num=96, real_value=0.975, fraction=0.5)

    def mirror(value, other=0.1, rate=0.5):
        return dict(metric='mirror', split=None, value=value, num=96, other_z=other, face_rate=rate, real_value=0.11,
                    real_other=0.02, real_pairs=200, real_p90=0.29, light_share=0.18, face_rate_light=0.722,
                    face_rate_dark=0.055, real_light_share=0.33, real_face_rate_light=0.121, real_face_rate_dark=0.09,
                    upper_face_rate=0.03, upper_face_rate_light=0.147, upper_face_rate_dark=0.006,
                    real_upper_face_rate_light=0.045, real_upper_face_rate_dark=0.127)
    rows = [('face', row(0.021)), ('head_ft', row(0.562)), ('head3d', row(0.312)),
            ('face', mirror(0.574, 0.288)), ('head_ft', mirror(0.214)), ('head3d', mirror(0.306, 0.139)),
            ('head_ft at 0.4 kimg', row(0.4375)), ('head_ft at 0.6 kimg', row(0.8229)),
            ('head_ft at 0.6 kimg', mirror(0.25)), ('head3d at 0.6 kimg', row(0.3229)),
            ('face', nr(0.1)), ('head_ft', nr(0.86)), ('head3d', nr(0.97)), ('head3d at 0.6 kimg', nr(0.95))]
    md = demo.heads_section(rows)
    assert '| head3d | 0.970 | 0.312 | 0.306 | 0.139 | 0.500 | 0.722 / 0.055 (0.18) | 0.030, 0.147 / 0.006 | 96 |' in md
    assert '| teacher | 0.100 | 0.021 | 0.574 | 0.288 | 0.500 | 0.722 / 0.055 (0.18) | 0.030, 0.147 / 0.006 | 96 |' in md
    assert ('| real views (ceiling / true backs) | 0.975 | 0.960 | 0.110 | 0.020 | 0.100 | 0.121 / 0.090 (0.33) | '
            '0.100, 0.045 / 0.127 | 200 pairs |') in md
    assert any('(0.5 of the image size)' in line for line in md)
    # a mirror row from before the light / dark split (or with no light back: None) leaves the cell empty
    older = [(n, {k: v for k, v in r.items() if 'light' not in k and 'dark' not in k}) for n, r in rows]
    assert '| head3d | 0.970 | 0.312 | 0.306 | 0.139 | 0.500 | - | - | 96 |' in demo.heads_section(older)
    nolight = [(n, dict(r, face_rate_light=None)) for n, r in rows]
    assert '| head3d | 0.970 | 0.312 | 0.306 | 0.139 | 0.500 | - / 0.055 (0.18) | 0.030, 0.147 / 0.006 | 96 |' in demo.heads_section(nolight)
    assert ('- head_ft: 0.4 kimg: back-view accuracy - at the rendering resolution, 0.438 at full resolution, '
            'mirror-face similarity -, face behind -, 0.6 kimg: back-view accuracy - at the rendering resolution, '
            '0.823 at full resolution, mirror-face similarity 0.250, face behind 0.500') in md
    assert ('- head3d: 0.6 kimg: back-view accuracy 0.950 at the rendering resolution, 0.323 at full resolution, '
            'mirror-face similarity -, face behind -') in md
    # without earlier snapshots (a run that kept only its last one) the list is left out
    assert not any(line.startswith('- head') for line in demo.heads_section(rows[:6]))
    # an older metrics file without the mirror rows nor the rendering-resolution reading still gives the accuracy table
    assert '| head_ft | - | 0.562 | - | - | - | - | - | 96 |' in demo.heads_section(rows[:3])

#----------------------------------------------------------------------------
# reproduce_table4: every method trains once per seed and each cell is mean +- std over the seeds. The training and
# metric commands are recorded instead of run (a real toy run is what test_demo_runs_every_stage... does for the
# stages); their metric lines are made up so that the aggregation can be checked exactly.

def test_table4_trains_each_method_per_seed_and_reports_mean_and_std(tmp_path, monkeypatch):
    import json

    from click.testing import CliRunner

    t4 = load_program('scripts/reproduce_table4.py')
    demo = tmp_path / 'demo'
    for name in ('world/faces.zip', 'world/heads.zip', 'face/snapshot-0000000008.pt', 'head_ft/snapshot-0000000008.pt'):
        (demo / name).parent.mkdir(parents=True, exist_ok=True)
        (demo / name).write_bytes(b'')
    # the head_ft start is read for its XY depth layers, which every method's generator then gets (DFT too)
    from training.networks import build_preset
    from training.snapshot import save_snapshot
    save_snapshot(demo / 'head_ft/snapshot-0000000008.pt',
                  {'G_ema': build_preset('tiny', G_overrides=dict(xy_depth_layers=2))[0]})
    commands = []

    threads_seen = []

    def fake_run(cmd, threads=0):
        cmd = [str(c) for c in cmd]
        commands.append(cmd)
        threads_seen.append(threads)
        if 'train.py' in cmd:
            run_dir = cmd[cmd.index('--outdir') + 1]
            os.makedirs(run_dir, exist_ok=True)
            snap = os.path.join(run_dir, 'snapshot-0000000010.pt')
            if not os.path.exists(snap):                      # a finished run dir is only resumed
                with open(snap, 'wb') as f:
                    f.write(run_dir.encode())
        if 'scripts/calc_metrics.py' in cmd:
            out, snap = cmd[cmd.index('--out') + 1], cmd[cmd.index('--network') + 1]
            run_dir = os.path.dirname(snap)
            seed = int(run_dir.rsplit('seed', 1)[1])
            bump = 1.0 if 'dft' in run_dir else 0.0
            with open(out, 'w') as f:
                for metric, split in (('fd_randconv', 'all'), ('kd_randconv', 'all'), ('fd_randconv', 'back'),
                                      ('kd_randconv', 'back'), ('id_proxy', None), ('backview', 'back'),
                                      ('backview_nr', 'back'), ('mirror', None)):
                    extra = dict(face_rate=(seed + bump) / 10, upper_face_rate_light=seed / 4) if metric == 'mirror' else {}
                    f.write(json.dumps(dict(metric=metric, split=split, value=seed + bump, **extra)) + '\n')
    monkeypatch.setattr(t4, 'run', fake_run)
    out = tmp_path / 'table4'
    res = CliRunner().invoke(t4.main, ['--demo-dir', str(demo), '--outdir', str(out), '--seeds', '0-2',
                                       '--methods', 'head3d_tiny,dft_tiny', '--kimg', '0.01'])
    assert res.exit_code == 0, res.output
    trains = [c for c in commands if 'train.py' in c]
    assert [(c[c.index('--config') + 1], c[c.index('--seed') + 1]) for c in trains] == [
        ('head3d_tiny', '0'), ('head3d_tiny', '1'), ('head3d_tiny', '2'), ('dft_tiny', '0'), ('dft_tiny', '1'),
        ('dft_tiny', '2')]
    assert len({c[c.index('--outdir') + 1] for c in trains}) == 6            # one run dir per method and seed
    assert all(c[c.index('--set') + 1] == 'nets.G.kwargs.xy_depth_layers=2' for c in trains)
    metrics = [c for c in commands if 'scripts/calc_metrics.py' in c]
    assert {c[c.index('--seed') + 1] for c in metrics} == {'0'}             # the metrics' latents stay fixed
    table = (out / 'table4.md').read_text()
    # values 0, 1, 2 -> mean 1, sample std 1; DFT's are one higher.
    assert '| Ours (Head3D) | 1.000 +- 1.000 |' in table and '| DFT | 2.000 +- 1.000 |' in table
    saved = json.loads((out / 'table4.json').read_text())
    assert saved['seeds'] == [0, 1, 2] and saved['rows'][0]['cells']['id_proxy'] == dict(mean=1.0, std=1.0, n=3)
    assert saved['rows'][1]['cells']['mirror'] == dict(mean=2.0, std=1.0, n=3)     # the mirror-face column too
    cell = saved['rows'][1]['cells']['face_rate']                                  # and its face-behind share
    assert cell['n'] == 3 and cell['mean'] == pytest.approx(0.2) and cell['std'] == pytest.approx(0.1)
    assert '| 0.200 +- 0.100 |' in table and 'face behind' in table
    assert table.count('| 0.250 +- 0.250 |') == 2 and 'light backs, upper reading' in table   # seeds 0, 1, 2: 0, 1/4, 1/2
    assert len(saved['rows'][1]['seeds']) == 3

    # A rerun measures only what is new: nothing when every snapshot was measured with these settings, one run
    # whose snapshot changed (retrained), and every run again when a metric setting changes.
    args = ['--demo-dir', str(demo), '--outdir', str(out), '--seeds', '0-2', '--methods', 'head3d_tiny,dft_tiny',
            '--kimg', '0.01']
    commands.clear()
    assert CliRunner().invoke(t4.main, args).exit_code == 0
    assert len([c for c in commands if 'train.py' in c]) == 6
    assert not [c for c in commands if 'scripts/calc_metrics.py' in c]
    assert '| DFT | 2.000 +- 1.000 |' in (out / 'table4.md').read_text()
    (out / 'dft_tiny' / 'seed1' / 'snapshot-0000000010.pt').write_bytes(b'retrained')
    commands.clear()
    assert CliRunner().invoke(t4.main, args).exit_code == 0
    measured = [c[c.index('--network') + 1] for c in commands if 'scripts/calc_metrics.py' in c]
    assert measured == [str(out / 'dft_tiny' / 'seed1' / 'snapshot-0000000010.pt')]
    commands.clear()
    assert CliRunner().invoke(t4.main, args + ['--num', '32']).exit_code == 0
    assert len([c for c in commands if 'scripts/calc_metrics.py' in c]) == 6

    # The demo's head_ft as head_ft.json names it (the shipped file) wins over its head_ft/ run; --threads fixes
    # every command's torch threads.
    shipped = tmp_path / 'head_ft_world.pt'
    save_snapshot(shipped, {'G_ema': build_preset('tiny')[0]})       # a tri-plane: no layer override
    (demo / 'head_ft.json').write_text(json.dumps(dict(path=str(shipped))))
    commands.clear(), threads_seen.clear()
    assert CliRunner().invoke(t4.main, args[:-4] + ['--methods', 'head3d_tiny', '--kimg', '0.01', '--threads', '1',
                                                    '--outdir', str(tmp_path / 't4b')]).exit_code == 0
    trains = [c for c in commands if 'train.py' in c]
    assert {c[c.index('--init') + 1] for c in trains} == {str(shipped)} and set(threads_seen) == {1}
    assert all(c[c.index('--set') + 1] == 'num_threads=1' for c in trains)
    shipped.write_bytes(b'not a snapshot')                            # unreadable: one line naming it
    res = CliRunner().invoke(t4.main, args)
    assert res.exit_code != 0 and f'head_ft: {shipped}' in res.output and 'Traceback' not in res.output
    os.remove(shipped)
    res = CliRunner().invoke(t4.main, args)
    assert res.exit_code != 0 and str(shipped) in res.output and 'Traceback' not in res.output

def test_table4_rejects_unknown_methods_and_bad_seeds(tmp_path):
    from click.testing import CliRunner

    t4 = load_program('scripts/reproduce_table4.py')
    res = CliRunner().invoke(t4.main, ['--methods', 'head3d_tiny,nope', '--demo-dir', str(tmp_path)])
    assert res.exit_code != 0 and 'nope' in res.output
    res = CliRunner().invoke(t4.main, ['--seeds', '3-1', '--demo-dir', str(tmp_path)])
    assert res.exit_code != 0 and '--seeds' in res.output
    # a demo folder whose teacher.json names a file that is gone: one line naming it
    (tmp_path / 'world').mkdir()
    for name in ('faces.zip', 'heads.zip'):
        (tmp_path / 'world' / name).write_bytes(b'')
    (tmp_path / 'teacher.json').write_text(json.dumps(dict(path=str(tmp_path / 'gone.pt'))))
    res = CliRunner().invoke(t4.main, ['--demo-dir', str(tmp_path), '--outdir', str(tmp_path / 't4')])
    assert res.exit_code != 0 and 'gone.pt' in res.output and 'Traceback' not in res.output, res.output
    assert t4.aggregate([dict(fd_all=2.0)])['fd_all'] == (2.0, None, 1)
    assert t4.format_cell((2.0, None, 1)) == '2.000' and t4.format_cell((None, None, 0)) == '-'

#----------------------------------------------------------------------------
# train_teacher's export: G_ema and D only, plain data, its sha256; a failed export leaves an earlier file as it was.

def test_teacher_export_keeps_g_ema_and_d_only_and_never_loses_an_earlier_file(tmp_path):
    import hashlib

    import click
    import torch

    train_teacher = load_program('scripts/train_teacher.py')
    from training import snapshot
    from training.networks import build_preset
    torch.manual_seed(0)
    G, D = build_preset('tiny')
    src = str(tmp_path / 'run' / 'snapshot-0000008000.pt')
    snapshot.save_snapshot(src, {'G': G, 'G_ema': G, 'D': D}, cur_nimg=8000, optimizer={'step': torch.tensor(3)})
    dst = str(tmp_path / 'weights' / 'face_world.pt')
    os.makedirs(os.path.dirname(dst))
    info = train_teacher.export_snapshot(src, dst, config={'kimg': 8.0})
    data = torch.load(dst, weights_only=True)
    assert set(data['nets']) == {'G_ema', 'D'} and 'optimizer' not in data and data['kimg'] == 8.0
    assert data['config'] == {'kimg': 8.0}
    with open(dst, 'rb') as f:
        assert info['sha256'] == hashlib.sha256(f.read()).hexdigest()
    readme = tmp_path / 'weights' / 'README.md'
    train_teacher.write_readme(str(readme), info, 'python scripts/train_teacher.py',
                               ['python train.py --config face_world'])
    assert info['sha256'] in readme.read_text()

    # The stage-1 export keeps G as well (stage 2 starts its G from it); its README section joins the teacher's,
    # which stays as it was, and rewriting a section replaces it instead of adding a second one.
    ft = str(tmp_path / 'weights' / 'head_ft_world.pt')
    ft_info = train_teacher.export_snapshot(src, ft, config={}, nets=('G', 'G_ema', 'D'))
    assert set(torch.load(ft, weights_only=True)['nets']) == {'G', 'G_ema', 'D'}
    teacher_section = readme.read_text().split('# Shipped weights\n')[1]
    for _ in range(2):
        train_teacher.write_readme(str(readme), ft_info, 'python scripts/train_teacher.py --stage head_ft',
                                   ['python train.py --config head_ft_world'], stage='head_ft')
    text = readme.read_text()
    assert text.count('## face_world.pt') == 1 and text.count('## head_ft_world.pt') == 1
    assert teacher_section.strip() in text and ft_info['sha256'] in text.split('## head_ft_world.pt')[1]
    assert '`configs/head_ft_world.yaml`' in text and 'nets `G`, `G_ema` and `D` only' in text
    with pytest.raises(click.ClickException, match='no G'):
        train_teacher.export_snapshot(dst, ft, config={}, nets=('G', 'G_ema', 'D'))   # the teacher file has no G
    assert torch.load(ft, weights_only=True)['nets'].keys() == {'G', 'G_ema', 'D'}
    os.remove(ft)

    # Over the size limit: an error, the earlier file unchanged, nothing half-written left beside it.
    before = open(dst, 'rb').read()
    with pytest.raises(click.ClickException, match='limit'):
        train_teacher.export_snapshot(src, dst, config={}, max_bytes=1000)
    assert open(dst, 'rb').read() == before
    assert sorted(os.listdir(os.path.dirname(dst))) == ['README.md', 'face_world.pt']

    # --teacher is for stage 1 only; a missing teacher is named before anything is built.
    res = CliRunner().invoke(train_teacher.main, ['--teacher', dst, '--world', str(tmp_path / 'w')])
    assert res.exit_code != 0 and '--stage head_ft' in res.output and 'Traceback' not in res.output
    gone = str(tmp_path / 'gone.pt')
    res = CliRunner().invoke(train_teacher.main, ['--stage', 'head_ft', '--teacher', gone, '--world', str(tmp_path / 'w')])
    assert res.exit_code != 0 and gone in res.output and 'missing' in res.output and 'Traceback' not in res.output
    assert not (tmp_path / 'w').exists()

#----------------------------------------------------------------------------
# The shipped networks: each file is what its README section describes (sha256, training length), holds the nets
# that section names and nothing of the training state, plain data within the 10 MB limit, and a generator that
# renders. head_ft keeps G (stage 2 starts its G from it) besides G_ema and D.

@pytest.mark.parametrize('path, nets, config', [(SHIPPED_TEACHER, {'G_ema', 'D'}, 'face_world'),
                                                (SHIPPED_HEAD_FT, {'G', 'G_ema', 'D'}, 'head_ft_world')])
def test_shipped_networks_match_their_readme_and_load_safely(path, nets, config):
    import hashlib
    import re

    import torch
    readme = open(os.path.join(ROOT, 'weights', 'README.md')).read()
    section = readme.split(f'## {os.path.basename(path)}\n')[1].split('\n## ')[0]
    data = open(path, 'rb').read()
    assert len(data) <= 10 * 1024 * 1024
    assert f'| sha256 | `{hashlib.sha256(data).hexdigest()}` |' in section
    raw = torch.load(path, weights_only=True, map_location='cpu')
    assert set(raw['nets']) == nets and 'optimizer' not in raw and 'state' not in raw
    assert re.search(rf'\| training length \| {raw["kimg"]:g} kimg', section)
    assert f'| config | `configs/{config}.yaml`' in section
    from training import generate
    G = generate.load_generator(path)
    img = G(torch.randn(2, G.z_dim), generate.front_labels(G, 2), noise_mode='const')['image']
    assert img.shape == (2, 3, 64, 64) and torch.isfinite(img).all() and img.std() > 0.05

#----------------------------------------------------------------------------
# demo.py's teacher options: the shipped file by default, --teacher FILE, or --train-teacher (face_world config);
# bad combinations and bad files are one-line errors; teacher.json tells the other scripts which teacher was used.

def test_demo_teacher_options_and_errors(tmp_path, monkeypatch):
    demo = load_program('scripts/demo.py')

    def invoke(*args):
        res = CliRunner().invoke(demo.main, ['--outdir', str(tmp_path / 'out')] + list(args))
        assert res.exit_code != 0 and 'Traceback' not in res.output, res.output
        return res.output

    assert '--train-teacher' in invoke('--teacher', SHIPPED_TEACHER, '--train-teacher')
    assert '--train-teacher' in invoke('--face-kimg', '2')
    missing = str(tmp_path / 'nope.pt')
    out = invoke('--teacher', missing)
    assert missing in out and 'missing' in out
    corrupt = tmp_path / 'corrupt.pt'
    corrupt.write_bytes(open(SHIPPED_TEACHER, 'rb').read()[:4000])
    assert str(corrupt) in invoke('--teacher', str(corrupt))
    from training.snapshot import load_snapshot, save_snapshot
    d_only = tmp_path / 'd_only.pt'
    save_snapshot(d_only, {'D': load_snapshot(SHIPPED_TEACHER)['nets']['D']})
    out = invoke('--teacher', str(d_only))
    assert str(d_only) in out and 'no generator' in out
    assert not (tmp_path / 'out' / 'world').exists()   # every check comes before the first stage

    # --train-teacher: the face stage trains configs/face_world.yaml in OUTDIR/face with the given length.
    stages = []
    real_stage = demo.run_stage

    def stop_at(stage):
        def fake(name, cmd, timings, log, required=True):
            stages.append((name, [str(c) for c in cmd]))
            if name == stage:
                raise demo.click.ClickException('stop here')
            return True
        return fake
    copy = tmp_path / 'my_teacher.pt'
    copy.write_bytes(open(SHIPPED_TEACHER, 'rb').read())
    monkeypatch.setattr(demo, 'run_stage', stop_at('face'))
    assert 'stop here' in invoke('--train-teacher', '--face-kimg', '0.5')
    face = dict(stages)['face']
    assert face[face.index('--config') + 1] == 'face_world' and face[face.index('--kimg') + 1] == '0.5'
    assert face[face.index('--outdir') + 1] == str(tmp_path / 'out' / 'face')

    # Stage 1 likewise: the shipped head_ft by default, --head-ft FILE, or --train-head-ft (head_ft_world config, with
    # its own one thread so that the shipped file is rebuilt); another teacher implies --train-head-ft.
    monkeypatch.setattr(demo, 'run_stage', real_stage)
    assert '--train-head-ft' in invoke('--head-ft', SHIPPED_HEAD_FT, '--train-head-ft')
    assert '--train-head-ft' in invoke('--head-ft-kimg', '2')
    out = invoke('--head-ft', missing)
    assert missing in out and 'missing' in out and 'head_ft' in out
    assert str(d_only) in invoke('--head-ft', str(d_only))
    empty = tmp_path / 'empty_run'
    empty.mkdir()
    assert 'without snapshot' in invoke('--head-ft', str(empty))
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    (run_dir / 'snapshot-0000000008.pt').write_bytes(b'not a snapshot')    # a run dir means its newest snapshot
    assert str(run_dir / 'snapshot-0000000008.pt') in invoke('--head-ft', str(run_dir))
    world = tmp_path / 'out' / 'world'
    world.mkdir(parents=True)
    (world / 'identities.json').write_text('{}')        # a complete world: no world stage
    for args in (['--train-head-ft', '--head-ft-kimg', '0.5'], ['--teacher', str(copy)]):
        stages.clear()
        monkeypatch.setattr(demo, 'run_stage', stop_at('head_ft'))
        res = CliRunner().invoke(demo.main, ['--outdir', str(tmp_path / 'out')] + args)
        assert 'stop here' in res.output, res.output
        ft = dict(stages)['head_ft']
        assert ft[ft.index('--config') + 1] == 'head_ft_world' and 'num_threads=2' not in ' '.join(ft)
        assert ft[ft.index('--outdir') + 1] == str(tmp_path / 'out' / 'head_ft')
        assert ft[ft.index('--init') + 1] == (str(copy) if '--teacher' in args else SHIPPED_TEACHER)
        assert ('0.5' in ft) == ('--head-ft-kimg' in args)
    assert 'with this teacher stage 1 is trained here' in res.output

def test_demo_teacher_record_wins_over_the_face_run(tmp_path):
    assert demo_network(str(tmp_path), 'face') is None
    (tmp_path / 'face').mkdir()
    (tmp_path / 'face' / 'snapshot-0000000008.pt').write_bytes(b'')
    assert demo_network(str(tmp_path), 'face') == str(tmp_path / 'face' / 'snapshot-0000000008.pt')
    (tmp_path / 'teacher.json').write_text(json.dumps(dict(path='/x/face_world.pt')))
    assert demo_network(str(tmp_path), 'face') == '/x/face_world.pt'
    # Stage 1 likewise: head_ft.json (the shipped or given file) wins over a head_ft/ run dir.
    assert demo_network(str(tmp_path), 'head_ft') is None
    (tmp_path / 'head_ft').mkdir()
    (tmp_path / 'head_ft' / 'snapshot-0000000016.pt').write_bytes(b'')
    assert demo_network(str(tmp_path), 'head_ft') == str(tmp_path / 'head_ft' / 'snapshot-0000000016.pt')
    (tmp_path / 'head_ft.json').write_text(json.dumps(dict(path='/x/head_ft_world.pt')))
    assert demo_network(str(tmp_path), 'head_ft') == '/x/head_ft_world.pt'
