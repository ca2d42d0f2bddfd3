"""Tiny EG3D-format data sets for the training tests: random smooth images with valid camera labels.
Fast to build (no rendering); the synthetic world (training/synthetic.py) is what the demo trains on."""

import io
import json
import math
import zipfile

import numpy as np
from PIL import Image

from training import cameras

#----------------------------------------------------------------------------
# Write a zip of `num` RGB images (resolution^2) with labels at yaws drawn in +-max_yaw_deg (pitch +-10 deg).

def write_set(path, num=16, resolution=64, max_yaw_deg=20.0, seed=0):
    rng = np.random.default_rng(seed)
    yaw = np.radians(rng.uniform(-max_yaw_deg, max_yaw_deg, num)).astype(np.float32)
    pitch = np.radians(rng.uniform(-10, 10, num)).astype(np.float32)
    import torch
    labels = cameras.make_label(torch.from_numpy(yaw), torch.from_numpy(pitch)).numpy()
    yy, xx = np.mgrid[0:resolution, 0:resolution] / resolution
    entries = []
    with zipfile.ZipFile(path, 'w', compression=zipfile.ZIP_STORED) as zf:
        for i in range(num):
            f = rng.uniform(1, 4, 3)
            ph = rng.uniform(0, 2 * math.pi, 3)
            img = np.stack([np.sin(2 * math.pi * f[k] * (xx + yy * k / 2) + ph[k]) for k in range(3)], -1)
            img = ((img * 0.5 + 0.5) * 255).round().astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format='png')
            name = f'{i:05d}.png'
            zf.writestr(name, buf.getvalue())
            entries.append([name, labels[i].tolist()])
        zf.writestr('dataset.json', json.dumps({'labels': entries}))
    return path

#----------------------------------------------------------------------------
# --set overrides that shrink the tiny preset to 32^2 images, 16^2 neural rendering and a few channels,
# so that a training step takes a fraction of a second on CPU.

SMALL = [
    'nets.G.kwargs.img_resolution=32', 'nets.G.kwargs.plane_resolution=16', 'nets.G.kwargs.channel_base=256',
    'nets.G.kwargs.channel_max=16', 'nets.G.kwargs.z_dim=16', 'nets.G.kwargs.w_dim=16',
    'nets.G.kwargs.sr_input_resolution=16', 'nets.G.kwargs.sr_channels=[16, 16]',
    'nets.G.kwargs.rendering_kwargs.depth_resolution=6', 'nets.G.kwargs.rendering_kwargs.depth_resolution_importance=6',
    'nets.D.kwargs.img_resolution=32', 'nets.D.kwargs.channel_base=256', 'nets.D.kwargs.channel_max=16',
    'loss.nr_initial=16', 'loss.density_reg_points=32', 'grid_size=[1, 1]', 'workers=0', 'progress=false',
    'num_threads=1', 'tick_kimg=0.004',
]

def small_args(overrides=()):
    return [a for o in list(SMALL) + list(overrides) for a in ('--set', o)]
