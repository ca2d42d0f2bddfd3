"""Every CLI answers an output path that cannot be one (an existing file for a folder, a folder for a file, a
file in the middle of the path) with a one-line `Error:` naming it, before doing any work."""

import os
import sys

import pytest
from click.testing import CliRunner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'scripts'))

from dnnlib.util import output_path_problem  # noqa: E402

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

# (module, command object name, arguments before the output option, output option, kind)
CLIS = [
    ('train', 'main', ['--config', 'face_tiny'], '--outdir', 'dir'),
    ('gen_samples', 'cli', ['images', '--network', 'nope.pt', '--seeds', '0'], '--outdir', 'dir'),
    ('calc_metrics', 'main', ['--network', 'nope.pt', '--metrics', 'fd_pixels'], '--out', 'file'),
    ('dataset_tool', 'main', ['--source', ROOT, '--resolution', '8'], '--dest', 'dir'),
    ('make_synthetic', 'main', [], '--outdir', 'dir'),
    ('plane_swap', 'main', ['--network', 'nope.pt', '--seeds', '0,1'], '--outdir', 'dir'),
    ('demo', 'main', [], '--outdir', 'dir'),
    ('reproduce_table4', 'main', [], '--outdir', 'dir'),
    ('import_eg3d', 'main', ['--src', os.path.join(ROOT, 'README.md')], '--dst', 'file'),
    ('bench', 'main', ['--only', 'nothing'], '--json', 'file'),
    ('profile_step', 'main', [], '--trace', 'file'),
]

@pytest.mark.parametrize('module, command, args, option, kind', CLIS, ids=[c[0] for c in CLIS])
def test_cli_bad_output_path(tmp_path, module, command, args, option, kind):
    cli = getattr(__import__(module), command)
    (tmp_path / 'file').write_text('keep me')
    (tmp_path / 'dir').mkdir()
    bad = [tmp_path / ('file' if kind == 'dir' else 'dir'), tmp_path / 'file' / 'below']
    for path in bad:
        res = CliRunner().invoke(cli, args + [option, str(path)])
        assert res.exit_code in (1, 2) and 'Traceback' not in res.output, res.output
        errors = [line for line in res.output.splitlines() if line.startswith('Error')]
        assert len(errors) == 1 and str(path) in errors[0], res.output
    assert (tmp_path / 'file').read_text() == 'keep me' and os.listdir(tmp_path / 'dir') == []
