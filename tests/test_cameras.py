"""Analytic tests of training/cameras.py: label layout, poses, angles, mirroring, orbits."""

import math

import numpy as np
import pytest
import torch

from training import cameras as cam

#----------------------------------------------------------------------------
# Pinhole projection written out independently: world point [3] -> normalised image coords (u, v).

def project_point(label, point):
    cam2world = label[:16].reshape(4, 4).double()
    K = label[16:].reshape(3, 3).double()
    R, t = cam2world[:3, :3], cam2world[:3, 3]
    x, y, z = R.T @ (torch.tensor(point, dtype=torch.float64) - t)  # camera frame: x right, y down, z forward
    u = K[0, 0] * x / z + K[0, 1] * y / z + K[0, 2]
    v = K[1, 1] * y / z + K[1, 2]
    return float(u), float(v), float(z)

#----------------------------------------------------------------------------

def test_pack_unpack_round_trip():
    g = torch.Generator().manual_seed(0)
    c2w = torch.randn(5, 4, 4, generator=g)
    K = torch.randn(5, 3, 3, generator=g)
    c = cam.pack_label(c2w, K)
    assert c.shape == (5, cam.LABEL_DIM)
    c2w2, K2 = cam.unpack_label(c)
    assert torch.equal(c2w2, c2w) and torch.equal(K2, K)
    assert torch.equal(cam.pack_label(c2w2, K2), c)
    # row-major: entry [0, 3] is the camera x position, entries 16.. the intrinsics
    assert c[0, 3] == c2w[0, 0, 3] and c[0, 16] == K[0, 0, 0] and c[0, 18] == K[0, 0, 2]
    # one shared [3,3] intrinsics broadcasts
    assert torch.equal(cam.pack_label(c2w, K[0])[:, 16:], K[0].reshape(1, 9).expand(5, 9))


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r'\[N, 25\]'):
        cam.unpack_label(torch.zeros(3, 24))
    with pytest.raises(ValueError, match=r'\[N, 25\]'):
        cam.yaw_pitch_from_label(torch.zeros(25))
    with pytest.raises(ValueError, match=r'\[N, 25\]'):
        cam.mirror_label(torch.zeros(2, 25, 1))
    with pytest.raises(ValueError, match='floating'):
        cam.unpack_label(torch.zeros(2, 25, dtype=torch.int64))
    with pytest.raises(TypeError):
        cam.unpack_label([[0.0] * 25])
    with pytest.raises(ValueError, match=r'\[N, 4, 4\]'):
        cam.pack_label(torch.zeros(2, 3, 4), torch.zeros(2, 3, 3))
    with pytest.raises(ValueError, match=r'\[N, 3, 3\]'):
        cam.pack_label(torch.zeros(2, 4, 4), torch.zeros(3, 3, 3))
    with pytest.raises(ValueError):
        cam.create_cam2world(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError):
        cam.fov_to_intrinsics(0)
    with pytest.raises(ValueError):
        cam.orbit_labels(0)


def test_numpy_labels_accepted():
    c = cam.make_label(0.3, 0.1).numpy()
    yaw, pitch = cam.yaw_pitch_from_label(c)
    assert yaw.item() == pytest.approx(0.3, abs=1e-5) and pitch.item() == pytest.approx(0.1, abs=1e-5)
    assert isinstance(np.asarray(cam.mirror_label(c)), np.ndarray)


def test_intrinsics():
    K = cam.intrinsics_from_focal()
    assert torch.allclose(K, torch.tensor([[4.2647, 0, 0.5], [0, 4.2647, 0.5], [0, 0, 1]]))
    assert cam.fov_to_intrinsics(18.837)[0, 0].item() == pytest.approx(4.2634, abs=1e-4)
    assert cam.fov_to_intrinsics(18.837)[1, 2].item() == 0.5


def test_frontal_sampler():
    c2w = cam.LookAtPoseSampler.sample(math.pi / 2, math.pi / 2, torch.tensor(cam.DEFAULT_PIVOT))
    assert c2w.shape == (1, 4, 4)
    assert torch.allclose(c2w[0, :3, 3], torch.tensor([0.0, 0.0, 2.7]), atol=1e-6)
    # OpenCV axes: x right (= world +x seen from the front), y down (world -y), z forward (world -z)
    assert torch.allclose(c2w[0, :3, :3], torch.diag(torch.tensor([1.0, -1.0, -1.0])), atol=1e-6)
    c = cam.pack_label(c2w, cam.intrinsics_from_focal())
    yaw, pitch = cam.yaw_pitch_from_label(c)
    assert abs(yaw.item()) < 1e-6 and abs(pitch.item()) < 1e-6


def test_projection_of_known_points():
    c = cam.make_label(0.0, 0.0)[0]
    u, v, z = project_point(c, cam.DEFAULT_PIVOT)
    assert (u, v) == pytest.approx((0.5, 0.5), abs=1e-6) and z == pytest.approx(2.5, abs=1e-6)
    # off-axis point: +x appears right, +y (up in the world) appears above the centre (smaller v)
    u, v, z = project_point(c, (0.1, 0.05, 0.2))
    assert u == pytest.approx(0.5 + 4.2647 * 0.1 / 2.5, abs=1e-5)
    assert v == pytest.approx(0.5 - 4.2647 * 0.05 / 2.5, abs=1e-5)
    # a rotated camera still sees the pivot at the image centre and at the right distance
    c = cam.make_label(1.1, -0.3)[0]
    u, v, z = project_point(c, cam.DEFAULT_PIVOT)
    dist = torch.linalg.norm(c[[3, 7, 11]].double() - torch.tensor(cam.DEFAULT_PIVOT, dtype=torch.float64))
    assert (u, v) == pytest.approx((0.5, 0.5), abs=1e-5) and z == pytest.approx(dist.item(), abs=1e-5)


def test_yaw_pitch_conventions():
    yaw = torch.tensor([0.0, 0.5, -0.5, 2.0, -3.0, math.pi / 2])
    pitch = torch.tensor([0.0, 0.2, -0.2, 0.6, -1.0, 0.0])
    c = cam.make_label(yaw, pitch)
    y2, p2 = cam.yaw_pitch_from_label(c)
    assert torch.allclose(y2, yaw, atol=1e-5) and torch.allclose(p2, pitch, atol=1e-5)
    t = c[:, [3, 7, 11]]
    assert torch.allclose(t.norm(dim=1), torch.full((6,), 2.7), atol=1e-5)  # sphere about the origin
    assert t[1, 0] > 0 and t[1, 1] > 0  # positive yaw toward +x, positive pitch above
    assert t[5, 0] == pytest.approx(2.7, abs=1e-5)  # yaw pi/2: camera on +x
    # the back camera: yaw pi lands in (-pi, pi]
    yb, _ = cam.yaw_pitch_from_label(cam.make_label(math.pi, 0.0))
    assert yb.item() == pytest.approx(math.pi, abs=1e-5)


def test_pose_from_angles_matches_lookat_sampler():
    yaw = torch.tensor([0.0, 0.4, -1.2, 3.0])
    pitch = torch.tensor([0.0, -0.2, 0.3, 0.1])
    pivot = torch.tensor(cam.DEFAULT_PIVOT)
    ref = cam.LookAtPoseSampler.sample(math.pi / 2 + yaw, cam.pitch_to_v(pitch), pivot, batch_size=4)
    assert torch.allclose(cam.pose_from_angles(yaw, pitch), ref, atol=1e-6)
    assert torch.allclose(cam.v_to_pitch(cam.pitch_to_v(pitch)), pitch, atol=1e-5)
    # EG3D's gen_samples pose (v = pi/2 - 0.2) puts the camera above the head
    c2w = cam.LookAtPoseSampler.sample(math.pi / 2, math.pi / 2 - 0.2, pivot)
    assert c2w[0, 1, 3] > 0


def test_samplers_seeded_and_clamped():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for S in (cam.GaussianCameraPoseSampler, cam.UniformCameraPoseSampler):
        a = S.sample(math.pi / 2, math.pi / 2, 0.3, 0.2, batch_size=8, generator=g1)
        b = S.sample(math.pi / 2, math.pi / 2, 0.3, 0.2, batch_size=8, generator=g2)
        assert torch.equal(a, b) and a.shape == (8, 4, 4)
        # these look at the origin: the forward axis points from the camera to (0, 0, 0)
        assert torch.allclose(a[:, :3, 2], -a[:, :3, 3] / 2.7, atol=1e-5)
    # uniform stays within mean +- std in yaw
    c2w = cam.UniformCameraPoseSampler.sample(math.pi / 2, math.pi / 2, 0.5, 0.0, batch_size=64, generator=g1)
    yaw, pitch = cam.yaw_pitch_from_label(cam.pack_label(c2w, cam.intrinsics_from_focal()))
    assert yaw.abs().max() <= 0.5 + 1e-5 and pitch.abs().max() < 1e-5
    # v is clamped away from the pole, so even v = 0 gives a finite pose
    top = cam.LookAtPoseSampler.sample(0.0, 0.0, torch.zeros(3))
    assert torch.isfinite(top).all()


def test_mirror_label():
    yaw = torch.tensor([0.3, -1.0, 2.5])
    pitch = torch.tensor([0.1, -0.2, 0.0])
    c = cam.make_label(yaw, pitch)
    m = cam.mirror_label(c)
    y2, p2 = cam.yaw_pitch_from_label(m)
    assert torch.allclose(y2, -yaw, atol=1e-5) and torch.allclose(p2, pitch, atol=1e-5)
    assert torch.equal(cam.mirror_label(m), c)
    # EG3D's flip_yaw: exactly these five pose entries change sign, the intrinsics stay for cx = 0.5
    flip = torch.ones(25)
    flip[[1, 2, 4, 8, 3]] = -1
    assert torch.equal(m, c * flip)
    # a point and its mirror image project to mirrored pixels
    u, v, _ = project_point(c[0], (0.1, 0.05, 0.3))
    um, vm, _ = project_point(m[0], (-0.1, 0.05, 0.3))
    assert um == pytest.approx(1 - u, abs=1e-5) and vm == pytest.approx(v, abs=1e-5)


def test_orbit_covers_360():
    c = cam.orbit_labels(12, pitch=0.1, pitch_wobble=0.05)
    assert c.shape == (12, 25)
    yaw, pitch = cam.yaw_pitch_from_label(c)
    assert yaw[0].abs() < 1e-6  # starts frontal
    steps = torch.remainder(yaw.roll(-1) - yaw, 2 * math.pi)
    assert torch.allclose(steps, torch.full((12,), 2 * math.pi / 12), atol=1e-5)  # equal steps, full turn
    assert yaw.max() > 0.9 * math.pi and yaw.min() < -0.8 * math.pi
    assert pitch.min() >= 0.05 - 1e-5 and pitch.max() <= 0.15 + 1e-5
    assert pitch.max() - pitch.min() > 0.09

#----------------------------------------------------------------------------
