"""Improved precision and recall (Kynkaanniemi et al. 2019, "Improved Precision and Recall Metric for Assessing
Generative Models"; StyleGAN's pr50k3 protocol: k = 3 nearest neighbours).

Each feature set approximates its manifold by a union of balls: every sample is the centre of a ball whose radius is
the distance to its k-th nearest neighbour in the same set (the sample itself excluded). Then
  precision = fraction of generated samples that lie inside the real manifold (at least one real ball),
  recall    = fraction of real samples that lie inside the generated manifold (at least one generated ball).
Blurry, averaged samples lower precision; a generator that covers only part of the real set (mode collapse, little
variety) lowers recall. FID mixes the two; this pair tells them apart.

StyleGAN's pr50k3_full uses VGG-16 features of 50k generated images against all real ones; here the features come
from the same detectors as fid/fd (metrics/detectors.py: Inception when its file is given, or an offline network),
so values are comparable between models measured with the same detector, not with published VGG-16 values.
"""

import numpy as np
import torch

K = 3                   # neighbourhood size of pr50k3
CHUNK_ELEMENTS = 1 << 24   # distance-matrix entries per block (128 MB in float64): bounds memory for 50k x 50k

#----------------------------------------------------------------------------
# Features as a float64 tensor [N,D] on `device`, checked.

def _as_tensor(features, what, device):
    x = torch.as_tensor(np.asarray(features), dtype=torch.float64, device=device)
    if x.ndim != 2:
        raise ValueError(f'{what} features must be a [N, D] array, got shape {list(x.shape)}')
    if not torch.isfinite(x).all():
        raise ValueError(f'{what} features contain NaN or Inf; the detector or the images are broken')
    return x

# Rows per block so that a block of distances to `num_cols` points stays within CHUNK_ELEMENTS.
def _rows_per_block(num_cols):
    return max(1, CHUNK_ELEMENTS // max(1, num_cols))

#----------------------------------------------------------------------------
# Radius [N] of each sample's ball: the distance to its k-th nearest neighbour in the same set. The sample's zero
# distance to itself is the first of the sorted distances, so the k-th neighbour is at position k + 1.

def manifold_radii(features, k=K):
    n = features.shape[0]
    if n < k + 1:
        raise ValueError(f'precision/recall with k={k} needs at least {k + 1} samples per set, got {n}')
    radii = []
    for start in range(0, n, _rows_per_block(n)):
        d = torch.cdist(features[start:start + _rows_per_block(n)], features)
        radii.append(d.kthvalue(k + 1, dim=1).values)
    return torch.cat(radii)

# Fraction of the query samples [M,D] that lie inside at least one ball (centres [N,D], radii [N]).
def manifold_coverage(query, centres, radii):
    inside = 0
    rows = _rows_per_block(centres.shape[0])
    for start in range(0, query.shape[0], rows):
        d = torch.cdist(query[start:start + rows], centres)
        inside += int((d <= radii[None, :]).any(dim=1).sum())
    return inside / query.shape[0]

#----------------------------------------------------------------------------
# (precision, recall) of generated features [M,D] against real features [N,D], both in [0, 1].

def precision_recall(real_features, gen_features, k=K, device='cpu'):
    real = _as_tensor(real_features, 'real', device)
    gen = _as_tensor(gen_features, 'generated', device)
    if real.shape[1] != gen.shape[1]:
        raise ValueError(f'real and generated features differ in dimension: {real.shape[1]} vs {gen.shape[1]}')
    if int(k) < 1:
        raise ValueError(f'precision/recall needs k >= 1, got {k}')
    precision = manifold_coverage(gen, real, manifold_radii(real, k))
    recall = manifold_coverage(real, gen, manifold_radii(gen, k))
    return precision, recall

#----------------------------------------------------------------------------
