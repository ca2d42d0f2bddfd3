"""Small utilities: attribute dicts, building objects by name, opening paths or URLs with a cache, checking a
CLI's output path, and a logger that tees stdout/stderr to a file."""

import hashlib
import importlib
import os
import re
import sys
import urllib.parse
import urllib.request

#----------------------------------------------------------------------------
# A dict whose keys are also attributes (EG3D/StyleGAN convention).

class EasyDict(dict):
    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value

    def __delattr__(self, name):
        del self[name]

# A copy with every dict (EasyDict included) as a plain dict and every tuple as a list: what JSON, YAML and
# snapshots store, and what two configs are compared as.
def to_plain(obj):
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj

#----------------------------------------------------------------------------
# Resolve a dotted name such as 'training.losses.eg3d.EG3DLoss' to the object it names.
# Only importable project or library objects can be named; nothing is evaluated.

def get_obj_by_name(name: str):
    if not isinstance(name, str) or not re.fullmatch(r'[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+', name):
        raise ValueError(f'not a dotted object name: {name!r}')
    module_name, _, attr = name.rpartition('.')
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f'cannot import module {module_name!r} for {name!r}: {e}') from e
    if not hasattr(module, attr):
        raise ValueError(f'module {module_name!r} has no attribute {attr!r}')
    return getattr(module, attr)

#----------------------------------------------------------------------------
# Build an object from a dotted class name and keyword arguments.

def construct_class_by_name(*args, class_name: str, **kwargs):
    cls = get_obj_by_name(class_name)
    if not callable(cls):
        raise ValueError(f'{class_name!r} is not callable')
    return cls(*args, **kwargs)

#----------------------------------------------------------------------------
# Cache directory for downloaded files: $HEAD3D_CACHE_DIR, else ~/.cache/head3d.

def default_cache_dir() -> str:
    if 'HEAD3D_CACHE_DIR' in os.environ:
        return os.environ['HEAD3D_CACHE_DIR']
    return os.path.join(os.path.expanduser('~'), '.cache', 'head3d')


class OfflineError(FileNotFoundError):
    """A file that must come from a URL is neither cached nor reachable."""

#----------------------------------------------------------------------------
# The cache path where the file behind `url` is (or would be) stored: <cache>/downloads/<md5(url)>_<basename>.

def url_cache_path(url: str, cache_dir: str | None = None) -> str:
    cache_dir = cache_dir or default_cache_dir()
    basename = os.path.basename(urllib.parse.urlparse(url).path) or 'file'
    digest = hashlib.md5(url.encode('utf-8')).hexdigest()
    return os.path.join(cache_dir, 'downloads', f'{digest}_{basename}')

#----------------------------------------------------------------------------
# Open a local path or a URL as a binary file object. URLs are looked up in the cache first; a download
# happens only when allow_download is True, and an offline failure names the URL and the cache path where the
# file can be placed by hand.

def open_url(url_or_path: str, cache_dir: str | None = None, allow_download: bool = False, timeout: float = 30.0):
    if not isinstance(url_or_path, str) or not url_or_path:
        raise ValueError(f'open_url: expected a path or URL, got {url_or_path!r}')
    scheme = urllib.parse.urlparse(url_or_path).scheme
    if scheme in ('', 'file') or re.match(r'^[A-Za-z]:[\\/]', url_or_path):
        path = urllib.parse.urlparse(url_or_path).path if scheme == 'file' else url_or_path
        if not os.path.isfile(path):
            raise FileNotFoundError(f'file not found: {path}')
        return open(path, 'rb')
    if scheme not in ('http', 'https'):
        raise ValueError(f'open_url: unsupported URL scheme {scheme!r} in {url_or_path!r}')
    cache_path = url_cache_path(url_or_path, cache_dir)
    if os.path.isfile(cache_path):
        return open(cache_path, 'rb')
    if not allow_download:
        raise OfflineError(f'{url_or_path} is not in the cache and downloads are off. '
                           f'Place the file at {cache_path} (or pass its local path instead of the URL).')
    os.makedirs(os.path.dirname(cache_path), exist_ok=True)
    tmp_path = cache_path + f'.tmp{os.getpid()}'
    try:
        with urllib.request.urlopen(url_or_path, timeout=timeout) as response, open(tmp_path, 'wb') as f:
            while chunk := response.read(1 << 20):
                f.write(chunk)
        os.replace(tmp_path, cache_path)
    except OSError as e:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise OfflineError(f'could not download {url_or_path} ({e}). '
                           f'Place the file at {cache_path} (or pass its local path instead of the URL).') from e
    return open(cache_path, 'rb')

#----------------------------------------------------------------------------
# Why `path` cannot be an output of a CLI, as a one-line message naming `flag` and the path, or None.
# kind='dir': a folder that exists or can be created; kind='file': a file that exists or can be created.
# Checked before any work, so that a wrong --outdir/--dest/--out never surfaces as a traceback at the end.

def output_path_problem(path, flag, kind='dir'):
    if not path:
        return f'{flag}: empty path'
    if kind == 'dir' and os.path.exists(path) and not os.path.isdir(path):
        return f'{flag} {path}: is an existing file, expected a folder'
    if kind == 'file' and os.path.isdir(path):
        return f'{flag} {path}: is an existing folder, expected a file'
    ancestor = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(ancestor):                     # the nearest part of the path that exists
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        return f'{flag} {path}: {ancestor} is a file, not a folder'
    target = path if os.path.exists(path) else ancestor
    if not os.access(target, os.W_OK):
        return f'{flag} {path}: no permission to write {target}'
    return None

# The same as a click error ("Error: ..." and exit status 1) for the CLIs.
def check_output_path(path, flag, kind='dir'):
    problem = output_path_problem(path, flag, kind)
    if problem is not None:
        import click
        raise click.ClickException(problem)

#----------------------------------------------------------------------------
# Tee stdout and stderr into a log file (appending), restoring both on close.

class Logger:
    def __init__(self, file_name: str | None = None, file_mode: str = 'a', should_flush: bool = True):
        self.file = open(file_name, file_mode, encoding='utf-8') if file_name else None
        self.should_flush = should_flush
        self.stdout = sys.stdout
        self.stderr = sys.stderr
        sys.stdout = self
        sys.stderr = self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def write(self, text):
        if isinstance(text, bytes):
            text = text.decode()
        if not text:
            return
        if self.file is not None:
            self.file.write(text)
        self.stdout.write(text)
        if self.should_flush:
            self.flush()

    def flush(self):
        if self.file is not None:
            self.file.flush()
        self.stdout.flush()

    def isatty(self):
        return False

    def close(self):
        self.flush()
        if sys.stdout is self:
            sys.stdout = self.stdout
        if sys.stderr is self:
            sys.stderr = self.stderr
        if self.file is not None:
            self.file.close()
            self.file = None
