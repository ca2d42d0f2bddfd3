"""The benchmark and profiling scripts run and report what they say (tiny sizes, CPU)."""

import json

from click.testing import CliRunner

from scripts.bench import main as bench_main
from scripts.profile_step import main as profile_main

def test_bench_writes_rows_and_json(tmp_path):
    out = tmp_path / 'bench.json'
    res = CliRunner().invoke(bench_main, ['--only', 'g_tiny', '--repeat', '1', '--json', str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    (row,) = result['rows']
    assert row['name'] == 'g_tiny' and row['ms'] > 0 and row['unit'] == 'img/s'
    assert 'g_tiny' in res.output

def test_bench_rejects_unknown_rows():
    res = CliRunner().invoke(bench_main, ['--only', 'g_tiny,nope'])
    assert res.exit_code != 0 and 'nope' in res.output

def test_profile_step_prints_the_renderer_ops():
    res = CliRunner().invoke(profile_main, ['--preset', 'tiny', '--batch', '2', '--nrr', '16', '--steps', '1', '--rows', '50'],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert 'tiny 64^2, nr 16, batch 2, main phases' in res.output
    assert 'aten::grid_sampler_2d' in res.output       # the tri-plane sampling shows up in the table
