"""Exact resume (interrupted + rerun == uninterrupted, bit for bit, inside an ADA interval), the state a snapshot
holds, a crash while writing a snapshot, and stops: SIGINT/SIGTERM (snapshot at the current step), kill -9."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

import training.snapshot
from _scripts import load_program
from _world import small_args, write_set
from training.checkpoint import latest_snapshot, list_snapshots
from training.snapshot import load_snapshot

main = load_program('train.py').main

ARGS = small_args(['snap_kimg=0.008', 'loss.r1_interval=2', 'augment.enabled=true', 'augment.p=0.3',
                   'augment.target=0.6', 'augment.interval=3', 'augment.adjust_kimg=1'])   # snapshots at step 2 fall inside an ADA interval

@pytest.fixture(scope='module')
def faces(tmp_path_factory):
    return write_set(str(tmp_path_factory.mktemp('world') / 'faces.zip'), resolution=32)

def run(faces, out, kimg, catch=False, extra=()):
    return CliRunner().invoke(main, ['--config', 'face_tiny', '--data', faces, '--outdir', out, '--kimg', kimg] + ARGS
                              + list(extra), catch_exceptions=catch)

def states(path):
    snap = load_snapshot(path, build=False)
    return {f'{n}.{k}': v for n, rec in snap['nets'].items() for k, v in rec['state'].items()}, snap

def losses(out):
    lines = [json.loads(l) for l in open(os.path.join(out, 'stats.jsonl'))]
    return [{k: v['mean'] for k, v in l.items() if k.startswith('Loss/')} for l in lines]

def test_interrupted_run_resumes_exactly(faces, tmp_path):
    full, part = str(tmp_path / 'full'), str(tmp_path / 'part')
    assert run(faces, full, '0.016').exit_code == 0
    assert run(faces, part, '0.008').exit_code == 0          # "interrupted" after 2 steps (its last snapshot)
    assert run(faces, part, '0.016').exit_code == 0          # the same command, longer: resumes
    a, snap_a = states(latest_snapshot(full))
    b, snap_b = states(latest_snapshot(part))
    assert snap_a['cur_nimg'] == snap_b['cur_nimg'] == 16
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]
    assert snap_a['ada']['p'] == snap_b['ada']['p'] and torch.equal(snap_a['ada']['signs'], snap_b['ada']['signs'])
    assert losses(full) == losses(part)                      # every tick's loss terms identical, none twice
    mid = load_snapshot(os.path.join(part, 'snapshot-0000000008.pt'), build=False)
    assert mid['ada']['signs'][1] > 0                         # the resume point lies inside an ADA interval

def test_crash_while_writing_snapshot_keeps_previous(faces, tmp_path, monkeypatch):
    out = str(tmp_path / 'run')
    assert run(faces, out, '0.008').exit_code == 0
    first = latest_snapshot(out)

    class CrashingOs:                                        # os for training/snapshot.py only: rename fails
        def __getattr__(self, name):
            return getattr(os, name)
        def replace(self, src, dst):
            assert os.path.getsize(src) > 0
            raise OSError('simulated crash after the temp file was written')
    with monkeypatch.context() as m:
        m.setattr(training.snapshot, 'os', CrashingOs())
        res = run(faces, out, '0.016', catch=True)
    assert res.exit_code != 0
    assert list_snapshots(out) == [first]                    # no half-written file counts as a snapshot
    assert not [f for f in os.listdir(out) if f.endswith('.tmp')]
    load_snapshot(first)                                     # still loadable
    assert run(faces, out, '0.016').exit_code == 0           # and the run resumes from it
    assert load_snapshot(latest_snapshot(out), build=False)['cur_nimg'] == 16

#----------------------------------------------------------------------------
# TrainingState: every piece saved is restored (counters, optimiser, ADA p and its sign accumulator, RNG).

def test_training_state_round_trips_every_piece(tmp_path):
    from training.augment import AugmentPipe
    from training.checkpoint import COUNTERS, TrainingState
    from training.training_loop import AdaController
    def make():
        param = torch.nn.Parameter(torch.ones(3))
        ada = AdaController(AugmentPipe(p=0.3), target=0.6, interval=3, adjust_kimg=1, batch=4, device=torch.device('cpu'))
        return TrainingState({}, {'G': torch.optim.Adam([param], lr=0.1)}, ada=ada), param
    state, param = make()
    param.grad = torch.tensor([1.0, -2.0, 3.0])
    state.opts['G'].step()
    state.ada.accumulate({'Loss/signs/real': torch.tensor([1.0, -1.0, 1.0]), 'Loss/G/gan': torch.ones(3)})
    state.ada.pipe.p.fill_(0.4375)
    for i, name in enumerate(COUNTERS):
        setattr(state, name, 10 + i)
    torch.manual_seed(123)
    path = state.save(str(tmp_path), keep=2, config={})
    expected_draw = torch.rand(4)

    fresh, _ = make()
    fresh.restore(load_snapshot(path, build=False), path)
    fresh.apply_rng(rank=0, world=1, fallback_seed=0)
    assert [getattr(fresh, n) for n in COUNTERS] == [10 + i for i in range(len(COUNTERS))]
    assert torch.equal(fresh.ada.signs, torch.tensor([1.0, 3.0])) and float(fresh.ada.pipe.p) == 0.4375
    assert torch.equal(fresh.opts['G'].state_dict()['state'][0]['exp_avg'], state.opts['G'].state_dict()['state'][0]['exp_avg'])
    assert torch.equal(torch.rand(4), expected_draw)

#----------------------------------------------------------------------------
# Leftovers of a killed run: a temporary snapshot file and stats rows after the last snapshot.

def test_rerun_removes_temp_files_and_stats_rows_after_the_snapshot(faces, tmp_path):
    out = str(tmp_path / 'run')
    assert run(faces, out, '0.008').exit_code == 0
    stale = os.path.join(out, '.snapshot-0000000012.pt.x1y2.tmp')
    open(stale, 'wb').write(b'half a snapshot')
    row = json.loads(open(os.path.join(out, 'stats.jsonl')).readlines()[-1])
    row['Progress/kimg']['mean'] = 0.012                     # logged by the killed run after its last snapshot
    with open(os.path.join(out, 'stats.jsonl'), 'a') as f:
        f.write(json.dumps(row) + '\n' + '{"torn')
    assert run(faces, out, '0.016').exit_code == 0
    assert not os.path.exists(stale)
    kimgs = [json.loads(l)['Progress/kimg']['mean'] for l in open(os.path.join(out, 'stats.jsonl'))]
    assert kimgs == [0.004, 0.008, 0.012, 0.016]

#----------------------------------------------------------------------------
# Real processes: Ctrl-C (SIGINT to the process group, DataLoader worker included), SIGTERM, kill -9.

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def start(faces, out, kimg, extra=()):
    cmd = [sys.executable, os.path.join(ROOT, 'train.py'), '--config', 'face_tiny', '--data', faces, '--outdir', out,
           '--kimg', kimg] + ARGS + list(extra)
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)

def wait_for_rows(proc, out, rows, timeout=240):
    path = os.path.join(out, 'stats.jsonl')
    t0 = time.time()
    while time.time() - t0 < timeout:
        if os.path.isfile(path) and len(open(path).readlines()) >= rows:
            return
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.05)
    raise AssertionError('the run did not log in time')

@pytest.mark.slow
@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_with_a_snapshot_at_the_current_step(faces, tmp_path, sig):
    out = str(tmp_path / 'run')
    extra = ['--set', 'snap_kimg=1000', '--set', 'workers=1'] if sig == signal.SIGINT else ['--set', 'snap_kimg=1000']
    proc = start(faces, out, '1000', extra)
    wait_for_rows(proc, out, 2)
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)                             # what Ctrl-C in a terminal does
    else:
        proc.send_signal(sig)                                # what a scheduler does
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, output
    assert f'Stopped by {sig.name}' in output and 'rerun the same command' in output, output
    assert 'Traceback' not in output
    snap = load_snapshot(latest_snapshot(out), build=False)
    kimgs = [json.loads(l)['Progress/kimg']['mean'] for l in open(os.path.join(out, 'stats.jsonl'))]
    assert snap['cur_nimg'] == round(kimgs[-1] * 1000) >= 8  # the stop step, far from any snap_kimg boundary
    assert not [f for f in os.listdir(out) if f.endswith('.tmp')]
    if sig == signal.SIGTERM:                                # the same command continues from the stop
        stop = latest_snapshot(out)
        res = run(faces, out, str((snap['cur_nimg'] + 4) / 1000), extra=extra)
        assert res.exit_code == 0 and f'Resuming from {stop}' in res.output, res.output
        assert load_snapshot(latest_snapshot(out), build=False)['cur_nimg'] == snap['cur_nimg'] + 4

@pytest.mark.slow
def test_kill_9_loses_at_most_one_snapshot_interval(faces, tmp_path):
    out = str(tmp_path / 'run')
    proc = start(faces, out, '1000')                         # snap_kimg 0.008: a snapshot every 2 steps
    wait_for_rows(proc, out, 3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    done = round(json.loads(open(os.path.join(out, 'stats.jsonl')).readlines()[-1])['Progress/kimg']['mean'] * 1000)
    snap = load_snapshot(latest_snapshot(out), build=False)
    assert done - 8 <= snap['cur_nimg'] <= done
    res = run(faces, out, str((done + 4) / 1000))
    assert res.exit_code == 0, res.output
    kimgs = [json.loads(l)['Progress/kimg']['mean'] for l in open(os.path.join(out, 'stats.jsonl'))]
    assert kimgs == sorted(set(kimgs)) and not [f for f in os.listdir(out) if f.endswith('.tmp')]
