"""training/mesh.py: the one marching cubes and the one .ply/.obj writer of the synthetic world and of generation.
Fixed analytic fields; the references are skimage and the PLY layout themselves, so the outputs the two callers
wrote before the code had one home (a direct skimage call each) are reproduced bit for bit."""

import struct

import numpy as np
import pytest
import torch
from skimage import measure

from training import generate, mesh, synthetic

#----------------------------------------------------------------------------
# An ellipsoid as a signed distance-like field on a res^3 grid over [-half, half]^3, indexed [x, y, z].

def _ellipsoid_sdf(res, half, center=(0.1, -0.05, 0.2), radii=(0.3, 0.25, 0.2)):
    axis = np.linspace(-half, half, res, dtype=np.float32)
    x, y, z = np.meshgrid(axis, axis, axis, indexing='ij')
    r = np.sqrt(sum(((p - c) / s) ** 2 for p, c, s in zip((x, y, z), center, radii)))
    return ((r - 1) * min(radii)).astype(np.float32), float(axis[1] - axis[0])

def _signed_volume(verts, faces):
    tri = verts[faces].astype(np.float64)
    return np.einsum('ij,ij->i', tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6

#----------------------------------------------------------------------------

def test_synthetic_head_mesh_matches_skimage_with_spacing(monkeypatch):
    # synthetic.head_mesh: sdf[x, y, z] over [-BOUND_RADIUS, BOUND_RADIUS]^3, skimage's default winding and spacing
    seen = []
    def spy(volume, *args, **kwargs):
        seen.append(volume.copy())
        return mesh.marching_cubes(volume, *args, **kwargs)
    monkeypatch.setattr(synthetic, 'marching_cubes', spy)
    params = synthetic.sample_identity(np.random.default_rng(3))
    verts, faces = synthetic.head_mesh(params, grid_resolution=24)
    lin = torch.linspace(-synthetic.BOUND_RADIUS, synthetic.BOUND_RADIUS, 24)             # head_mesh's grid
    spacing = float(lin[1] - lin[0])
    ref_verts, ref_faces, _, _ = measure.marching_cubes(seen[0], level=0.0, spacing=(spacing,) * 3)
    assert np.array_equal(verts, ref_verts - synthetic.BOUND_RADIUS) and np.array_equal(faces, ref_faces)
    assert _signed_volume(verts, faces) > 0                                      # outward normals

def test_generate_mesh_from_volume_matches_padded_skimage():
    # generate.mesh_from_volume: density[z, y, x] over the box, padded below the level, axes reversed, clipped
    box, level = 1.0, 0.0
    sdf, _ = _ellipsoid_sdf(24, box / 2, center=(0.1, -0.05, 0.35))              # touches the box: capped
    density = np.ascontiguousarray(-sdf.transpose(2, 1, 0))
    padded = np.pad(density, 1, mode='constant', constant_values=min(float(density.min()), level) - 1.0)
    ref_verts, ref_faces, _, _ = measure.marching_cubes(padded, level=level, gradient_direction='descent')
    ref_verts = np.clip((ref_verts[:, ::-1] - 1.0) * (box / 23) - box / 2, -box / 2, box / 2)
    verts, faces = generate.mesh_from_volume(density, level, box)
    assert verts.dtype == np.float32 and faces.dtype == np.int32
    assert np.array_equal(verts, ref_verts) and np.array_equal(faces, ref_faces)
    assert np.isclose(verts[:, 2].max(), box / 2)                                 # the cap on the z = +box/2 face

@pytest.mark.parametrize('order', ['xyz', 'zyx'])
@pytest.mark.parametrize('inside', ['above', 'below'])
@pytest.mark.parametrize('close', [False, True])
def test_marching_cubes_axes_and_outward_winding(order, inside, close):
    sdf, _ = _ellipsoid_sdf(20, 0.5)
    volume = sdf if inside == 'below' else -sdf
    if order == 'zyx':
        volume = np.ascontiguousarray(volume.transpose(2, 1, 0))
    verts, faces = mesh.marching_cubes(volume, 0.0, order=order, inside=inside, close=close)
    world = verts * (1.0 / 19) - 0.5
    assert np.allclose(world.mean(0), [0.1, -0.05, 0.2], atol=0.02)             # (x, y, z) whatever the order
    assert _signed_volume(world, faces) > 0                                      # counter-clockwise from outside
    assert np.isclose(_signed_volume(world, faces), 4 / 3 * np.pi * 0.3 * 0.25 * 0.2, rtol=0.05)

def test_marching_cubes_rejects_a_level_without_surface():
    sdf, _ = _ellipsoid_sdf(12, 0.5)
    with pytest.raises(ValueError, match=r'outside the density range \['):
        mesh.marching_cubes(sdf, 5.0, what='density')
    with pytest.raises(ValueError, match='order must be'):
        mesh.marching_cubes(sdf, 0.0, order='yxz')

#----------------------------------------------------------------------------
# The .ply layout, byte for byte: header, then little-endian float32 x, y, z (+ uint8 r, g, b) per vertex and
# a uint8 count + int32 indices per face.

_TRIANGLE = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.5, -2.0]], np.float32)

def _ply_header(colors):
    props = ['x', 'y', 'z'] + (['red', 'green', 'blue'] if colors else [])
    types = ['float'] * 3 + ['uchar'] * (3 if colors else 0)
    lines = ['ply', 'format binary_little_endian 1.0', 'element vertex 3']
    lines += [f'property {t} {p}' for t, p in zip(types, props)]
    lines += ['element face 1', 'property list uchar int vertex_indices', 'end_header']
    return ('\n'.join(lines) + '\n').encode('ascii')

def test_write_ply_bytes(tmp_path):
    faces = np.array([[0, 1, 2]], np.int64)
    mesh.write_ply(str(tmp_path / 'plain.ply'), _TRIANGLE, faces)
    body = b''.join(struct.pack('<3f', *v) for v in _TRIANGLE) + struct.pack('<B3i', 3, 0, 1, 2)
    assert (tmp_path / 'plain.ply').read_bytes() == _ply_header(False) + body
    colors = np.array([[255, 0, 7], [1, 2, 3], [9, 8, 7]], np.uint8)
    mesh.write_ply(str(tmp_path / 'color.ply'), _TRIANGLE, faces.astype(np.int32), colors)
    body = b''.join(struct.pack('<3f3B', *v, *c) for v, c in zip(_TRIANGLE, colors)) + struct.pack('<B3i', 3, 0, 1, 2)
    assert (tmp_path / 'color.ply').read_bytes() == _ply_header(True) + body

def test_write_obj(tmp_path):
    colors = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    mesh.write_obj(str(tmp_path / 'm.obj'), _TRIANGLE, np.array([[0, 1, 2]], np.int32), colors)
    lines = (tmp_path / 'm.obj').read_text().splitlines()
    assert lines[0] == 'v 0.000000 0.000000 0.000000 1.0000 0.0000 0.0000'
    assert lines[2] == 'v 0.000000 0.500000 -2.000000 0.0000 0.0000 1.0000'
    assert lines[3] == 'f 1 2 3' and len(lines) == 4
