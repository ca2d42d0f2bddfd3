"""Precision and recall (k-NN manifolds) on analytic feature sets, through the registry entry point, and the
registry itself (metrics register themselves by name)."""

import json
import os

import numpy as np
import PIL.Image
import pytest
import torch

from metrics import metric_main, precision_recall
from test_metrics import _write_dataset
from training import cameras

#----------------------------------------------------------------------------
# The k-NN manifold math.

def test_identical_sets_have_precision_and_recall_one():
    x = np.random.default_rng(0).normal(size=(200, 16))
    assert precision_recall.precision_recall(x, x.copy()) == (1.0, 1.0)

def test_disjoint_sets_have_precision_and_recall_zero():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(150, 8))
    gen = rng.normal(size=(120, 8)) + 50.0       # far outside every real ball and vice versa
    assert precision_recall.precision_recall(real, gen) == (0.0, 0.0)

def test_collapsed_generator_keeps_precision_and_loses_recall():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(400, 4))
    # Mode collapse: every generated sample is a small jitter around one real sample.
    gen = real[:1] + 0.01 * rng.normal(size=(300, 4))
    precision, recall = precision_recall.precision_recall(real, gen)
    assert precision == 1.0 and recall < 0.05
    # A blurry generator (samples pulled toward the mean, so inside a few real balls) keeps recall lower than a
    # faithful one, and a faithful one (a fresh sample of the same Gaussian) scores high on both.
    fresh = rng.normal(size=(400, 4))
    p_fresh, r_fresh = precision_recall.precision_recall(real, fresh)
    assert p_fresh > 0.8 and r_fresh > 0.8
    p_blur, r_blur = precision_recall.precision_recall(real, 0.2 * fresh)
    assert p_blur > 0.9 and r_blur < 0.5 * r_fresh

def test_radii_and_coverage_match_a_hand_computed_case():
    # 1D sets: real at 0, 1, 3, 7; k = 1 -> radii 1, 1, 2, 4 (nearest other point).
    real = torch.tensor([[0.0], [1.0], [3.0], [7.0]], dtype=torch.float64)
    assert precision_recall.manifold_radii(real, k=1).tolist() == [1.0, 1.0, 2.0, 4.0]
    # k = 2: 0 -> 3, 1 -> 2, 3 -> 3, 7 -> 6.
    assert precision_recall.manifold_radii(real, k=2).tolist() == [3.0, 2.0, 3.0, 6.0]
    # Generated at -2 (outside: 0's ball ends at -1), 2 (inside), 4.5 (inside 3's and 7's balls), 12 (outside).
    gen = np.array([[-2.0], [2.0], [4.5], [12.0]])
    assert precision_recall.manifold_coverage(torch.from_numpy(gen), real,
                                              precision_recall.manifold_radii(real, k=1)) == 0.5
    # Gen radii with k = 1: -2 -> 4, 2 -> 2.5, 4.5 -> 2.5, 12 -> 7.5; all four real points are covered.
    assert precision_recall.precision_recall(real.numpy(), gen, k=1) == (0.5, 1.0)

def test_blocked_computation_equals_one_block(monkeypatch):
    rng = np.random.default_rng(3)
    real, gen = rng.normal(size=(90, 5)), rng.normal(size=(70, 5)) * 1.3
    whole = precision_recall.precision_recall(real, gen)
    monkeypatch.setattr(precision_recall, 'CHUNK_ELEMENTS', 100)   # one or two rows per block
    assert precision_recall.precision_recall(real, gen) == whole

def test_bad_feature_sets_are_named():
    x = np.zeros((10, 4))
    with pytest.raises(ValueError, match='at least 4 samples'):
        precision_recall.precision_recall(x, x[:3])
    with pytest.raises(ValueError, match='dimension'):
        precision_recall.precision_recall(x, np.zeros((10, 5)))
    with pytest.raises(ValueError, match='NaN'):
        precision_recall.precision_recall(x, np.full((10, 4), np.nan))

#----------------------------------------------------------------------------
# Through run_metrics.

# Renders a constant-colour image per latent; spread 0 collapses every latent onto one image.
class _ColourG(torch.nn.Module):
    def __init__(self, spread=1.0):
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.spread = 4, 25, 16, spread
        self.calls = 0

    def forward(self, z, c, c_render=None, **kwargs):
        self.calls += 1
        colour = torch.tanh(self.spread * z[:, :3])
        return dict(image=colour[:, :, None, None].expand(-1, 3, 16, 16).contiguous())

def test_pr_results_have_two_parts_and_share_features_with_kd(tmp_path):
    data = _write_dataset(tmp_path / 'data', [0, 10, -20, 30, 5, -5, 15, 25])
    G = _ColourG()
    results = metric_main.run_metrics('kd_pixels,pr_pixels', G, data=data, cache_dir=str(tmp_path / 'cache'),
                                      num=12, batch=6, workers=0, kid_subsets=2)
    assert [(r['metric'], r['label'], r.get('part')) for r in results] == [
        ('kd_pixels', 'KD-pixels x100', None), ('pr_pixels', 'Precision-pixels', 'precision'),
        ('pr_pixels', 'Recall-pixels', 'recall')]
    assert all(0 <= r['value'] <= 1 and r['k'] == 3 and r['num'] == 12 for r in results[1:])
    assert G.calls == 2      # 12 images in batches of 6, rendered once for both metrics

# A dataset of flat-colour frontal images, colours drawn like _ColourG's (tanh of a normal).
def _write_colour_dataset(path, num=40, seed=0):
    os.makedirs(path, exist_ok=True)
    colours = np.tanh(np.random.default_rng(seed).normal(size=(num, 3)))
    label = cameras.make_label(torch.zeros(1), torch.zeros(1))[0].tolist()
    entries = []
    for i, colour in enumerate(colours):
        img = np.broadcast_to(((colour + 1) * 127.5).round().astype(np.uint8), (16, 16, 3))
        PIL.Image.fromarray(np.ascontiguousarray(img)).save(os.path.join(path, f'{i:03d}.png'))
        entries.append([f'{i:03d}.png', label])
    with open(os.path.join(path, 'dataset.json'), 'w') as f:
        json.dump({'labels': entries}, f)
    return str(path)

def test_collapsed_generator_has_lower_recall_end_to_end(tmp_path):
    data = _write_colour_dataset(tmp_path / 'data')
    kw = dict(data=data, cache_dir=str(tmp_path / 'cache'), num=40, workers=0)
    p_full, r_full = (r['value'] for r in metric_main.run_metrics('pr_pixels', _ColourG(spread=1.0), **kw))
    p_coll, r_coll = (r['value'] for r in metric_main.run_metrics('pr_pixels', _ColourG(spread=0.05), **kw))
    assert p_full > 0.7 and r_full > 0.7
    assert p_coll > 0.7 and r_coll < 0.25      # near-grey images only: real, but a sliver of the real set
    with pytest.raises(ValueError, match='pr_k'):
        metric_main.run_metrics('pr_pixels', _ColourG(), pr_k=0, **kw)

def test_pr_on_inception_needs_its_file(tmp_path):
    data = _write_dataset(tmp_path / 'data', [0, 10, 20])
    with pytest.raises(Exception, match='inception-2015-12-05'):
        metric_main.run_metrics('pr', _ColourG(), data=data, cache_dir=str(tmp_path / 'cache'), num=4, workers=0)

#----------------------------------------------------------------------------
# The registry.

def test_metrics_register_themselves_and_run_by_name(monkeypatch):
    monkeypatch.setattr(metric_main, 'METRICS', dict(metric_main.METRICS))
    seen = []

    @metric_main.register_metric('const_{net}', 'Const-{net}', 'const', nets=('a', 'b'))
    def _const(run, spec, split):
        seen.append(spec.name)
        return dict(value=len(spec.detector), num=1, detector=spec.detector, extra_key=7)

    with pytest.raises(ValueError, match='registered twice'):
        metric_main.register_metric('const_{net}', 'x', 'const', nets=('a',))(_const)
    monkeypatch.setattr(metric_main._Run, 'prepare', lambda self, specs, det, face: None)  # no network files
    results = metric_main.run_metrics('const_b', _ColourG())
    assert seen == ['const_b']
    assert results[0]['label'] == 'Const-b' and results[0]['value'] == 1.0 and results[0]['extra_key'] == 7
    assert list(results[0])[:9] == ['metric', 'label', 'split', 'value', 'num', 'detector', 'detector_digest',
                                    'time', 'timestamp']

def test_registry_holds_every_documented_metric():
    expected = {'fid', 'kid', 'pr', 'id', 'id_proxy', 'fidelity', 'consistency3d', 'backview', 'backview_nr', 'mirror'}
    for net in ('pixels', 'randconv'):
        expected |= {f'fd_{net}', f'kd_{net}', f'pr_{net}'}
    assert set(metric_main.METRICS) == expected
    assert all(spec.compute is not None for spec in metric_main.METRICS.values())
    assert metric_main.METRICS['fid'].kind == 'fd' and metric_main.METRICS['kd_randconv'].kind == 'kd'

#----------------------------------------------------------------------------
# Frontal fidelity: the same-z score against the different-z baseline and the real pairs.

# A face whose layout depends on z: tanh of a z-weighted sum of fixed random patterns; `other` > 0 mixes in a
# second pattern set (a student that keeps only part of the teacher's face).
class _PatternG(torch.nn.Module):
    def __init__(self, other=0.0):
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.other = 4, 25, 16, other
        gen = torch.Generator().manual_seed(0)
        self.patterns = torch.randn([2, 4, 3, 16, 16], generator=gen)

    def forward(self, z, c, c_render=None, **kwargs):
        mix = (1 - self.other) * self.patterns[0] + self.other * self.patterns[1]
        return dict(image=torch.tanh(torch.einsum('nk,kchw->nchw', z, mix)))

def test_fidelity_same_z_beats_other_z_and_real_pairs_are_read_from_folders(tmp_path):
    from test_metrics_backview import _write_heads
    data = _write_heads(tmp_path / 'heads', ids=4)
    kw = dict(teacher=_PatternG(), data=data, id_num=8, batch=3)
    same = {r['part']: r for r in metric_main.run_metrics('fidelity', _PatternG(), **kw)}
    assert set(same) in ({'id_proxy', 'psnr'}, {'id_proxy', 'psnr', 'lpips'})
    assert same['id_proxy']['value'] == pytest.approx(1.0, abs=1e-5) and same['psnr']['value'] > 80
    assert same['id_proxy']['baseline'] < 0.5 and same['psnr']['baseline'] < 20
    # A student that keeps part of the face: between the two, and its ID-proxy is id_proxy's value.
    part = {r['part']: r for r in metric_main.run_metrics('fidelity', _PatternG(other=0.5), **kw)}
    proxy = metric_main.run_metrics('id_proxy', _PatternG(other=0.5), teacher=_PatternG(), id_num=8, batch=3)
    assert part['id_proxy']['value'] == pytest.approx(proxy[0]['value'], abs=1e-6)
    assert same['id_proxy']['baseline'] < part['id_proxy']['value'] < 0.99
    assert part['psnr']['baseline'] == pytest.approx(same['psnr']['baseline'])    # the baseline is the teacher's
    # Real pairs: two frontal views of one identity share its tint, so they score above two identities.
    assert same['psnr']['real_value'] > same['psnr']['real_baseline']
    assert same['id_proxy']['real_value'] == part['id_proxy']['real_value']       # real values do not depend on G
    # Without a multi-view dataset the real values are absent; with too few identities the error says why.
    assert metric_main.run_metrics('fidelity', _PatternG(), teacher=_PatternG(), id_num=2)[0]['real_value'] is None
    with pytest.raises(ValueError, match='2 identities'):
        metric_main.run_metrics('fidelity', _PatternG(), teacher=_PatternG(), id_num=2,
                                data=_write_heads(tmp_path / 'one', ids=1))

#----------------------------------------------------------------------------
