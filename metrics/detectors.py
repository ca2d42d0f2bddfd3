"""Feature detectors for FID/KID-style metrics.

'inception' is the standard FID network: the TF-ported Inception-v3 that StyleGAN2-ADA/StyleGAN3/EG3D use, as a
TorchScript archive (`inception-2015-12-05.pkl` from the StyleGAN3/EG3D metrics folder, or the same network as
`inception-2015-12-05.pt` from stylegan2-ada-pytorch). Call convention: net(images uint8 [N,3,H,W],
return_features=True) -> [N,2048]; it resizes to 299 internally. It is loaded from a local path, from the cache
folder, or from a URL given explicitly by the user (through dnnlib's download cache); it is never fetched
implicitly. Loading uses torch.jit.load only: a file that is a Python pickle is refused, because unpickling runs
code from the file.

Two offline feature networks are built in, for tests and machines without the Inception file. Their results are
labelled by their own name (FD-pixels, KD-randconv, ...), never FID/KID:
  'pixels'   : the image area-downsampled to 16x16, in [-1,1] (768 features).
  'randconv' : globally pooled activations of a fixed random-weight 4-layer conv net at 64x64 (480 features).
"""

import hashlib
import io
import os
import zipfile

import numpy as np
import torch
import torch.nn.functional as F

INCEPTION_FILES = ('inception-2015-12-05.pkl', 'inception-2015-12-05.pt')
INCEPTION_URL = 'https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt'
BUILTIN_DETECTORS = ('pixels', 'randconv')
FILE_DETECTORS = ('inception',)

class DetectorError(RuntimeError):
    pass

#----------------------------------------------------------------------------
# Default cache folder for detector files and real-set statistics: $HEAD3D_CACHE_DIR or ~/.cache/head3d/metrics.

def default_cache_dir():
    env = os.environ.get('HEAD3D_CACHE_DIR')
    return env if env else os.path.join(os.path.expanduser('~'), '.cache', 'head3d', 'metrics')

# Folder inside the cache where detector files are looked up.
def detector_dir(cache_dir=None):
    return os.path.join(cache_dir or default_cache_dir(), 'detectors')

#----------------------------------------------------------------------------
# A loaded feature network: maps uint8 images [N,C,H,W] to float32 features [N,D] on the same device.
# `name` labels the metric, `digest` identifies the weights (it keys the real-set statistics cache).

class Detector:
    def __init__(self, name, fn, digest, source):
        self.name = name
        self.digest = digest
        self.source = source
        self._fn = fn

    # Features [N,D] float32 of uint8 images [N,C,H,W]; grey images are repeated to three channels.
    @torch.no_grad()
    def __call__(self, images):
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f'detector {self.name} expects a uint8 tensor [N, C, H, W], got '
                             f'{getattr(images, "dtype", type(images).__name__)} {list(getattr(images, "shape", []))}')
        if images.shape[1] == 1:
            images = images.repeat(1, 3, 1, 1)
        if images.shape[1] != 3:
            raise ValueError(f'detector {self.name} expects 1 or 3 channels, got {images.shape[1]}')
        features = self._fn(images)
        if not isinstance(features, torch.Tensor) or features.ndim != 2 or features.shape[0] != images.shape[0]:
            raise DetectorError(f'detector {self.name} ({self.source}) returned '
                                f'{list(getattr(features, "shape", []))}, expected [N, D] with N={images.shape[0]}')
        return features.float()

#----------------------------------------------------------------------------
# Built-in offline networks.

# 'pixels': area-downsampled image in [-1,1], flattened.
def _pixels_features(images):
    x = images.float() / 127.5 - 1
    return F.adaptive_avg_pool2d(x, 16).flatten(1)

# 'randconv': fixed random conv weights (He init from a seeded CPU generator, so identical on every machine),
# stride-2 3x3 convs with leaky ReLU; features are the spatial means of all four layers.
class _RandConv(torch.nn.Module):
    def __init__(self, channels=(32, 64, 128, 256), seed=0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.weights = torch.nn.ParameterList()
        cin = 3
        for cout in channels:
            w = torch.randn([cout, cin, 3, 3], generator=gen) * np.sqrt(2 / (cin * 9))
            self.weights.append(torch.nn.Parameter(w, requires_grad=False))
            cin = cout

    def forward(self, images):
        x = images.float() / 127.5 - 1
        x = F.interpolate(x, size=(64, 64), mode='bilinear', align_corners=False, antialias=True)
        pooled = []
        for w in self.weights:
            x = F.leaky_relu(F.conv2d(x, w, stride=2, padding=1), 0.2)
            pooled.append(x.mean(dim=(2, 3)))
        return torch.cat(pooled, dim=1)

# Build a built-in detector by name on `device`.
def _builtin_detector(name, device):
    if name == 'pixels':
        return Detector('pixels', _pixels_features, digest='pixels-v1-16x16', source='built-in')
    net = _RandConv().to(device).eval()
    return Detector('randconv', net, digest='randconv-v1-seed0', source='built-in')

#----------------------------------------------------------------------------
# TorchScript files.

# Read a file's bytes from a local path, or from a URL through dnnlib's download cache.
def _read_bytes(path_or_url, cache_dir):
    if '://' in path_or_url:
        from dnnlib import util  # only needed when the user asks for a download
        try:
            # The user named this URL, so downloading it (once, into the cache) is what was asked for.
            with util.open_url(path_or_url, cache_dir=os.path.join(cache_dir or default_cache_dir(), 'downloads'),
                               allow_download=True) as f:
                return f.read()
        except Exception as err:
            raise DetectorError(f'could not fetch {path_or_url}: {err}') from err
    if not os.path.isfile(path_or_url):
        raise DetectorError(f'file not found: {path_or_url}')
    with open(path_or_url, 'rb') as f:
        return f.read()

# Load a TorchScript module from raw bytes (never unpickling arbitrary Python objects).
def load_torchscript_bytes(data, source, device='cpu'):
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise DetectorError(f'{source} is not a TorchScript archive (a zip written by torch.jit.save). If it is a '
                            f'Python pickle, it is refused because loading a pickle executes code from the file; '
                            f'use the TorchScript version of the network (for Inception: {INCEPTION_FILES[1]} from '
                            f'{INCEPTION_URL}).')
    try:
        net = torch.jit.load(io.BytesIO(data), map_location=device)
    except Exception as err:
        raise DetectorError(f'{source} could not be loaded with torch.jit.load: {err}') from err
    return net.eval()

# Load a TorchScript module from a path or URL; returns (module, sha256 digest prefix).
def load_torchscript(path_or_url, device='cpu', cache_dir=None):
    data = _read_bytes(path_or_url, cache_dir)
    return load_torchscript_bytes(data, path_or_url, device), hashlib.sha256(data).hexdigest()[:16]

# Where the Inception file is looked for: the first existing of INCEPTION_FILES in the cache, else None.
def find_inception(cache_dir=None):
    for fname in INCEPTION_FILES:
        candidate = os.path.join(detector_dir(cache_dir), fname)
        if os.path.isfile(candidate):
            return candidate
    return None

#----------------------------------------------------------------------------
# Load a detector by name. `path` (a local file or an explicit URL) overrides where a file detector comes from;
# without it, 'inception' is looked up in <cache_dir>/detectors/. A missing file is an error naming the file and
# the folder to put it in.

def load_detector(name, path=None, cache_dir=None, device='cpu'):
    device = torch.device(device)
    if name in BUILTIN_DETECTORS:
        if path is not None:
            raise DetectorError(f'detector {name!r} is built in and takes no file (got {path})')
        return _builtin_detector(name, device)
    if name not in FILE_DETECTORS:
        raise DetectorError(f'unknown detector {name!r}; choose from {", ".join(FILE_DETECTORS + BUILTIN_DETECTORS)}')
    if path is None:
        path = find_inception(cache_dir)
        if path is None:
            where = detector_dir(cache_dir)
            raise DetectorError(
                f'Inception detector not found. Put {INCEPTION_FILES[0]} (TorchScript, StyleGAN3/EG3D metrics) or '
                f'{INCEPTION_FILES[1]} (the same network, {INCEPTION_URL}) at {os.path.join(where, INCEPTION_FILES[0])} '
                f'(folder {where}), or pass --detector PATH (or --detector URL to download it explicitly).')
    net, digest = load_torchscript(path, device=device, cache_dir=cache_dir)

    # The StyleGAN TorchScript detectors take uint8 images and a return_features flag.
    def features(images):
        return net(images.to(device), return_features=True)
    return Detector(name, features, digest=digest, source=str(path))

#----------------------------------------------------------------------------
