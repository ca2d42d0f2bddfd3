"""Exact resume (interrupted + rerun == uninterrupted, bit for bit) and a crash while writing a snapshot."""

import json
import os

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
                   'augment.target=0.6', 'augment.interval=2', 'augment.adjust_kimg=1'])

@pytest.fixture(scope='module')
def faces(tmp_path_factory):
    return write_set(str(tmp_path_factory.mktemp('world') / 'faces.zip'), resolution=32)

def run(faces, out, kimg, catch=False):
    return CliRunner().invoke(main, ['--config', 'face_tiny', '--data', faces, '--outdir', out, '--kimg', kimg] + ARGS,
                              catch_exceptions=catch)

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
    assert snap_a['ada_p'] == snap_b['ada_p']
    assert losses(full) == losses(part)                      # every tick's loss terms identical

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
