"""The XY depth gate (TriPlaneGenerator xy_depth_gate, not in EG3D or the paper): EG3D's network exactly at init,
trainable, kept by snapshots, and started from an init snapshot that has no gate."""

import math
import torch
from training import cameras
from training.networks import build_preset
from training.snapshot import load_snapshot, save_snapshot

def _pair():
    torch.manual_seed(0)
    G, _ = build_preset('tiny')
    gated, _ = build_preset('tiny', G_overrides=dict(xy_depth_gate=True))
    own = {f'xy_gate.{k}': v for k, v in gated.xy_gate.state_dict().items()}
    gated.load_state_dict({**G.state_dict(), **own})
    return G, gated

def _labels(yaw_deg, n=2):
    return cameras.make_label(torch.full([n], math.radians(yaw_deg)), torch.zeros(n), radius=2.7, pivot=(0, 0, 0))

def test_the_gate_is_the_identity_at_init_and_changes_only_the_xy_plane():
    G, gated = _pair()
    z, c = torch.randn(2, 64), _labels(180.0)
    with torch.no_grad():
        a = G(z, c, render_overrides=dict(deterministic=True))['image']
        b = gated(z, c, render_overrides=dict(deterministic=True))['image']
    assert torch.equal(a, b)
    # a non-zero gate scales plane 0 (XY) by g(z) and leaves XZ and ZX alone
    torch.nn.init.normal_(gated.xy_gate.fc2.weight)
    feats, coords = torch.randn(2, 3, 5, 32), torch.rand(2, 5, 3) - 0.5
    out = gated.xy_gate(feats, coords, 1.0)
    assert torch.equal(out[:, 1:], feats[:, 1:]) and not torch.allclose(out[:, 0], feats[:, 0])
    # the field queries (density regularisation, meshes) go through the gate as the renders do
    planes = G.synthesis_planes(G.mapping(z, c))
    with torch.no_grad():
        assert not torch.allclose(gated.query_field(planes, coords)['rgb'], G.query_field(planes, coords)['rgb'])
        b = gated(z, c, render_overrides=dict(deterministic=True))['image']
    assert not torch.allclose(a, b)
    # g depends on z only: points with the same z get the same per-channel factor
    coords2 = coords.clone(); coords2[..., :2] = torch.rand(2, 5, 2) - 0.5
    assert torch.equal(gated.xy_gate(feats, coords2, 1.0), out)

def test_the_gate_gets_gradients_from_a_back_view_render():
    _, gated = _pair()
    out = gated(torch.randn(2, 64), _labels(180.0), render_overrides=dict(deterministic=True))
    out['image'].square().mean().backward()
    assert gated.xy_gate.fc2.weight.grad.abs().sum() > 0

def test_snapshots_keep_the_gate_and_init_fills_it_from_a_snapshot_without_one(tmp_path):
    from training import training_loop
    G, gated = _pair()
    torch.nn.init.normal_(gated.xy_gate.fc2.weight)
    save_snapshot(tmp_path / 'gated.pt', {'G_ema': gated})
    back = load_snapshot(tmp_path / 'gated.pt')['nets']['G_ema']
    assert back.xy_gate is not None and torch.equal(back.xy_gate.fc2.weight, gated.xy_gate.fc2.weight)
    # --init from a plain (ungated) snapshot: every EG3D tensor is copied, the gate stays the identity
    save_snapshot(tmp_path / 'plain.pt', {'G': G, 'D': build_preset('tiny')[1]})
    fresh, fresh_ema = (build_preset('tiny', G_overrides=dict(xy_depth_gate=True))[0] for _ in range(2))
    training_loop.init_from_snapshots({'G': fresh, 'G_ema': fresh_ema}, {}, str(tmp_path / 'plain.pt'), None, None)
    for key, value in G.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    assert fresh.xy_gate.fc2.weight.abs().sum() == 0
