"""Tests for training/synthetic.py: determinism, camera agreement between data and renderer, hair on the back."""

import json
import math

import numpy as np
import pytest
import torch

from training import cameras, mesh, synthetic
from training.dataset import ImageLabelDataset

#----------------------------------------------------------------------------
# One torch thread while rendering (many small per-identity tensors: faster, and fair on shared cores).

@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

# A fixed identity with contrasting colours (light skin, black hair covering the back, no accessories).

def _identity(seed=3):
    params = synthetic.sample_identity(np.random.default_rng(seed))
    params['skin'] = [0.9, 0.75, 0.65]
    params['hair'].update(color=[0.06, 0.05, 0.05], bottom=-0.2, hairline=0.12)
    params['glasses'] = None
    params['hat'] = None
    return params

# Pixel-ray hit mask [N,H,W] computed from the labels by hand (independently of sample_rays): the ray through
# each pixel centre meets the analytic surface (sdf < 0 at one of many depths).
def _analytic_mask(params_list, labels, res, num_depths=600):
    cam2world, intrinsics = cameras.unpack_label(labels)
    fx, fy = intrinsics[:, 0, 0], intrinsics[:, 1, 1]
    cx, cy = intrinsics[:, 0, 2], intrinsics[:, 1, 2]
    centres = (torch.arange(res, dtype=torch.float32) + 0.5) / res
    v, u = torch.meshgrid(centres, centres, indexing='ij')
    masks = []
    field = synthetic.HeadField(params_list)
    for n in range(labels.shape[0]):
        d_cam = torch.stack([(u - cx[n]) / fx[n], (v - cy[n]) / fy[n], torch.ones_like(u)], -1).reshape(-1, 3)
        d_world = torch.nn.functional.normalize(d_cam @ cam2world[n, :3, :3].T, dim=-1)
        origin = cam2world[n, :3, 3]
        dist = float(origin.norm())
        t = torch.linspace(dist - synthetic.BOUND_RADIUS, dist + synthetic.BOUND_RADIUS, num_depths)
        pts = origin + t[None, :, None] * d_world[:, None, :]                    # [R,T,3]
        head = field.heads[n]
        sdf = torch.ones(pts.shape[0] * num_depths)
        flat = pts.reshape(-1, 3)
        inside = head.inside_boxes(flat)
        sdf[inside] = head.sdf(flat[inside])
        masks.append((sdf.reshape(-1, num_depths).amin(1) < 0).reshape(res, res))
    return torch.stack(masks)

#----------------------------------------------------------------------------

def test_identity_is_json_and_deterministic():
    a = synthetic.sample_identity(np.random.default_rng(7))
    b = synthetic.sample_identity(np.random.default_rng(7))
    c = synthetic.sample_identity(np.random.default_rng(8))
    assert json.loads(json.dumps(a)) == a
    assert a == b and a != c

def test_accessories_are_rare_but_present():
    rng = np.random.default_rng(0)
    ids = [synthetic.sample_identity(rng) for _ in range(400)]
    glasses = sum(p['glasses'] is not None for p in ids)
    hats = sum(p['hat'] is not None for p in ids)
    assert 5 <= glasses <= 40 and 5 <= hats <= 40

def test_head_fits_box_and_frame():
    params = _identity()
    head = synthetic.HeadField([params]).heads[0]
    for lo, hi in head.boxes:  # the culling boxes are padded by BOX_MARGIN around the parts
        assert np.all(lo + synthetic.BOX_MARGIN >= -0.5) and np.all(hi - synthetic.BOX_MARGIN <= 0.5)
    # frontal FFHQ camera: the head (crown to chin) covers 60-80 percent of the image height
    c = cameras.make_label(torch.zeros(1), torch.zeros(1))
    mask = _analytic_mask([params], c, 32, num_depths=300)[0]
    top = int(torch.nonzero(mask.any(1)).flatten().min())
    (_, jaw_y, jaw_z), (_, jaw_ry, _) = head.jaw
    chin = 32 * (0.5 + cameras.FFHQ_FOCAL * (jaw_ry - jaw_y) / (cameras.DEFAULT_RADIUS - jaw_z))
    assert 0.6 <= (chin - top) / 32 <= 0.8, (top, chin)
    alpha = synthetic.render_heads_with_alpha([params], c, 32)['alpha'][0, 0]
    assert int(torch.nonzero((alpha > 0.5).any(1)).flatten().min()) == pytest.approx(top, abs=1)

def test_silhouette_matches_analytic_geometry():
    rng = np.random.default_rng(1)
    params = [_identity(1), synthetic.sample_identity(rng), synthetic.sample_identity(rng), _identity(2)]
    yaw = torch.tensor([0.0, 0.7, math.pi, -2.0])
    pitch = torch.tensor([0.0, 0.2, -0.25, 0.1])
    labels = cameras.make_label(yaw, pitch)
    alpha = synthetic.render_heads_with_alpha(params, labels, 32)['alpha'][:, 0]
    rendered = alpha > 0.5
    analytic = _analytic_mask(params, labels, 32, num_depths=300)
    for n in range(len(params)):
        inter = (rendered[n] & analytic[n]).sum().item()
        union = (rendered[n] | analytic[n]).sum().item()
        assert union > 100
        assert inter / union > 0.9, (n, inter / union)

def test_back_view_shows_hair_not_face():
    params = _identity()
    labels = cameras.make_label(torch.tensor([0.0, math.pi]), torch.zeros(2))
    images = synthetic.render_heads([params, params], labels, 32)
    rgb = (images + 1) / 2
    # the face region: the middle of the image (eyes, nose, mouth from the front)
    region = rgb[:, :, 12:22, 11:21].mean(dim=(2, 3))  # [2,3]
    skin, hair = torch.tensor(params['skin']), torch.tensor(params['hair']['color'])
    front, back = region[0], region[1]
    assert (front - skin).norm() < (front - hair).norm()
    assert (back - hair).norm() < (back - skin).norm()
    assert (front - back).abs().sum() > 0.5

def test_images_in_range_and_background_white():
    params = [_identity()]
    c = cameras.make_label(torch.zeros(1), torch.zeros(1))
    out = synthetic.render_heads_with_alpha(params, c, 32)
    img, alpha = out['image'], out['alpha']
    assert img.shape == (1, 3, 32, 32) and img.min() >= -1 and img.max() <= 1
    assert torch.all(img[0, :, 0, 0] == 1) and alpha[0, 0, 0, 0] == 0  # corner is background
    assert alpha.max() > 0.99

def test_build_world_is_byte_identical(tmp_path):
    kwargs = dict(num_faces=3, num_head_ids=2, views_per_head=4, resolution=16, seed=5, batch_size=4)
    info = synthetic.build_world(tmp_path / 'a', **kwargs)
    synthetic.build_world(tmp_path / 'b', **kwargs)
    for name in ['faces.zip', 'heads.zip', 'identities.json']:
        assert (tmp_path / 'a' / name).read_bytes() == (tmp_path / 'b' / name).read_bytes(), name
    synthetic.build_world(tmp_path / 'c', **dict(kwargs, seed=6, num_head_ids=1))
    assert (tmp_path / 'a' / 'faces.zip').read_bytes() != (tmp_path / 'c' / 'faces.zip').read_bytes()

    faces = ImageLabelDataset(tmp_path / 'a' / 'faces.zip')
    heads = ImageLabelDataset(tmp_path / 'a' / 'heads.zip')
    assert len(faces) == 3 and len(heads) == 8 and heads.resolution == 16
    assert np.all(np.abs(faces.yaws_deg()) <= 45 + 1e-3)
    # head views cover the full circle: one per 90-degree sector
    sectors = np.floor((heads.yaws_deg()[:4] + 180) / 90) % 4
    assert sorted(sectors.tolist()) == [0, 1, 2, 3]
    # labels in the zip match the angles recorded in identities.json
    view = info['heads'][1]['views'][2]
    idx = [heads.image_name(i) for i in range(len(heads))].index(view['image'])
    assert heads.yaws_deg()[idx] == pytest.approx(view['yaw_deg'], abs=1e-3)

def test_mesh_of_surface(tmp_path):
    verts, faces = synthetic.head_mesh(_identity(), grid_resolution=40)
    assert len(faces) > 100
    assert verts.min() >= -0.5 and verts.max() <= 0.5
    assert verts[:, 1].max() > 0.15 and verts[:, 2].max() > 0.15  # crown above, face toward +z
    path = tmp_path / 'm.ply'
    mesh.write_ply(str(path), verts, faces)
    assert path.stat().st_size > 0

def test_side_views_stay_centred():
    # the world's cameras look at the head's centre, so a profile view is as centred as the frontal one
    params = _identity()
    labels = cameras.make_label(torch.tensor([0.0, math.pi / 2, -math.pi / 2]), torch.zeros(3),
                                pivot=synthetic.WORLD_PIVOT)
    alpha = synthetic.render_heads_with_alpha([params] * 3, labels, 32)['alpha'][:, 0]
    xs = torch.arange(32, dtype=torch.float32) + 0.5
    centre_x = (alpha.sum(1) * xs).sum(1) / alpha.sum((1, 2))
    assert torch.all((centre_x - 16).abs() < 3), centre_x

def test_two_jobs_write_identical_files(tmp_path):
    kw = dict(num_faces=3, num_head_ids=2, views_per_head=2, resolution=16, seed=5, progress=False)
    synthetic.build_world(str(tmp_path / 'a'), jobs=1, **kw)
    synthetic.build_world(str(tmp_path / 'b'), jobs=2, **kw)
    for name in ('faces.zip', 'heads.zip', 'identities.json'):
        assert (tmp_path / 'a' / name).read_bytes() == (tmp_path / 'b' / name).read_bytes(), name
