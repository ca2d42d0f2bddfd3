"""custom_ops: the CUDA kernels really compile (when nvcc is present), a failed build warns once and the
op falls back to its reference result, and a stale or long-held build lock is reported by name instead of
hanging. The compile test is the only slow test here (40 s for both ops on 2 cores, 2026-12-02)."""

import fcntl
import os
import shutil
import threading
import time
import warnings

import pytest
import torch

from torch_utils import custom_ops
from torch_utils.ops import bias_act, upfirdn2d

NVCC = shutil.which('nvcc') or (os.path.isfile('/usr/local/cuda/bin/nvcc') and '/usr/local/cuda/bin/nvcc')
needs_nvcc = pytest.mark.skipif(not NVCC, reason='nvcc not found (no CUDA toolkit on this machine)')

@pytest.mark.slow
@needs_nvcc
def test_cuda_kernels_compile(tmp_path, monkeypatch):
    # slow: builds both plugins from scratch into an empty cache, for sm_90 unless TORCH_CUDA_ARCH_LIST is set. The
    # two builds run side by side: each is one long nvcc compile, so one after the other leaves a core idle.
    from concurrent.futures import ThreadPoolExecutor
    monkeypatch.setenv('TORCH_EXTENSIONS_DIR', str(tmp_path))
    if os.environ.get('TORCH_CUDA_ARCH_LIST', '').strip() in ('', 'native'):
        monkeypatch.setenv('TORCH_CUDA_ARCH_LIST', '9.0')    # set once here: build_only would set it per call
    ops = ((bias_act, 'bias_act'), (upfirdn2d, 'upfirdn2d'))
    with ThreadPoolExecutor(len(ops)) as pool:
        modules = list(pool.map(lambda op: custom_ops.build_only(op[0].PLUGIN_SPEC), ops))
    for module, (_op, fn_name) in zip(modules, ops):
        assert callable(getattr(module, fn_name))
        assert str(tmp_path) in module.__file__

#----------------------------------------------------------------------------

@pytest.mark.parametrize('op', [bias_act, upfirdn2d])
def test_failed_build_warns_once_and_falls_back(op, tmp_path, monkeypatch):
    (tmp_path / 'broken.cpp').write_text('this is not C++ at all\n')
    spec = dict(module_name=f'head3d_broken_{op.__name__.split(".")[-1]}', sources=['broken.cpp'], source_dir=str(tmp_path))
    monkeypatch.setattr(op, 'PLUGIN_SPEC', spec)
    monkeypatch.setattr(op, '_plugin', None)
    monkeypatch.setattr(op, '_init_done', False)
    monkeypatch.setenv('TORCH_EXTENSIONS_DIR', str(tmp_path / 'cache'))
    monkeypatch.setenv('TORCH_CUDA_ARCH_LIST', '9.0')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert op._init() is False
        assert op._init() is False
    relevant = [w for w in caught if issubclass(w.category, RuntimeWarning) and 'reference' in str(w.message)]
    assert len(relevant) == 1
    if NVCC:
        assert 'Error building extension' in str(relevant[0].message)

    # the op still gives the reference result (on the GPU too, when there is one)
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    x = torch.randn(2, 3, 8, 8, device=device)
    if op is bias_act:
        torch.testing.assert_close(op.bias_act(x, act='lrelu'), op.bias_act(x, act='lrelu', impl='ref'))
    else:
        f = upfirdn2d.setup_filter([1, 3, 3, 1], device=device)
        torch.testing.assert_close(op.upsample2d(x, f), op.upsample2d(x, f, impl='ref'))

#----------------------------------------------------------------------------

def test_held_os_lock_is_reported_quickly(tmp_path, monkeypatch):
    # newer PyTorch: an flock held by another (e.g. hung) build
    monkeypatch.setattr(custom_ops, '_torch_uses_os_lock', lambda: True)
    lock = tmp_path / 'lock'
    lock.write_text('')
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        start = time.monotonic()
        with pytest.raises(custom_ops.BuildLockError, match=str(lock)):
            custom_ops.wait_for_build_lock(str(tmp_path), timeout=0.3, poll=0.05)
        assert time.monotonic() - start < 5
    finally:
        os.close(fd)
    custom_ops.wait_for_build_lock(str(tmp_path), timeout=0.3, poll=0.05)  # a leftover, unheld file is fine

def test_stale_file_lock_is_reported_at_once(tmp_path, monkeypatch):
    # older PyTorch (FileBaton): the file's existence blocks; an old one is stale
    monkeypatch.setattr(custom_ops, '_torch_uses_os_lock', lambda: False)
    monkeypatch.setenv(custom_ops.LOCK_TIMEOUT_ENV, '60')
    lock = tmp_path / 'lock'
    lock.write_text('')
    os.utime(lock, (time.time() - 3600, time.time() - 3600))
    start = time.monotonic()
    with pytest.raises(custom_ops.BuildLockError, match=f'stale build lock {lock}'):
        custom_ops.wait_for_build_lock(str(tmp_path))
    assert time.monotonic() - start < 1

    # a fresh lock that its builder removes soon is simply waited for
    os.utime(lock)
    threading.Timer(0.2, os.remove, [lock]).start()
    custom_ops.wait_for_build_lock(str(tmp_path), timeout=10, poll=0.05)
    assert not lock.exists()

def test_lock_timeout_env_is_validated(tmp_path, monkeypatch):
    monkeypatch.setenv(custom_ops.LOCK_TIMEOUT_ENV, 'soon')
    (tmp_path / 'lock').write_text('')
    with pytest.raises(ValueError, match=custom_ops.LOCK_TIMEOUT_ENV):
        custom_ops.wait_for_build_lock(str(tmp_path))

@needs_nvcc
def test_lock_error_reaches_the_fallback_warning(tmp_path, monkeypatch):
    # get_plugin checks the lock before building; the op reports it and falls back
    def locked(build_dir, timeout=None, poll=0.5):
        raise custom_ops.BuildLockError(f'stale build lock {os.path.join(build_dir, "lock")}')
    monkeypatch.setattr(custom_ops, 'wait_for_build_lock', locked)
    monkeypatch.setattr(bias_act, '_plugin', None)
    monkeypatch.setattr(bias_act, '_init_done', False)
    monkeypatch.setenv('TORCH_EXTENSIONS_DIR', str(tmp_path))
    monkeypatch.setenv('TORCH_CUDA_ARCH_LIST', '9.0')
    with pytest.warns(RuntimeWarning, match=f'stale build lock {tmp_path}.*lock'):
        assert bias_act._init() is False

def test_get_plugin_argument_errors(tmp_path):
    with pytest.raises(ValueError, match='module_name'):
        custom_ops.get_plugin('not-an-identifier', ['a.cpp'])
    with pytest.raises(ValueError, match='sources'):
        custom_ops.get_plugin('name', 'a.cpp')
    with pytest.raises(FileNotFoundError, match='missing.cu'):
        custom_ops.get_plugin('name', ['missing.cu'], source_dir=str(tmp_path))
