"""scripts/blind_backs.py: the blind eye check of the backs (shuffled, numbered grid; key file; unblinding)."""

import json

import numpy as np
import PIL.Image
import pytest
import torch
from _scripts import load_program
from click.testing import CliRunner

from training import generate, networks, snapshot

bb = load_program('scripts/blind_backs.py')

SMALL = dict(img_resolution=32, plane_resolution=16, sr_input_resolution=16, neural_rendering_resolution=16,
             rendering_kwargs=dict(depth_resolution=6, depth_resolution_importance=6))

@pytest.fixture(scope='module')
def nets(tmp_path_factory):
    root = tmp_path_factory.mktemp('nets')
    paths = {}
    for seed, name in enumerate(('teacher', 'a', 'b')):
        torch.manual_seed(seed)
        G = networks.build_preset('tiny', G_overrides=SMALL)[0].eval()
        paths[name] = str(root / f'{name}.pt')
        snapshot.save_snapshot(paths[name], {'G_ema': G})
    return paths

def test_hair_brightness_reads_the_top_centre_only():
    imgs = np.zeros([3, 64, 64, 3], np.uint8)
    imgs[0, 4:14, 24:40] = 200          # bright hair above the forehead
    imgs[1, 40:60, :] = 255             # a bright chin and neck: not hair
    imgs[2, 4:14, 24:40] = 100
    assert list(np.argsort(-bb.hair_brightness(imgs), kind='stable')) == [0, 2, 1]

def test_score_counts_per_network_and_refuses_bad_marks():
    key = dict(networks=dict(x='x.pt', y='y.pt'), tiles={'0': ['x', 5], '1': ['y', 5], '2': ['y', 6], '3': ['x', 6]})
    assert bb.score(key, [1], [0, 2]) == dict(x=dict(clear=0, faint=1, clean=1), y=dict(clear=1, faint=1, clean=0))
    with pytest.raises(ValueError, match='tile 1 is marked both clear and faint'):
        bb.score(key, [1], [1])
    with pytest.raises(ValueError, match=r'tile 9 is not in the grid \(tiles 0-3\)'):
        bb.score(key, [9], [])

def test_grid_shuffles_numbers_and_keys_every_tile_then_score_unblinds(nets, tmp_path):
    out = tmp_path / 'blind'
    args = ['grid', '--teacher', nets['teacher'], '--networks', f'a={nets["a"]},b={nets["b"]}', '--seeds', '0-7',
            '--count', '3', '--outdir', str(out)]
    res = CliRunner().invoke(bb.main, args)
    assert res.exit_code == 0, res.output
    assert "'a'" not in res.output and 'key.json' in res.output            # the key is not printed
    key = json.loads((out / 'key.json').read_text())
    page = np.asarray(PIL.Image.open(out / 'grid.png'))
    assert page.shape == (1 * (32 * 3 + 16), 8 * 32 * 3, 3) and len(key['tiles']) == 6
    assert sorted(n for n, _ in key['tiles'].values()) == ['a', 'a', 'a', 'b', 'b', 'b']
    assert {s for _, s in key['tiles'].values()} == set(key['picked']) and len(key['picked']) == 3
    # the light pick: the teacher's three brightest top centres among seeds 0-7
    T = generate.load_generator(nets['teacher'])
    with torch.no_grad():
        front = generate.to_uint8(generate.render_seed_views(T, list(range(8)), [(0.0, 0.0)])['image'][:, 0])
    assert key['picked'] == [int(i) for i in np.argsort(-bb.hair_brightness(front), kind='stable')[:3]]
    # tile k shows the yaw-180 render of the network and seed the key names
    name, seed = key['tiles']['4']
    with torch.no_grad():
        back = generate.to_uint8(generate.render_seed_views(generate.load_generator(nets[name]), [seed],
                                                            [(180.0, 0.0)])['image'][:, 0])[0]
    want = np.asarray(PIL.Image.fromarray(back).resize((96, 96), PIL.Image.LANCZOS))
    assert np.abs(page[16:112, 4 * 96:5 * 96].astype(int) - want.astype(int)).max() <= 1
    other = CliRunner().invoke(bb.main, args[:-1] + [str(tmp_path / 'other'), '--select', 'other'])
    assert other.exit_code == 0, other.output
    picked = json.loads((tmp_path / 'other' / 'key.json').read_text())['picked']
    assert not set(picked) & set(key['picked']) and len(picked) == 3
    a_tiles = [int(t) for t, (n, _) in key['tiles'].items() if n == 'a']
    res = CliRunner().invoke(bb.main, ['score', '--key', str(out / 'key.json'), '--clear', str(a_tiles[0]),
                                       '--faint', ','.join(map(str, a_tiles[1:]))])
    assert res.exit_code == 0 and '| a | 1 | 2 | 0 |' in res.output and '| b | 0 | 0 | 3 |' in res.output, res.output

def test_bad_input_gets_one_line(nets, tmp_path):
    run = lambda *a: CliRunner().invoke(bb.main, list(a))
    for networks, words in ((f'a={nets["a"]}', 'at least two'), (f'a={nets["a"]},a={nets["b"]}', 'distinct'),
                            (f'a={nets["a"]},b={tmp_path / "gone.pt"}', 'gone.pt')):
        res = run('grid', '--teacher', nets['teacher'], '--networks', networks, '--outdir', str(tmp_path / 'o'))
        assert res.exit_code != 0 and words in res.output and 'Traceback' not in res.output, res.output
    res = run('grid', '--teacher', nets['teacher'], '--networks', f'a={nets["a"]},b={nets["b"]}', '--seeds', '0-3',
              '--count', '3', '--select', 'other', '--outdir', str(tmp_path / 'o'))
    assert res.exit_code != 0 and 'at least 2 x --count' in res.output
    (tmp_path / 'bad.json').write_text('{"tiles": 3}')
    res = run('score', '--key', str(tmp_path / 'bad.json'), '--clear', '1')
    assert res.exit_code != 0 and 'bad.json' in res.output and 'Traceback' not in res.output
    res = run('score', '--key', str(tmp_path / 'missing.json'))
    assert res.exit_code != 0 and 'missing.json' in res.output

def test_stretch_spreads_each_tiles_centre_over_the_full_range():
    rng = np.random.default_rng(0)
    dark = np.full((2, 16, 16, 3), 20, np.uint8)
    dark[:, 4:12, 4:12] += rng.integers(0, 6, (2, 8, 8, 3)).astype(np.uint8)     # a faint pattern on dark hair
    out = bb.stretch(dark)
    centre = out[:, 4:12, 4:12].reshape(2, -1)
    assert out.dtype == np.uint8 and (centre.max(1) >= 250).all() and (centre.min(1) <= 5).all()
    # the order of the grey levels is kept, so the pattern is the same pattern, only visible
    a, b = dark[0, 4:12, 4:12, 0].astype(int).ravel(), out[0, 4:12, 4:12, 0].astype(int).ravel()
    assert (np.diff(b[np.argsort(a, kind='stable')]) >= 0).all()
    flat = np.full((1, 16, 16, 3), 90, np.uint8)                                    # nothing to stretch: no blow-up
    assert np.abs(bb.stretch(flat).astype(int) - 0).max() <= 1

def test_real_control_tiles_and_stretch_go_into_the_grid_and_the_key(nets, tmp_path):
    from _world import write_set
    heads = write_set(str(tmp_path / 'heads.zip'), num=120, resolution=64, max_yaw_deg=180, seed=3)
    out = tmp_path / 'blind'
    args = ['grid', '--teacher', nets['teacher'], '--networks', f'a={nets["a"]},b={nets["b"]}', '--seeds', '0-7',
            '--count', '3', '--real', heads, '--stretch', '--outdir', str(out)]
    res = CliRunner().invoke(bb.main, args)
    assert res.exit_code == 0, res.output
    key = json.loads((out / 'key.json').read_text())
    assert key['stretch'] is True and key['networks']['real'] == heads and len(key['tiles']) == 9
    from training.dataset import ImageLabelDataset
    ds = ImageLabelDataset(heads)
    real = [(int(t), i) for t, (n, i) in key['tiles'].items() if n == 'real']
    assert len(real) == 3 and all(abs(ds.yaws_deg()[i]) >= bb.REAL_BACK_DEG for _, i in real)
    # a real tile is that view, resized to the renders' 32 px and stretched
    t, i = real[0]
    image = np.asarray(PIL.Image.fromarray(np.asarray(ds[i][0]).transpose(1, 2, 0)).resize((32, 32), PIL.Image.LANCZOS))
    want = np.asarray(PIL.Image.fromarray(bb.stretch(image[None])[0]).resize((96, 96), PIL.Image.LANCZOS))
    r, c = divmod(t, 8)
    page = np.asarray(PIL.Image.open(out / 'grid.png'))
    assert np.abs(page[r * 112 + 16:r * 112 + 112, c * 96:(c + 1) * 96].astype(int) - want.astype(int)).max() <= 1
    res = CliRunner().invoke(bb.main, ['score', '--key', str(out / 'key.json'), '--faint', str(t)])
    assert res.exit_code == 0 and '| real | 0 | 1 | 2 |' in res.output, res.output
    # bad control input: a name clash, too few real backs, a missing dataset
    for extra, words in (([f'--networks', f'real={nets["a"]},b={nets["b"]}'], 'taken by --real'),
                         (['--count', '8', '--seeds', '0-15'], 'views with |yaw| >= 165'),
                         (['--real', str(tmp_path / 'gone.zip')], 'gone.zip')):
        res = CliRunner().invoke(bb.main, args + extra + ['--outdir', str(tmp_path / 'o')])
        assert res.exit_code != 0 and words in res.output and 'Traceback' not in res.output, (extra, res.output)
