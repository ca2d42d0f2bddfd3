"""gen_samples.py and training/generate.py on a tiny random generator saved as a snapshot (CPU)."""

import json

import imageio
import mrcfile
import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner
from _scripts import load_program
from plyfile import PlyData

from training import generate, networks, snapshot

gen_samples = load_program('gen_samples.py')

NRR = 16   # small neural rendering resolution keeps the CLI tests fast

#----------------------------------------------------------------------------
# A tiny random generator saved as G_ema (plus a D that generation must ignore).

@pytest.fixture(scope='module')
def snap(tmp_path_factory):
    torch.manual_seed(0)
    G, D = networks.build_preset('tiny')
    path = tmp_path_factory.mktemp('snap') / 'tiny.pt'
    snapshot.save_snapshot(path, dict(G_ema=G, D=D), cur_nimg=0)
    return str(path)

@pytest.fixture(scope='module')
def G(snap):
    return generate.load_generator(snap)

# Run a gen_samples subcommand; returns the click result.
def run(*args):
    return CliRunner().invoke(gen_samples.cli, [str(a) for a in args], catch_exceptions=False)

def png(path):
    return np.asarray(PIL.Image.open(path))

#----------------------------------------------------------------------------
# Parsers.

def test_parse_seeds_and_ranges():
    assert generate.parse_seeds('0-3,7') == [0, 1, 2, 3, 7]
    assert generate.parse_seeds(' 5 ') == [5]
    for bad, named in [('3-1', '3-1'), ('a', 'a'), ('', ''), ('1,,2', "''"), ('-1', '-1')]:
        with pytest.raises(ValueError) as e:
            generate.parse_seeds(bad)
        assert named in str(e.value)

def test_parse_views():
    assert generate.parse_views('front') == [(0.0, 0.0)]
    assert [y for y, _ in generate.parse_views('ring8')] == [0, 45, 90, 135, 180, -135, -90, -45]
    assert generate.parse_views('yaw:0,270;pitch:-10,10') == [(0.0, -10.0), (-90.0, -10.0), (0.0, 10.0), (-90.0, 10.0)]
    assert generate.parse_views('pitch:20') == [(0.0, 20.0)]
    for bad in ['pitch:90', 'pitch:-95', 'sideways', 'yaw:', 'front;back', '']:
        with pytest.raises(ValueError):
            generate.parse_views(bad)
    assert generate.view_name(7, -45, 10) == 'seed0007_yaw-045_pitch+10'
    assert generate.view_name(0, 22.5, 0) == 'seed0000_yaw+022.5_pitch+00'

def test_view_labels_angles_and_fov():
    c = generate.view_labels([(90.0, 20.0), (180.0, 0.0)], fov_deg=18.837)
    yaw, pitch = generate.cameras.yaw_pitch_from_label(c)
    assert torch.allclose(torch.rad2deg(yaw), torch.tensor([90.0, 180.0]), atol=1e-3)
    assert torch.allclose(torch.rad2deg(pitch), torch.tensor([20.0, 0.0]), atol=1e-3)
    assert abs(float(c[0, 16]) - 4.2634) < 1e-3                       # float FOV, not EG3D's int 18
    assert abs(float(generate.view_labels([(0, 0)])[0, 16]) - 4.2647) < 1e-6

def test_bad_seed_syntax_is_a_click_error(snap, tmp_path):
    for bad in ['3-1', 'a']:
        res = CliRunner().invoke(gen_samples.cli, ['images', '--network', snap, '--outdir', str(tmp_path),
                                                   '--seeds', bad])
        assert res.exit_code == 2 and bad in res.output and '--seeds' in res.output

def test_bad_network_and_values(snap, tmp_path):
    runner = CliRunner()
    res = runner.invoke(gen_samples.cli, ['images', '--network', str(tmp_path / 'nope.pt'), '--outdir',
                                          str(tmp_path), '--seeds', '0'])
    assert res.exit_code == 1 and 'nope.pt' in res.output
    foreign = tmp_path / 'foreign.pt'
    torch.save({'weights': torch.zeros(3)}, foreign)
    res = runner.invoke(gen_samples.cli, ['images', '--network', str(foreign), '--outdir', str(tmp_path), '--seeds', '0'])
    assert res.exit_code == 1 and 'foreign.pt' in res.output
    d_only = tmp_path / 'd_only.pt'
    snapshot.save_snapshot(d_only, dict(D=networks.build_preset('tiny')[1]))
    res = runner.invoke(gen_samples.cli, ['images', '--network', str(d_only), '--outdir', str(tmp_path), '--seeds', '0'])
    assert res.exit_code == 1 and 'no generator' in res.output
    res = runner.invoke(gen_samples.cli, ['images', '--network', snap, '--outdir', str(tmp_path), '--seeds', '0',
                                          '--views', 'pitch:90'])
    assert res.exit_code == 2 and 'pitch:90' in res.output
    res = runner.invoke(gen_samples.cli, ['images', '--network', snap, '--outdir', str(tmp_path), '--seeds', '0',
                                          '--nrr', '0'])
    assert res.exit_code == 2 and '--nrr' in res.output
    res = runner.invoke(gen_samples.cli, ['shapes', '--network', snap, '--outdir', str(tmp_path), '--seeds', '0',
                                          '--shape-res', '4'])
    assert res.exit_code == 2 and '--shape-res' in res.output

#----------------------------------------------------------------------------
# images

def test_images_grid_and_views(snap, tmp_path):
    res = run('images', '--network', snap, '--outdir', tmp_path, '--seeds', '0-1', '--views', 'yaw:0,180',
              '--nrr', NRR, '--depth', '--raw', '--batch', 3)
    assert res.exit_code == 0, res.output
    assert png(tmp_path / 'grid.png').shape == (2 * 64, 2 * 64, 3)
    assert png(tmp_path / 'grid_depth.png').shape == (2 * NRR, 2 * NRR, 3)
    assert png(tmp_path / 'grid_raw.png').shape == (2 * NRR, 2 * NRR, 3)
    single = png(tmp_path / 'seed0001_yaw+180_pitch+00.png')
    assert single.shape == (64, 64, 3)
    assert np.array_equal(single, png(tmp_path / 'grid.png')[64:, 64:])      # row = seed 1, column = yaw 180
    assert (tmp_path / 'seed0000_yaw+000_pitch+00_depth.png').is_file()
    assert not np.array_equal(png(tmp_path / 'grid.png')[:64, :64], png(tmp_path / 'grid.png')[:64, 64:])

def test_cond_pose_render_matches_front_for_frontal_view(G):
    a = generate.render_seed_views(G, [3], [(0.0, 0.0)], cond_pose='front', nrr=NRR)
    b = generate.render_seed_views(G, [3], [(0.0, 0.0)], cond_pose='render', nrr=NRR)
    assert torch.equal(a['image'], b['image'])                                # same camera -> same conditioning
    c = generate.render_seed_views(G, [3], [(90.0, 0.0)], cond_pose='front', nrr=NRR)
    d = generate.render_seed_views(G, [3], [(90.0, 0.0)], cond_pose='render', nrr=NRR)
    assert not torch.equal(c['image'], d['image'])

#----------------------------------------------------------------------------
# video

def test_video_orbit_grid(snap, tmp_path):
    res = run('video', '--network', snap, '--outdir', tmp_path, '--seeds', '0-1', '--grid', '1x2', '--frames', 5,
              '--fps', 10, '--nrr', NRR, '--mode', 'raw', '--pitch-wobble', 10)
    assert res.exit_code == 0, res.output
    path = tmp_path / 'orbit_raw_seed0000-0001.mp4'
    frames = imageio.mimread(path, format='FFMPEG')
    assert len(frames) == 5
    assert frames[0].shape == (NRR, 2 * NRR, 3)

def test_video_pads_odd_sizes(tmp_path):
    frames = [np.full((15, 21, 3), 100 + 10 * i, dtype=np.uint8) for i in range(3)]
    generate.write_video(str(tmp_path / 'odd.mp4'), frames, fps=5)
    back = imageio.mimread(tmp_path / 'odd.mp4', format='FFMPEG')
    assert len(back) == 3 and back[0].shape == (16, 22, 3)

def test_video_bad_grid(snap, tmp_path):
    res = CliRunner().invoke(gen_samples.cli, ['video', '--network', snap, '--outdir', str(tmp_path), '--seeds', '0-2',
                                               '--grid', '2x2'])
    assert res.exit_code == 2 and '2x2' in res.output
    res = CliRunner().invoke(gen_samples.cli, ['video', '--network', snap, '--outdir', str(tmp_path), '--seeds', '0',
                                               '--grid', '2by2'])
    assert res.exit_code == 2 and '2by2' in res.output

#----------------------------------------------------------------------------
# shapes

def test_grid_coords_chunks_and_depth_shading():
    full = generate.grid_coords(5, 2.0)
    assert torch.equal(torch.cat([generate.grid_coords(5, 2.0, i, i + 7) for i in range(0, 125, 7)]), full)
    assert torch.equal(full.reshape(5, 5, 5, 3)[1, 2, 4], torch.tensor([1.0, 0.0, -0.5]))  # [z, y, x] -> (x, y, z)
    depth = torch.tensor([2.25, 2.46, 3.3]).reshape(1, 1, 1, 3)
    assert generate.depth_to_uint8(depth)[0, 0, :, 0].tolist() == [255, 204, 0]         # near = bright
    assert generate.depth_to_uint8(depth, 2.0, 4.0)[0, 0, :, 0].tolist() == [223, 196, 89]

def test_mesh_from_volume_sphere_points_outward():
    res, box = 24, 1.0
    xyz = generate.grid_coords(res, box).numpy().reshape(res, res, res, 3)
    volume = (20 - 100 * np.linalg.norm(xyz - [0.1, 0.0, 0.0], axis=-1)).astype(np.float32)  # sphere r=0.1 at level 10
    verts, faces = generate.mesh_from_volume(volume, 10.0, box)
    assert np.allclose(verts.mean(0), [0.1, 0.0, 0.0], atol=0.02)           # world (x, y, z) order
    assert np.allclose(np.linalg.norm(verts - [0.1, 0, 0], axis=1), 0.1, atol=0.01)
    tri = verts[faces]
    signed_volume = np.einsum('ij,ij->i', tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
    assert signed_volume > 0                                                # normals point out of the dense region
    with pytest.raises(ValueError, match='outside the density range'):
        generate.mesh_from_volume(volume, 50.0, box)

def test_shapes_mrc_and_coloured_ply(snap, G, tmp_path):
    planes = generate.synthesize_planes(G, generate.seeds_to_ws(G, [0]))
    sigma = generate.sample_density(G, planes, 16)
    level = float(np.quantile(sigma, 0.7))                                   # inside the density range
    res = run('shapes', '--network', snap, '--outdir', tmp_path, '--seeds', '0', '--shape-res', 16, '--level', level,
              '--obj', '--chunk', 1000)
    assert res.exit_code == 0, res.output
    with mrcfile.open(tmp_path / 'seed0000.mrc') as mrc:
        assert mrc.data.dtype == np.float32
        assert np.array_equal(mrc.data, sigma)
        assert abs(float(mrc.voxel_size.x) - 1.0 / 15) < 1e-6
    ply = PlyData.read(str(tmp_path / 'seed0000.ply'))
    assert ply.text is False
    vertex = ply['vertex']
    for name in ('red', 'green', 'blue'):
        assert vertex[name].dtype == np.uint8
    assert len(vertex['x']) > 0 and len(ply['face']['vertex_indices']) > 0
    verts = np.stack([vertex['x'], vertex['y'], vertex['z']], axis=1)
    assert np.abs(verts).max() <= 0.5 + 1e-5                                 # inside the renderer's box
    rgb = G.query_field(planes, torch.from_numpy(verts)[None])['rgb'][0, :, :3].clamp(0, 1)
    assert np.abs(np.stack([vertex['red'], vertex['green'], vertex['blue']], 1) - (rgb * 255).numpy()).max() <= 0.51
    assert (tmp_path / 'seed0000.obj').read_text().startswith('v ')

def test_shapes_impossible_level(snap, tmp_path):
    res = CliRunner().invoke(gen_samples.cli, ['shapes', '--network', snap, '--outdir', str(tmp_path), '--seeds', '0',
                                               '--shape-res', '8', '--level', '1e6'])
    assert res.exit_code == 1 and 'outside the density range' in res.output

#----------------------------------------------------------------------------
# interp and edit. Exact comparisons render one item per batch on both sides: CPU convolutions may differ in
# the last bit between batch sizes.

def test_interp_endpoints_equal_seed_images(snap, G, tmp_path):
    res = run('interp', '--network', snap, '--outdir', tmp_path, '--seeds', '2,5', '--steps', 3, '--nrr', NRR,
              '--video-frames', 2, '--fps', 8, '--batch', 1)
    assert res.exit_code == 0, res.output
    strip = png(tmp_path / 'interp_0002-0005.png')
    assert strip.shape == (64, 3 * 64, 3)
    own = generate.to_uint8(generate.render_seed_views(G, [2, 5], [(0.0, 0.0)], nrr=NRR, batch=1)['image'][:, 0])
    assert np.array_equal(strip[:, :64], own[0])
    assert np.array_equal(strip[:, 128:], own[1])
    assert not np.array_equal(strip[:, 64:128], own[0])
    assert len(imageio.mimread(tmp_path / 'interp_0002-0005.mp4', format='FFMPEG')) == 2

def test_interpolate_ws_counts():
    ws = torch.randn(3, 4, 8)
    path = generate.interpolate_ws(ws, 5)
    assert path.shape[0] == 9
    assert torch.equal(path[0], ws[0]) and torch.equal(path[4], ws[1]) and torch.equal(path[8], ws[2])
    assert torch.allclose(path[2], (ws[0] + ws[1]) / 2)

def test_edit_strength_zero_is_original(snap, G, tmp_path):
    direction = np.random.RandomState(0).randn(G.w_dim).astype(np.float32)
    np.save(tmp_path / 'dir.npy', direction)
    res = run('edit', '--network', snap, '--outdir', tmp_path, '--seeds', '1,4', '--direction', tmp_path / 'dir.npy',
              '--strengths', '-3,0', '--nrr', NRR, '--batch', 1)
    assert res.exit_code == 0, res.output
    strip = png(tmp_path / 'edit_dir.png')
    assert strip.shape == (2 * 64, 2 * 64, 3)
    own = generate.to_uint8(generate.render_seed_views(G, [1, 4], [(0.0, 0.0)], nrr=NRR, batch=1)['image'][:, 0])
    assert np.array_equal(strip[:64, 64:128], own[0]) and np.array_equal(strip[64:, 64:128], own[1])
    assert not np.array_equal(strip[:64, :64], own[0])
    assert json.loads((tmp_path / 'edit_dir.json').read_text())['strengths'] == [-3.0, 0.0]

def test_edit_direction_shapes(snap, G, tmp_path):
    for shape in [(G.w_dim,), (1, G.w_dim), (G.num_ws, G.w_dim)]:
        np.save(tmp_path / 'd.npy', np.ones(shape, dtype=np.float32))
        assert generate.load_direction(str(tmp_path / 'd.npy'), G.num_ws, G.w_dim).shape == (G.num_ws, G.w_dim)
    np.save(tmp_path / 'bad.npy', np.ones((3, 7), dtype=np.float32))
    with pytest.raises(ValueError, match=r'\[3, 7\]'):
        generate.load_direction(str(tmp_path / 'bad.npy'), G.num_ws, G.w_dim)
    res = CliRunner().invoke(gen_samples.cli, ['edit', '--network', snap, '--outdir', str(tmp_path), '--seeds', '0',
                                               '--direction', str(tmp_path / 'bad.npy')])
    assert res.exit_code == 2 and '--direction' in res.output and '[3, 7]' in res.output
    ws = torch.randn(2, G.num_ws, G.w_dim)
    d = generate.load_direction(str(tmp_path / 'd.npy'), G.num_ws, G.w_dim)
    out = generate.edit_ws(ws, d, [0.0, 2.0])
    assert torch.equal(out[:, 0], ws) and torch.allclose(out[:, 1], ws + 2)


def test_load_generator_takes_a_run_dir(tmp_path):
    from training import networks, snapshot
    run = tmp_path / 'run'
    run.mkdir()
    with pytest.raises(FileNotFoundError, match='holds no snapshot'):
        generate.load_generator(str(run))
    G, _ = networks.build_preset('tiny')
    snapshot.save_snapshot(str(run / 'snapshot-0000000004.pt'), dict(G_ema=G))
    loaded = generate.load_generator(str(run))
    assert type(loaded).__name__ == 'TriPlaneGenerator' and not loaded.training
