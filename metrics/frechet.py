"""Frechet distance (FID) and kernel distance (KID) on feature sets.

FID (Heusel et al. 2017): the Frechet distance between two Gaussians fitted to the features,
    ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2).
KID (Binkowski et al. 2018): the unbiased MMD^2 estimate with the cubic polynomial kernel
    k(x, y) = (x.y / d + 1)^3, averaged over random subsets (StyleGAN/EG3D protocol). The paper reports KID x 100;
    the functions here return the raw value and metric_main scales it.
"""

import numpy as np

#----------------------------------------------------------------------------
# Mean [D] and covariance [D,D] (float64, unbiased) of a feature matrix [N,D].

def feature_moments(features):
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f'features must be a [N, D] array with N >= 2, got shape {list(x.shape)}')
    if not np.all(np.isfinite(x)):
        raise ValueError('features contain NaN or Inf; the detector or the images are broken')
    mu = x.mean(axis=0)
    centered = x - mu
    cov = centered.T @ centered / (x.shape[0] - 1)
    return mu, cov

#----------------------------------------------------------------------------
# Square root of a symmetric positive semi-definite matrix through its eigendecomposition. Eigenvalues that come
# out slightly negative from round-off are clipped to zero, so the result is always finite and real.

def _psd_sqrt(matrix):
    sym = (matrix + matrix.T) * 0.5
    eigvals, eigvecs = np.linalg.eigh(sym)
    return (eigvecs * np.sqrt(np.clip(eigvals, 0, None))) @ eigvecs.T

#----------------------------------------------------------------------------
# Frechet distance between N(mu1, cov1) and N(mu2, cov2). The cross term uses tr((A^1/2 B A^1/2)^1/2), which
# equals tr((A B)^1/2) but only involves symmetric PSD matrices: no complex parts and no NaN even when the
# covariances are singular (fewer samples than feature dimensions).

def frechet_distance(mu1, cov1, mu2, cov2):
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    d = mu1.shape[0]
    if mu2.shape != (d,) or cov1.shape != (d, d) or cov2.shape != (d, d):
        raise ValueError(f'shape mismatch: mu1 {list(mu1.shape)}, cov1 {list(cov1.shape)}, '
                         f'mu2 {list(mu2.shape)}, cov2 {list(cov2.shape)}')
    sqrt1 = _psd_sqrt(cov1)
    inner = sqrt1 @ cov2 @ sqrt1
    eig = np.linalg.eigvalsh((inner + inner.T) * 0.5)
    cross = np.sqrt(np.clip(eig, 0, None)).sum()
    dist = np.square(mu1 - mu2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * cross
    return float(max(dist, 0.0))  # round-off can make identical sets a hair negative

#----------------------------------------------------------------------------
# FID between two feature matrices [N1,D] and [N2,D].

def frechet_distance_from_features(features1, features2):
    mu1, cov1 = feature_moments(features1)
    mu2, cov2 = feature_moments(features2)
    return frechet_distance(mu1, cov1, mu2, cov2)

#----------------------------------------------------------------------------
# KID: unbiased MMD^2 with the kernel (x.y/d + 1)^3, averaged over `num_subsets` random subsets of size
# min(N_real, N_gen, max_subset_size), drawn with a seeded generator so that a result is repeatable.

def kernel_distance(real_features, gen_features, num_subsets=100, max_subset_size=1000, seed=0):
    real = np.asarray(real_features, dtype=np.float64)
    gen = np.asarray(gen_features, dtype=np.float64)
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise ValueError(f'feature matrices must be [N, D] with the same D, got {list(real.shape)} and {list(gen.shape)}')
    if int(num_subsets) < 1:
        raise ValueError(f'num_subsets must be >= 1, got {num_subsets}')
    d = real.shape[1]
    m = min(real.shape[0], gen.shape[0], int(max_subset_size))
    if m < 2:
        raise ValueError(f'KID needs at least 2 features on each side, got {real.shape[0]} real and {gen.shape[0]} generated')
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(int(num_subsets)):
        x = gen[rng.choice(gen.shape[0], m, replace=False)]
        y = real[rng.choice(real.shape[0], m, replace=False)]
        k_xx = (x @ x.T / d + 1) ** 3
        k_yy = (y @ y.T / d + 1) ** 3
        k_xy = (x @ y.T / d + 1) ** 3
        # Off-diagonal means of the within-set kernels (unbiased), minus twice the cross mean.
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        total += within - 2 * k_xy.mean()
    return float(total / int(num_subsets))

#----------------------------------------------------------------------------
