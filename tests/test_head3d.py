# Head3D stage: distillation terms, the yaw window, the frozen teacher, dual-discriminator routing, the perceptual
# network built offline, the xy-plane swap wrapper, and the presets run end to end through train.py.

import copy
import math

import pytest
import torch
from _scripts import load_program

from training import cameras
from training.losses import Phase
from training.losses import head3d
from training.losses.perceptual import PerceptualDistance, PerceptualError, VGG16_FILE, build_perceptual
from training.networks import build_preset
from training.networks.plane_swap import XYSwapGenerator, build_xy_swap

#----------------------------------------------------------------------------
# Small fixtures: tiny nets with random init, and camera pools of known yaw.

def _labels(yaw_deg):
    yaw = torch.tensor(yaw_deg, dtype=torch.float32).deg2rad()
    return cameras.make_label(yaw, torch.zeros_like(yaw))

FACE_YAWS = [-30.0, -10.0, 0.0, 15.0, 35.0]
BACK_YAWS = [120.0, 150.0, 180.0, -140.0, -100.0]

def _images(labels, res=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand([len(labels), 3, res, res], generator=g) * 2 - 1

@pytest.fixture(scope='module')
def tiny():
    torch.manual_seed(0)
    G_small = dict(img_resolution=32, plane_resolution=32, sr_input_resolution=16, neural_rendering_resolution=16,
                   rendering_kwargs=dict(ray_start=2.25, ray_end=3.3, box_warp=1.0, depth_resolution=6,
                                         depth_resolution_importance=6))
    teacher, D_front = build_preset('tiny', G_overrides=G_small, D_overrides=dict(img_resolution=32))
    _, D_back = build_preset('tiny', G_overrides=G_small, D_overrides=dict(img_resolution=32))
    teacher.eval().requires_grad_(False)
    return dict(teacher=teacher, D_front=D_front, D_back=D_back)

@pytest.fixture(scope='module')
def randtrunk():
    return build_perceptual('lpips_vgg_randtrunk')

def _perturbed(G, scale=0.05, seed=1):
    G = copy.deepcopy(G).requires_grad_(True)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale * (p.std() if p.numel() > 1 else 1))
    return G

def _loss(tiny, student, face_yaws=FACE_YAWS, back_yaws=BACK_YAWS, perceptual=None, single_d=False, template=None,
          **kwargs):
    nets = dict(G=student, G_ema=copy.deepcopy(student))
    if single_d:
        nets['D'] = copy.deepcopy(tiny['D_front'])
    else:
        nets.update(D_front=copy.deepcopy(tiny['D_front']), D_back=copy.deepcopy(tiny['D_back']))
    for name in ('D', 'D_front', 'D_back'):
        if name in nets:
            nets[name].requires_grad_(True)
    kwargs.setdefault('density_reg', 0)
    if perceptual is None:
        kwargs.setdefault('lambda_lpips', 0)
        kwargs.setdefault('perceptual', 'none')
    else:
        kwargs.setdefault('perceptual', 'lpips_vgg_randtrunk')
    frozen = dict(teacher=tiny['teacher'], **(dict(template=template) if template is not None else {}))
    loss = head3d.Head3DLoss(nets, frozen,
                             dict(faces=_labels(face_yaws), heads=_labels(back_yaws)), **kwargs)
    if perceptual is not None:
        loss.perceptual = perceptual  # share the module-scoped frozen net (building VGG16 takes seconds)
    return loss, nets

def _batch(n=2):
    faces, heads = _labels(FACE_YAWS[:n]), _labels(BACK_YAWS[:n])
    return dict(faces=(_images(faces), faces), heads=(_images(heads, seed=1), heads))

def _zero_grads(*modules):
    for m in modules:
        for p in m.parameters():
            p.grad = None

#----------------------------------------------------------------------------
# Term functions (eq. 5, 7, 8).

def test_kd_xy_only_vs_all_planes():
    a = torch.zeros(2, 3, 4, 8, 8)
    b = a.clone()
    b[:, 1:] = 1.0                                  # differ only outside the XY plane
    assert torch.all(head3d.kd_loss(a, b) == 0)
    assert torch.allclose(head3d.kd_loss(a, b, all_planes=True), torch.full([2], 2 / 3))
    b[:, 0] = 2.0
    assert torch.allclose(head3d.kd_loss(a, b), torch.full([2], 4.0))

def test_template_anchor_compares_only_xz_and_yz():
    a = torch.zeros(2, 3, 4, 8, 8)
    b = a.clone()
    b[:, 0] = 5.0                                   # the xy plane is eq. 5's business, not the anchor's
    assert torch.all(head3d.tpl_loss(a, b) == 0)
    b[:, 2] = 1.0
    assert torch.allclose(head3d.tpl_loss(a, b), torch.full([2], 0.5))

def test_template_anchor_needs_its_template_and_pulls_toward_it(tiny):
    student = _perturbed(tiny['teacher'])
    with pytest.raises(ValueError, match='lambda_tpl > 0 needs the frozen head template'):
        _loss(tiny, student, lambda_tpl=1.0)
    only_tpl = dict(lambda_kd=0, lambda_map=0, lambda_rgb=0, lambda_gan_front=0, lambda_gan_back=0, lambda_tpl=1.0)

    def tpl_term(template):
        loss, nets = _loss(tiny, student, template=template, **only_tpl)
        _zero_grads(student)
        terms = loss.accumulate_gradients(Phase('Gmain', 'G'), _batch(), 1, 0)
        assert set(terms) == {'Loss/G/tpl', 'Loss/G/total'}
        return terms['Loss/G/tpl'].item()
    assert tpl_term(copy.deepcopy(student).eval().requires_grad_(False)) < 1e-10     # at its template: zero
    assert tpl_term(tiny['teacher']) > 1e-6                                          # elsewhere: positive, with grad
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.backbone.synthesis.parameters())
    assert all(p.grad is None for p in tiny['teacher'].parameters())

def test_map_and_rgb_terms():
    ws = torch.zeros(3, 5, 8)
    assert torch.allclose(head3d.map_loss(ws, ws + 0.5), torch.full([3], 0.5))
    t = dict(image=torch.zeros(2, 3, 8, 8), image_raw=torch.zeros(2, 3, 4, 4))
    s = dict(image=torch.full([2, 3, 8, 8], 0.25), image_raw=torch.full([2, 3, 4, 4], -0.5))
    assert torch.allclose(head3d.rgb_loss(t, s), torch.full([2], 0.75))

def test_yaw_window_and_sides():
    c = _labels([0.0, 59.0, -61.0, 90.0, 120.0, -179.0])
    assert head3d.yaw_window(c, math.pi / 3).tolist() == [True, True, False, False, False, False]
    assert head3d.side_mask(c, 'front').tolist() == [True, True, True, True, False, False]
    assert head3d.side_mask(c, 'back').tolist() == [False, False, False, False, True, True]

#----------------------------------------------------------------------------
# Perceptual network: offline only.

def test_perceptual_randtrunk_is_frozen_and_labelled(randtrunk):
    assert randtrunk.log_name == 'lpips_randtrunk'
    assert not any(p.requires_grad for p in randtrunk.parameters())
    randtrunk.train()
    assert not randtrunk.net.training
    x = _images(_labels([0.0, 10.0]))
    assert torch.all(randtrunk(x, x) == 0)
    assert torch.all(randtrunk(x, x.flip(3)) > 0)

def test_perceptual_missing_vgg_weights_names_file(tmp_path):
    with pytest.raises(PerceptualError, match=VGG16_FILE):
        build_perceptual('lpips_vgg', vgg16_path=str(tmp_path / VGG16_FILE))
    with pytest.raises(PerceptualError, match='unknown perceptual'):
        build_perceptual('alexnet')
    assert build_perceptual('none') is None

def test_perceptual_loads_local_vgg_without_download(tmp_path, monkeypatch, randtrunk):
    # Any attempt to reach torchvision's model zoo fails the test.
    def no_download(*args, **kwargs):
        raise AssertionError('torchvision tried to download weights')
    monkeypatch.setattr(torch.hub, 'load_state_dict_from_url', no_download)
    monkeypatch.setattr(torch.hub, 'download_url_to_file', no_download)
    # A stand-in VGG16 file in torchvision's key layout (features.i.*): the trunk of the random-trunk net, halved.
    state = {f'features.{k.split(".", 1)[1]}': v * 0.5 for k, v in randtrunk.net.net.state_dict().items()}
    path = tmp_path / VGG16_FILE
    torch.save(state, path)
    net = PerceptualDistance('lpips_vgg', vgg16_path=str(path))
    assert net.log_name == 'lpips'
    assert torch.equal(getattr(net.net.net.slice3, '10').weight, state['features.10.weight'])
    torch.save({'classifier.0.weight': torch.zeros(1)}, path)
    with pytest.raises(PerceptualError, match='features.0.weight'):
        PerceptualDistance('lpips_vgg', vgg16_path=str(path))

#----------------------------------------------------------------------------
# The xy-plane swap wrapper (ablation fig. 12(a)).

def test_xy_swap_uses_face_xy_plane_and_head_rest(tiny, tmp_path):
    from training.snapshot import save_snapshot
    head = _perturbed(tiny['teacher']).eval()
    face = tiny['teacher']
    swap = XYSwapGenerator(head, face)
    z = torch.randn(2, head.z_dim)
    c = _labels([0.0, 150.0])
    out = swap(z, c)
    with torch.no_grad():
        p_head = head.synthesis_planes(head.mapping(z, c))
        p_face = face.synthesis_planes(face.mapping(z, c))
    assert torch.equal(out['planes'][:, 0], p_face[:, 0])
    assert torch.equal(out['planes'][:, 1:], p_head[:, 1:])
    assert out['ws'].shape[1] == swap.num_ws == head.num_ws + face.num_ws
    assert out['image'].shape == (2, 3, head.img_resolution, head.img_resolution)
    # Rebuild from plain init kwargs (what a snapshot stores) and from two snapshot files.
    assert isinstance(XYSwapGenerator(**swap.init_kwargs).head_G, type(head))
    save_snapshot(tmp_path / 'head.pt', dict(G=head, G_ema=head))
    save_snapshot(tmp_path / 'face.pt', dict(G_ema=face))
    built = build_xy_swap(tmp_path / 'head.pt', tmp_path / 'face.pt')
    with torch.no_grad():
        again = built(z, c)
    assert torch.allclose(again['planes'], out['planes'])
    assert not any(p.requires_grad for p in built.parameters())

#----------------------------------------------------------------------------
# The loss: zero distillation for a copy of the teacher, positive otherwise.

def test_distillation_terms_zero_for_copy_positive_otherwise(tiny, randtrunk):
    torch.manual_seed(0)
    loss, _ = _loss(tiny, copy.deepcopy(tiny['teacher']).requires_grad_(True), perceptual=randtrunk,
                    lambda_gan_front=0, lambda_gan_back=0)
    terms = loss.accumulate_gradients(Phase('Gmain', 'G'), _batch(), 1, 0)
    for name in ('kd', 'map', 'rgb', 'lpips_randtrunk'):
        assert terms[f'Loss/G/{name}'].abs().item() < 1e-6, name
    torch.manual_seed(0)
    loss, _ = _loss(tiny, _perturbed(tiny['teacher']), perceptual=randtrunk, lambda_gan_front=0, lambda_gan_back=0)
    terms = loss.accumulate_gradients(Phase('Gmain', 'G'), _batch(), 1, 0)
    for name in ('kd', 'map', 'rgb', 'lpips_randtrunk'):
        assert terms[f'Loss/G/{name}'].item() > 1e-6, name

def test_image_terms_vanish_outside_yaw_window(tiny, randtrunk):
    student = _perturbed(tiny['teacher'])
    only_images = dict(lambda_kd=0, lambda_map=0, lambda_gan_front=0, lambda_gan_back=0)
    # Front cameras at |yaw| 70-80 degrees: front views, but all outside tau = 60 degrees.
    loss, _ = _loss(tiny, student, face_yaws=[70.0, -75.0, 80.0], perceptual=randtrunk, **only_images)
    terms = loss.accumulate_gradients(Phase('Gmain', 'G'), _batch(), 1, 0)
    assert terms['Loss/G/rgb'].item() == 0 and terms['Loss/G/lpips_randtrunk'].item() == 0
    assert all(p.grad is None for p in student.parameters())
    # Inside the window: non-zero, with gradient.
    loss, _ = _loss(tiny, student, face_yaws=[0.0, 10.0], perceptual=randtrunk, **only_images)
    terms = loss.accumulate_gradients(Phase('Gmain', 'G'), _batch(), 1, 0)
    assert terms['Loss/G/rgb'].item() > 0 and terms['Loss/G/lpips_randtrunk'].item() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())

def test_switched_off_terms_are_not_computed(tiny):
    loss, _ = _loss(tiny, _perturbed(tiny['teacher']), lambda_kd=0, lambda_rgb=0, lambda_gan_back=0)
    terms = loss.accumulate_gradients(Phase('Gmain', 'G'), _batch(), 1, 0)
    assert set(terms) == {'Loss/G/map', 'Loss/G/gan_front', 'Loss/G/total'}

#----------------------------------------------------------------------------
# Frozen teacher, side routing of the discriminators, phase order, per-D gamma.

def _record_yaws(D, log):
    def hook(module, args, kwargs):
        c = args[1] if len(args) > 1 else kwargs['c']
        log.extend(cameras.yaw_pitch_from_label(c)[0].abs().rad2deg().tolist())
    return D.register_forward_pre_hook(hook, with_kwargs=True)

def test_teacher_frozen_and_ds_see_only_their_side(tiny):
    student = _perturbed(tiny['teacher'])
    loss, nets = _loss(tiny, student, density_reg=0.25)
    names = [p.name for p in loss.phases()]
    assert names == ['Gmain', 'Greg', 'D_front_main', 'D_front_reg', 'D_back_main', 'D_back_reg']
    assert loss.trainable == ['G', 'D_front', 'D_back']
    seen = dict(front=[], back=[])
    handles = [_record_yaws(nets[f'D_{side}'], seen[side]) for side in ('front', 'back')]
    calls = []
    order_hooks = [nets[f'D_{side}'].register_forward_hook(lambda m, a, o, side=side: calls.append((side, len(o))))
                   for side in ('front', 'back')]
    for phase in loss.phases():
        loss.accumulate_gradients(phase, _batch(), phase.interval, 0)
    for h in handles + order_hooks:
        h.remove()
    assert seen['front'] and max(seen['front']) <= 90
    assert seen['back'] and min(seen['back']) > 90
    # G step: front half to D_front, back half to D_back; then D_front's phases (fake, real, R1), then D_back's.
    assert [s for s, _ in calls] == ['front', 'back'] + ['front'] * 3 + ['back'] * 3
    assert calls[0][1] == 1 and calls[1][1] == 1
    assert all(p.grad is None for p in tiny['teacher'].parameters())
    assert not any(p.requires_grad for p in tiny['teacher'].parameters())

@pytest.mark.parametrize('d_batch,expected', [('half', 2), ('full', 4)])
def test_each_d_step_takes_its_share_of_the_batch(tiny, d_batch, expected):
    # d_batch='half': D_front and D_back each see half of the batch (fakes and reals), together one EG3D D step
    loss, nets = _loss(tiny, _perturbed(tiny['teacher']), d_batch=d_batch)
    sizes = []
    hooks = [nets[f'D_{side}'].register_forward_hook(lambda m, a, o: sizes.append(len(o))) for side in ('front', 'back')]
    for phase in loss.phases():
        if phase.name in ('D_front_main', 'D_back_main'):
            loss.accumulate_gradients(phase, _batch(4), 1, 0)
    for h in hooks:
        h.remove()
    assert sizes == [expected] * 4           # (fake, real) x (D_front, D_back)
    with pytest.raises(ValueError, match='d_batch'):
        _loss(tiny, _perturbed(tiny['teacher']), d_batch='third')

def test_r1_uses_each_discriminators_gamma(tiny):
    student = _perturbed(tiny['teacher'])
    out = {}
    for gamma in (1.0, 4.0):
        loss, _ = _loss(tiny, student, r1_gamma_front=gamma, r1_gamma_back=20.0)
        out[gamma] = {side: loss.accumulate_gradients(Phase(f'D_{side}_reg', f'D_{side}', 16), _batch(), 1, 0)
                      for side in ('front', 'back')}
    for gamma, terms in out.items():
        assert torch.allclose(terms['front']['Loss/D_front/reg'], terms['front']['Loss/r1_front'] * gamma / 2)
        assert torch.allclose(terms['back']['Loss/D_back/reg'], terms['back']['Loss/r1_back'] * 10)
    assert torch.allclose(out[4.0]['front']['Loss/D_front/reg'], out[1.0]['front']['Loss/D_front/reg'] * 4)

def test_single_discriminator_sees_both_sides(tiny):
    loss, nets = _loss(tiny, _perturbed(tiny['teacher']), single_d=True, density_reg=0.25)
    assert loss.trainable == ['G', 'D'] and [p.name for p in loss.phases()] == ['Gmain', 'Greg', 'Dmain', 'Dreg']
    seen = []
    h = _record_yaws(nets['D'], seen)
    for phase in loss.phases():
        terms = loss.accumulate_gradients(phase, _batch(), phase.interval, 0)
    h.remove()
    assert min(seen) <= 90 < max(seen)
    assert {'Loss/r1_front', 'Loss/r1_back', 'Loss/D/reg'} <= set(terms)

def test_reals_of_the_wrong_side_are_rejected(tiny):
    loss, _ = _loss(tiny, _perturbed(tiny['teacher']))
    batch = _batch()
    batch['heads'] = batch['faces']
    with pytest.raises(ValueError, match='yaw_range_deg'):
        loss.accumulate_gradients(Phase('D_back_main', 'D_back'), batch, 1, 0)

#----------------------------------------------------------------------------
# End to end through train.py: head3d_tiny from a tiny teacher and head_ft snapshot, resume, ablations, baselines.

def _small_sets(nets):
    G = ['img_resolution=32', 'plane_resolution=16', 'channel_base=256', 'channel_max=16', 'z_dim=16', 'w_dim=16',
         'sr_input_resolution=16', 'sr_channels=[16, 16]', 'rendering_kwargs.depth_resolution=6',
         'rendering_kwargs.depth_resolution_importance=6', 'neural_rendering_resolution=16']
    D = ['img_resolution=32', 'channel_base=256', 'channel_max=16']
    out = [f'nets.G.kwargs.{s}' for s in G] + [f'nets.{d}.kwargs.{s}' for d in nets if d != 'G' for s in D]
    return out + ['grid_size=[1, 1]', 'workers=0', 'progress=false', 'num_threads=1', 'tick_kimg=0.004']

def _args(cfg_name, overrides=()):
    from training.config import load_config
    nets = load_config(cfg_name).nets
    extra = ['loss.density_reg_points=32'] + (['loss.nr_initial=16'] if cfg_name.startswith(('dft', 'fh')) else [])
    return ['--config', cfg_name] + [a for o in _small_sets(nets) + extra + list(overrides) for a in ('--set', o)]

@pytest.fixture(scope='module')
def stage(tmp_path_factory):
    from _world import write_set
    from training.config import load_config
    from training.snapshot import save_snapshot
    from training.networks import net_kwargs
    from training.networks import DualDiscriminator, TriPlaneGenerator
    root = tmp_path_factory.mktemp('head3d')
    faces = write_set(str(root / 'faces.zip'), resolution=32)
    heads = write_set(str(root / 'heads.zip'), num=24, resolution=32, max_yaw_deg=180, seed=1)
    # Randomly initialised tiny teacher and head_ft snapshots with the networks the small presets build.
    cfg = load_config('head3d_tiny', _small_sets(['D_front', 'D_back']))
    torch.manual_seed(0)
    snaps = {}
    for name in ('teacher', 'head_ft'):
        G = TriPlaneGenerator(**net_kwargs(cfg.nets.G))
        D = DualDiscriminator(**net_kwargs(cfg.nets.D_front))
        snaps[name] = str(root / f'{name}.pt')
        save_snapshot(snaps[name], dict(G=G, G_ema=copy.deepcopy(G), D=D))
    return dict(faces=faces, heads=heads, **snaps)

def _train(stage, cfg_name, outdir, kimg, overrides=(), teacher=True, init='head_ft'):
    from click.testing import CliRunner
    main = load_program('train.py').main
    args = _args(cfg_name, overrides) + ['--faces', stage['faces'], '--heads', stage['heads'], '--init', stage[init],
                                         '--outdir', str(outdir), '--kimg', str(kimg)]
    if teacher:
        args += ['--teacher', stage['teacher']]
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output

def test_head3d_tiny_trains_and_resumes(stage, tmp_path):
    import json
    from training.checkpoint import latest_snapshot
    from training.snapshot import load_snapshot
    out = tmp_path / 'run'
    _train(stage, 'head3d_tiny', out, 0.008)
    snap = load_snapshot(latest_snapshot(str(out)))
    assert set(snap['nets']) == {'G', 'G_ema', 'D_front', 'D_back'}             # no teacher in the student snapshot
    assert set(snap['optim']) == {'G', 'D_front', 'D_back'}
    assert snap['teacher']['sha256'] and snap['teacher']['path'].endswith('teacher.pt')
    # D_front starts from the teacher's D, D_back from head_ft's D: two steps at lr 5e-4 stay close to the source.
    src = {k: load_snapshot(stage[k])['nets']['D'].state_dict() for k in ('teacher', 'head_ft')}
    for name, key in (('D_front', 'teacher'), ('D_back', 'head_ft')):
        state = snap['nets'][name].state_dict()
        w = [k for k in state if k.endswith('weight')]
        assert max((state[k] - src[key][k]).abs().max() for k in w) < 0.02, name
    names = set().union(*[json.loads(l) for l in open(out / 'stats.jsonl')])
    for term in ('Loss/G/kd', 'Loss/G/map', 'Loss/G/rgb', 'Loss/G/lpips_randtrunk', 'Loss/G/gan_front',
                 'Loss/G/gan_back', 'Loss/D_front/real', 'Loss/D_back/fake', 'Loss/r1_front', 'Loss/r1_back'):
        assert term in names, term
    # Resume: rerunning with a longer length continues from the snapshot and restores every optimiser.
    output = _train(stage, 'head3d_tiny', out, 0.012)
    assert 'Resuming from' in output
    resumed = load_snapshot(latest_snapshot(str(out)))
    assert resumed['cur_nimg'] == 12 and resumed['step'] == 3
    for name in ('G', 'D_front', 'D_back'):
        assert resumed['optim'][name]['state'], name
    # The same 3 steps without the interruption give the same weights (both D and every optimiser restored).
    straight = tmp_path / 'straight'
    _train(stage, 'head3d_tiny', straight, 0.012)
    ref = load_snapshot(latest_snapshot(str(straight)))
    for name in ('G', 'D_front', 'D_back'):
        a, b = ref['nets'][name].state_dict(), resumed['nets'][name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name

def test_template_anchor_trains_from_init_and_needs_it(stage, tmp_path):
    import json
    _train(stage, 'head3d_tiny', tmp_path / 'run', 0.004, overrides=['loss.lambda_tpl=1.0'])
    names = set().union(*[json.loads(l) for l in open(tmp_path / 'run' / 'stats.jsonl')])
    assert 'Loss/G/tpl' in names
    from click.testing import CliRunner
    args = _args('head3d_tiny', ['loss.lambda_tpl=1.0']) + ['--faces', stage['faces'], '--heads', stage['heads'],
            '--teacher', stage['teacher'], '--outdir', str(tmp_path / 'noinit'), '--kimg', '0.004']
    res = CliRunner().invoke(load_program('train.py').main, args)
    assert res.exit_code != 0 and 'loss.lambda_tpl > 0 needs --init' in res.output, res.output

@pytest.mark.parametrize('cfg_name', ['head3d_no_kd_tiny', 'head3d_no_gan_front_tiny', 'head3d_no_img_tiny',
                                      'head3d_all_planes_tiny', 'head3d_single_d_tiny', 'head3d_tpl_tiny', 'dft_tiny',
                                      'fh_tiny'])
def test_ablations_and_baselines_run_a_step(stage, tmp_path, cfg_name):
    from training.checkpoint import latest_snapshot
    from training.snapshot import load_snapshot
    baseline = cfg_name.startswith(('dft', 'fh'))
    init = 'teacher' if cfg_name.startswith('dft') else 'head_ft'
    _train(stage, cfg_name, tmp_path / 'run', 0.004, teacher=not baseline, init=init)
    snap = load_snapshot(latest_snapshot(str(tmp_path / 'run')))
    assert snap['cur_nimg'] == 4
    assert ('D' in snap['nets']) == (baseline or 'single_d' in cfg_name)
