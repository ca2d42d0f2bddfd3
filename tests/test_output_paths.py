"""Every CLI answers an output path that cannot be one (an existing file for a folder, a folder for a file, a
file in the middle of the path) with a one-line `Error:` naming it, before doing any work."""

import os

import pytest
from _scripts import ROOT, load_program, run_program
from click.testing import CliRunner

from dnnlib.util import output_path_problem

#----------------------------------------------------------------------------

def test_output_path_problem(tmp_path):
    (tmp_path / 'file').write_text('x')
    (tmp_path / 'dir').mkdir()
    assert output_path_problem(str(tmp_path / 'new' / 'deeper'), '--outdir') is None
    assert output_path_problem(str(tmp_path / 'dir'), '--outdir') is None
    assert output_path_problem(str(tmp_path / 'dir' / 'a.jsonl'), '--out', kind='file') is None
    assert 'is an existing file, expected a folder' in output_path_problem(str(tmp_path / 'file'), '--outdir')
    assert 'is an existing folder, expected a file' in output_path_problem(str(tmp_path / 'dir'), '--out', kind='file')
    msg = output_path_problem(str(tmp_path / 'file' / 'sub' / 'x'), '--outdir')
    assert msg.startswith('--outdir ') and f'{tmp_path / "file"} is a file, not a folder' in msg

# (program, command object name, arguments before the output option, output option, kind). Programs are loaded
# from their files; command None = run as a program (bench and profile_step import their scripts/ neighbours).
CLIS = [
    ('train.py', 'main', ['--config', 'face_tiny'], '--outdir', 'dir'),
    ('gen_samples.py', 'cli', ['images', '--network', 'nope.pt', '--seeds', '0'], '--outdir', 'dir'),
    ('invert.py', 'main', ['--network', 'nope.pt', '--target', 'nope.png'], '--outdir', 'dir'),
    ('scripts/calc_metrics.py', 'main', ['--network', 'nope.pt', '--metrics', 'fd_pixels'], '--out', 'file'),
    ('scripts/dataset_tool.py', 'main', ['--source', ROOT, '--resolution', '8'], '--dest', 'dir'),
    ('scripts/make_synthetic.py', 'main', [], '--outdir', 'dir'),
    ('scripts/plane_swap.py', 'main', ['--network', 'nope.pt', '--seeds', '0,1'], '--outdir', 'dir'),
    ('scripts/diagnose_backs.py', 'main', ['--teacher', 'nope.pt', '--head-ft', 'nope.pt', '--head3d', 'nope.pt',
                                           '--heads', 'nope.zip'], '--outdir', 'dir'),
    ('scripts/blind_backs.py', 'main', ['grid', '--teacher', 'nope.pt', '--networks', 'a=nope.pt,b=nope.pt'], '--outdir',
     'dir'),
    ('scripts/backview_controls.py', 'main', ['--heads', 'nope.zip'], '--outdir', 'dir'),
    ('scripts/demo.py', 'main', [], '--outdir', 'dir'),
    ('scripts/reproduce_table4.py', 'main', [], '--outdir', 'dir'),
    ('scripts/import_eg3d.py', 'main', ['--src', os.path.join(ROOT, 'README.md')], '--dst', 'file'),
    ('scripts/bench.py', None, ['--only', 'nothing'], '--json', 'file'),
    ('scripts/profile_step.py', None, [], '--trace', 'file'),
]

def invoke(program, command, args, cwd):
    if command is None:
        res = run_program(program, args, cwd=cwd)
        return res.returncode, res.stdout + res.stderr
    res = CliRunner().invoke(getattr(load_program(program), command), args)
    return res.exit_code, res.output

@pytest.mark.parametrize('program, command, args, option, kind', CLIS, ids=[os.path.basename(c[0]) for c in CLIS])
def test_cli_bad_output_path(tmp_path, program, command, args, option, kind):
    (tmp_path / 'file').write_text('keep me')
    (tmp_path / 'dir').mkdir()
    bad = [tmp_path / ('file' if kind == 'dir' else 'dir'), tmp_path / 'file' / 'below']
    for path in bad:
        code, output = invoke(program, command, args + [option, str(path)], cwd=tmp_path)
        assert code in (1, 2) and 'Traceback' not in output, output
        errors = [line for line in output.splitlines() if line.startswith('Error')]
        assert len(errors) == 1 and str(path) in errors[0], output
    assert (tmp_path / 'file').read_text() == 'keep me' and os.listdir(tmp_path / 'dir') == []
