# Training losses of every stage: random backbone noise while training (EG3D's loss does the same), constant noise
# when sampling; eq. 10 is the lambda-weighted sum of its logged terms.

import copy

import pytest
import torch

from test_head3d import BACK_YAWS, FACE_YAWS, _batch, _images, _labels, _loss, _perturbed
from training import cameras
from training.losses import Phase
from training.losses.eg3d import EG3DLoss
from training.losses import head3d
from training.losses.head3d import EG3DTwoSetLoss
from training.networks import build_preset
from training.networks.stylegan2 import SynthesisLayer

# Nets a few times smaller than test_head3d's (the sizes of tests/_world.py SMALL): these tests count calls and sums.
@pytest.fixture(scope='module')
def tiny():
    torch.manual_seed(0)
    G_small = dict(img_resolution=32, plane_resolution=16, channel_base=256, channel_max=16, z_dim=16, w_dim=16,
                   sr_input_resolution=16, sr_channels=[16, 16], neural_rendering_resolution=16,
                   rendering_kwargs=dict(ray_start=2.25, ray_end=3.3, box_warp=1.0, depth_resolution=6,
                                         depth_resolution_importance=6))
    D_small = dict(img_resolution=32, channel_base=256, channel_max=16)
    teacher, D_front = build_preset('tiny', G_overrides=G_small, D_overrides=D_small)
    _, D_back = build_preset('tiny', G_overrides=G_small, D_overrides=D_small)
    teacher.eval().requires_grad_(False)
    return dict(teacher=teacher, D_front=D_front, D_back=D_back)

#----------------------------------------------------------------------------
# Record the noise_mode of every backbone SynthesisLayer call (the SR keeps its own sr_noise_mode, as in EG3D).

@pytest.fixture
def noise_modes(monkeypatch):
    seen = []
    forward = SynthesisLayer.forward
    def spy(self, x, w, noise_mode='random', **kwargs):
        if getattr(self, 'use_noise', False) and self.resolution > 0:
            seen.append((id(self), noise_mode))
        return forward(self, x, w, noise_mode=noise_mode, **kwargs)
    monkeypatch.setattr(SynthesisLayer, 'forward', spy)
    return seen

def _backbone_modes(seen, *gens):
    ids = {id(m) for G in gens for m in G.backbone.modules() if isinstance(m, SynthesisLayer)}
    return [mode for i, mode in seen if i in ids]

def _eg3d_loss(tiny, cls=EG3DLoss, main_yaws=FACE_YAWS, **kwargs):
    G = _perturbed(tiny['teacher'])
    D = copy.deepcopy(tiny['D_front']).requires_grad_(True)
    pools = dict(main=_labels(main_yaws), faces=_labels(FACE_YAWS), heads=_labels(BACK_YAWS))
    loss = cls(dict(G=G, D=D), {}, pools, r1_gamma=1, density_reg=0.25, blur_init_sigma=0, nr_initial=16,
               density_reg_points=16, **kwargs)
    return loss, G

@pytest.mark.parametrize('stage', ['eg3d', 'two_set', 'head3d'])
def test_every_training_phase_uses_random_noise(tiny, noise_modes, stage):
    if stage == 'head3d':
        loss, nets = _loss(tiny, _perturbed(tiny['teacher']), density_reg=0.25)
        G, gens, batch = nets['G'], (nets['G'], tiny['teacher']), _batch()
    else:
        loss, G = _eg3d_loss(tiny, EG3DLoss if stage == 'eg3d' else EG3DTwoSetLoss)
        gens = (G,)
        labels = _labels(FACE_YAWS[:2])
        batch = dict(main=(_images(labels), labels), faces=(_images(labels), labels),
                     heads=(_images(_labels(BACK_YAWS[:2])), _labels(BACK_YAWS[:2])))
    phases = [p for p in loss.phases() if p.name in ('Gmain', 'Greg', 'Dmain', 'D_front_main', 'D_back_main')]
    assert len(phases) == (4 if stage == 'head3d' else 3)         # R1 phases run D only
    for phase in phases:
        noise_modes.clear()
        loss.accumulate_gradients(phase, batch, phase.interval, cur_nimg=0)
        modes = _backbone_modes(noise_modes, *gens)
        assert modes and set(modes) == {'random'}, (phase.name, set(modes))
    # sampling (generate, metrics, the loop's grids) stays deterministic: const noise by default
    noise_modes.clear()
    with torch.no_grad():
        G(torch.randn(1, G.z_dim), _labels([0.0]))
    assert set(_backbone_modes(noise_modes, G)) == {'const'}

def test_teacher_and_student_share_the_noise_draw(tiny):
    # a student equal to the teacher distils to exactly zero even though both draw random noise
    loss, _ = _loss(tiny, copy.deepcopy(tiny['teacher']).requires_grad_(True), lambda_gan_front=0, lambda_gan_back=0)
    terms = loss.accumulate_gradients(Phase('Gmain', 'G'), _batch(), 1, 0)
    assert terms['Loss/G/kd'].item() == 0 and terms['Loss/G/map'].item() == 0

#----------------------------------------------------------------------------
# Eq. 10: L_G = sum_k lambda_k L_k over the active terms. Distinct lambdas, so that swapping two of them in the code
# (or logging one term under another's name) changes the total.

class StubPerceptual(torch.nn.Module):
    log_name = 'lpips_stub'     # a cheap stand-in for LPIPS (building VGG16 takes seconds): a per-sample distance
    def forward(self, a, b):
        return (a - b).square().flatten(1).mean(1) * 0.37

def test_eq10_total_is_the_lambda_weighted_sum(tiny, monkeypatch):
    monkeypatch.setattr(head3d, 'build_perceptual', lambda *args, **kwargs: StubPerceptual())
    lambdas = dict(kd=0.5, map=2.0, rgb=3.0, lpips=5.0, gan_front=7.0, gan_back=11.0)
    torch.manual_seed(0)
    loss, _ = _loss(tiny, _perturbed(tiny['teacher'], scale=0.2), perceptual=StubPerceptual(), face_yaws=[0.0, 10.0],
                    **{f'lambda_{k}': v for k, v in lambdas.items()})
    terms = loss.accumulate_gradients(Phase('Gmain', 'G'), _batch(2), 1, 0)
    names = dict(kd='Loss/G/kd', map='Loss/G/map', rgb='Loss/G/rgb', lpips='Loss/G/lpips_stub',
                 gan_front='Loss/G/gan_front', gan_back='Loss/G/gan_back')
    values = {k: terms[n].item() for k, n in names.items()}
    assert all(v > 0 for v in values.values()), values
    # the terms differ enough that any swap of two lambdas moves the total by more than the tolerance
    expected = sum(lambdas[k] * values[k] for k in lambdas)
    for a in lambdas:
        for b in lambdas:
            if a < b:
                swapped = expected + (lambdas[b] - lambdas[a]) * (values[a] - values[b])
                assert abs(swapped - expected) > 1e-4 * abs(expected), (a, b)
    assert terms['Loss/G/total'].item() == pytest.approx(expected, rel=1e-5)

#----------------------------------------------------------------------------
# cond_pose 'front' (head_ft option): fakes are rendered from every camera of the pool, front and back, but the
# mapping is conditioned on front views only; 'render' keeps EG3D's conditioning (the render camera, GPC swap).

@pytest.mark.parametrize('cls', [EG3DLoss, EG3DTwoSetLoss])
def test_front_conditioning_draws_front_views_for_every_render_camera(tiny, monkeypatch, cls):
    loss, G = _eg3d_loss(tiny, cls, main_yaws=FACE_YAWS + BACK_YAWS, cond_pose='front')
    yaw_of = lambda c: cameras.yaw_pitch_from_label(c)[0].rad2deg().abs()
    torch.manual_seed(0)
    c, c_cond = loss._cameras(64, cur_nimg=0)
    assert (yaw_of(c) > 90).any() and (yaw_of(c) <= 90).any()       # both sides are rendered ...
    assert (yaw_of(c_cond) <= 90 + 1e-4).all()                       # ... all conditioned on front views
    seen = []
    mapping = G.mapping
    monkeypatch.setattr(G, 'mapping', lambda z, c, **kw: seen.append(c.clone()) or mapping(z, c, **kw))
    labels = _labels(BACK_YAWS[:2])
    batch = dict(main=(_images(labels), labels), faces=(_images(labels), labels), heads=(_images(labels), labels))
    loss.accumulate_gradients(Phase('Gmain', 'G'), batch, 1, cur_nimg=0)
    assert seen and all((yaw_of(c) <= 90 + 1e-4).all() for c in seen)
    # EG3D's default conditions on the render camera (no swap once gpc_reg_prob is 0 and its fade is over)
    loss, _ = _eg3d_loss(tiny, cls, main_yaws=FACE_YAWS + BACK_YAWS, gpc_reg_prob=0.0, gpc_reg_fade_kimg=0.0)
    c, c_cond = loss._cameras(16, cur_nimg=0)
    assert torch.equal(c, c_cond)

def test_front_conditioning_rejects_bad_values(tiny):
    with pytest.raises(ValueError, match=r"loss.cond_pose must be 'render' or 'front', got 'side'"):
        _eg3d_loss(tiny, cond_pose='side')
    G = _perturbed(tiny['teacher'])
    D = copy.deepcopy(tiny['D_front'])
    with pytest.raises(ValueError, match=r"cond_pose front: data set 'main' has no front-view labels"):
        EG3DLoss(dict(G=G, D=D), {}, dict(main=_labels(BACK_YAWS)), cond_pose='front')
