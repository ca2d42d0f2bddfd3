"""XY depth layers (TriPlaneGenerator xy_depth_layers, not in EG3D or the paper; PanoHead's tri-grid for the XY plane
only): a tri-plane snapshot loads as the same network, the front and the back of the head read different XY layers,
L_kd sees the front layer only, and bad values are refused."""

import math
import pytest
import torch
from training import cameras
from training.losses.head3d import kd_loss, tpl_loss
from training.networks import build_preset
from training.networks.triplane import expand_xy_layers, xy_layer_weights
from training.snapshot import save_snapshot

def _pair(layers=2):
    torch.manual_seed(0)
    G, _ = build_preset('tiny')
    L, _ = build_preset('tiny', G_overrides=dict(xy_depth_layers=layers))
    L.load_state_dict(expand_xy_layers(G.state_dict(), G.plane_channels, layers, 'copy'))
    return G, L

def _labels(yaw_deg, n=2):
    return cameras.make_label(torch.full([n], math.radians(yaw_deg)), torch.zeros(n), radius=2.7, pivot=(0, 0, 0))

def test_layer_weights_interpolate_over_depth_and_clamp_beyond_the_outer_layers():
    z = torch.linspace(-1, 1, 41)[:, None]
    for layers in (2, 3, 4):
        w = xy_layer_weights(z, layers)
        assert w.shape == (41, layers) and (w >= 0).all()
        assert torch.allclose(w.sum(-1), torch.ones(41))
        assert torch.equal(w[-1], torch.eye(layers)[0]) and torch.equal(w[0], torch.eye(layers)[-1])  # z=1 front, -1 back
    # two layers at z = +0.5 (front, layer 0) and -0.5 (back): halfway between them, half of each
    assert torch.allclose(xy_layer_weights(torch.tensor([[0.0], [0.25]]), 2), torch.tensor([[0.5, 0.5], [0.75, 0.25]]))

def test_a_tri_plane_loads_as_the_same_network_and_the_back_layer_shapes_only_the_back():
    G, L = _pair()
    z = torch.randn(2, 64)
    with torch.no_grad():
        for yaw in (0.0, 180.0):
            a = G(z, _labels(yaw), render_overrides=dict(deterministic=True))['image']
            b = L(z, _labels(yaw), render_overrides=dict(deterministic=True))['image']
            assert (a - b).abs().max() < 1e-5
        planes = L.synthesis_planes(L.mapping(z, _labels(0.0)))
    assert planes.shape[1] == 4 and torch.equal(planes[:, 3], planes[:, 0])
    # change the back layer (plane 3): points in front of z = +0.25 (box_warp 1: normalised +0.5) keep their field,
    # points behind it change
    other = planes.clone()
    other[:, 3] = torch.randn_like(other[:, 3])
    front, back = torch.rand(2, 50, 3) - 0.5, torch.rand(2, 50, 3) - 0.5
    front[..., 2] = 0.3 + 0.1 * torch.rand(2, 50)
    back[..., 2] = -0.3 - 0.1 * torch.rand(2, 50)
    with torch.no_grad():
        assert torch.equal(L.query_field(other, front)['rgb'], L.query_field(planes, front)['rgb'])
        assert not torch.allclose(L.query_field(other, back)['rgb'], L.query_field(planes, back)['rgb'])
    # and it gets gradients from a back view
    out = L(z, _labels(180.0), render_overrides=dict(deterministic=True))
    out['image'].square().mean().backward()
    assert L.backbone.synthesis.b64.torgb.weight.grad[3 * 32:].abs().sum() > 0

def test_kd_distils_the_front_layer_and_the_anchor_the_xz_zx_planes():
    teacher = torch.randn(2, 3, 32, 8, 8)
    student = torch.cat([teacher, torch.randn(2, 1, 32, 8, 8)], dim=1)
    assert torch.equal(kd_loss(teacher, student), torch.zeros(2))        # the back layer is free
    assert torch.equal(kd_loss(teacher, student, all_planes=True), torch.zeros(2))
    assert torch.equal(tpl_loss(teacher, student), torch.zeros(2))
    student[:, 0] += 1
    assert torch.allclose(kd_loss(teacher, student), torch.ones(2))

def test_init_from_a_tri_plane_snapshot_fills_the_deeper_layers_with_zeros_or_copies(tmp_path):
    from training import training_loop
    G, _ = _pair()
    save_snapshot(tmp_path / 'plain.pt', {'G': G, 'D': build_preset('tiny')[1]})
    src = G.backbone.synthesis.b32.torgb.weight
    for init in ('zero', 'copy'):           # 'zero' is the default
        overrides = dict(xy_depth_layers=3) if init == 'zero' else dict(xy_depth_layers=3, xy_layers_init='copy')
        fresh, fresh_ema = (build_preset('tiny', G_overrides=overrides)[0] for _ in range(2))
        training_loop.init_from_snapshots({'G': fresh, 'G_ema': fresh_ema}, {}, str(tmp_path / 'plain.pt'), None, None)
        w = fresh.backbone.synthesis.b32.torgb.weight
        deeper = src[:32] if init == 'copy' else torch.zeros_like(src[:32])
        assert torch.equal(w[:96], src) and torch.equal(w[96:128], deeper) and torch.equal(w[128:], deeper), init
        assert torch.equal(fresh_ema.backbone.synthesis.b4.torgb.bias, fresh.backbone.synthesis.b4.torgb.bias)
        assert torch.equal(fresh.decoder.net[0].weight, G.decoder.net[0].weight)
        # 'zero': the deeper layers are exactly zero planes (the back of the head reads no XY feature at the start);
        # 'copy': each is the XY plane
        with torch.no_grad():
            planes = fresh_ema.synthesis_planes(fresh_ema.mapping(torch.randn(1, 64), _labels(0.0, 1)))
        for layer in (3, 4):
            assert torch.equal(planes[:, layer], planes[:, 0] if init == 'copy' else torch.zeros_like(planes[:, 0]))
        assert planes[:, 0].abs().sum() > 0

@pytest.mark.parametrize('bad', [0, -1, 1.5, True, '2'])
def test_bad_layer_counts_are_refused(bad):
    with pytest.raises(ValueError, match='xy_depth_layers must be an integer >= 1'):
        build_preset('tiny', G_overrides=dict(xy_depth_layers=bad))

def test_a_bad_layer_init_is_refused():
    with pytest.raises(ValueError, match="xy_layers_init must be one of zero, copy, got 'mirror'"):
        build_preset('tiny', G_overrides=dict(xy_depth_layers=2, xy_layers_init='mirror'))

def test_a_later_stage_reads_the_layer_count_of_its_start_and_a_mismatch_names_the_override(tmp_path):
    # scripts/demo.py and scripts/reproduce_table4.py give stage 2 the --init snapshot's layer count with these
    # overrides; train.py refuses a depth-layer --init into another count, naming the override that fits it
    from training import training_loop
    from training.snapshot import SnapshotError, generator_xy_depth_layers, xy_depth_layers_overrides
    G, L = _pair(layers=2)
    save_snapshot(tmp_path / 'tri.pt', {'G_ema': G})
    save_snapshot(tmp_path / 'two.pt', {'G': L, 'G_ema': L})
    assert generator_xy_depth_layers(tmp_path / 'tri.pt') == 1 and xy_depth_layers_overrides(tmp_path / 'tri.pt') == []
    assert xy_depth_layers_overrides(tmp_path / 'two.pt') == ['--set', 'nets.G.kwargs.xy_depth_layers=2']
    for layers in (1, 3):
        fresh = build_preset('tiny', G_overrides=dict(xy_depth_layers=layers))[0]
        with pytest.raises(SnapshotError, match=f'its G has 2 XY depth layers, this config\'s G {layers}; train with '
                                                f'--set nets.G.kwargs.xy_depth_layers=2'):
            training_loop.init_from_snapshots({'G': fresh}, {}, str(tmp_path / 'two.pt'), None, None)
    save_snapshot(tmp_path / 'd.pt', {'D': build_preset('tiny')[1]})
    with pytest.raises(SnapshotError, match='no generator'):
        generator_xy_depth_layers(tmp_path / 'd.pt')

def test_a_sharper_hand_over_reads_one_layer_at_each_surface_and_keeps_the_blend_in_the_middle():
    # two layers at z = +0.5 / -0.5 (normalised): sharpness 5 hands over within |z| < 0.1 only, so the synthetic
    # world's front (+0.3) and back (-0.4) surfaces each read a single layer; the linear blend gives them 20% / 10%
    # of the other one
    z = torch.tensor([[0.3], [-0.4], [0.05], [0.0]])
    assert torch.allclose(xy_layer_weights(z, 2), torch.tensor([[0.8, 0.2], [0.1, 0.9], [0.55, 0.45], [0.5, 0.5]]))
    assert torch.allclose(xy_layer_weights(z, 2, 5.0), torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.75, 0.25], [0.5, 0.5]]))
    grid = torch.linspace(-1, 1, 81)[:, None]
    for layers in (2, 3, 4):
        w = xy_layer_weights(grid, layers, 4.0)
        assert (w >= 0).all() and torch.allclose(w.sum(-1), torch.ones(81))
        assert torch.equal(w[-1], torch.eye(layers)[0]) and torch.equal(w[0], torch.eye(layers)[-1])
        assert (w.max(-1).values == 1).float().mean() > 0.6          # most depths read one layer alone
    assert torch.equal(xy_layer_weights(grid, 3, 1.0), xy_layer_weights(grid, 3))

@pytest.mark.parametrize('bad', [0.5, 0, -2, float('nan'), float('inf'), True, '5'])
def test_a_bad_sharpness_is_refused(bad):
    with pytest.raises(ValueError, match='xy_layer_sharpness must be a number >= 1'):
        build_preset('tiny', G_overrides=dict(xy_depth_layers=2, xy_layer_sharpness=bad))

def test_a_later_stage_takes_the_sharpness_of_its_start_and_a_mismatch_names_the_override(tmp_path):
    from training import training_loop
    from training.snapshot import SnapshotError, xy_depth_layers_overrides
    torch.manual_seed(0)
    S, _ = build_preset('tiny', G_overrides=dict(xy_depth_layers=2, xy_layer_sharpness=5))
    save_snapshot(tmp_path / 'sharp.pt', {'G': S, 'G_ema': S})
    assert xy_depth_layers_overrides(tmp_path / 'sharp.pt') == ['--set', 'nets.G.kwargs.xy_depth_layers=2',
                                                                '--set', 'nets.G.kwargs.xy_layer_sharpness=5']
    linear = build_preset('tiny', G_overrides=dict(xy_depth_layers=2))[0]
    with pytest.raises(SnapshotError, match=r'xy_layer_sharpness 5, this config\'s G 1; train with '
                                            r'--set nets.G.kwargs.xy_layer_sharpness=5'):
        training_loop.init_from_snapshots({'G': linear}, {}, str(tmp_path / 'sharp.pt'), None, None)
    same, same_ema = (build_preset('tiny', G_overrides=dict(xy_depth_layers=2, xy_layer_sharpness=5.0))[0] for _ in range(2))
    training_loop.init_from_snapshots({'G': same, 'G_ema': same_ema}, {}, str(tmp_path / 'sharp.pt'), None, None)
    assert torch.equal(same.backbone.synthesis.b32.torgb.weight, S.backbone.synthesis.b32.torgb.weight)
    # and the sharper blend renders differently from the linear one with the same weights
    linear.load_state_dict(S.state_dict())
    zz = torch.randn(1, 64)
    with torch.no_grad():
        a = S(zz, _labels(180.0, 1), render_overrides=dict(deterministic=True))['image']
        b = linear(zz, _labels(180.0, 1), render_overrides=dict(deterministic=True))['image']
    assert not torch.allclose(a, b)

def test_one_layer_reads_itself_whatever_the_sharpness():
    z = torch.linspace(-1, 1, 9)[:, None]
    assert torch.equal(xy_layer_weights(z, 1, 4.0), torch.ones(9, 1))

def test_a_snapshot_with_a_bad_sharpness_is_named(tmp_path):
    from training.snapshot import SnapshotError, load_snapshot, xy_depth_layers_overrides
    G = build_preset('tiny', G_overrides=dict(xy_depth_layers=2, xy_layer_sharpness=3))[0]
    save_snapshot(tmp_path / 'ok.pt', {'G_ema': G})
    data = torch.load(tmp_path / 'ok.pt', weights_only=True)
    data['nets']['G_ema']['kwargs']['xy_layer_sharpness'] = 0.5
    torch.save(data, tmp_path / 'bad.pt')
    assert load_snapshot(tmp_path / 'bad.pt', build=False)['nets']['G_ema']['kwargs']['xy_layer_sharpness'] == 0.5
    with pytest.raises(SnapshotError, match=r"bad.pt: its generator's xy_layer_sharpness is 0.5, not a number >= 1"):
        xy_depth_layers_overrides(tmp_path / 'bad.pt')
