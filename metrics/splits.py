"""View splits for FID/KID (paper tables 2-3; PanoHead's protocol).

  all   : every view.
  front : |yaw| <  90 degrees.
  back  : |yaw| >= 90 degrees.

Real images are the dataset images whose label falls in the split. Generated images are rendered from cameras
drawn uniformly (with replacement) from the split's dataset labels. The conditioning pose given to the mapping
network equals the render camera for 'all' and 'front'. For 'back' it is a frontal pose (PanoHead's back-view
protocol: a face generator conditioned on a back pose is outside what it was trained on): by default the
yaw 0 / pitch 0 camera at the default radius and pivot, with the render camera's intrinsics ('frontal'), or a
label drawn from the dataset's front split ('front_labels').
"""

import math

import numpy as np
import torch

from training import cameras

SPLITS = ('all', 'front', 'back')
BACK_CONDITIONING = ('frontal', 'front_labels')

#----------------------------------------------------------------------------
# Check a split name.

def check_split(split):
    if split not in SPLITS:
        raise ValueError(f'unknown split {split!r}; choose from {", ".join(SPLITS)}')
    return split

#----------------------------------------------------------------------------
# Boolean mask [N] of the labels [N,25] (numpy or torch) that belong to the split.

def split_mask(labels, split):
    check_split(split)
    labels = torch.as_tensor(np.asarray(labels, dtype=np.float32))
    if labels.shape[0] == 0:
        return np.zeros([0], dtype=bool)
    yaw, _ = cameras.yaw_pitch_from_label(labels)
    abs_yaw = yaw.abs().numpy()
    if split == 'front':
        return abs_yaw < math.pi / 2
    if split == 'back':
        return abs_yaw >= math.pi / 2
    return np.ones(labels.shape[0], dtype=bool)

# Indices of the labels in the split, with a clear error when it is empty.
def split_indices(labels, split, what='dataset'):
    idx = np.flatnonzero(split_mask(labels, split))
    if idx.size == 0:
        raise ValueError(f'the {what} has no views in split {split!r} '
                         f'({"|yaw| < 90" if split == "front" else "|yaw| >= 90"} degrees)')
    return idx

#----------------------------------------------------------------------------
# Frontal conditioning labels [N,25]: yaw 0, pitch 0 on the generator's camera orbit (orbit = dict(radius, pivot);
# None = EG3D's defaults), keeping each row's intrinsics.

def frontal_labels_like(labels, orbit=None):
    labels = np.asarray(labels, dtype=np.float32)
    frontal = cameras.make_label(torch.zeros(1), torch.zeros(1), **(orbit or {})).numpy()[0]
    out = np.repeat(frontal[None], labels.shape[0], axis=0)
    out[:, 16:] = labels[:, 16:]
    return out

#----------------------------------------------------------------------------
# Generator cameras for a split: (c_cond [num,25], c_render [num,25]) float32, drawn with `rng`
# (np.random.Generator) from the dataset labels [N,25] that fall in the split.

def generator_cameras(labels, split, num, rng, back_conditioning='frontal', orbit=None):
    if back_conditioning not in BACK_CONDITIONING:
        raise ValueError(f'unknown back_conditioning {back_conditioning!r}; choose from {", ".join(BACK_CONDITIONING)}')
    labels = np.asarray(labels, dtype=np.float32)
    pool = labels[split_indices(labels, split)]
    c_render = pool[rng.integers(0, pool.shape[0], size=int(num))]
    if split != 'back':
        return c_render.copy(), c_render
    if back_conditioning == 'frontal':
        return frontal_labels_like(c_render, orbit), c_render
    front = labels[split_indices(labels, 'front', what='dataset (for front conditioning labels)')]
    return front[rng.integers(0, front.shape[0], size=int(num))], c_render

#----------------------------------------------------------------------------
