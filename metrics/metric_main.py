"""Metric registry and the one entry point, run_metrics(), used by scripts/calc_metrics.py and handed to the
training loop as a callable by train.py (training/ never imports metrics/).

Each metric registers itself (@register_metric: name -> compute function). Registered metrics:
  fid, kid               Inception FID / KID x100 (paper tables 2-4) per split; needs the Inception file.
  fd_<net>, kd_<net>     the same distances on a built-in offline network (<net> in detectors.BUILTIN_DETECTORS),
                         labelled FD-<net> / KD-<net> x100: not comparable with FID/KID.
  pr, pr_<net>           precision and recall (Kynkaanniemi et al. 2019, k = 3) per split, on Inception / on an
                         offline network: two results per split, part 'precision' and part 'recall'.
  id                     teacher-student identity consistency (table 4 "ID"), TorchScript face model.
  id_proxy               the same with the pixel-correlation proxy (synthetic world), labelled ID-proxy.
  fidelity               frontal fidelity to the teacher for the same z (ID-proxy, PSNR, LPIPS-VGG if on disk), each
                         with the different-z baseline (teacher vs teacher, other latents) and, with --data, the
                         real same-identity / other-identity pair (metrics/identity.py).
  consistency3d          3D-consistency PSNR (table 3, GRAM-HD protocol).
  backview               view accuracy: yaw-180 renders that look like real back views, not a second face
                         (metrics/backview.py; offline, needs the dataset's front and back views).
  backview_nr            the same with the real views and the renders resampled through the generator's rendering
                         resolution (neural_rendering_resolution): both read at the detail the generator renders.
  mirror                 mirror-face similarity: how much of each latent's own face its yaw-180 render repeats
                         (metrics/backview.py; same renders and data as backview; lower is better).
"""

import dataclasses
import time

import torch

from metrics import backview, consistency3d, frechet, identity, precision_recall, splits
from metrics.detectors import BUILTIN_DETECTORS, load_detector
from metrics.features import generated_features, real_features
from training.dataset import ImageLabelDataset

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
    pr_k: int = 3                    # precision/recall: neighbourhood size k (pr50k3)

    # Reject values that cannot run, naming the option.
    def __post_init__(self):
        positive = ['num', 'batch', 'kid_subsets', 'kid_subset_size', 'id_num', 'c3d_identities', 'c3d_resolution',
                    'c3d_grid', 'c3d_iters', 'c3d_batch_rays', 'c3d_samples', 'pr_k']
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
# The registry: name -> MetricSpec. A compute function is called once per split (once in all for a split-free
# metric) as compute(run, spec, split) and returns dict(value, num, detector=None, detector_digest=None, ...extra
# keys of the result), or a list of such dicts, each with its own 'label', for a metric with several parts.

@dataclasses.dataclass(frozen=True)
class MetricSpec:
    name: str               # registry key, as written on the command line
    label: str              # how the value is reported
    compute: object         # compute(run, spec, split) -> dict or list of dicts (see above)
    kind: str = None        # the family: 'fd', 'kd', 'pr', 'id', 'id_proxy', 'fidelity', 'consistency3d', 'backview'
    detector: str = None    # feature network of fd/kd/pr metrics
    per_split: bool = False # computed once per view split (all/front/back)
    needs: tuple = ()       # checked before any work: 'dataset' (opened), 'data' (a path), 'teacher', 'face_model'

METRICS = {}

# Decorator: register `compute` under `name` (kind: its family, MetricSpec.kind). With nets=(...), one metric per
# feature network, '{net}' in the name and label replaced by the network's name.
def register_metric(name, label, kind, nets=None, per_split=False, needs=()):
    def decorator(compute):
        for net in (nets or [None]):
            key = name.format(net=net) if net else name
            if key in METRICS:
                raise ValueError(f'metric {key!r} is registered twice')
            METRICS[key] = MetricSpec(key, label.format(net=net) if net else label, compute, kind, net, per_split,
                                      tuple(needs))
        return compute
    return decorator

#----------------------------------------------------------------------------
# One run_metrics() call: the inputs, the loaded networks, and what several metrics share (each detector and
# split's real and generated features, the back-view renders), computed once.

class _Run:
    def __init__(self, G, data, teacher, opts, device, progress, cache_dir):
        self.G, self.data, self.teacher, self.opts = G, data, teacher, opts
        self.device, self.progress, self.cache_dir = device, progress, cache_dir
        self.dataset = None
        self.detectors = {}
        self.face = None        # (embed, digest, name) of the face-recognition model
        self._features = {}
        self._views = None

    # Open the dataset and load every network the metrics need: a missing file fails before hours of other metrics.
    def prepare(self, specs, detector_path, face_model):
        if any('dataset' in s.needs for s in specs):
            self.dataset = ImageLabelDataset(self.data)
        for spec in specs:
            if spec.detector is not None and spec.detector not in self.detectors:
                path = detector_path if spec.detector == 'inception' else None
                self.detectors[spec.detector] = load_detector(spec.detector, path=path, cache_dir=self.cache_dir,
                                                              device=self.device)
        if any('face_model' in s.needs for s in specs):
            embed, digest = identity.load_face_model(face_model, cache_dir=self.cache_dir, device=self.device)
            self.face = (embed, digest, str(face_model or identity.FACE_MODEL_FILE))

    # (real [N,D], generated [num,D]) features of a split for the spec's detector; shared by fd, kd and pr.
    def features(self, spec, split):
        det = self.detectors[spec.detector]
        key = (det.name, split)
        if key not in self._features:
            self._features[key] = _split_features(self.G, self.dataset, det, split, self.opts, self.cache_dir,
                                                  self.device, self.progress)
        return self._features[key]

    # backview's, backview_nr's and mirror's (generator_views, real-view rates, reference, and the same two at the
    # rendering resolution): one set of renders for all three metrics.
    def views(self):
        if self._views is None:
            opts = self.opts
            ref = backview.reference_views(self.data, max_real=opts.max_real, seed=opts.seed)
            ref_nr = backview.reference_views(self.data, max_real=opts.max_real, seed=opts.seed,
                                              fraction=backview.rendering_fraction(self.G))
            bar = _bar(self.progress, opts.num, 'backview')
            views = backview.generator_views(self.G, ref, opts.num, batch=opts.batch, seed=opts.seed,
                                             truncation_psi=opts.truncation_psi, device=self.device, progress=bar,
                                             matched=ref_nr)
            _close(bar)
            self._views = dict(views=views, real=backview.real_rates(ref), ref=ref,
                               real_nr=backview.real_rates(ref_nr), ref_nr=ref_nr)
        return self._views

# The detector fields of a result.
def _detector_info(run, spec):
    det = run.detectors[spec.detector]
    return dict(detector=det.name, detector_digest=det.digest)

#----------------------------------------------------------------------------
# The metrics.

# Frechet distance of the split's real and generated features (FID on Inception).
@register_metric('fd_{net}', 'FD-{net}', 'fd', nets=BUILTIN_DETECTORS, per_split=True, needs=('dataset',))
@register_metric('fid', 'FID', 'fd', nets=('inception',), per_split=True, needs=('dataset',))
def _frechet(run, spec, split):
    real, gen = run.features(spec, split)
    return dict(value=frechet.frechet_distance_from_features(real, gen), num=int(gen.shape[0]),
                **_detector_info(run, spec))

# Kernel distance x100 (KID on Inception).
@register_metric('kd_{net}', 'KD-{net} x100', 'kd', nets=BUILTIN_DETECTORS, per_split=True, needs=('dataset',))
@register_metric('kid', 'KID x100', 'kd', nets=('inception',), per_split=True, needs=('dataset',))
def _kernel(run, spec, split):
    real, gen = run.features(spec, split)
    opts = run.opts
    value = 100 * frechet.kernel_distance(real, gen, num_subsets=opts.kid_subsets,
                                          max_subset_size=opts.kid_subset_size, seed=opts.seed)
    return dict(value=value, num=int(gen.shape[0]), **_detector_info(run, spec))

# Precision and recall (k nearest neighbours) of the same features: two results, one per part.
@register_metric('pr_{net}', 'Precision/Recall-{net}', 'pr', nets=BUILTIN_DETECTORS, per_split=True, needs=('dataset',))
@register_metric('pr', 'Precision/Recall', 'pr', nets=('inception',), per_split=True, needs=('dataset',))
def _precision_recall(run, spec, split):
    real, gen = run.features(spec, split)
    precision, recall = precision_recall.precision_recall(real, gen, k=run.opts.pr_k, device=run.device)
    info = dict(num=int(gen.shape[0]), k=run.opts.pr_k, **_detector_info(run, spec))
    return [dict(label=spec.label.replace('Precision/Recall', 'Precision'), value=precision, part='precision', **info),
            dict(label=spec.label.replace('Precision/Recall', 'Recall'), value=recall, part='recall', **info)]

# Mean cosine similarity of teacher and student face embeddings for the same latents (face model or proxy).
def _identity(run, embed, name, digest=None):
    opts = run.opts
    bar = _bar(run.progress, opts.id_num, name)
    value = identity.identity_similarity(run.teacher, run.G, embed, num=opts.id_num, crop=opts.id_crop,
                                         batch=opts.batch, seed=opts.seed, truncation_psi=opts.truncation_psi,
                                         device=run.device, progress=bar)
    _close(bar)
    return dict(value=value, num=opts.id_num, detector=name, detector_digest=digest)

@register_metric('id', 'ID', 'id', needs=('teacher', 'face_model'))
def _id(run, spec, split):
    embed, digest, name = run.face
    return _identity(run, embed, name, digest)

@register_metric('id_proxy', 'ID-proxy', 'id_proxy', needs=('teacher',))
def _id_proxy(run, spec, split):
    return _identity(run, identity.pixel_embedding, 'pixel-correlation')

# Frontal fidelity to the teacher: ID-proxy, PSNR (and LPIPS-VGG when its weights are on disk) of the same latents,
# each with the teacher's different-z baseline and, given a multi-view dataset, the real same / other identity pair.
FIDELITY_LABELS = dict(id_proxy='ID-proxy to teacher, same z', psnr='Frontal PSNR to teacher, same z (dB)',
                       lpips='Frontal LPIPS-VGG to teacher, same z')

@register_metric('fidelity', 'Frontal fidelity', 'fidelity', needs=('teacher',))
def _fidelity(run, spec, split):
    opts = run.opts
    lpips = identity.load_lpips(run.device)
    real = identity.real_fidelity(run.data, crop=opts.id_crop, lpips=lpips) if run.data is not None else {}
    bar = _bar(run.progress, opts.id_num, spec.name)
    scores = identity.frontal_fidelity(run.teacher, run.G, num=opts.id_num, crop=opts.id_crop, batch=opts.batch,
                                       seed=opts.seed, truncation_psi=opts.truncation_psi, lpips=lpips,
                                       device=run.device, progress=bar)
    _close(bar)
    out = []
    for key, (same, other) in scores.items():
        real_same, real_other = real.get(key, (None, None))
        out.append(dict(label=FIDELITY_LABELS[key], value=same, num=opts.id_num, part=key, baseline=other,
                        real_value=real_same, real_baseline=real_other,
                        detector='pixel-correlation' if key == 'id_proxy' else key))
    return out

# 3D-consistency PSNR of a radiance field fitted to half of each identity's views.
@register_metric('consistency3d', '3D-consistency PSNR (dB)', 'consistency3d')
def _consistency3d(run, spec, split):
    opts = run.opts
    bar = _bar(run.progress, opts.c3d_identities, spec.name)
    value = consistency3d.generator_consistency(
        run.G, num_identities=opts.c3d_identities, num_views=opts.c3d_views, resolution=opts.c3d_resolution,
        grid=opts.c3d_grid, iters=opts.c3d_iters, batch_rays=opts.c3d_batch_rays, samples=opts.c3d_samples,
        pitch_range_deg=opts.c3d_pitch_range_deg, truncation_psi=opts.truncation_psi, seed=opts.seed,
        batch=opts.batch, device=run.device, progress=bar)
    _close(bar)
    return dict(value=value, num=opts.c3d_identities)

# View accuracy of the yaw-0 / yaw-180 renders, with the classifier's accuracy on held-out real views.
@register_metric('backview', 'View accuracy (kNN)', 'backview', per_split=True, needs=('data',))
def _backview(run, spec, split):
    v = run.views()
    return _view_accuracy(run, (v['views']['front'], v['views']['back']), v['real'], v['ref'], split)

# The same classifier with the reference views and the renders resampled through the generator's rendering
# resolution (neural_rendering_resolution / img_resolution of their size): both compared at the detail the
# generator renders (metrics/backview.py).
@register_metric('backview_nr', 'View accuracy (kNN) at the rendering resolution', 'backview', per_split=True,
                 needs=('data',))
def _backview_nr(run, spec, split):
    v = run.views()
    out = _view_accuracy(run, (v['views']['front_matched'], v['views']['back_matched']), v['real_nr'], v['ref_nr'], split)
    out.update(fraction=v['ref_nr']['fraction'])
    return out

def _view_accuracy(run, rates, real, ref, split):
    name = (f'knn{backview.K} on central edge orientations ({backview.CELLS}x{backview.CELLS}x{backview.BINS}) of '
            f'{ref["num_front"]} front + {ref["num_back"]} back real views')
    if ref['fraction'] is not None and ref['fraction'] < 1:
        name += f', all resampled through {ref["fraction"]:g} of their size'
    return dict(value=backview.split_value(rates, split), num=run.opts.num, detector=name,
                real_value=backview.split_value(real, split))

# Mirror-face similarity of the same yaw-0 / yaw-180 renders (lower: less of the latent's face behind), with the
# other-latent baseline and the dataset's same-identity real pairs (real_value, and face_rate: the share of latents
# above the real pairs' 90th percentile, also split into light and dark backs at the real backs' light_cut; without
# pairs real_value is None and real_note says why).
@register_metric('mirror', 'Mirror-face similarity', 'mirror', needs=('data',))
def _mirror(run, spec, split):
    views = run.views()['views']
    real, note = backview.real_mirror(run.data, seed=run.opts.seed)
    out = dict(value=float(views['mirror'].mean()), num=run.opts.num, other_z=float(views['mirror_other'].mean()),
               detector=(f'normalised cross-correlation of {backview.RES}x{backview.RES} high-passed grey centres, '
                         'yaw 0 vs yaw 180 flipped'), real_value=real['value'] if real else None)
    if real:
        out.update(face_rate=float((views['mirror'] > real['p90']).float().mean()), real_other=real['other'],
                   real_pairs=real['num_pairs'], real_p90=real['p90'])
        out.update(backview.split_face_rates(views['mirror'], views['back_brightness'], real['p90'], real['light_cut']))
        out.update(real_light_cut=real['light_cut'], real_light_share=real['light_share'],
                   real_face_rate_light=real['face_rate_light'], real_face_rate_dark=real['face_rate_dark'])
        # the upper reading (the crops' top MIRROR_UPPER_ROWS rows: eyes, brows, nose; no jaw and neck outline)
        upper = views['mirror_upper']
        up = backview.split_face_rates(upper, views['back_brightness'], real['upper_p90'], real['light_cut'])
        out.update(upper_value=float(upper.mean()), upper_face_rate=float((upper > real['upper_p90']).float().mean()),
                   upper_face_rate_light=up['face_rate_light'], upper_face_rate_dark=up['face_rate_dark'],
                   real_upper_value=real['upper_value'], real_upper_p90=real['upper_p90'],
                   real_upper_face_rate_light=real['upper_face_rate_light'],
                   real_upper_face_rate_dark=real['upper_face_rate_dark'])
    else:
        out.update(real_note=note)
    return out

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
# Run metrics on generator G and return one result dict per (metric, split) (two for pr: precision, recall):
#   dict(metric, label, split, value, num, detector, detector_digest, time (seconds), timestamp, ...extra keys)
# data: dataset path (needed by fd/kd/pr/backview); teacher: the face generator (id, id_proxy); detector: path or
# URL of the Inception file (default: the cache); face_model: TorchScript face model (id). Options: MetricOptions.
# Real features and each (detector, split)'s generated features are computed once and shared by fd, kd and pr.

def run_metrics(metrics, G, data=None, split_list=('all',), teacher=None, detector=None, face_model=None,
                cache_dir=None, device='cpu', progress=False, **options):
    names = parse_metric_list(metrics)
    split_names = parse_split_list(split_list)
    opts = make_options(**options)
    specs = [METRICS[n] for n in names]
    need_data = [s.name for s in specs if {'data', 'dataset'} & set(s.needs)]
    if need_data and data is None:
        raise ValueError(f'metrics {", ".join(need_data)} need a dataset (data=PATH)')
    if any('teacher' in s.needs for s in specs) and teacher is None:
        raise ValueError('identity metrics (id, id_proxy, fidelity) need the teacher generator (--teacher)')
    run = _Run(G, data, teacher, opts, torch.device(device), progress, cache_dir)
    run.prepare(specs, detector, face_model)

    results = []
    for spec in specs:
        for split in (split_names if spec.per_split else [None]):
            t0 = time.time()
            out = spec.compute(run, spec, split)
            for part in (out if isinstance(out, list) else [out]):
                extra = dict(part)
                label = extra.pop('label', spec.label)
                value, num = extra.pop('value'), extra.pop('num')
                det_name, det_digest = extra.pop('detector', None), extra.pop('detector_digest', None)
                results.append(dict(metric=spec.name, label=label, split=split, value=float(value), num=num,
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
