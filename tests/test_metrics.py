"""Metrics: FID/KID math, detector loading, view splits and the back-view protocol, the real-set cache,
identity scores and the registry entry point (CPU, tiny sizes)."""

import contextlib
import json
import math
import os
import pickle
import warnings

import numpy as np
import PIL.Image
import pytest
import scipy.linalg
import torch

from metrics import detectors, features, frechet, identity, metric_main, splits
from training import cameras
from training.dataset import ImageLabelDataset

#----------------------------------------------------------------------------
# Frechet distance.

def test_fid_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).normal(size=(400, 12))
    assert abs(frechet.frechet_distance_from_features(x, x)) < 1e-8

def test_fid_matches_closed_form_for_gaussians():
    rng = np.random.default_rng(1)
    d = 5
    a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    cov1, cov2 = a @ a.T + 0.1 * np.eye(d), b @ b.T + 0.1 * np.eye(d)
    mu1, mu2 = np.zeros(d), rng.normal(size=d)
    # Reference: the textbook form with scipy's sqrtm of the (non-symmetric) product.
    ref = np.sum((mu1 - mu2) ** 2) + np.trace(cov1 + cov2 - 2 * scipy.linalg.sqrtm(cov1 @ cov2).real)
    assert frechet.frechet_distance(mu1, cov1, mu2, cov2) == pytest.approx(ref, rel=1e-6)

    # Diagonal covariances: the distance is |dmu|^2 + sum (sqrt(s1) - sqrt(s2))^2.
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    shift = np.array([0.5, 0.0, -1.0])
    expected = np.sum(shift ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert frechet.frechet_distance(np.zeros(3), np.diag(s1), shift, np.diag(s2)) == pytest.approx(expected)

    # Sampled features approach the closed form of their generating Gaussians.
    x = rng.multivariate_normal(mu1, cov1, size=40000)
    y = rng.multivariate_normal(mu2, cov2, size=40000)
    assert frechet.frechet_distance_from_features(x, y) == pytest.approx(ref, rel=0.05)

def test_fid_is_finite_on_near_singular_covariances():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(10, 64)), rng.normal(size=(12, 64)) + 0.3   # fewer samples than dimensions
    value = frechet.frechet_distance_from_features(x, y)
    assert np.isfinite(value) and value > 0
    tiny = np.outer(rng.normal(size=64), rng.normal(size=64)) * 1e-14   # rank one, asymmetric round-off size
    value = frechet.frechet_distance(np.zeros(64), tiny @ tiny.T, np.zeros(64), np.zeros((64, 64)))
    assert np.isfinite(value) and value >= 0

#----------------------------------------------------------------------------
# Kernel distance.

def test_kid_near_zero_for_same_distribution_and_grows_with_shift():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(600, 16))
    same = rng.normal(size=(600, 16))
    shifted = rng.normal(size=(600, 16)) + 0.5
    kid_same = frechet.kernel_distance(real, same, num_subsets=20, max_subset_size=300)
    kid_shift = frechet.kernel_distance(real, shifted, num_subsets=20, max_subset_size=300)
    kid_far = frechet.kernel_distance(real, shifted + 0.5, num_subsets=20, max_subset_size=300)
    assert abs(kid_same) < 0.01
    assert kid_shift > 20 * abs(kid_same) and kid_far > kid_shift

def test_kid_is_unbiased_on_average():
    # Over many independent same-distribution draws the estimate averages to ~0 (it can be negative).
    rng = np.random.default_rng(4)
    values = [frechet.kernel_distance(rng.normal(size=(50, 4)), rng.normal(size=(50, 4)), num_subsets=1, seed=k)
              for k in range(200)]
    assert min(values) < 0 < max(values)
    assert abs(np.mean(values)) < 3 * np.std(values) / np.sqrt(len(values))

#----------------------------------------------------------------------------
# Detectors.

# A tiny stand-in for the Inception TorchScript with its call convention.
class _TinyDetector(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3)

    def forward(self, images: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = torch.nn.functional.interpolate(images.float() / 255, size=(16, 16), mode='bilinear', align_corners=False)
        return self.conv(x).mean(dim=(2, 3))

# Silence TorchScript's deprecation warnings where the tests make stand-ins.
@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        yield

def _save_tiny_detector(path):
    torch.manual_seed(0)
    with _quiet():
        net = torch.jit.script(_TinyDetector())
        torch.jit.save(net, str(path))
    return net

def test_torchscript_detector_loads_through_the_real_path(tmp_path):
    path = tmp_path / 'inception-2015-12-05.pkl'
    net = _save_tiny_detector(path)
    images = torch.randint(0, 256, (5, 3, 20, 20), dtype=torch.uint8)
    with _quiet():
        det = detectors.load_detector('inception', path=str(path))
        assert torch.allclose(det(images), net(images, return_features=True))
    assert det.name == 'inception' and len(det.digest) == 16

    # A file:// URL goes through dnnlib's open_url.
    with _quiet():
        det_url = detectors.load_detector('inception', path=path.as_uri(), cache_dir=str(tmp_path))
    assert det_url.digest == det.digest

    # Found in the cache folder without a path.
    os.makedirs(detectors.detector_dir(str(tmp_path)))
    os.replace(path, os.path.join(detectors.detector_dir(str(tmp_path)), 'inception-2015-12-05.pkl'))
    with _quiet():
        det2 = detectors.load_detector('inception', cache_dir=str(tmp_path))
    assert det2.digest == det.digest

def test_missing_detector_error_names_the_file_and_where_to_put_it(tmp_path):
    with pytest.raises(detectors.DetectorError) as err:
        detectors.load_detector('inception', cache_dir=str(tmp_path))
    msg = str(err.value)
    assert 'inception-2015-12-05.pkl' in msg
    assert os.path.join(str(tmp_path), 'detectors') in msg and '--detector' in msg
    with pytest.raises(detectors.DetectorError, match='not found'):
        detectors.load_detector('inception', path=str(tmp_path / 'nope.pkl'))

def test_pickle_detector_is_refused_without_unpickling(tmp_path):
    path = tmp_path / 'inception-2015-12-05.pkl'
    with open(path, 'wb') as f:
        pickle.dump({'weights': [1, 2, 3]}, f)
    with pytest.raises(detectors.DetectorError, match='pickle'):
        detectors.load_detector('inception', path=str(path))

def test_builtin_detectors_are_deterministic_and_shaped():
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    for name, dim in (('pixels', 768), ('randconv', 480)):
        a = detectors.load_detector(name)(images)
        b = detectors.load_detector(name)(images)
        assert a.shape == (3, dim) and torch.equal(a, b)
    with pytest.raises(detectors.DetectorError, match='unknown detector'):
        detectors.load_detector('vgg')

#----------------------------------------------------------------------------
# Splits and generator cameras.

def _labels_for_yaws(yaws_deg, pitch_deg=0.0):
    yaw = torch.tensor(np.radians(yaws_deg), dtype=torch.float32)
    return cameras.make_label(yaw, torch.full_like(yaw, math.radians(pitch_deg))).numpy()

def test_split_masks_select_by_yaw():
    labels = _labels_for_yaws([0, 45, 89, 91, 135, 180, -100, -30])
    assert splits.split_mask(labels, 'front').tolist() == [True, True, True, False, False, False, False, True]
    assert splits.split_mask(labels, 'back').tolist() == [False, False, False, True, True, True, True, False]
    assert splits.split_mask(labels, 'all').all()
    with pytest.raises(ValueError, match='unknown split'):
        splits.split_mask(labels, 'side')

def test_back_split_uses_frontal_conditioning():
    labels = _labels_for_yaws([0, 30, -20, 120, 170, -150])
    rng = np.random.default_rng(0)
    c_cond, c_render = splits.generator_cameras(labels, 'back', 50, rng)
    yaw_render, _ = cameras.yaw_pitch_from_label(torch.from_numpy(c_render))
    yaw_cond, pitch_cond = cameras.yaw_pitch_from_label(torch.from_numpy(c_cond))
    assert (yaw_render.abs() >= math.pi / 2).all()
    assert yaw_cond.abs().max() < 1e-5 and pitch_cond.abs().max() < 1e-5
    c_cond, c_render = splits.generator_cameras(labels, 'back', 50, rng, back_conditioning='front_labels')
    assert (cameras.yaw_pitch_from_label(torch.from_numpy(c_cond))[0].abs() < math.pi / 2).all()
    c_cond, c_render = splits.generator_cameras(labels, 'front', 50, rng)
    assert np.array_equal(c_cond, c_render)
    assert (cameras.yaw_pitch_from_label(torch.from_numpy(c_render))[0].abs() < math.pi / 2).all()

#----------------------------------------------------------------------------
# A tiny dataset and an instrumented generator.

def _write_dataset(path, yaws_deg, resolution=16, seed=0):
    os.makedirs(path, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = _labels_for_yaws(yaws_deg)
    entries = []
    for i, label in enumerate(labels):
        name = f'img{i:04d}.png'
        PIL.Image.fromarray(rng.integers(0, 256, (resolution, resolution, 3), dtype=np.uint8)).save(os.path.join(path, name))
        entries.append([name, label.tolist()])
    with open(os.path.join(path, 'dataset.json'), 'w') as f:
        json.dump({'labels': entries}, f)
    return str(path)

# Records each call's conditioning and render cameras; the image depends on the render yaw and z.
class _RecordingG(torch.nn.Module):
    def __init__(self, img_resolution=16, shift=0.0):
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.shift = 8, 25, img_resolution, shift
        self.calls = []

    def forward(self, z, c, c_render=None, truncation_psi=1, **kwargs):
        self.calls.append((c.clone(), c_render.clone()))
        yaw, _ = cameras.yaw_pitch_from_label(c_render)
        base = torch.tanh(z[:, :3, None, None] * 0.3 + yaw[:, None, None, None] * 0.2 + self.shift)
        r = self.img_resolution
        ramp = torch.linspace(-0.5, 0.5, r)[None, None, :, None]
        return dict(image=(base + ramp).clamp(-1, 1).expand(-1, 3, r, r))

def test_run_metrics_back_split_protocol_and_results(tmp_path):
    data = _write_dataset(tmp_path / 'data', [0, 20, -40, 100, 150, -170, 180, -120])
    G = _RecordingG(img_resolution=32)  # dataset is 16^2: generated images are resized
    results = metric_main.run_metrics('fd_pixels,kd_pixels', G, data=data, split_list='back,front',
                                      cache_dir=str(tmp_path / 'cache'), num=12, batch=5, kid_subsets=5,
                                      workers=0)
    assert [(r['metric'], r['split']) for r in results] == [('fd_pixels', 'back'), ('fd_pixels', 'front'),
                                                             ('kd_pixels', 'back'), ('kd_pixels', 'front')]
    assert all(np.isfinite(r['value']) and r['num'] == 12 and r['detector'] == 'pixels' for r in results)
    json.dumps(results)  # plain data only

    # Generated features are shared between fd and kd: 3 + 3 batches in all (12 images in batches of 5, two splits).
    assert len(G.calls) == 6
    back_calls, front_calls = G.calls[:3], G.calls[3:]
    for c, c_render in back_calls:
        assert (cameras.yaw_pitch_from_label(c_render)[0].abs() >= math.pi / 2).all()
        assert cameras.yaw_pitch_from_label(c)[0].abs().max() < 1e-5
    for c, c_render in front_calls:
        assert torch.equal(c, c_render)
        assert (cameras.yaw_pitch_from_label(c_render)[0].abs() < math.pi / 2).all()

def test_run_metrics_rejects_bad_requests(tmp_path):
    G = _RecordingG()
    with pytest.raises(ValueError, match='unknown metric'):
        metric_main.run_metrics('fid,blah', G, data='x')
    with pytest.raises(ValueError, match='need a dataset'):
        metric_main.run_metrics('fd_pixels', G)
    with pytest.raises(ValueError, match='unknown metric option'):
        metric_main.run_metrics('fd_pixels', G, data='x', numm=3)
    with pytest.raises(ValueError, match='teacher'):
        metric_main.run_metrics('id_proxy', G)

def test_fid_without_inception_names_the_file(tmp_path):
    data = _write_dataset(tmp_path / 'data', [0, 10, 20])
    with pytest.raises(detectors.DetectorError, match='inception-2015-12-05.pkl'):
        metric_main.run_metrics('fid', _RecordingG(), data=data, cache_dir=str(tmp_path / 'cache'), num=4,
                                workers=0)

#----------------------------------------------------------------------------
# Real-set cache.

def test_real_feature_cache_hits_and_misses(tmp_path):
    data = _write_dataset(tmp_path / 'data', [0, 10, 20, 30, 120, 160])
    ds = ImageLabelDataset(data)
    det = detectors.load_detector('pixels')
    cache = str(tmp_path / 'cache')
    first, info1 = features.real_features(ds, det, 'front', cache_dir=cache)
    second, info2 = features.real_features(ds, det, 'front', cache_dir=cache)
    assert not info1['cache_hit'] and info2['cache_hit'] and np.array_equal(first, second)
    assert first.shape == (4, 768) and info1['cache_path'].endswith('.npz')
    with np.load(info1['cache_path'], allow_pickle=False) as f:
        assert set(f.files) == {'features', 'indices'}
    assert not features.real_features(ds, det, 'front', max_real=3, cache_dir=cache)[1]['cache_hit']
    assert not features.real_features(ds, det, 'back', cache_dir=cache)[1]['cache_hit']
    assert not features.real_features(ds, detectors.load_detector('randconv'), 'front', cache_dir=cache)[1]['cache_hit']

    # Changing the dataset (one more image) changes the key.
    more = _write_dataset(tmp_path / 'data', [0, 10, 20, 30, 120, 160, 40])
    assert not features.real_features(ImageLabelDataset(more), det, 'front', cache_dir=cache)[1]['cache_hit']

#----------------------------------------------------------------------------
# Identity scores.

# A generator whose faces differ from _RecordingG's for the same z (other colours, other layout).
class _OtherG(_RecordingG):
    def forward(self, z, c, c_render=None, **kwargs):
        image = torch.tanh(-3 * z[:, :3, None, None]) + torch.linspace(-0.3, 0.3, 16)[None, None, None, :]
        return dict(image=image.expand(-1, 3, 16, 16).clamp(-1, 1))

def test_identity_proxy_is_one_for_identical_generators_and_lower_otherwise():
    teacher, same, other = _RecordingG(), _RecordingG(), _OtherG()
    score_same = identity.identity_similarity(teacher, same, identity.pixel_embedding, num=6, batch=4)
    score_other = identity.identity_similarity(teacher, other, identity.pixel_embedding, num=6, batch=4)
    assert score_same == pytest.approx(1.0, abs=1e-5)
    assert score_other < 0.9
    # Both generators are rendered from the frontal camera.
    for c, c_render in teacher.calls:
        assert torch.equal(c, c_render) and cameras.yaw_pitch_from_label(c_render)[0].abs().max() < 1e-5

def test_face_model_loads_torchscript_and_reports_a_missing_file(tmp_path):
    with pytest.raises(detectors.DetectorError, match='arcface.pt'):
        identity.load_face_model(cache_dir=str(tmp_path))
    with _quiet():
        net = torch.jit.trace(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 112 * 112, 4)),
                              torch.zeros(1, 3, 112, 112))
        torch.jit.save(net, str(tmp_path / 'face.pt'))
        embed, digest = identity.load_face_model(str(tmp_path / 'face.pt'))
    assert embed(torch.zeros(2, 3, 112, 112)).shape == (2, 4)
    with _quiet():
        results = metric_main.run_metrics('id', _RecordingG(), teacher=_RecordingG(), face_model=str(tmp_path / 'face.pt'),
                                          id_num=3, batch=2)
    assert results[0]['label'] == 'ID' and results[0]['value'] == pytest.approx(1.0, abs=1e-5)
    assert results[0]['detector_digest'] == digest and results[0]['num'] == 3

#----------------------------------------------------------------------------
