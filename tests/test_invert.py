"""GAN inversion (training/inversion.py, invert.py, gen_samples --latent, scripts/bench_inversion.py) on a small random
tri-plane generator (32^2, CPU): it must invert renders of itself, and every bad input must give a clear error."""

import copy
import json
import math

import numpy as np
import PIL.Image
import pytest
import torch
from _scripts import load_program
from click.testing import CliRunner

from training import checkpoint, generate, inversion, networks, snapshot, synthetic

gen_samples = load_program('gen_samples.py')
invert = load_program('invert.py')
bench_main = load_program('scripts/bench_inversion.py').main

# The tiny preset shrunk further (as tests/_world.SMALL does for training): a projection step takes ~0.1 s on CPU.
SMALL = dict(img_resolution=32, plane_resolution=16, channel_base=256, channel_max=16, z_dim=16, w_dim=16,
             sr_input_resolution=16, sr_channels=[16, 16], neural_rendering_resolution=16,
             rendering_kwargs=dict(depth_resolution=6, depth_resolution_importance=6, white_back=True))

# One torch thread: the many small ops of a step run faster without a second thread to wait for.
@pytest.fixture(scope='module', autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

@pytest.fixture(scope='module')
def snap(tmp_path_factory):
    torch.manual_seed(0)
    G, _ = networks.build_preset('tiny', G_overrides=SMALL)
    path = tmp_path_factory.mktemp('inv') / 'G.pt'
    snapshot.save_snapshot(path, dict(G_ema=G))
    return str(path)

@pytest.fixture(scope='module')
def G(snap):
    return generate.load_generator(snap)

# A render of G from a known latent (seed 5) at the frontal camera: (image [1,3,H,W], label [1,25]).
@pytest.fixture(scope='module')
def self_render(G):
    c = generate.view_labels([(0.0, 0.0)], G=G)
    ws = generate.seeds_to_ws(G, [5], c_cond=c)
    with torch.no_grad():
        return inversion.render(G, ws, c), c

# Write the self render as a PNG (+ its label as JSON); returns (image path, label path).
@pytest.fixture
def photo(self_render, tmp_path):
    img, c = self_render
    path = tmp_path / 'photo.png'
    PIL.Image.fromarray(generate.to_uint8(img)[0]).save(path)
    label = tmp_path / 'photo.json'
    label.write_text(json.dumps(c[0].tolist()))
    return str(path), str(label)

def run_invert(*args):
    return CliRunner().invoke(invert.main, [str(a) for a in args])

FAST = ['--steps', 4, '--perceptual', 'none', '--video-frames', 0, '--shape-res', 0, '--device', 'cpu']

#----------------------------------------------------------------------------
# The optimisation core.

def test_projection_then_pti_raise_psnr_and_leave_G_alone(G, self_render):
    target, c = self_render
    before = checkpoint.weights_hash(G)
    proj = inversion.project(G, target, c, space='w+', steps=20, w_avg_samples=2000, seed=0)
    with torch.no_grad():
        start = float(inversion.psnr(inversion.render(G, proj['w_avg'], c), target))
    G_proj = copy.deepcopy(G)
    inversion.set_noise(G_proj, proj['noise'])
    with torch.no_grad():
        projected = float(inversion.psnr(inversion.render(G_proj, proj['ws'], c), target))
    assert projected > start + 7, (start, projected)          # measured: +9.6 to +10.9 dB over seeds 0-2
    pti = inversion.pivotal_tune(G, proj['ws'], proj['noise'], target, c, steps=6, lr=2e-3, w_dist=proj['w_dist'])
    with torch.no_grad():
        tuned = float(inversion.psnr(inversion.render(pti['G'], proj['ws'], c), target))
    assert tuned > projected + 1, (projected, tuned)          # measured: +1.7 to +2.4 dB
    assert checkpoint.weights_hash(G) == before                 # the caller's generator is untouched
    assert len(proj['curve']) == 20 and len(pti['curve']) == 6
    assert all(math.isfinite(r['loss']) for r in proj['curve'] + pti['curve'])
    assert 'locality' in pti['curve'][0]

def test_w_space_is_one_w_repeated(G, self_render):
    target, c = self_render
    proj = inversion.project(G, target, c, space='w', steps=2, w_avg_samples=500, optimize_noise=False)
    assert proj['ws'].shape == (1, G.num_ws, G.w_dim)
    assert torch.equal(proj['ws'], proj['ws'][:, :1].expand_as(proj['ws']))

def test_learning_rate_schedule():
    lrs = [inversion.learning_rate(t / 100, 0.1) for t in range(100)]
    assert lrs[0] == 0 and max(lrs) == pytest.approx(0.1) and lrs[-1] < 0.001
    assert inversion.learning_rate(0.5, 0.1) == pytest.approx(0.1)

def test_nan_loss_stops_with_last_finite_latent(G, self_render):
    target, c = self_render
    calls = []
    def nan_after_3(a, b):                    # a perceptual distance that breaks at the 4th step
        calls.append(1)
        return a.new_full([a.shape[0]], float('nan') if len(calls) > 3 else 0.0)
    with pytest.raises(inversion.NonFiniteLoss) as info:
        inversion.project(G, target, c, steps=10, perceptual=nan_after_3, w_avg_samples=500)
    assert info.value.step == 3 and torch.isfinite(info.value.ws).all()
    assert 'step 3' in str(info.value)

def test_latent_file_round_trip_and_errors(G, tmp_path):
    ws = torch.randn(1, G.num_ws, G.w_dim)
    noise = {k: torch.randn(v.shape) for k, v in inversion.noise_buffers(G).items()}
    path = str(tmp_path / 'l.npz')
    inversion.save_latent(path, ws, noise, torch.zeros(1, 25), 'w+', 'net.pt')
    ws2, noise2 = inversion.load_latent(path, G.num_ws, G.w_dim)
    assert torch.equal(ws, ws2) and all(torch.equal(noise[k], noise2[k]) for k in noise)
    with pytest.raises(ValueError, match=r'needs \[N, '):
        inversion.load_latent(path, G.num_ws + 1, G.w_dim)
    np.savez(tmp_path / 'bad.npz', other=np.zeros(3))
    with pytest.raises(ValueError, match='no "ws" array'):
        inversion.load_latent(str(tmp_path / 'bad.npz'), G.num_ws, G.w_dim)

def test_novel_identities_are_new_and_repeatable():
    new = synthetic.novel_identities(3, seed=0)
    assert new == synthetic.novel_identities(3, seed=0)
    for stream in (0, 1):                  # build_world's faces and heads streams
        rng = np.random.default_rng([0, stream])
        world = [synthetic.sample_identity(rng) for _ in range(3)]
        assert all(n != w for n in new for w in world)

#----------------------------------------------------------------------------
# invert.py end to end, then gen_samples edit/video with the inverted latent and the tuned generator.

def test_cli_outputs_and_edit_of_the_inverted_latent(snap, photo, tmp_path):
    image, label = photo
    out = tmp_path / 'out'
    r = run_invert('--network', snap, '--target', image, '--label', label, '--outdir', out, '--pti-steps', 2,
                   '--steps', 4, '--perceptual', 'none', '--video-frames', 2, '--shape-res', 16, '--level', 0.0,
                   '--device', 'cpu')
    assert r.exit_code == 0, r.output
    d = out / 'photo'
    for name in ('compare.png', 'latent.npz', 'G_pti.pt', 'orbit.mp4', 'metrics.json', 'loss.csv', 'loss.png'):
        assert (d / name).is_file(), name
    m = json.loads((d / 'metrics.json').read_text())
    assert m['steps'] == 4 and m['pti_steps'] == 2 and m['perceptual'] == 'none'
    assert all(math.isfinite(m[k]) for k in ('psnr_projection', 'psnr_pti', 'psnr_w_avg_start'))
    assert np.asarray(PIL.Image.open(d / 'compare.png')).shape == (32, 96, 3)       # input | projection | PTI
    assert len((d / 'loss.csv').read_text().splitlines()) == 1 + 4 + 2
    tuned = generate.load_generator(str(d / 'G_pti.pt'))                            # our safe snapshot format
    assert checkpoint.weights_hash(tuned) != checkpoint.weights_hash(generate.load_generator(snap))

    # Edit at strength 0 = the PTI reconstruction at the input view.
    np.save(tmp_path / 'dir.npy', np.ones(16, np.float32))
    r = CliRunner().invoke(gen_samples.cli, ['edit', '--network', str(d / 'G_pti.pt'), '--latent', str(d / 'latent.npz'),
                                             '--direction', str(tmp_path / 'dir.npy'), '--strengths', '0',
                                             '--outdir', str(tmp_path / 'ed'), '--device', 'cpu'])
    assert r.exit_code == 0, r.output
    edited = np.asarray(PIL.Image.open(tmp_path / 'ed' / 'edit_dir.png')).astype(int)
    recon = np.asarray(PIL.Image.open(d / 'compare.png')).astype(int)[:, 64:]
    assert np.abs(edited - recon).max() <= 2
    r = CliRunner().invoke(gen_samples.cli, ['video', '--network', str(d / 'G_pti.pt'), '--latent', str(d / 'latent.npz'),
                                             '--frames', '2', '--outdir', str(tmp_path / 'vid'), '--device', 'cpu'])
    assert r.exit_code == 0, r.output
    assert (tmp_path / 'vid' / 'orbit_image_latent.mp4').is_file()
    r = CliRunner().invoke(gen_samples.cli, ['edit', '--network', snap, '--direction', str(tmp_path / 'dir.npy'),
                                             '--outdir', str(tmp_path / 'ed')])
    assert r.exit_code != 0 and 'exactly one of --seeds and --latent' in r.output

def test_cli_dataset_masks_and_resize(snap, self_render, tmp_path):
    img, c = self_render
    src = tmp_path / 'set'
    src.mkdir()
    big = PIL.Image.fromarray(generate.to_uint8(img)[0]).resize((64, 64), PIL.Image.LANCZOS)
    big.save(src / 'a.png')
    (src / 'dataset.json').write_text(json.dumps({'labels': [['a.png', c[0].tolist()]]}))
    masks = tmp_path / 'masks'
    masks.mkdir()
    PIL.Image.fromarray(np.full((64, 64), 255, np.uint8)).save(masks / 'a.png')
    r = run_invert('--network', snap, '--target', src, '--masks', masks, '--outdir', tmp_path / 'o', *FAST)
    assert r.exit_code == 0, r.output
    assert 'resized 64x64 -> 32x32' in r.output
    m = json.loads((tmp_path / 'o' / 'a' / 'metrics.json').read_text())
    assert m['resized_from'] == 64 and m['masked'] is True
    PIL.Image.fromarray(np.full((32, 32), 255, np.uint8)).save(masks / 'a.png')        # mask of another size
    r = run_invert('--network', snap, '--target', src, '--masks', masks, '--outdir', tmp_path / 'o', *FAST)
    assert r.exit_code != 0 and 'mask is 32x32' in r.output and 'a.png' in r.output
    r = run_invert('--network', snap, '--target', src, '--outdir', src / 'inv', *FAST)
    assert r.exit_code != 0 and 'inside the --target folder' in r.output and not (src / 'inv').exists()

#----------------------------------------------------------------------------
# Bad input: one-line errors naming the file, never a traceback.

def test_image_without_label_says_how_to_get_one(snap, photo, tmp_path):
    image, _ = photo
    r = run_invert('--network', snap, '--target', image, '--outdir', tmp_path / 'o', *FAST)
    assert r.exit_code != 0 and 'Traceback' not in r.output
    assert 'photo.png has no camera label' in r.output and 'preprocessing' in r.output

def test_bad_label_values(snap, photo, tmp_path):
    image, _ = photo
    r = run_invert('--network', snap, '--target', image, '--label', '1,2,3', '--outdir', tmp_path / 'o', *FAST)
    assert r.exit_code != 0 and 'label has 3 values, expected 25' in r.output
    bad = tmp_path / 'nan.json'
    bad.write_text(json.dumps([float('nan')] * 25))
    r = run_invert('--network', snap, '--target', image, '--label', bad, '--outdir', tmp_path / 'o', *FAST)
    assert r.exit_code != 0 and 'nan.json' in r.output and 'NaN' in r.output

def test_non_square_image_is_refused(snap, photo, tmp_path):
    image, label = photo
    wide = tmp_path / 'wide.png'
    PIL.Image.new('RGB', (48, 32), 'white').save(wide)
    r = run_invert('--network', snap, '--target', wide, '--label', label, '--outdir', tmp_path / 'o', *FAST)
    assert r.exit_code != 0 and 'wide.png: image is not square (48x32)' in r.output

def test_lpips_vgg_without_the_vgg_file_names_it(snap, photo, tmp_path, monkeypatch):
    image, label = photo
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    r = run_invert('--network', snap, '--target', image, '--label', label, '--outdir', tmp_path / 'o',
                   '--perceptual', 'lpips_vgg', '--steps', 1)
    assert r.exit_code != 0 and 'vgg16-397923af.pth' in r.output

def test_nan_in_cli_saves_the_last_finite_latent(snap, photo, tmp_path, monkeypatch):
    image, label = photo
    real = inversion.image_loss
    calls = []
    def broken(img, target, *args, **kwargs):
        calls.append(1)
        total, parts = real(img, target, *args, **kwargs)
        return (total * float('nan') if len(calls) > 2 else total), parts
    monkeypatch.setattr(inversion, 'image_loss', broken)
    r = run_invert('--network', snap, '--target', image, '--label', label, '--outdir', tmp_path / 'o', *FAST)
    assert r.exit_code != 0 and 'at step 2' in r.output
    assert (tmp_path / 'o' / 'photo' / 'latent_last_finite.npz').is_file()

def test_outputs_never_overwrite_inputs(snap, photo, tmp_path):
    image, label = photo
    # An input image named like an output, inside the output folder of its own stem.
    d = tmp_path / 'o' / 'metrics'
    d.mkdir(parents=True)
    target = d / 'metrics.json'
    PIL.Image.open(image).save(target, format='PNG')
    before = target.read_bytes()
    r = run_invert('--network', snap, '--target', target, '--label', label, '--outdir', tmp_path / 'o', *FAST)
    assert r.exit_code != 0 and 'would overwrite the input' in r.output
    assert target.read_bytes() == before

#----------------------------------------------------------------------------
# The benchmark at toy size: the table has every row, the baselines included.

def test_bench_inversion_toy(snap, tmp_path):
    r = CliRunner().invoke(bench_main, ['--networks', f'toy={snap}', '--outdir', str(tmp_path), '--num', '2',
                                        '--steps', '2', '--pti-steps', '1', '--configs', 'w+pti',
                                        '--perceptual', 'lpips_vgg_randtrunk'])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / 'results_toy.json').read_text())
    assert set(res['summary']) == {'w_avg', 'w+pti', 'chance', 'truth'}
    for key in ('w_avg', 'w+pti', 'chance'):
        s = res['summary'][key]
        assert len(s['psnr']) == 5 and len(s['perceptual']) == 5 and all(math.isfinite(v) for v in s['psnr'])
    assert 'offline stand-in' in res['perceptual']
    table = (tmp_path / 'table.md').read_text()
    assert 'W+ + PTI' in table and "another identity's ground truth" in table and 'not LPIPS' in table
