"""scripts/plane_swap.py (paper section 3.2) on tiny random generators saved as snapshots (CPU)."""

import json

import numpy as np
import pytest
import torch
from _scripts import load_program
from click.testing import CliRunner

from training import generate, networks, snapshot

NRR = 16

plane_swap = load_program('scripts/plane_swap.py')

ROWS = ['xy', 'xz', 'zx', 'none', 'all']

#----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def snaps(tmp_path_factory):
    folder = tmp_path_factory.mktemp('snaps')
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        G, _ = networks.build_preset('tiny')
        paths.append(str(folder / f'g{seed}.pt'))
        snapshot.save_snapshot(paths[-1], dict(G_ema=G))
    return paths

def invoke(*args):
    return CliRunner().invoke(plane_swap.main, [str(a) for a in args])

#----------------------------------------------------------------------------

def test_swap_planes_masks():
    a, b = torch.zeros(1, 3, 4, 8, 8), torch.ones(1, 3, 4, 8, 8)
    out = plane_swap.swap_planes(a, b, 0)
    assert out[:, 0].eq(1).all() and out[:, 1:].eq(0).all() and a.eq(0).all()
    out = plane_swap.swap_planes(a, b, 2, channels=[1, 3])
    assert out[:, 2, [1, 3]].eq(1).all() and out[:, 2, [0, 2]].eq(0).all() and out[:, :2].eq(0).all()
    out = plane_swap.swap_planes(a, b, 0, region=(0.0, -1.0, 1.0, 0.0))       # right half of columns, top rows
    assert out[0, 0, 0, :4, 4:].eq(1).all() and out[0, 0, 0].sum() == 16


def test_parse_region_errors():
    assert plane_swap.parse_region('-0.5,0,0.5,0.25') == (-0.5, 0.0, 0.5, 0.25)
    for bad in ['0,0,1', '0.5,0,0.2,1', '0,0,1,2', 'a,b,c,d']:
        with pytest.raises(ValueError):
            plane_swap.parse_region(bad)

def test_swap_with_itself_changes_nothing(snaps):
    G = generate.load_generator(snaps[0])
    report, images = plane_swap.plane_swap(G, [3, 3], plane_swap.ProxyEmbedder(), nrr=NRR, keep_images=True,
                                           progress=False)
    strip = images[(3, 3)]
    w = strip.shape[1] // 5
    # B and every swap equal A; CPU kernels may differ by ~1e-6 between batch rows (oneDNN blocking), which can
    # flip one uint8 rounding step, so allow exactly that and nothing more
    for k in range(1, 5):
        diff = np.abs(strip[:, k * w:(k + 1) * w].astype(np.int16) - strip[:, :w].astype(np.int16))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    for row in report['rows']:
        assert row['sim_A'] == pytest.approx(1.0, abs=1e-5) and row['sim_B'] == pytest.approx(1.0, abs=1e-5)

def test_swap_changes_the_render(snaps):
    G = generate.load_generator(snaps[0])
    ws = generate.seeds_to_ws(G, [0, 1])
    planes = generate.synthesize_planes(G, ws)
    c = generate.view_labels([(0.0, 0.0)])
    base = generate.render_planes_batched(G, planes[:1], ws[:1], c, nrr=NRR)['image']
    swapped = plane_swap.swap_planes(planes[:1], planes[1:], 0)
    assert not torch.equal(generate.render_planes_batched(G, swapped, ws[:1], c, nrr=NRR)['image'], base)

def test_cli_table_and_json(snaps, tmp_path):
    res = invoke('--network', snaps[0], '--seeds', '0-2', '--outdir', tmp_path, '--nrr', NRR, '--device', 'cpu',
                 '--save-images')
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / 'plane_swap.json').read_text())
    assert [row['swap'] for row in report['rows']] == ROWS
    assert report['metric'] == 'proxy-ID' and report['num_pairs'] == 3 and len(report['per_pair']) == 3
    rows = {row['swap']: row for row in report['rows']}
    assert rows['xy']['planes'] == dict(xy='B', xz='A', zx='A')
    assert rows['all']['planes'] == dict(xy='B', xz='B', zx='B')
    assert rows['none']['sim_A'] == pytest.approx(1.0, abs=1e-5)
    assert rows['all']['sim_B'] == pytest.approx(1.0, abs=1e-5)
    assert rows['none']['sim_B'] == pytest.approx(rows['all']['sim_A'])
    assert 'proxy-ID A' in res.output and 'F_xy' in res.output
    assert (tmp_path / 'swap_seed0000_seed0002.png').is_file()

def test_cli_second_network_region_channels(snaps, tmp_path):
    # The same generator as --network2 with a seed paired to itself: nothing changes.
    res = invoke('--network', snaps[0], '--network2', snaps[0], '--seeds', '4,4', '--outdir', tmp_path, '--nrr', NRR,
                 '--region', '-0.5,-0.5,0.5,0.5', '--channels', '0-15')
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / 'plane_swap.json').read_text())
    assert report['channels'] == list(range(16)) and report['region'] == [-0.5, -0.5, 0.5, 0.5]
    assert report['rows'][0]['planes']['xy'] == 'A+B'
    assert all(row['sim_A'] == pytest.approx(1.0, abs=1e-5) for row in report['rows'])
    # A different head generator supplies B.
    res = invoke('--network', snaps[0], '--network2', snaps[1], '--seeds', '4,4', '--outdir', tmp_path, '--nrr', NRR)
    assert res.exit_code == 0, res.output
    rows = {row['swap']: row for row in json.loads((tmp_path / 'plane_swap.json').read_text())['rows']}
    assert rows['all']['sim_A'] < 0.999

@pytest.mark.filterwarnings('ignore:`torch.jit:FutureWarning')
def test_id_model(snaps, tmp_path):
    # A TorchScript stand-in for a face-recognition model: mean colour per channel as the embedding.
    class MeanColour(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3)) + 2.0
    torch.jit.script(MeanColour()).save(str(tmp_path / 'id.pt'))
    res = invoke('--network', snaps[0], '--seeds', '0,1', '--outdir', tmp_path, '--nrr', NRR,
                 '--id-model', tmp_path / 'id.pt', '--id-res', 32)
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / 'plane_swap.json').read_text())
    assert report['metric'] == 'ID' and report['rows'][3]['sim_A'] == pytest.approx(1.0, abs=1e-5)

def test_id_model_export_program(tmp_path):
    class Flat(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1) + 1.0
    program = torch.export.export(Flat(), (torch.zeros(2, 3, 8, 8),), dynamic_shapes=({0: torch.export.Dim('n')},))
    torch.export.save(program, str(tmp_path / 'id.pt2'))
    embed = plane_swap.ModelEmbedder(str(tmp_path / 'id.pt2'), 8, 'cpu')
    images = torch.rand(3, 3, 16, 16) * 2 - 1
    emb = embed(images)
    assert emb.shape == (3, 3 * 8 * 8) and torch.allclose(emb.norm(dim=1), torch.ones(3))
    (tmp_path / 'junk.pt2').write_bytes(b'not a program')
    with pytest.raises(ValueError, match='junk.pt2'):
        plane_swap.ModelEmbedder(str(tmp_path / 'junk.pt2'), 8, 'cpu')

def test_cli_errors(snaps, tmp_path):
    for args, named in [(['--seeds', '5-1'], '5-1'), (['--seeds', '3'], '--seeds'), (['--seeds', '0,1', '--channels',
                        '0-99'], '0..31'), (['--seeds', '0,1', '--region', '0,0,2,1'], '--region'),
                        (['--seeds', '0,1', '--id-model', str(tmp_path / 'missing.pt')], 'missing.pt'),
                        (['--seeds', '0,1', '--network2', str(tmp_path / 'nope.pt')], 'nope.pt')]:
        res = invoke('--network', snaps[0], '--outdir', tmp_path, '--nrr', NRR, *args)
        assert res.exit_code != 0 and named in res.output, (args, res.output)
