"""The repository's command-line programs (train.py, gen_samples.py, scripts/*.py) seen from the tests. They are
programs, not modules of the installed package: a test either loads one from its file as a module (its click
command and functions) or runs it as a program."""

import importlib.util
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The program at `path` (relative to the repository root, e.g. 'train.py', 'scripts/dataset_tool.py') as a module
# named after its file, loaded once per test session.
def load_program(path):
    name = os.path.splitext(os.path.basename(path))[0]
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, path))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]

# Run the program at `path` with this interpreter from the folder cwd; returns the CompletedProcess (text output).
def run_program(path, args, cwd, timeout=300):
    cmd = [sys.executable, os.path.join(ROOT, path)] + [str(a) for a in args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
