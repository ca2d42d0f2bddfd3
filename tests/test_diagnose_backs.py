"""scripts/diagnose_backs.py: exchanging the planes and the renderer between three generators (CPU, tiny nets)."""

import json

import pytest
import torch
from _scripts import load_program
from click.testing import CliRunner

from training import generate, networks, snapshot
from training.networks.plane_swap import XYSwapGenerator

diag = load_program('scripts/diagnose_backs.py')

SMALL = dict(img_resolution=32, plane_resolution=16, sr_input_resolution=16, neural_rendering_resolution=16,
             rendering_kwargs=dict(depth_resolution=6, depth_resolution_importance=6))

@pytest.fixture(scope='module')
def gens():
    out = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        out.append(networks.build_preset('tiny', G_overrides=SMALL)[0].eval().requires_grad_(False))
    return out

def _render(G, n=2):
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(5))
    c = generate.front_labels(G, n)
    torch.manual_seed(0)                  # the same depth samples along the rays for every render
    with torch.no_grad():
        return G(z, c, noise_mode='const')['image']

def test_parts_of_one_generator_render_as_it_and_xy_swap_agrees(gens):
    A, B, C = gens
    assert torch.allclose(_render(diag.PartsGenerator(A, A, A)), _render(A), atol=1e-5)
    # xy from B, the rest and the renderer from A: the paper's xy swap (fig. 5), as XYSwapGenerator renders it.
    assert torch.allclose(_render(diag.PartsGenerator(B, A, A)), _render(XYSwapGenerator(A, B)), atol=1e-5)
    # Each of the three sources changes the image.
    base = _render(diag.PartsGenerator(A, A, A))
    for parts in ((B, A, A), (A, B, A), (A, A, C)):
        assert (_render(diag.PartsGenerator(*parts)) - base).abs().max() > 1e-3

def test_generators_of_another_layout_are_refused(gens):
    torch.manual_seed(3)
    other = networks.build_preset('tiny', G_overrides=dict(SMALL, plane_resolution=32))[0]   # more ws layers
    with pytest.raises(ValueError, match=r'generators differ in num_ws \(8 vs 6\)'):
        diag.PartsGenerator(other, gens[0], gens[0])

def test_combos_are_parsed_and_bad_ones_named():
    assert diag.parse_combos('hfh, FFF') == ['HFH', 'FFF']
    for bad in ('', 'HF', 'HFX', 'HFHH'):
        with pytest.raises(ValueError, match='three-letter combinations'):
            diag.parse_combos(bad)

def test_cli_writes_rows_and_rejects_bad_input(gens, tmp_path):
    from _world import write_set
    paths = []
    for i, G in enumerate(gens):
        paths.append(str(tmp_path / f'g{i}.pt'))
        snapshot.save_snapshot(paths[-1], dict(G_ema=G))
    heads = write_set(str(tmp_path / 'heads.zip'), num=12, resolution=32, max_yaw_deg=180, seed=1)
    args = ['--teacher', paths[0], '--head-ft', paths[1], '--head3d', paths[2], '--heads', heads,
            '--outdir', str(tmp_path / 'out'), '--num', '3', '--threads', '1', '--grid-seeds', '2']
    res = CliRunner().invoke(diag.main, args + ['--combos', 'TTT,HFH'])
    assert res.exit_code == 0, res.output
    report = json.load(open(tmp_path / 'out' / 'diagnose_backs.json'))
    assert [r['combo'] for r in report['rows']] == ['TTT', 'HFH']
    assert report['rows'][0]['id_proxy'] == pytest.approx(1.0, abs=1e-5)      # the teacher against itself
    assert all(0 <= r['back_view'] <= 1 for r in report['rows'])
    assert all(-1 <= r['mirror'] <= 1 for r in report['rows']) and report['rows'][0]['mirror'] > 0.2  # T's mirror face
    assert report['real_mirror'] is None            # one folder: no identities to pair, so no true-back reference
    import PIL.Image
    grid = PIL.Image.open(tmp_path / 'out' / 'diagnose_backs.png')
    assert grid.size == (2 * 32, 2 * 3 * 32)             # 2 seeds per row; yaw 0, 90, 180 for each of 2 combos
    res = CliRunner().invoke(diag.main, args + ['--combos', 'HFQ'])
    assert res.exit_code != 0 and '--combos' in res.output and 'Traceback' not in res.output
    bad = list(args)
    bad[bad.index('--head3d') + 1] = str(tmp_path / 'missing.pt')
    res = CliRunner().invoke(diag.main, bad)
    assert res.exit_code != 0 and '--head3d' in res.output and 'missing.pt' in res.output

def test_xy_depth_layers_travel_with_the_xy_part(gens):
    # A depth-layer generator (xy_depth_layers=2, as the shipped head_ft) renders as itself from its parts; a
    # tri-plane xy part under its decoder gets a zero back layer, which renders as that depth-layer network with
    # its back layer zeroed; a depth-layer xy part cannot go under a tri-plane decoder.
    torch.manual_seed(4)
    D2 = networks.build_preset('tiny', G_overrides=dict(SMALL, xy_depth_layers=2))[0].eval().requires_grad_(False)
    assert torch.allclose(_render(diag.PartsGenerator(D2, D2, D2)), _render(D2), atol=1e-5)
    A = gens[0]
    mixed = diag.PartsGenerator(A, D2, D2)
    z = torch.randn(2, A.z_dim, generator=torch.Generator().manual_seed(5))
    c = generate.front_labels(A, 2)
    with torch.no_grad():
        planes = mixed.synthesis_planes(mixed.mapping(z, c))
        assert planes.shape[1] == 4 and torch.equal(planes[:, 3], torch.zeros_like(planes[:, 3]))
        assert torch.equal(planes[:, :1], A.synthesis_planes(A.mapping(z, c))[:, :1])
        assert torch.equal(planes[:, 1:3], D2.synthesis_planes(D2.mapping(z, c))[:, 1:3])
    with pytest.raises(ValueError, match='the xy part has 2 XY depth layers, the decoder\'s generator 1'):
        diag.PartsGenerator(D2, A, A)
