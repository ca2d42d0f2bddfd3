"""Config presets, overrides and validation; train.py --dry-run and the resume guard."""

import json
import os

import PIL.Image
import pytest
import torch
from _scripts import load_program
from click.testing import CliRunner

from training import cameras

from training.config import ConfigError, diff_configs, load_config, parse_override

main = load_program('train.py').main

#----------------------------------------------------------------------------

def test_presets_resolve_and_inherit():
    face = load_config('face')
    ft = load_config('head_ft')
    assert face.loss.r1_gamma == 1.0 and face.batch == 32 and face.optim.G.lr == 0.0025
    assert ft.loss.r1_gamma == 20.0 and ft.batch == 16 and ft.optim.D.lr == 0.002
    assert ft.augment.enabled and ft.augment.target == 0.6
    assert ft.loss.density_reg == face.loss.density_reg            # inherited through base: face
    tiny = load_config('head_ft_tiny')
    assert tiny.nets.G.preset == 'tiny' and tiny.augment.target == 0.6

def test_overrides_parse_yaml_values():
    assert parse_override('optim.G.betas=[0, 0.9]') == (['optim', 'G', 'betas'], [0, 0.9])
    cfg = load_config('face_tiny', ['loss.r1_gamma=5', 'loss.nr_final=null'])
    assert cfg.loss.r1_gamma == 5 and cfg.loss.nr_final is None

@pytest.mark.parametrize('override, fragment', [
    ('loss.r1_gama=3', 'loss.r1_gama'),
    ('kimgs=3', 'kimgs'),
    ('loss.r1_gamma=abc', 'loss.r1_gamma'),
    ('batch=0', 'batch'),
    ('optim.G.lr=-1', 'optim.G.lr'),
    ('optim.X.lr=1', 'optim.X'),
    ('nets.D.kwargs.channel_bass=3', 'nets.D.kwargs.channel_bass'),
    ('data.main.mirrors=true', 'data.main.mirrors'),
    ('augment.target=1.5', 'augment.target'),
    ('init.G=nowhere', 'init.G'),
])
def test_bad_keys_and_values_name_the_key(override, fragment):
    with pytest.raises(ConfigError, match=fragment.replace('.', r'\.')):
        load_config('face_tiny', [override])

def test_unknown_preset_lists_known():
    with pytest.raises(ConfigError, match='face_tiny'):
        load_config('no_such_preset')

def test_diff_ignores_kimg_only():
    a = load_config('face_tiny')
    b = load_config('face_tiny', ['kimg=99'])
    c = load_config('face_tiny', ['loss.r1_gamma=7'])
    assert diff_configs(a, b) == []
    assert diff_configs(a, c) == [f'loss.r1_gamma: {a.loss.r1_gamma} -> 7']

#----------------------------------------------------------------------------

def test_dry_run_prints_and_writes_nothing(tmp_path):
    out = tmp_path / 'run'
    res = CliRunner().invoke(main, ['--config', 'face_tiny', '--outdir', str(out), '--dry-run', '--set', 'loss.r1_gamma=4'])
    assert res.exit_code == 0, res.output
    assert 'r1_gamma: 4' in res.output and 'class: training.networks.TriPlaneGenerator' in res.output
    assert not out.exists()

def test_cli_errors_are_clear(tmp_path):
    res = CliRunner().invoke(main, ['--config', 'face_tiny', '--dry-run', '--set', 'loss.bogus=1'])
    assert res.exit_code != 0 and 'loss.bogus' in res.output
    res = CliRunner().invoke(main, ['--config', 'face_tiny', '--dry-run', '--faces', str(tmp_path)])
    assert res.exit_code != 0 and 'data.faces' in res.output

@pytest.mark.parametrize('config_files', ['kept', 'deleted'])
def test_resume_refuses_changed_config(tmp_path, config_files):
    # the rerun is checked against the config stored in the snapshot, so deleting config.json/yaml changes nothing
    out = tmp_path / 'run'
    os.makedirs(out)
    from dnnlib.util import to_plain
    from training.config import save_config
    from training.snapshot import save_snapshot
    cfg = load_config('face_tiny')
    save_config(cfg, str(out))
    save_snapshot(out / 'snapshot-0000000004.pt', {}, cur_nimg=4, config=to_plain(cfg))
    if config_files == 'deleted':
        os.remove(out / 'config.json')
        os.remove(out / 'config.yaml')
    res = CliRunner().invoke(main, ['--config', 'face_tiny', '--outdir', str(out), '--set', 'optim.G.lr=0.1'])
    assert res.exit_code != 0 and f'optim.G.lr: {cfg.optim.G.lr} -> 0.1' in res.output, res.output
    assert not (out / 'config.json').exists() or 'lr: 0.1' not in (out / 'config.yaml').read_text()   # left as it was

def test_resume_allows_other_machine_settings(tmp_path):
    # threads, data-loading processes and the progress bar belong to the machine: a run may move to another one
    out = tmp_path / 'run'
    os.makedirs(out)
    from dnnlib.util import to_plain
    from training.snapshot import save_snapshot
    cfg = load_config('face_tiny', overrides=['num_threads=2', 'workers=3', 'progress=true'])
    save_snapshot(out / 'snapshot-0000000004.pt', {}, cur_nimg=4, config=to_plain(cfg))
    res = CliRunner().invoke(main, ['--config', 'face_tiny', '--outdir', str(out), '--set', 'num_threads=1',
                                    '--set', 'workers=0', '--set', 'progress=false', '--set', 'optim.G.lr=0.1'])
    assert res.exit_code != 0 and 'another config' in res.output and 'optim.G.lr' in res.output, res.output
    listed = res.output.split('Differences:', 1)[1]             # the keys that differ, one per line
    assert 'optim.G.lr' in listed and not any(k in listed for k in ('num_threads', 'workers', 'progress')), listed

def test_failed_start_does_not_lock_the_run_dir(tmp_path):
    # a run that stopped before its first snapshot (here: a wrong data path; then a dataset whose second image is
    # corrupt, found when the loop opens it after the config was saved) can be rerun with corrected options
    out = tmp_path / 'run'
    res = CliRunner().invoke(main, ['--config', 'face_tiny', '--outdir', str(out), '--data', str(tmp_path / 'no.zip')])
    assert res.exit_code != 0 and 'no.zip' in res.output
    assert not out.exists()                         # the resolution check reads the data before the run dir is made
    data = tmp_path / 'data'
    data.mkdir()
    PIL.Image.new('RGB', (64, 64)).save(data / 'a.png')
    (data / 'b.png').write_bytes((data / 'a.png').read_bytes()[:60])
    label = cameras.make_label(torch.zeros(1), torch.zeros(1))[0].tolist()
    (data / 'dataset.json').write_text(json.dumps({'labels': [['a.png', label], ['b.png', label]]}))
    res = CliRunner().invoke(main, ['--config', 'face_tiny', '--outdir', str(out), '--data', str(data)])
    assert res.exit_code != 0 and 'b.png' in res.output and (out / 'config.yaml').exists()
    res = CliRunner().invoke(main, ['--config', 'face_tiny', '--outdir', str(out), '--data', str(tmp_path / 'other.zip')])
    assert res.exit_code != 0 and 'other.zip' in res.output and 'another config' not in res.output
