"""train.py --metrics: EG3D-style names, results appended per snapshot (and dropped past a resumed snapshot), and a
missing detector file failing at start, before any training."""

import json
import os

import pytest
from click.testing import CliRunner

from _scripts import load_program
from _world import small_args, write_set

from metrics.during_training import parse_name

main = load_program('train.py').main

def test_names_in_eg3d_style():
    assert parse_name('fid50k_full') == dict(name='fid50k_full', metric='fid', split='all', num=50000)
    assert parse_name('kid50k_full')['metric'] == 'kid'
    assert parse_name('fid50k_back')['split'] == 'back'
    assert parse_name('fd_randconv') == dict(name='fd_randconv', metric='fd_randconv', split='all', num=50000)
    assert parse_name('kd_pixels200_front') == dict(name='kd_pixels200_front', metric='kd_pixels', split='front', num=200)
    assert parse_name('backview_back')['metric'] == 'backview' and parse_name('id')['split'] == 'all'
    assert parse_name('mirror')['metric'] == 'mirror'
    assert parse_name('backview_nr_back') == dict(name='backview_nr_back', metric='backview_nr', split='back', num=50000)
    assert parse_name('backview_nr')['metric'] == 'backview_nr'
    for bad in ('fid50k_side', 'fd_nonet', 'bogus', 'fid1'):
        with pytest.raises(ValueError, match='unknown metric|at least 2'):
            parse_name(bad)

@pytest.fixture(scope='module')
def faces(tmp_path_factory):
    return write_set(str(tmp_path_factory.mktemp('world') / 'faces.zip'), resolution=32)

def test_metrics_run_at_each_snapshot(faces, tmp_path):
    out = str(tmp_path / 'run')
    args = ['--config', 'face_tiny', '--data', faces, '--outdir', out, '--metrics', 'fd_pixels4_full,kd_pixels4_front',
            '--metrics-cache', str(tmp_path / 'cache')] + small_args(['snap_kimg=0.004'])
    res = CliRunner().invoke(main, args + ['--kimg', '0.008'], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    rows = [json.loads(l) for l in open(os.path.join(out, 'metric-fd_pixels4_full.jsonl'))]
    assert [r['cur_nimg'] for r in rows] == [4, 8] and all(r['metric'] == 'fd_pixels' and r['num'] == 4 for r in rows)
    assert rows[1]['snapshot'].endswith('snapshot-0000000008.pt') and rows[0]['value'] > 0
    kd = [json.loads(l) for l in open(os.path.join(out, 'metric-kd_pixels4_front.jsonl'))]
    assert [(r['metric'], r['split']) for r in kd] == [('kd_pixels', 'front')] * 2
    assert 'Metric fd_pixels4_full at kimg 0.008' in res.output
    # a row past the newest snapshot (a killed run measured a snapshot that a later crash lost) goes at the rerun
    with open(os.path.join(out, 'metric-fd_pixels4_full.jsonl'), 'a') as f:
        f.write(json.dumps(dict(rows[1], cur_nimg=12)) + '\n')
    assert CliRunner().invoke(main, args + ['--kimg', '0.008']).exit_code == 0
    assert [json.loads(l)['cur_nimg'] for l in open(os.path.join(out, 'metric-fd_pixels4_full.jsonl'))] == [4, 8]

def test_missing_detector_fails_before_training(faces, tmp_path):
    out = tmp_path / 'run'
    res = CliRunner().invoke(main, ['--config', 'face_tiny', '--data', faces, '--outdir', str(out), '--kimg', '0.004',
                                    '--metrics', 'fid50k_full,kid50k_full', '--metrics-cache', str(tmp_path / 'empty')]
                             + small_args())
    assert res.exit_code != 0 and 'Inception detector not found' in res.output and 'Traceback' not in res.output
    assert not out.exists()                                  # nothing trained, nothing written
    res = CliRunner().invoke(main, ['--config', 'face_tiny', '--data', faces, '--outdir', str(out), '--kimg', '0.004',
                                    '--metrics', 'fd_pixels4_back'] + small_args())
    assert res.exit_code != 0 and "no views in split 'back'" in res.output and not out.exists()
