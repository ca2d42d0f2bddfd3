"""A few training steps of face_tiny and head_ft_tiny (ADA with p > 0, R1 through the augment pipe)."""

import json
import os

import pytest
import torch
from click.testing import CliRunner

from _scripts import load_program
from _world import small_args, write_set
from training.checkpoint import latest_snapshot
from training.snapshot import load_snapshot

main = load_program('train.py').main

@pytest.fixture(scope='module')
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp('world')
    return dict(faces=write_set(str(root / 'faces.zip'), resolution=32),
                heads=write_set(str(root / 'heads.zip'), resolution=32, max_yaw_deg=180, seed=1))

def run(args):
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res

@pytest.fixture(scope='module')
def face_run(world, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('face'))
    run(['--config', 'face_tiny', '--data', world['faces'], '--outdir', out, '--kimg', '0.012'] + small_args(['progress=true']))
    return out

def test_face_tiny_runs_and_snapshot_loads(face_run):
    path = latest_snapshot(face_run)
    assert os.path.basename(path) == 'snapshot-0000000012.pt'
    snap = load_snapshot(path)
    assert {'G', 'D', 'G_ema'} <= set(snap['nets']) and snap['cur_nimg'] == 12 and snap['step'] == 3
    assert snap['config']['loss']['class'] == 'training.losses.eg3d.EG3DLoss'
    lines = [json.loads(l) for l in open(os.path.join(face_run, 'stats.jsonl'))]
    names = set().union(*lines)
    for term in ('Loss/G/gan', 'Loss/D/real', 'Loss/D/fake', 'Loss/r1_penalty', 'Loss/G/density_reg'):
        assert term in names
    assert all(v['mean'] == v['mean'] for l in lines for k, v in l.items() if k.startswith('Loss/'))   # no NaN
    assert os.path.isfile(os.path.join(face_run, 'fakes0000000012.png'))
    log = open(os.path.join(face_run, 'log.txt')).read()
    assert 'tick 0 ' in log and 'kimg 0.012' in log
    assert '\r' not in log and 'img/s]' not in log            # the progress bar stays on the terminal
    # G_ema moved away from its init but differs from G (it is an average)
    g, ge = snap['nets']['G'].state_dict(), snap['nets']['G_ema'].state_dict()
    assert any(not torch.equal(g[k], ge[k]) for k in g if g[k].is_floating_point())

def test_head_ft_tiny_with_ada_from_init(world, face_run, tmp_path):
    out = str(tmp_path / 'ft')
    init = latest_snapshot(face_run)
    run(['--config', 'head_ft_tiny', '--data', world['heads'], '--init', init, '--outdir', out, '--kimg', '0.016']
        + small_args(['augment.p=0.5', 'loss.r1_interval=2']))
    snap = load_snapshot(latest_snapshot(out))
    assert snap['ada']['p'] != 0.5             # the controller moved p
    lines = [json.loads(l) for l in open(os.path.join(out, 'stats.jsonl'))]
    assert any('Loss/r1_penalty' in l for l in lines)
    # initialised from the face run: 4 Adam steps of lr 0.0025 move a weight by ~0.01, a fresh init by ~1
    face_G = load_snapshot(init)['nets']['G'].state_dict()
    ft_G = snap['nets']['G'].state_dict()
    for k in [k for k in face_G if 'mapping' in k and k.endswith('weight')]:
        assert (face_G[k] - ft_G[k]).abs().max() < 0.05, k

def test_nonfinite_steps_are_skipped_then_stop_the_run(world, face_run, tmp_path):
    # an absurd G learning rate sends G to inf after its first step; later steps are non-finite, get skipped
    # (counted and logged) and, after max_nonfinite_in_a_row of them, stop the run with a message
    out = str(tmp_path / 'nan')
    res = CliRunner().invoke(main, ['--config', 'face_tiny', '--data', world['faces'], '--outdir', out, '--kimg', '1']
                             + small_args(['optim.G.lr=1.0e+30', 'max_nonfinite_in_a_row=3', 'tick_kimg=0.004']))
    assert res.exit_code != 0
    assert 'non-finite steps in a row' in res.output
    snap_path = latest_snapshot(out)
    if snap_path is not None:      # any snapshot left behind holds finite weights
        snap = load_snapshot(snap_path)
        for name, net in snap['nets'].items():
            assert all(torch.isfinite(t).all() for t in net.state_dict().values() if t.is_floating_point()), name

#----------------------------------------------------------------------------
# Clear one-line errors for snapshots that do not fit their role (no traceback, no wall of keys).

def _fails(args, *needles):
    res = CliRunner().invoke(main, args)
    assert res.exit_code != 0 and 'Traceback' not in res.output, res.output
    error = [l for l in res.output.splitlines() if l.startswith('Error:')]
    assert error and len(error[0]) < 600, res.output[-2000:]
    for needle in needles:
        assert needle in error[0], error[0]
    return error[0]

def test_snapshots_in_the_wrong_role_are_clear_errors(world, face_run, tmp_path):
    from training.snapshot import save_snapshot
    trained = latest_snapshot(face_run)
    nets = load_snapshot(trained)['nets']
    d_only, nets_only = str(tmp_path / 'd_only.pt'), str(tmp_path / 'nets_only.pt')
    save_snapshot(d_only, dict(D=nets['D']))
    save_snapshot(nets_only, nets)
    base = ['--config', 'face_tiny', '--data', world['faces'], '--kimg', '0.004'] + small_args()
    _fails(base + ['--outdir', str(tmp_path / 'a'), '--teacher', d_only], d_only, 'generator')
    _fails(base + ['--outdir', str(tmp_path / 'b'), '--resume', nets_only], nets_only, 'not a training snapshot', '--init')
    # --init from nets of another architecture: the file, the net and the first tensor that differs
    err = _fails(base + ['--outdir', str(tmp_path / 'c'), '--init', trained, '--set', 'nets.G.kwargs.channel_max=8'],
                 trained, "network 'G'", 'tensor')
    assert err.count('backbone.') == 1
    # a corrupt snapshot in calc_metrics.py
    calc_main = load_program('scripts/calc_metrics.py').main
    corrupt = tmp_path / 'corrupt.pt'
    corrupt.write_bytes(open(trained, 'rb').read()[:5000])
    res = CliRunner().invoke(calc_main, ['--network', str(corrupt), '--metrics', 'fd_pixels', '--data', world['faces'],
                                         '--num', '4', '--device', 'cpu'])
    assert res.exit_code != 0 and 'Traceback' not in res.output and str(corrupt) in res.output, res.output
    assert 'weights_only=False' not in res.output

def test_teacher_file_is_read_once_and_only_its_g_ema_built(face_run, monkeypatch):
    from training import training_loop
    loads, builds = [], []
    real_load, real_build = training_loop.load_snapshot, training_loop.build_net
    monkeypatch.setattr(training_loop, 'load_snapshot', lambda *a, **k: loads.append((a, k)) or real_load(*a, **k))
    monkeypatch.setattr(training_loop, 'build_net', lambda name, *a, **k: builds.append(name) or real_build(name, *a, **k))
    path = latest_snapshot(face_run)
    frozen, info, records = training_loop.load_teacher(path, torch.device('cpu'))
    assert len(loads) == 1 and loads[0][1]['build'] is False and builds == ['G_ema']
    assert set(frozen) == {'teacher'} and not any(p.requires_grad for p in frozen['teacher'].parameters())
    assert info['path'] == os.path.abspath(path) and len(info['sha256']) == 64
    # `init: {D: teacher:D}` takes the teacher's D from the records already read: no second read of the file
    D = load_snapshot(path)['nets']['D']
    torch.nn.init.zeros_(next(D.parameters()))
    training_loop.init_from_snapshots({'D': D}, {'D': 'teacher:D'}, None, path, records)
    assert len(loads) == 1 and next(D.parameters()).abs().sum() > 0

def test_init_from_a_g_ema_and_d_file_starts_g_from_g_ema(face_run, tmp_path):
    # The shipped teacher (weights/face_world.pt) holds G_ema and D only: --init gives G, G_ema its G_ema and D its D,
    # both for the default same-name mapping (head_ft) and for an explicit init.G (dft, fh).
    from training import training_loop
    from training.snapshot import save_snapshot
    nets = load_snapshot(latest_snapshot(face_run))['nets']
    shipped = tmp_path / 'shipped.pt'
    save_snapshot(shipped, {'G_ema': nets['G_ema'], 'D': nets['D']})
    for init in ({}, {'G': 'init:G', 'D': 'init:D'}):
        fresh = load_snapshot(latest_snapshot(face_run))['nets']
        modules = {name: fresh[name] for name in ('G', 'G_ema', 'D')}
        for net in modules.values():
            for p in net.parameters():
                torch.nn.init.zeros_(p)
        training_loop.init_from_snapshots(modules, init, str(shipped), None, None)
        for name, src in (('G', 'G_ema'), ('G_ema', 'G_ema'), ('D', 'D')):
            for (key, a), b in zip(modules[name].state_dict().items(), nets[src].state_dict().values()):
                assert torch.equal(a, b), (init, name, key)
    # the EMA and the trained G differ in a trained snapshot, so the test tells G_ema from G
    assert any(not torch.equal(a, b) for a, b in zip(nets['G'].parameters(), nets['G_ema'].parameters()))
