"""Feature extraction for the distribution metrics: real images from a dataset split (cached on disk) and
generated images from a generator with the split's cameras.

The real-set cache is a .npz (numpy arrays only, loaded with allow_pickle=False) in <cache_dir>/stats/, keyed by
a hash of the dataset (its file list with sizes, and the dataset.json bytes), the detector (name and file hash)
and the options (split, number of images, resolution).
"""

import hashlib
import json
import os
import zipfile

import numpy as np
import torch
import torch.nn.functional as F

from metrics import splits
from metrics.detectors import default_cache_dir
from training import generate
from training.dataset import LABEL_FILE

CACHE_VERSION = 1

# Generated images use the renderer's deterministic mode, so that a metric repeats exactly for a seed.
RENDER_OVERRIDES = dict(deterministic=True)

#----------------------------------------------------------------------------
# Hash of a dataset folder or zip: sorted (relative path, size) of every file plus the dataset.json content.
# Changing, adding or removing a file changes it (a same-size edit of an image does not: sizes, not contents).

def dataset_fingerprint(path):
    h = hashlib.sha256()
    label_bytes = b''
    if os.path.isdir(path):
        entries = []
        for root, _dirs, files in os.walk(path):
            for f in files:
                full = os.path.join(root, f)
                rel = os.path.relpath(full, path).replace(os.sep, '/')
                entries.append((rel, os.path.getsize(full)))
        label_path = os.path.join(path, LABEL_FILE)
        if os.path.isfile(label_path):
            with open(label_path, 'rb') as f:
                label_bytes = f.read()
    elif os.path.isfile(path) and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            entries = [(i.filename, i.file_size) for i in z.infolist() if not i.is_dir()]
            if LABEL_FILE in z.namelist():
                label_bytes = z.read(LABEL_FILE)
    else:
        raise FileNotFoundError(f'dataset {path!r} is neither a folder nor a zip file')
    for rel, size in sorted(entries):
        h.update(f'{rel}\0{size}\n'.encode())
    h.update(label_bytes)
    return h.hexdigest()

#----------------------------------------------------------------------------
# Float images [-1,1] [N,3,H,W] -> uint8 [N,3,res,res], resized (antialiased bilinear) when the size differs.

def to_uint8_images(images, resolution=None):
    images = images.float()
    if resolution is not None and images.shape[-1] != resolution:
        images = F.interpolate(images, size=(resolution, resolution), mode='bilinear', align_corners=False,
                               antialias=True)
    return (images * 127.5 + 128).clamp(0, 255).to(torch.uint8)

#----------------------------------------------------------------------------
# Path of the cached real-set features for a dataset, detector and options.

def real_cache_path(dataset, detector, split, max_real, cache_dir=None):
    key = dict(version=CACHE_VERSION, dataset=dataset_fingerprint(dataset.path), detector=detector.name,
               detector_digest=detector.digest, split=split, max_real=max_real, resolution=int(dataset.resolution))
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return os.path.join(cache_dir or default_cache_dir(), 'stats', f'{dataset.name}-{detector.name}-{split}-{digest}.npz')

# Dataset indices of the split, at most max_real of them (a seeded subset, kept in dataset order).
def real_indices(dataset, split, max_real=None):
    idx = splits.split_indices(dataset.labels, split, what=f'dataset {dataset.path}')
    if max_real is not None and idx.size > max_real:
        idx = np.sort(np.random.default_rng(0).permutation(idx)[:int(max_real)])
    return idx

#----------------------------------------------------------------------------
# CPU cores this process may run on (its affinity mask where the OS has one): more loader workers than that only
# compete for the same cores, and torch warns about it.

def usable_cpus():
    if hasattr(os, 'sched_getaffinity'):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)

#----------------------------------------------------------------------------
# Features [N,D] float32 of the real images of a split; computed once, then read from the cache.
# Returns (features, info) with info = dict(cache_path, cache_hit, num).

def real_features(dataset, detector, split, max_real=None, batch=64, workers=0, cache_dir=None, device='cpu',
                  progress=None):
    path = real_cache_path(dataset, detector, split, max_real, cache_dir)
    if os.path.isfile(path):
        with np.load(path, allow_pickle=False) as data:
            features = data['features']
        return features, dict(cache_path=path, cache_hit=True, num=int(features.shape[0]))

    idx = real_indices(dataset, split, max_real)
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, idx.tolist()), batch_size=batch,
                                         shuffle=False, num_workers=min(int(workers), usable_cpus()))
    chunks = []
    for images, _labels in loader:
        chunks.append(detector(images.to(device)).cpu().numpy())
        if progress is not None:
            progress.update(images.shape[0])
    features = np.concatenate(chunks).astype(np.float32)

    # Atomic write: a killed run never leaves a truncated cache file behind.
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'wb') as f:
        np.savez(f, features=features, indices=idx)
    os.replace(tmp, path)
    return features, dict(cache_path=path, cache_hit=False, num=int(features.shape[0]))

#----------------------------------------------------------------------------
# Conditioning labels for G: the labels themselves, or [N,0] for an unconditional generator.

def cond_for(G, c):
    return c if getattr(G, 'c_dim', c.shape[1]) != 0 else c.new_zeros([c.shape[0], 0])

# Latents z [N, z_dim] from a seeded torch generator (one stream per run, so results repeat).
def draw_z(G, num, seed, device='cpu'):
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randn([int(num), G.z_dim], generator=gen).to(device)

#----------------------------------------------------------------------------
# Features [num,D] of generated images. Cameras come from the dataset labels of the split
# (splits.generator_cameras); images are resized to `resolution` before the detector.

@torch.no_grad()
def generated_features(G, detector, labels, split, num, resolution, batch=16, seed=0, truncation_psi=1.0,
                       back_conditioning='frontal', device='cpu', progress=None):
    rng = np.random.default_rng(seed)
    c_cond, c_render = splits.generator_cameras(labels, split, num, rng, back_conditioning=back_conditioning,
                                               orbit=generate.camera_orbit(G))
    z = draw_z(G, num, seed, device=device)
    chunks = []
    for start in range(0, int(num), batch):
        cc = torch.from_numpy(c_cond[start:start + batch]).to(device)
        cr = torch.from_numpy(c_render[start:start + batch]).to(device)
        out = G(z[start:start + batch], cond_for(G, cc), c_render=cr, truncation_psi=truncation_psi,
                noise_mode='const', render_overrides=RENDER_OVERRIDES)
        images = to_uint8_images(out['image'], resolution)
        chunks.append(detector(images).cpu().numpy())
        if progress is not None:
            progress.update(images.shape[0])
    return np.concatenate(chunks).astype(np.float32)

#----------------------------------------------------------------------------
