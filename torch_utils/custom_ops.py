"""JIT build of the CUDA ops in torch_utils/ops with `torch.utils.cpp_extension.load` + ninja.

Builds go to `<root>/head3d/<module_name>/<md5>/`, where root is $TORCH_EXTENSIONS_DIR or PyTorch's default
build root, and the md5 covers the sources, headers, GPU architectures, build flags and the torch/CUDA/Python
versions, so a change in any of them gives a fresh build and old builds are reused as they are.
`get_plugin()` raises on failure; the ops catch that, warn once and fall back to their reference code.

Environment:
    HEAD3D_OPS_IMPL=ref               force the reference implementation of every op (no build at all)
    HEAD3D_BUILD_LOCK_TIMEOUT=600     seconds to wait for another process's build before giving up
    TORCH_EXTENSIONS_DIR              build cache root (as in PyTorch)
    TORCH_CUDA_ARCH_LIST              GPU architectures to build for (default: those of the visible GPUs)
"""

import glob
import hashlib
import os
import shutil
import sys
import tempfile
import time
import uuid
import warnings

import torch

OPS_IMPL_ENV = 'HEAD3D_OPS_IMPL'
LOCK_TIMEOUT_ENV = 'HEAD3D_BUILD_LOCK_TIMEOUT'
DEFAULT_LOCK_TIMEOUT = 600.0

class BuildLockError(RuntimeError):
    """A build directory is locked by a build that is stale or takes longer than the timeout."""

#----------------------------------------------------------------------------
# True when an op should take its CUDA path for tensor x: impl='cuda', x on a CUDA device and
# the reference path not forced by HEAD3D_OPS_IMPL=ref.

def wants_cuda(x, impl, op_name='op'):
    if impl not in ('cuda', 'ref'):
        raise ValueError(f"{op_name}: impl must be 'cuda' or 'ref', got {impl!r}")
    forced = os.environ.get(OPS_IMPL_ENV, '')
    if forced not in ('', 'cuda', 'ref'):
        raise ValueError(f"environment variable {OPS_IMPL_ENV} must be 'ref', 'cuda' or empty, got {forced!r}")
    return impl == 'cuda' and forced != 'ref' and x.device.type == 'cuda'

#----------------------------------------------------------------------------
# Point PyTorch at the real CUDA toolkit. A wrapper nvcc in /usr/local/bin makes torch guess
# CUDA_HOME=/usr/local, where libcudart is missing and linking fails.

def _setup_cuda_home():
    if os.environ.get('CUDA_HOME') or os.environ.get('CUDA_PATH'):
        return
    if os.path.isfile('/usr/local/cuda/bin/nvcc'):
        os.environ['CUDA_HOME'] = '/usr/local/cuda'

# Header folders of the pip-installed CUDA libraries (site-packages/nvidia/*/include). They are added
# only when the toolkit lacks the cuBLAS/cuSPARSE headers that ATen's CUDA headers include.
def _nvidia_include_dirs(cuda_home):
    toolkit_include = os.path.join(cuda_home or '', 'include')
    if all(os.path.isfile(os.path.join(toolkit_include, h)) for h in ('cublas_v2.h', 'cusparse.h')):
        return []
    dirs = []
    for base in sys.path:
        for d in sorted(glob.glob(os.path.join(base, 'nvidia', '*', 'include'))):
            if os.path.isdir(d) and d not in dirs:
                dirs.append(d)
    return dirs

# The GPU architectures the build targets: TORCH_CUDA_ARCH_LIST, else those of the visible GPUs.
def _arch_list():
    archs = os.environ.get('TORCH_CUDA_ARCH_LIST', '').strip()
    if archs and archs != 'native':
        return archs
    caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
    if not caps:
        raise RuntimeError('no CUDA device is visible and TORCH_CUDA_ARCH_LIST is not set; set it (e.g. "9.0") '
                           'to build the CUDA ops without a GPU (see build_only())')
    return ';'.join(f'{major}.{minor}' for major, minor in caps)

# Seconds to wait on another build's lock (env HEAD3D_BUILD_LOCK_TIMEOUT).
def _lock_timeout():
    value = os.environ.get(LOCK_TIMEOUT_ENV, '')
    try:
        timeout = float(value) if value else DEFAULT_LOCK_TIMEOUT
    except ValueError:
        raise ValueError(f'environment variable {LOCK_TIMEOUT_ENV} must be a number of seconds, got {value!r}') from None
    if timeout < 0:
        raise ValueError(f'environment variable {LOCK_TIMEOUT_ENV} must be >= 0, got {value!r}')
    return timeout

#----------------------------------------------------------------------------
# Build locks. Older PyTorch guards a build directory with a FileBaton: the mere existence of the file
# `lock` blocks every later build, forever if the builder died. Newer PyTorch takes an OS lock (flock) on
# the same file, which dies with its holder, so only a held lock blocks there.

def _torch_uses_os_lock():
    from torch.utils import cpp_extension
    return hasattr(cpp_extension, 'FileLock')

# True if some open file description holds an flock on path.
def _os_lock_held(path):
    import fcntl
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock we just took
    return False

def wait_for_build_lock(build_dir, timeout=None, poll=0.5):
    """Wait until no other process holds the build lock of build_dir. Raises BuildLockError, naming the
    lock file, if the lock is stale (a FileBaton older than `timeout`) or still held after `timeout` s."""
    timeout = _lock_timeout() if timeout is None else float(timeout)
    path = os.path.join(build_dir, 'lock')
    os_lock = _torch_uses_os_lock()
    start = time.monotonic()
    while os.path.exists(path):
        if os_lock:
            if not _os_lock_held(path):
                return
            waited = time.monotonic() - start
            if waited >= timeout:
                raise BuildLockError(f'build lock {path} has been held by another process for {waited:.0f} s '
                                     f'(timeout {timeout:.0f} s, env {LOCK_TIMEOUT_ENV}). If no build is running, '
                                     f'delete {path} and retry.')
        else:
            try:
                age = time.time() - os.path.getmtime(path)
            except FileNotFoundError:
                return
            if age >= timeout:
                raise BuildLockError(f'stale build lock {path} ({age:.0f} s old, timeout {timeout:.0f} s, env '
                                     f'{LOCK_TIMEOUT_ENV}): an earlier build was probably interrupted. '
                                     f'Delete {path} and retry.')
        time.sleep(poll)

#----------------------------------------------------------------------------
# Copy the sources into build_dir once, atomically, so that concurrent builders never see a half-copied set.

def _populate_build_dir(build_dir, files):
    if os.path.isdir(build_dir):
        return
    os.makedirs(os.path.dirname(build_dir), exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=f'.tmp-{uuid.uuid4().hex}-', dir=os.path.dirname(build_dir))
    for src in files:
        shutil.copyfile(src, os.path.join(tmp_dir, os.path.basename(src)))
    try:
        os.replace(tmp_dir, build_dir)
    except OSError:  # another process won the race: use its copy
        shutil.rmtree(tmp_dir, ignore_errors=True)
        if not os.path.isdir(build_dir):
            raise

#----------------------------------------------------------------------------

def get_plugin(module_name, sources, headers=None, source_dir=None, **build_kwargs):
    r"""Build (or reuse) and load a C++/CUDA extension; returns the loaded module.

    Args:
        module_name:  Extension module name (unique per op).
        sources:      .cpp/.cu files, relative to `source_dir` if given.
        headers:      Headers the sources include (copied next to them and hashed).
        source_dir:   Folder holding sources and headers.
        build_kwargs: Passed on to `torch.utils.cpp_extension.load` (e.g. extra_cflags, verbose).

    Raises:
        BuildLockError if another build holds the cache folder past the timeout, RuntimeError (or the
        compiler's error) if the build fails.
    """
    if not isinstance(module_name, str) or not module_name.isidentifier():
        raise ValueError(f'get_plugin: module_name must be a valid identifier, got {module_name!r}')
    if isinstance(sources, str) or not sources:
        raise ValueError(f'get_plugin: sources must be a non-empty list of file names, got {sources!r}')
    files = [os.path.join(source_dir, f) if source_dir else f for f in list(sources) + list(headers or [])]
    for path in files:
        if not os.path.isfile(path):
            raise FileNotFoundError(f'get_plugin: source file {path} does not exist')
    if len({os.path.basename(f) for f in files}) != len(files):
        raise ValueError(f'get_plugin: source and header file names must be unique, got {files}')

    _setup_cuda_home()
    from torch.utils import cpp_extension
    if os.environ.get('CUDA_HOME') and cpp_extension.CUDA_HOME != os.environ['CUDA_HOME']:
        cpp_extension.CUDA_HOME = os.environ['CUDA_HOME']  # it was guessed at import, before we set it
    cuda_home = cpp_extension.CUDA_HOME
    if cuda_home is None or not os.path.isfile(os.path.join(cuda_home, 'bin', 'nvcc')):
        raise RuntimeError(f'no CUDA toolkit found (CUDA_HOME={cuda_home!r}); install nvcc or set CUDA_HOME')
    archs = _arch_list()

    # build options; --use_fast_math as StyleGAN's kernels expect
    kwargs = dict(build_kwargs)
    kwargs['extra_cuda_cflags'] = ['--use_fast_math'] + list(kwargs.get('extra_cuda_cflags') or [])
    kwargs['extra_include_paths'] = list(kwargs.get('extra_include_paths') or []) + _nvidia_include_dirs(cuda_home)
    kwargs.setdefault('verbose', False)

    # cache key: everything that changes the binary
    md5 = hashlib.md5()
    for path in files:
        md5.update(os.path.basename(path).encode() + b'\0')
        with open(path, 'rb') as fh:
            md5.update(fh.read() + b'\0')
    md5.update(repr((archs, torch.__version__, torch.version.cuda, sys.version_info[:2],
                     sorted((k, repr(v)) for k, v in kwargs.items() if k != 'verbose'))).encode())
    root = os.environ.get('TORCH_EXTENSIONS_DIR') or cpp_extension.get_default_build_root()
    build_dir = os.path.join(root, 'head3d', module_name, md5.hexdigest())

    _populate_build_dir(build_dir, files)
    wait_for_build_lock(build_dir)
    cuda_sources = [os.path.join(build_dir, os.path.basename(f)) for f in sources]
    old_archs = os.environ.get('TORCH_CUDA_ARCH_LIST')
    os.environ['TORCH_CUDA_ARCH_LIST'] = archs
    try:
        # on torch >= 2.10 the returned module must be used directly (the build dir is not on sys.path)
        return cpp_extension.load(name=module_name, sources=cuda_sources, build_directory=build_dir, **kwargs)
    finally:
        if old_archs is None:
            del os.environ['TORCH_CUDA_ARCH_LIST']
        else:
            os.environ['TORCH_CUDA_ARCH_LIST'] = old_archs

#----------------------------------------------------------------------------
# The plugin of an op, or None after a RuntimeWarning when it cannot be built or loaded (no nvcc, a compiler
# error, a held build lock): the op then uses its reference implementation. Ops call this once per process.

def load_plugin_or_warn(op_name, plugin_spec):
    try:
        return get_plugin(**plugin_spec)
    except Exception as e:  # any build/load problem means: use the reference path
        warnings.warn(f'{op_name}: could not build the CUDA kernel, using the slow reference '
                      f'implementation instead. Reason:\n{e}', RuntimeWarning, stacklevel=4)
        return None

#----------------------------------------------------------------------------

def build_only(plugin_spec, arch='9.0'):
    r"""Compile a plugin without needing a GPU (e.g. in CI): like `get_plugin(**plugin_spec)`, but builds
    for `arch` when TORCH_CUDA_ARCH_LIST is unset. Returns the loaded module, whose functions need a GPU."""
    if os.environ.get('TORCH_CUDA_ARCH_LIST', '').strip() not in ('', 'native'):
        return get_plugin(**plugin_spec)
    old = os.environ.get('TORCH_CUDA_ARCH_LIST')
    os.environ['TORCH_CUDA_ARCH_LIST'] = arch
    try:
        return get_plugin(**plugin_spec)
    finally:
        if old is None:
            del os.environ['TORCH_CUDA_ARCH_LIST']
        else:
            os.environ['TORCH_CUDA_ARCH_LIST'] = old
