"""Metric registry and the one entry point, run_metrics(), used by scripts/calc_metrics.py and handed to the
training loop as a callable by train.py (training/ never imports metrics/).

Registered metrics:
  fid, kid               Inception FID / KID x100 (paper tables 2-4) per split; needs the Inception file.
  fd_<net>, kd_<net>     the same distances on a built-in offline network (<net> in detectors.BUILTIN_DETECTORS),
                         labelled FD-<net> / KD-<net> x100: not comparable with FID/KID.
  id                     teacher-student identity consistency (table 4 "ID"), TorchScript face model.
  id_proxy               the same with the pixel-correlation proxy (synthetic world), labelled ID-proxy.
  consistency3d          3D-consistency PSNR (table 3, GRAM-HD protocol).
  backview               view accuracy: yaw-180 renders that look like real back views, not a second face
                         (metrics/backview.py; offline, needs the dataset's front and back views).
"""

import dataclasses
import time

import torch

from metrics import backview, consistency3d, frechet, identity, splits
from metrics.detectors import BUILTIN_DETECTORS, load_detector
from metrics.features import generated_features, real_features
from training.dataset import ImageLabelDataset

#----------------------------------------------------------------------------
# One registered metric.

@dataclasses.dataclass(frozen=True)
class MetricSpec:
    name: str               # registry key, as written on the command line
    kind: str               # 'fd', 'kd', 'id', 'id_proxy', 'consistency3d' or 'backview'
    label: str              # how the value is reported
    detector: str = None    # feature network of fd/kd metrics
    per_split: bool = False # computed once per view split (all/front/back)

# Build the registry: FID/KID on Inception, FD/KD on each built-in network, ID, ID-proxy, 3D consistency.
def _build_registry():
    specs = [MetricSpec('fid', 'fd', 'FID', 'inception', True), MetricSpec('kid', 'kd', 'KID x100', 'inception', True)]
    for net in BUILTIN_DETECTORS:
        specs += [MetricSpec(f'fd_{net}', 'fd', f'FD-{net}', net, True),
                  MetricSpec(f'kd_{net}', 'kd', f'KD-{net} x100', net, True)]
    specs += [MetricSpec('id', 'id', 'ID'), MetricSpec('id_proxy', 'id_proxy', 'ID-proxy'),
              MetricSpec('consistency3d', 'consistency3d', '3D-consistency PSNR (dB)'),
              MetricSpec('backview', 'backview', 'View accuracy (kNN)', per_split=True)]
    return {s.name: s for s in specs}

METRICS = _build_registry()

#----------------------------------------------------------------------------
# Sizes and switches of every metric (the paper's protocol by default; shrink them for CPU runs).

@dataclasses.dataclass(frozen=True)
class MetricOptions:
    num: int = 50000                 # generated images per split for fid/kid/fd/kd
    max_real: int = None             # real images per split; None = all of the split
    batch: int = 16                  # generator / detector batch
    workers: int = 3                 # data-loading processes for the real images (0 = in this process)
    seed: int = 0                    # latents, cameras and KID subsets
    truncation_psi: float = 1.0      # truncation of the generator's mapping
    back_conditioning: str = 'frontal'  # conditioning pose for the back split (splits.BACK_CONDITIONING)
    kid_subsets: int = 100           # KID: number of random subsets
    kid_subset_size: int = 1000      # KID: subset size (capped by the set sizes)
    id_num: int = 10000              # identity metrics: number of latents
    id_crop: float = 0.5             # identity metrics: central crop (fraction of the side): the face region
    c3d_identities: int = 50         # consistency3d: identities
    c3d_views: int = 100             # consistency3d: views per identity (half fit, half held out)
    c3d_resolution: int = 128        # consistency3d: image resolution of the views
    c3d_grid: int = 128              # consistency3d: TensoRF grid resolution
    c3d_iters: int = 3000            # consistency3d: Adam iterations per identity
    c3d_batch_rays: int = 4096       # consistency3d: rays per iteration
    c3d_samples: int = 64            # consistency3d: samples per ray
    c3d_pitch_range_deg: float = 20.0  # consistency3d: views' pitch drawn in +-this

    # Reject values that cannot run, naming the option.
    def __post_init__(self):
        positive = ['num', 'batch', 'kid_subsets', 'kid_subset_size', 'id_num', 'c3d_identities', 'c3d_resolution',
                    'c3d_grid', 'c3d_iters', 'c3d_batch_rays', 'c3d_samples']
        for key in positive:
            if int(getattr(self, key)) < 1:
                raise ValueError(f'metric option {key} must be >= 1, got {getattr(self, key)}')
        if int(self.workers) < 0:
            raise ValueError(f'metric option workers must be >= 0, got {self.workers}')
        if self.max_real is not None and int(self.max_real) < 2:
            raise ValueError(f'metric option max_real must be >= 2 or None, got {self.max_real}')
        if self.c3d_views < 2:
            raise ValueError(f'metric option c3d_views must be >= 2, got {self.c3d_views}')
        if not 0 < self.id_crop <= 1:
            raise ValueError(f'metric option id_crop must be in (0, 1], got {self.id_crop}')
        if self.back_conditioning not in splits.BACK_CONDITIONING:
            raise ValueError(f'metric option back_conditioning must be one of {splits.BACK_CONDITIONING}, '
                             f'got {self.back_conditioning!r}')

# Options from keyword arguments, with a clear error for an unknown one.
def make_options(**kwargs):
    known = {f.name for f in dataclasses.fields(MetricOptions)}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ValueError(f'unknown metric option(s) {", ".join(unknown)}; known: {", ".join(sorted(known))}')
    return MetricOptions(**kwargs)

#----------------------------------------------------------------------------
# Parse 'fid,kid' (or a list) into registered names, rejecting unknown ones by name.

def parse_metric_list(metrics):
    names = [m.strip() for m in metrics.split(',')] if isinstance(metrics, str) else list(metrics)
    names = [n for n in names if n]
    if not names:
        raise ValueError('no metric given')
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f'unknown metric(s) {", ".join(unknown)}; choose from {", ".join(METRICS)}')
    return list(dict.fromkeys(names))

# Parse 'all,back' (or a list) into split names.
def parse_split_list(split_list):
    names = [s.strip() for s in split_list.split(',')] if isinstance(split_list, str) else list(split_list)
    return list(dict.fromkeys(splits.check_split(s) for s in names if s))

#----------------------------------------------------------------------------
# A progress bar (tqdm) or nothing.

def _bar(enabled, total, desc):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)

def _close(bar):
    if bar is not None:
        bar.close()

#----------------------------------------------------------------------------
# Run metrics on generator G and return one result dict per (metric, split):
#   dict(metric, label, split, value, num, detector, detector_digest, time (seconds), timestamp)
# data: dataset path (needed by fd/kd metrics); teacher: the face generator (id, id_proxy); detector: path or URL
# of the Inception file (default: the cache); face_model: TorchScript face model (id). Options: MetricOptions.
# Real features and each (detector, split)'s generated features are computed once and shared by fd and kd.

def run_metrics(metrics, G, data=None, split_list=('all',), teacher=None, detector=None, face_model=None,
                cache_dir=None, device='cpu', progress=False, **options):
    names = parse_metric_list(metrics)
    split_names = parse_split_list(split_list)
    opts = make_options(**options)
    device = torch.device(device)
    specs = [METRICS[n] for n in names]
    needs_data = any(s.kind in ('fd', 'kd', 'backview') for s in specs)
    if needs_data and data is None:
        raise ValueError(f'metrics {", ".join(s.name for s in specs if s.kind in ("fd", "kd", "backview"))} '
                         'need a dataset (data=PATH)')
    if any(s.kind in ('id', 'id_proxy') for s in specs) and teacher is None:
        raise ValueError('identity metrics (id, id_proxy) need the teacher generator (--teacher)')
    dataset = ImageLabelDataset(data) if any(s.kind in ('fd', 'kd') for s in specs) else None

    # Load every network first: a missing file fails before hours of other metrics, not after.
    detectors = {}
    for spec in specs:
        if spec.detector is not None and spec.detector not in detectors:
            path = detector if spec.detector == 'inception' else None
            detectors[spec.detector] = load_detector(spec.detector, path=path, cache_dir=cache_dir, device=device)
    if any(s.kind == 'id' for s in specs):
        face_embed, face_digest = identity.load_face_model(face_model, cache_dir=cache_dir, device=device)

    features, results = {}, []
    views = None        # backview: (generator rates, real-view rates, reference), computed once for all splits
    for spec in specs:
        for split in (split_names if spec.per_split else [None]):
            t0 = time.time()
            det_name, det_digest, num, extra = None, None, None, {}
            if spec.kind in ('fd', 'kd'):
                det = detectors[spec.detector]
                det_name, det_digest = det.name, det.digest
                key = (det.name, split)
                if key not in features:
                    features[key] = _split_features(G, dataset, det, split, opts, cache_dir, device, progress)
                real, gen = features[key]
                num = int(gen.shape[0])
                if spec.kind == 'fd':
                    value = frechet.frechet_distance_from_features(real, gen)
                else:
                    value = 100 * frechet.kernel_distance(real, gen, num_subsets=opts.kid_subsets,
                                                          max_subset_size=opts.kid_subset_size, seed=opts.seed)
            elif spec.kind in ('id', 'id_proxy'):
                if spec.kind == 'id':
                    embed, det_digest = face_embed, face_digest
                    det_name = str(face_model or identity.FACE_MODEL_FILE)
                else:
                    embed, det_name = identity.pixel_embedding, 'pixel-correlation'
                bar = _bar(progress, opts.id_num, spec.name)
                value = identity.identity_similarity(teacher, G, embed, num=opts.id_num, crop=opts.id_crop,
                                                     batch=opts.batch, seed=opts.seed,
                                                     truncation_psi=opts.truncation_psi, device=device, progress=bar)
                _close(bar)
                num = opts.id_num
            elif spec.kind == 'backview':
                if views is None:
                    ref = backview.reference_views(data, max_real=opts.max_real, seed=opts.seed)
                    bar = _bar(progress, opts.num, spec.name)
                    rates = backview.generator_rates(G, ref, opts.num, batch=opts.batch, seed=opts.seed,
                                                     truncation_psi=opts.truncation_psi, device=device, progress=bar)
                    _close(bar)
                    views = (rates, backview.real_rates(ref), ref)
                rates, real, ref = views
                value, num = backview.split_value(rates, split), opts.num
                det_name = (f'knn{backview.K} on {backview.POOL}x{backview.POOL} px of {ref["num_front"]} front + '
                            f'{ref["num_back"]} back real views')
                extra = dict(real_value=backview.split_value(real, split))
            else:
                bar = _bar(progress, opts.c3d_identities, spec.name)
                value = consistency3d.generator_consistency(
                    G, num_identities=opts.c3d_identities, num_views=opts.c3d_views, resolution=opts.c3d_resolution,
                    grid=opts.c3d_grid, iters=opts.c3d_iters, batch_rays=opts.c3d_batch_rays,
                    samples=opts.c3d_samples, pitch_range_deg=opts.c3d_pitch_range_deg,
                    truncation_psi=opts.truncation_psi, seed=opts.seed, batch=opts.batch, device=device, progress=bar)
                _close(bar)
                num = opts.c3d_identities
            results.append(dict(metric=spec.name, label=spec.label, split=split, value=float(value), num=num,
                                detector=det_name, detector_digest=det_digest, time=round(time.time() - t0, 3),
                                timestamp=time.time(), **extra))
    return results

# Real and generated features of one split for one detector.
def _split_features(G, dataset, det, split, opts, cache_dir, device, progress):
    n_real = splits.split_indices(dataset.labels, split, what=f'dataset {dataset.path}').size
    if opts.max_real is not None:
        n_real = min(n_real, opts.max_real)
    bar = _bar(progress, n_real, f'real {split} ({det.name})')
    real, _info = real_features(dataset, det, split, max_real=opts.max_real, batch=max(opts.batch, 32),
                                workers=opts.workers, cache_dir=cache_dir, device=device, progress=bar)
    _close(bar)
    bar = _bar(progress, opts.num, f'generated {split} ({det.name})')
    gen = generated_features(G, det, dataset.labels, split, opts.num, dataset.resolution, batch=opts.batch,
                             seed=opts.seed, truncation_psi=opts.truncation_psi,
                             back_conditioning=opts.back_conditioning, device=device, progress=bar)
    _close(bar)
    return real, gen

#----------------------------------------------------------------------------
