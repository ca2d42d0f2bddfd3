"""3D-consistency metric: the TensoRF-VM field, the held-out PSNR on the synthetic world (one head from every
view vs a different head per view), and the metrics on the real tiny TriPlaneGenerator."""

import math

import numpy as np
import pytest
import torch

from metrics import consistency3d as c3
from metrics import metric_main
from training import cameras, synthetic

# The fits are many small ops: one thread avoids oversubscription on the shared 2-core machines.
@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

#----------------------------------------------------------------------------

def test_field_is_empty_outside_its_box_and_renders_background():
    field = c3.TensoRFVM(grid=8, density_rank=2, app_rank=2, box=1.0)
    sigma, rgb = field(torch.tensor([[0.0, 0.0, 0.0], [0.6, 0.0, 0.0], [0.0, 0.0, -0.7]]))
    assert sigma[0] > 0 and sigma[1] == 0 and sigma[2] == 0
    assert rgb.shape == (3, 3) and ((rgb >= 0) & (rgb <= 1)).all()
    # A ray that misses the box shows the background colour exactly.
    origin, direction = torch.tensor([[0.0, 2.0, 2.7]]), torch.tensor([[0.0, 0.0, -1.0]])
    color = c3.render_rays(field, origin, direction, 2.25, 3.3, 16)
    assert torch.allclose(color[0], field.background_rgb())

def test_sphere_views_alternate_around_the_head():
    labels = c3.sphere_views(8, pitch_range_deg=10, seed=3)
    yaw, pitch = cameras.yaw_pitch_from_label(labels)
    steps = torch.remainder(yaw[1:] - yaw[:-1], 2 * math.pi)
    assert torch.allclose(steps, torch.full_like(steps, 2 * math.pi / 8), atol=1e-4)
    assert pitch.abs().max() <= math.radians(10) + 1e-5
    with pytest.raises(ValueError, match='num_views'):
        c3.sphere_views(1)

def test_psnr_high_for_one_head_and_lower_for_inconsistent_views(one_thread):
    views, res = 32, 32
    labels = c3.sphere_views(views, pitch_range_deg=15, seed=0)
    rng = np.random.default_rng(0)
    heads = [synthetic.sample_identity(rng) for _ in range(views)]
    consistent = synthetic.render_heads([heads[0]] * views, labels, res)
    inconsistent = synthetic.render_heads(heads, labels, res)   # a different identity in every view
    kw = dict(grid=32, iters=200, batch_rays=1024, samples=24, lr=0.05, density_rank=4, app_rank=8)
    psnr_same = c3.views_psnr(consistent, labels, 2.25, 3.3, **kw)
    psnr_diff = c3.views_psnr(inconsistent, labels, 2.25, 3.3, **kw)
    assert psnr_same > 19.0
    assert psnr_same > psnr_diff + 3.0

#----------------------------------------------------------------------------
# The metric entry points on the real tiny generator (plumbing and signatures, tiny sizes).

def test_metrics_run_on_the_tiny_generator(tmp_path, one_thread):
    from training.networks import build_preset
    torch.manual_seed(0)
    G, _ = build_preset('tiny')
    G.eval().requires_grad_(False)
    results = metric_main.run_metrics('consistency3d,id_proxy', G, teacher=G, cache_dir=str(tmp_path), batch=2,
                                      id_num=2, c3d_identities=1, c3d_views=4, c3d_resolution=16, c3d_grid=8,
                                      c3d_iters=5, c3d_batch_rays=64, c3d_samples=8)
    by_name = {r['metric']: r for r in results}
    assert np.isfinite(by_name['consistency3d']['value']) and by_name['consistency3d']['split'] is None
    assert by_name['id_proxy']['value'] == pytest.approx(1.0, abs=1e-4)   # a generator against itself

#----------------------------------------------------------------------------

# The fit is a function of its seed only: the global RNG (untouched by the metric) does not change it.
def test_fit_repeats_exactly_for_a_seed(one_thread):
    labels = c3.sphere_views(6, 20.0, seed=0)
    images = torch.rand([6, 3, 8, 8], generator=torch.Generator().manual_seed(0)) * 2 - 1
    fields = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        fields.append(c3.fit_field(images, labels, 1.5, 3.5, grid=8, iters=2, batch_rays=64, samples=4,
                                   seed=0))
    for (key, a), (_, b) in zip(fields[0].state_dict().items(), fields[1].state_dict().items()):
        assert torch.equal(a, b), key
