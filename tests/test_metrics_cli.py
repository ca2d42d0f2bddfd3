"""scripts/calc_metrics.py end to end on CPU: a tiny generator snapshot, a tiny dataset, offline detectors."""

import json
import os

import numpy as np
import pytest
import torch
from _scripts import load_program
from click.testing import CliRunner
from test_metrics import _write_dataset

from training import snapshot
from training.networks import build_preset

calc_metrics = load_program('scripts/calc_metrics.py')

@pytest.fixture
def tiny_snapshot(tmp_path):
    torch.manual_seed(0)
    G, _ = build_preset('tiny')
    path = str(tmp_path / 'run' / 'snapshot-0000000000.pt')
    os.makedirs(os.path.dirname(path))
    snapshot.save_snapshot(path, {'G_ema': G.eval()})
    return path

def test_cli_writes_one_json_line_per_result(tmp_path, tiny_snapshot):
    data = _write_dataset(tmp_path / 'data', [0, 15, -30, 120, 170, -150])
    cache = str(tmp_path / 'cache')
    args = ['--network', tiny_snapshot, '--data', data, '--metrics', 'fd_pixels,kd_pixels', '--split', 'all,back',
            '--num', '4', '--batch', '2', '--workers', '0', '--device', 'cpu', '--cache', cache]
    result = CliRunner().invoke(calc_metrics.main, args)
    assert result.exit_code == 0, result.output
    run_dir = os.path.dirname(tiny_snapshot)
    for name in ('fd_pixels', 'kd_pixels'):
        with open(os.path.join(run_dir, f'metric-{name}.jsonl')) as f:
            lines = [json.loads(line) for line in f]
        assert [r['split'] for r in lines] == ['all', 'back']
        for r in lines:
            assert r['metric'] == name and r['num'] == 4 and r['detector'] == 'pixels'
            assert np.isfinite(r['value']) and r['network'] == os.path.abspath(tiny_snapshot)
            assert {'time', 'timestamp', 'label'} <= set(r)

    # A run dir means its latest snapshot; --out collects everything in one file.
    out = str(tmp_path / 'all.jsonl')
    args[args.index(tiny_snapshot)] = run_dir
    result = CliRunner().invoke(calc_metrics.main, args + ['--out', out])
    assert result.exit_code == 0, result.output
    with open(out) as f:
        lines = [json.loads(line) for line in f]
    assert len(lines) == 4 and all(r['network'] == os.path.abspath(tiny_snapshot) for r in lines)

def test_cli_reports_a_missing_inception_file(tmp_path, tiny_snapshot):
    data = _write_dataset(tmp_path / 'data', [0, 15])
    result = CliRunner().invoke(calc_metrics.main, ['--network', tiny_snapshot, '--data', data, '--metrics', 'fid',
                                                    '--num', '2', '--device', 'cpu', '--cache', str(tmp_path)])
    assert result.exit_code != 0
    assert 'inception-2015-12-05.pkl' in result.output and os.path.join(str(tmp_path), 'detectors') in result.output

def test_cli_rejects_unknown_metric(tiny_snapshot):
    result = CliRunner().invoke(calc_metrics.main, ['--network', tiny_snapshot, '--metrics', 'fid,nope'])
    assert result.exit_code != 0 and 'nope' in result.output
