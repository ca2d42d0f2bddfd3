"""Networks: shapes, gradients, determinism, truncation, conditioning vs rendering camera, fp32 on CPU."""

import pytest
import torch
from training import cameras
from training.networks import PRESETS, REGISTRY, DualDiscriminator, TriPlaneGenerator, build_preset
from training.networks.stylegan2 import MappingNetwork, modulated_conv2d

DET = dict(deterministic=True)  # render overrides: no random depth draws

#----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def tiny():
    torch.manual_seed(0)
    G, D = build_preset('tiny')
    return G.eval(), D.eval()

def labels(n, yaw=0.0):
    return cameras.make_label(torch.full([n], yaw), torch.zeros(n))

#----------------------------------------------------------------------------

def test_registry_and_init_kwargs_are_plain(tiny):
    G, D = tiny
    assert REGISTRY['TriPlaneGenerator'] is TriPlaneGenerator and REGISTRY['DualDiscriminator'] is DualDiscriminator
    for net in (G, D):
        rebuilt = type(net)(**net.init_kwargs)
        assert rebuilt.state_dict().keys() == net.state_dict().keys()
    assert G.init_kwargs['rendering_kwargs']['depth_resolution'] == 12

def test_tiny_shapes(tiny):
    G, D = tiny
    z = torch.randn(2, G.z_dim)
    out = G(z, labels(2), render_overrides=DET)
    r, h = G.img_resolution, G.neural_rendering_resolution
    assert out['image'].shape == (2, 3, r, r) and out['image'].dtype == torch.float32
    assert out['image_raw'].shape == (2, 3, h, h)
    assert out['image_depth'].shape == (2, 1, h, h) and out['weights_sum'].shape == (2, 1, h, h)
    assert out['planes'].shape == (2, 3, 32, 64, 64)
    assert out['ws'].shape == (2, G.num_ws, G.w_dim)
    assert D(out, labels(2)).shape == (2, 1)
    # The neural rendering resolution is an argument, not state.
    out16 = G(z, labels(2), neural_rendering_resolution=16, render_overrides=DET)
    assert out16['image_raw'].shape[-1] == 16 and out16['image'].shape[-1] == r
    assert G.neural_rendering_resolution == h
    field = G.query_field(out['planes'], torch.rand(2, 7, 3) - 0.5)
    assert field['rgb'].shape == (2, 7, 32) and field['sigma'].shape == (2, 7, 1)

def test_every_parameter_gets_a_gradient(tiny):
    G, D = (type(n)(**n.init_kwargs).train() for n in tiny)
    out = G(torch.randn(2, G.z_dim), labels(2), noise_mode='random')
    loss = D(out, labels(2)).sum() + out['image'].square().mean()
    loss.backward()
    for net in (G, D):
        for name, p in net.named_parameters():
            # SR noise is off as in EG3D (sr_noise_mode 'none'): its noise strengths are unused.
            if name.startswith('superresolution') and name.endswith('noise_strength'):
                assert p.grad is None, name
                continue
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name

def test_const_noise_is_deterministic(tiny):
    G, _ = tiny
    z = torch.randn(2, G.z_dim)
    a = G(z, labels(2), noise_mode='const', render_overrides=DET)
    b = G(z, labels(2), noise_mode='const', render_overrides=DET)
    for k in ('image', 'image_raw', 'image_depth', 'planes'):
        assert torch.equal(a[k], b[k]), k

def test_truncation_psi_zero_gives_w_avg(tiny):
    G, _ = tiny
    m = G.backbone.mapping
    m.w_avg.copy_(torch.randn(G.w_dim))
    ws = G.mapping(torch.randn(3, G.z_dim), labels(3), truncation_psi=0)
    assert torch.allclose(ws, m.w_avg.expand_as(ws))
    ws_cut = G.mapping(torch.randn(3, G.z_dim), labels(3), truncation_psi=0, truncation_cutoff=4)
    assert torch.allclose(ws_cut[:, :4], m.w_avg.expand(3, 4, -1)) and not torch.allclose(ws_cut[:, 4:], m.w_avg)
    m.w_avg.zero_()

def test_w_avg_tracking():
    m = MappingNetwork(z_dim=8, c_dim=0, w_dim=8, num_ws=2, num_layers=1)
    z = torch.randn(5, 8)
    w = m(z, None, update_emas=True)[:, 0]
    assert torch.allclose(m.w_avg, w.mean(0) * (1 - 0.998), atol=1e-6)

def test_render_camera_changes_image_not_ws(tiny):
    G, _ = tiny
    z = torch.randn(2, G.z_dim)
    front = G(z, labels(2), render_overrides=DET)
    side = G(z, labels(2), c_render=labels(2, yaw=1.0), render_overrides=DET)
    assert torch.equal(front['ws'], side['ws']) and torch.equal(front['planes'], side['planes'])
    assert not torch.allclose(front['image'], side['image'])
    # And the conditioning camera does change ws.
    other = G(z, labels(2, yaw=0.5), c_render=labels(2), render_overrides=DET)
    assert not torch.allclose(front['ws'], other['ws'])

def test_fused_and_unfused_modconv_agree():
    torch.manual_seed(1)
    x, w, s = torch.randn(3, 8, 9, 9), torch.randn(5, 8, 3, 3), torch.randn(3, 8)
    noise = torch.randn(3, 1, 9, 9)
    a = modulated_conv2d(x, w, s, noise=noise, padding=1, fused_modconv=True)
    b = modulated_conv2d(x, w, s, noise=noise, padding=1, fused_modconv=False)
    assert torch.allclose(a, b, atol=1e-5)
    # Demodulation: unit-variance input -> roughly unit-variance output per feature map.
    ref = torch.nn.functional.conv2d(x * s[:, :, None, None], w, padding=1)
    dco = ((w[None] * s[:, None, :, None, None]).square().sum([2, 3, 4]) + 1e-8).rsqrt()
    assert torch.allclose(b, ref * dco[..., None, None] + noise, atol=1e-5)

def test_disc_c_noise_does_not_modify_c(tiny):
    D = DualDiscriminator(**{**PRESETS['tiny']['D'], 'disc_c_noise': 1.0})
    c = labels(4, yaw=0.3) + torch.randn(4, 25) * 0.01
    c0 = c.clone()
    D(dict(image=torch.randn(4, 3, 64, 64), image_raw=torch.randn(4, 3, 32, 32)), c)
    assert torch.equal(c, c0)

def test_full_ffhq512_forward_once():
    torch.manual_seed(0)
    G = TriPlaneGenerator(**PRESETS['ffhq512']['G']).eval()
    assert G.num_ws == 14 and G.backbone.synthesis.b256.conv1.out_channels == 128
    n_params = sum(p.numel() for p in G.parameters())
    assert 28e6 < n_params < 32e6, n_params    # EG3D's G: about 29.6M parameters
    with torch.no_grad():
        out = G(torch.randn(1, 512), labels(1), neural_rendering_resolution=64,
                render_overrides=dict(depth_resolution=6, depth_resolution_importance=6, deterministic=True))
    assert out['image'].shape == (1, 3, 512, 512) and out['planes'].shape == (1, 3, 32, 256, 256)
    assert torch.isfinite(out['image']).all()

#----------------------------------------------------------------------------
