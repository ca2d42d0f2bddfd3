"""The benchmark and profiling scripts run and report what they say (tiny sizes, CPU). They are run as programs
from a folder outside the repository, as a user would: their imports come from the installed package and from
their neighbours in scripts/."""

import json

from _scripts import run_program

def test_bench_writes_rows_and_json(tmp_path):
    out = tmp_path / 'bench.json'
    res = run_program('scripts/bench.py', ['--only', 'g_tiny', '--repeat', '1', '--json', out], cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    result = json.loads(out.read_text())
    (row,) = result['rows']
    assert row['name'] == 'g_tiny' and row['ms'] > 0 and row['unit'] == 'img/s'
    assert 'g_tiny' in res.stdout

def test_bench_rejects_unknown_rows(tmp_path):
    res = run_program('scripts/bench.py', ['--only', 'g_tiny,nope'], cwd=tmp_path)
    assert res.returncode != 0 and 'nope' in res.stderr

def test_profile_step_prints_the_renderer_ops(tmp_path):
    args = ['--preset', 'tiny', '--batch', '2', '--nrr', '16', '--steps', '1', '--rows', '50']
    res = run_program('scripts/profile_step.py', args, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert 'tiny 64^2, nr 16, batch 2, main phases' in res.stdout
    assert 'aten::grid_sampler_2d' in res.stdout       # the tri-plane sampling shows up in the table
