"""The repository is an installed package (`pip install -e .`, run by `make venv`): its four packages import from any
folder, the CUDA op sources sit beside the installed ops, and no program or test edits sys.path to find them."""

import glob
import os
import re
import subprocess
import sys

from _scripts import ROOT

def test_packages_import_from_another_folder(tmp_path):
    # -P: Python does not put the current folder first on sys.path, so only the installed package can answer
    code = ('import os\n'
            'import dnnlib, metrics, torch_utils, training, training.mesh\n'
            'from torch_utils.ops import bias_act, upfirdn2d\n'
            'for spec in (bias_act.PLUGIN_SPEC, upfirdn2d.PLUGIN_SPEC):\n'
            '    for name in spec["sources"] + spec["headers"]:\n'
            '        assert os.path.isfile(os.path.join(spec["source_dir"], name)), name\n'
            'print("ok")\n')
    res = subprocess.run([sys.executable, '-P', '-c', code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == 'ok', \
        f'the package is not installed in this environment (make venv, or pip install -e .):\n{res.stderr}'

def test_no_file_edits_sys_path():
    pattern = re.compile(r'sys\.path\.(insert|append|extend)|sys\.path\s*[+]?=|syspath_prepend|PYTHONPATH')
    allowed = {'scripts/gpu_session.sh', 'scripts/gpu_check.sh'}     # a lent GPU machine has no install step
    files = [os.path.join(ROOT, 'train.py'), os.path.join(ROOT, 'gen_samples.py'), os.path.join(ROOT, 'pyproject.toml')]
    for folder in ('scripts', 'tests', 'training', 'metrics', 'torch_utils', 'dnnlib'):
        files += glob.glob(os.path.join(ROOT, folder, '**', '*.py'), recursive=True)
        files += glob.glob(os.path.join(ROOT, folder, '**', '*.sh'), recursive=True)
    offenders = []
    for path in files:
        rel = os.path.relpath(path, ROOT)
        if rel in allowed or rel == os.path.join('tests', 'test_install.py'):
            continue
        with open(path) as f:
            offenders += [f'{rel}:{i}' for i, line in enumerate(f, 1) if pattern.search(line)]
    assert not offenders, f'sys.path edits: {offenders}'
    assert 'pythonpath' not in open(os.path.join(ROOT, 'pyproject.toml')).read()
