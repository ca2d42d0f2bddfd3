"""train.py takes the image resolution from the data (or refuses) before building anything; calc_metrics says
when it resizes."""

import json
import types

import PIL.Image
import torch
from _scripts import load_program
from click.testing import CliRunner

from training import cameras
from training.config import load_config
from training.resolution import resolve_resolution

main = load_program('train.py').main
calc_metrics = load_program('scripts/calc_metrics.py')

#----------------------------------------------------------------------------
# A two-image dataset folder at `res`; returns its path.

def _data(path, res):
    path.mkdir()
    yaw = torch.tensor([0.0, 0.5])
    labels = cameras.make_label(yaw, torch.zeros_like(yaw)).tolist()
    for i in range(2):
        PIL.Image.new('RGB', (res, res), (40 * i, 0, 0)).save(path / f'{i}.png')
    (path / 'dataset.json').write_text(json.dumps({'labels': [[f'{i}.png', c] for i, c in enumerate(labels)]}))
    return path

def _train(*args):
    return CliRunner().invoke(main, [str(a) for a in args])

#----------------------------------------------------------------------------

def test_matching_resolution_shown_by_dry_run(tmp_path):
    res = _train('--config', 'face_tiny', '--data', _data(tmp_path / 'd64', 64), '--dry-run')
    assert res.exit_code == 0, res.output
    assert res.output.startswith('# resolution: data.main (') and 'has 64x64 images; nets.G, nets.D at 64: matches' in res.output

def test_fixed_resolution_differs_refused_before_anything(tmp_path, monkeypatch):
    import training.networks.triplane as triplane
    monkeypatch.setattr(triplane.TriPlaneGenerator, '__init__', lambda *a, **k: (_ for _ in ()).throw(AssertionError('built')))
    out = tmp_path / 'run'
    res = _train('--config', 'face_tiny', '--data', _data(tmp_path / 'd128', 128), '--outdir', out)
    assert res.exit_code == 1 and res.output.count('\n') == 1, res.output
    assert 'has 128x128 images but the config fixes nets.G 64, nets.D 64' in res.output
    assert '--set nets.G.kwargs.img_resolution=null --set nets.D.kwargs.img_resolution=null' in res.output
    assert not out.exists()
    res = _train('--config', 'face_tiny', '--data', _data(tmp_path / 'd32', 32), '--dry-run')
    assert res.exit_code == 1 and '32x32' in res.output and 'rebuild the data at 64' in res.output

def test_resolution_from_the_data_picks_the_chain(tmp_path):
    data = _data(tmp_path / 'd128', 128)
    keys = ['--set', 'nets.G.kwargs.img_resolution=null', '--set', 'nets.D.kwargs.img_resolution=null']
    res = _train('--config', 'head_ft', '--data', data, '--dry-run', *keys)
    assert res.exit_code == 0, res.output
    assert 'super-resolution 64 -> 128, channels [128, 64], neural rendering 64, loss.nr_initial 64' in res.output
    cfg = load_config('head_ft', [k for k in keys if k != '--set'], {'data.main.path': str(data)})
    resolve_resolution(cfg)
    assert cfg.nets.G.kwargs.img_resolution == 128 and cfg.nets.D.kwargs.img_resolution == 128
    assert cfg.nets.G.kwargs.sr_input_resolution == 64 and cfg.loss.nr_initial == 64
    assert cfg.nets.G.kwargs.rendering_kwargs.white_back                   # the config's other kwargs kept

def test_data_sets_of_different_resolutions(tmp_path):
    res = _train('--config', 'head3d_tiny', '--faces', _data(tmp_path / 'f', 64), '--heads', _data(tmp_path / 'h', 128),
                 '--dry-run')
    assert res.exit_code == 1 and 'data.faces' in res.output and 'data.heads' in res.output and '128x128' in res.output

def test_calc_metrics_says_it_resizes(tmp_path):
    data = str(_data(tmp_path / 'd32', 32))
    note = calc_metrics.resolution_note(types.SimpleNamespace(img_resolution=64), data)
    assert 'renders 64x64' in note and '32x32' in note and 'resized to 32x32' in note
    assert calc_metrics.resolution_note(types.SimpleNamespace(img_resolution=32), data) is None
