"""The back-view metric: a mirror face scores 0 on the back split, a dim one too, a head with hair at the back
scores 1; the real views' held-out accuracy is reported beside it; bad data gets a clear error."""

import json
import math
import os

import numpy as np
import PIL.Image
import pytest
import torch

from metrics import backview, metric_main
from training import cameras
from training.networks import PRESETS, TriPlaneGenerator

RES = 16

# A face: light skin with two dark eyes and a mouth; hair: dark brown strands (vertical stripes) all over. tint
# varies per identity. A dim face is a face darkened to about the hair's colour, as a face teacher renders its
# mirror face from behind.
def _face(tint):
    img = np.full((RES, RES, 3), [200, 160, 130], dtype=np.float32) + tint
    img[:3] = [60, 40, 30]                      # fringe
    img[6:8, 4:6] = img[6:8, 10:12] = 20        # eyes
    img[11:12, 5:11] = [150, 40, 40]            # mouth
    return img

def _hair(tint):
    img = np.full((RES, RES, 3), [70, 45, 30], dtype=np.float32) + tint
    img[:, ::3] -= 25                           # strands
    return img

def _dim_face(tint):
    return 0.35 * _face(tint)

# One folder per identity with views at the given yaws (hair from behind, a face otherwise).
def _write_heads(path, ids=6, yaws=(0, 20, -25, 90, 160, -170, 180), seed=0):
    rng = np.random.default_rng(seed)
    entries = []
    for i in range(ids):
        tint = rng.uniform(-20, 20, 3)
        for j, yaw in enumerate(yaws):
            img = _hair(tint) if abs(yaw) >= 120 else _face(tint)
            img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
            name = f'id{i:03d}/view{j:02d}.png'
            os.makedirs(os.path.join(path, os.path.dirname(name)), exist_ok=True)
            PIL.Image.fromarray(img).save(os.path.join(path, name))
            label = cameras.make_label(torch.tensor([math.radians(yaw)]), torch.zeros(1))[0]
            entries.append([name, label.tolist()])
    with open(os.path.join(path, 'dataset.json'), 'w') as f:
        json.dump({'labels': entries}, f)
    return str(path)

# A test double with the tri-plane generator's interface: renders a face from the front and, from behind, hair
# (mode 'head'), the same face again (mode 'mirror'), the face darkened to the hair's colour (mode 'dim_mirror'),
# a blank image (mode 'blank'), or the face for latents with z[0] > 0 and dark hair for the others (mode
# 'light_mirror').
# Records the mapping's conditioning and the render cameras.
class _HeadG(torch.nn.Module):
    def __init__(self, mode):
        super().__init__()
        self.mode, self.z_dim, self.c_dim, self.img_resolution = mode, 4, 25, RES
        self.cond, self.renders = [], []

    def mapping(self, z, c, truncation_psi=1, **kwargs):
        self.cond.append(c.clone())
        return z[:, None, :]

    def synthesis_planes(self, ws, noise_mode='const'):
        return ws

    def render_planes(self, planes, ws, c_render, render_overrides=None, **kwargs):
        self.renders.append(c_render.clone())
        yaw, _ = cameras.yaw_pitch_from_label(c_render)
        back = dict(head=_hair, mirror=_face, dim_mirror=_dim_face, blank=lambda t: np.full((RES, RES, 3), 255.0))
        if self.mode == 'light_mirror':          # the face behind where z[0] > 0 (a light back), hair elsewhere
            imgs = [((_face(0) if float(p[0, 0]) > 0 else _hair(-30)) if abs(float(y)) > math.pi / 2 else _face(0))
                    for p, y in zip(planes, yaw)]
        else:
            imgs = [(back[self.mode](0) if abs(float(y)) > math.pi / 2 else _face(0)) for y in yaw]
        x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2) / 127.5 - 1
        return dict(image=x + 0.01 * planes[:, 0, :1, None, None])

def test_real_views_are_classified_with_each_identity_held_out(tmp_path):
    ref = backview.reference_views(_write_heads(tmp_path / 'heads'))
    # |yaw| <= 30 front (3 per id), >= 150 back (3 per id); the 90-degree view is in neither class.
    assert (ref['num_front'], ref['num_back']) == (18, 18)
    assert int(ref['groups'].max()) + 1 == 6
    assert backview.real_rates(ref) == (1.0, 1.0)
    # Held out by identity: with every reference in one group there is nothing left to vote.
    lonely = dict(ref, groups=torch.zeros_like(ref['groups']))
    with pytest.raises(ValueError, match='no reference view outside its own group'):
        backview.real_rates(lonely)
    # Two identities with one front and one back view each: one voter of each class is left per query.
    small = backview.reference_views(_write_heads(tmp_path / 'small', ids=2, yaws=(0, 180)))
    assert backview.real_rates(small) == (1.0, 1.0)

# dim_mirror: with colour features (RGB pooled to 8x8, the earlier version) the dark face voted as dark hair.
@pytest.mark.parametrize('mode, front, back', [('head', 1.0, 1.0), ('mirror', 1.0, 0.0), ('dim_mirror', 1.0, 0.0),
                                               ('blank', 1.0, 0.0)])
def test_mirror_face_scores_zero_and_a_back_of_head_one(tmp_path, mode, front, back):
    data = _write_heads(tmp_path / 'heads')
    G = _HeadG(mode)
    results = metric_main.run_metrics('backview', G, data=data, split_list='all,front,back', num=10, batch=4)
    values = {r['split']: r['value'] for r in results}
    assert values == {'all': (front + back) / 2, 'front': front, 'back': back}
    assert all(r['real_value'] == 1.0 and r['num'] == 10 and r['label'] == 'View accuracy (kNN)' for r in results)
    json.dumps(results)
    # One mapping call per batch (3 batches for 10 latents), conditioned on the frontal pose; renders at 0 and 180.
    assert len(G.cond) == 3 and len(G.renders) == 6
    assert all(cameras.yaw_pitch_from_label(c)[0].abs().max() < 1e-5 for c in G.cond)
    yaws = torch.cat([cameras.yaw_pitch_from_label(c)[0] for c in G.renders]).abs()
    assert torch.allclose(yaws[yaws < 1], torch.zeros(1), atol=1e-5)
    assert torch.allclose(yaws[yaws > 1], torch.full([1], math.pi), atol=1e-5) and (yaws > 1).sum() == 10

def test_missing_views_and_missing_data_are_named(tmp_path):
    G = _HeadG('head')
    front_only = _write_heads(tmp_path / 'front', yaws=(0, 10, -20))
    with pytest.raises(ValueError, match='needs real back views'):
        metric_main.run_metrics('backview', G, data=front_only, num=4)
    with pytest.raises(ValueError, match='need a dataset'):
        metric_main.run_metrics('backview', G, num=4)

def test_backview_runs_on_a_real_tri_plane_generator(tmp_path):
    data = _write_heads(tmp_path / 'heads', ids=3)
    torch.manual_seed(0)
    G = TriPlaneGenerator(**{**PRESETS['tiny']['G'], 'img_resolution': 32, 'plane_resolution': 16,
                             'channel_base': 256, 'channel_max': 16, 'sr_input_resolution': 16,
                             'sr_channels': [16, 16], 'neural_rendering_resolution': 16}).eval()
    front, back = backview.generator_rates(G, backview.reference_views(data), num=3, batch=2)
    for rate in (front, back):                  # a fraction of the 3 renders of each yaw
        assert 0 <= rate <= 1 and rate * 3 == pytest.approx(round(rate * 3), abs=1e-5)

#----------------------------------------------------------------------------
# Mirror-face similarity: the same renders as backview; a mirror face (bright or dim) repeats the latent's own face
# behind (about 1), a back of hair does not; the real same-identity pairs are the reference.

@pytest.mark.parametrize('mode, high', [('mirror', True), ('dim_mirror', True), ('head', False)])
def test_mirror_similarity_is_high_for_a_mirror_face_and_low_for_hair(tmp_path, mode, high):
    data = _write_heads(tmp_path / 'heads')
    G = _HeadG(mode)
    results = metric_main.run_metrics('backview,mirror', G, data=data, split_list='back', num=10, batch=4)
    assert [r['metric'] for r in results] == ['backview', 'mirror']
    assert len(G.renders) == 6                  # one set of yaw-0 / yaw-180 renders serves both metrics
    m = results[1]
    assert m['label'] == 'Mirror-face similarity' and m['num'] == 10 and m['split'] is None
    assert (m['value'] > 0.99) if high else (abs(m['value']) < 0.3)
    # every latent renders the same face here, so another latent's face is as similar as its own
    assert m['other_z'] == pytest.approx(m['value'], abs=1e-5)
    # real pairs: yaw 0 with yaw -170 and 180 of each of the 6 identities, hair behind: low, like other identities
    assert m['real_pairs'] == 12 and abs(m['real_value']) < 0.3 and abs(m['real_other']) < 0.3
    # face behind: the share of latents above the real pairs' 90th percentile (all of them for a mirror face)
    assert m['real_p90'] < 0.3 and m['face_rate'] == (1.0 if high else 0.0)
    json.dumps(results)

def test_face_behind_is_split_into_light_and_dark_backs(tmp_path):
    data = _write_heads(tmp_path / 'heads')
    G = _HeadG('light_mirror')
    m = metric_main.run_metrics('mirror', G, data=data, num=12, batch=5)[0]
    z = backview.draw_z(G, 12, 0)
    light = (z[:, 0] > 0).float()                # these latents show the (skin-coloured, light) face behind
    assert 0 < light.mean() < 1
    assert m['light_share'] == pytest.approx(float(light.mean())) and m['face_rate'] == pytest.approx(float(light.mean()))
    assert m['face_rate_light'] == 1.0 and m['face_rate_dark'] == 0.0
    # the real backs (hair of 6 tinted identities): a third is above the cut, and all are darker than a face
    assert m['real_light_share'] == pytest.approx(1 / 3, abs=0.1) and m['real_light_cut'] < float(
        backview.back_brightness(torch.from_numpy(_face(0)).permute(2, 0, 1)[None] / 127.5 - 1))
    assert m['real_face_rate_light'] is not None and m['real_face_rate_dark'] is not None
    # no light back at all: that side's rate is None, not 0
    none = backview.split_face_rates(torch.tensor([0.9, 0.1]), torch.tensor([-0.5, -0.6]), 0.3, 0.0)
    assert none == dict(light_share=0.0, face_rate_light=None, face_rate_dark=0.5)
    json.dumps(m)

def test_mirror_features_and_the_flip():
    face = torch.from_numpy(_face(0)).permute(2, 0, 1)[None] / 127.5 - 1
    asym = face.clone()
    asym[..., 6:8, 4:6] = 1.0                   # one eye gone: no longer left-right symmetric
    f = backview.mirror_features(asym)
    assert f.shape == (1, backview.RES ** 2)
    # the view from behind shows the face flipped left-right: the flipped image matches, the unflipped one less
    same = backview.mirror_similarity(f, backview.mirror_features(asym.flip(-1)))
    unflipped = backview.mirror_similarity(f, f)
    assert same.item() == pytest.approx(1.0, abs=1e-5) and unflipped.item() < 0.9
    # a face showing through with inverted contrast (dark where the front is bright) is a face too
    inverted = backview.mirror_similarity(f, backview.mirror_features(-asym.flip(-1)))
    assert inverted.item() == pytest.approx(1.0, abs=1e-5)
    # a flat image has no structure: similarity 0, not NaN
    flat = backview.mirror_features(torch.zeros(1, 3, RES, RES))
    assert backview.mirror_similarity(f, flat).item() == 0.0

def test_the_upper_reading_ignores_the_neck_outline_that_front_and_back_share():
    R = backview.RES
    # a front: eyes in the upper part, a neck outline (bright corners) in the bottom quarter; a clean back: the same
    # neck outline, no eyes; a mirror-face back: the eyes as well
    front = torch.full((1, 3, 64, 64), -0.2)
    front[..., 22:26, 24:28] = front[..., 22:26, 36:40] = -1.0     # eyes (crop rows 6-9)
    front[..., 44:48, 16:22] = front[..., 44:48, 42:48] = 1.0      # neck corners (crop rows 28-31)
    clean = front.clone()
    clean[..., 22:26, 24:28] = clean[..., 22:26, 36:40] = -0.2
    f, c, m = (backview.mirror_features(x) for x in (front, clean.flip(-1), front.flip(-1)))
    assert backview.MIRROR_UPPER_ROWS < R
    assert backview.mirror_similarity(f, c).item() > 0.3            # the full crop: the shared outline reads as a face
    assert backview.mirror_similarity(f, c, rows=backview.MIRROR_UPPER_ROWS).item() < 0.05
    assert backview.mirror_similarity(f, m, rows=backview.MIRROR_UPPER_ROWS).item() == pytest.approx(1.0, abs=1e-5)

def test_the_mirror_metric_gives_the_upper_reading_with_its_own_real_threshold(tmp_path):
    data = _write_heads(tmp_path / 'heads')
    m = metric_main.run_metrics('mirror', _HeadG('mirror'), data=data, num=10, batch=4)[0]
    assert m['upper_face_rate'] == 1.0 and m['upper_value'] > 0.99
    assert m['real_upper_p90'] < 0.5 and m['real_upper_value'] < 0.5    # hair behind on the real pairs
    assert m['upper_face_rate_light'] is not None or m['upper_face_rate_dark'] is not None
    h = metric_main.run_metrics('mirror', _HeadG('head'), data=data, num=10, batch=4)[0]
    assert h['upper_face_rate'] == 0.0 and abs(h['upper_value']) < 0.3

def test_real_pairs_need_identity_folders_and_views_near_0_and_180(tmp_path):
    one_folder = _write_heads(tmp_path / 'one', ids=1)
    real, note = backview.real_mirror(one_folder)
    assert real is None and 'one folder' in note
    no_pairs = _write_heads(tmp_path / 'far', yaws=(0, 20, 160))
    real, note = backview.real_mirror(no_pairs)
    assert real is None and 'within 15 degrees of yaw 180' in note
    # the metric still gives the generator's value, and says why the reference is missing
    m = metric_main.run_metrics('mirror', _HeadG('mirror'), data=no_pairs, num=4)[0]
    assert m['value'] > 0.99 and m['real_value'] is None and 'within 15 degrees' in m['real_note']

# backview_nr: the same classifier with the real views and the renders resampled through the generator's rendering
# resolution (neural_rendering_resolution / img_resolution of their size); one set of renders serves both readings.
@pytest.mark.parametrize('mode, back', [('head', 1.0), ('mirror', 0.0)])
def test_the_rendering_resolution_reading_resamples_both_sides(tmp_path, mode, back):
    data = _write_heads(tmp_path / 'heads')
    G = _HeadG(mode)
    G.neural_rendering_resolution = RES // 2
    results = metric_main.run_metrics('backview,backview_nr', G, data=data, split_list='back', num=6, batch=3)
    full, nr = results
    assert (full['metric'], nr['metric']) == ('backview', 'backview_nr') and len(G.renders) == 4   # rendered once
    assert nr['value'] == back and nr['fraction'] == 0.5 and nr['real_value'] == 1.0
    assert nr['label'] == 'View accuracy (kNN) at the rendering resolution' and 'resampled through 0.5' in nr['detector']
    # the reading's reference: the real views' features after resampling through 8 of their 16 px
    ref = backview.reference_views(data, fraction=0.5)
    ds_views = backview.reference_views(data)
    assert not torch.allclose(ref['features'], ds_views['features'])
    assert torch.equal(ref['is_back'], ds_views['is_back']) and ref['fraction'] == 0.5
    with pytest.raises(ValueError, match='fraction must be in'):
        backview.reference_views(data, fraction=1.5)
    # a generator without super-resolution reads at full resolution: both readings agree
    G2 = _HeadG(mode)
    a, b = metric_main.run_metrics('backview,backview_nr', G2, data=data, split_list='back', num=6, batch=3)
    assert a['value'] == b['value'] and 'resampled' not in b['detector']

def test_resample_keeps_the_size_and_drops_detail_finer_than_its_resolution():
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing='ij')
    stripes = ((xx % 2) * 2 - 1).float().expand(1, 3, 32, 32)
    assert backview.resample(stripes, 8).abs().max() < 0.1 and backview.resample(stripes, 8).shape == stripes.shape
    assert torch.equal(backview.resample(stripes, 32), stripes)
    assert backview.matched_res(64, 0.5) == 32 and backview.matched_res(64, None) is None and backview.matched_res(4, 0.1) == 2

# generator_views reads every render twice: as it is against the full-resolution reference, and resampled through
# the matched reference's fraction against that one (a spy on view_features records what each render went through).
def test_generator_views_reads_each_render_at_both_resolutions(tmp_path, monkeypatch):
    data = _write_heads(tmp_path / 'heads')
    ref, ref_nr = backview.reference_views(data), backview.reference_views(data, fraction=0.5)
    seen, original = [], backview.view_features
    monkeypatch.setattr(backview, 'view_features', lambda images, fraction=None: seen.append(fraction) or original(images, fraction))
    views = backview.generator_views(_HeadG('mirror'), ref, 6, batch=3, matched=ref_nr)
    assert seen == [None, 0.5] * 4                  # 2 batches x yaw 0 / 180, each at full and matched resolution
    assert views['back_matched'] == 0.0 and views['back_prob_matched'].shape == (6,)
    # without a matched reference the renders are read once and no matched key is returned
    seen.clear()
    assert 'back_matched' not in backview.generator_views(_HeadG('mirror'), ref, 6, batch=3) and seen == [None] * 4
    # and view_features at a fraction is the features of the resampled images
    img = torch.from_numpy(_face(0)).permute(2, 0, 1)[None] / 127.5 - 1
    assert torch.equal(original(img, 0.5), original(backview.resample(img, RES // 2)))
    assert not torch.equal(original(img, 0.5), original(img))
