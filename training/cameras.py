"""Cameras: the 25-float EG3D label, pose samplers, intrinsics, yaw/pitch, mirroring and orbits.

Conventions (EG3D, docs/camera_conventions.md there): the label is an OpenCV cam2world 4x4 (row-major, camera
x right, y down, z forward) followed by the 3x3 intrinsics normalised by image size. World is y-up, the face
looks toward +z, cameras sit on a sphere about the origin and look at the pivot (0, 0, 0.2).

Our angles: yaw = atan2(t_x, t_z) of the camera position t (0 = frontal, positive toward +x), pitch = elevation
atan2(t_y, hypot(t_x, t_z)) (positive = camera above). EG3D's sampler angles relate as h = pi/2 + yaw and
cos(phi) = 1 - 2v/pi = sin(pitch), phi being the polar angle from +y.
"""

import math

import numpy as np
import torch

LABEL_DIM = 25
FFHQ_FOCAL = 4.2647
DEFAULT_RADIUS = 2.7
DEFAULT_PIVOT = (0.0, 0.0, 0.2)

# Offsets of the two blocks inside the 25-float label.
_POSE_SLICE = slice(0, 16)
_INTRINSICS_SLICE = slice(16, 25)

# EG3D keeps v inside (0, pi) so that the camera never sits exactly on the y axis (look-at would degenerate).
_V_EPS = 1e-5

#----------------------------------------------------------------------------
# Label layout.

# Convert an array-like label batch to a float tensor and check that it is [N, 25].
def _as_label(c, name='c'):
    if isinstance(c, np.ndarray):
        c = torch.from_numpy(c)
    if not isinstance(c, torch.Tensor):
        raise TypeError(f'{name} must be a torch.Tensor or numpy array of shape [N, {LABEL_DIM}], got {type(c).__name__}')
    if c.ndim != 2 or c.shape[1] != LABEL_DIM:
        raise ValueError(f'{name} must have shape [N, {LABEL_DIM}] (16 cam2world + 9 intrinsics), got {list(c.shape)}')
    if not c.is_floating_point():
        raise ValueError(f'{name} must be floating point, got {c.dtype}')
    return c

#----------------------------------------------------------------------------
# Pack a cam2world [N,4,4] and intrinsics [N,3,3] (or one shared [3,3]) into labels [N,25].

def pack_label(cam2world, intrinsics):
    if cam2world.ndim != 3 or cam2world.shape[1:] != (4, 4):
        raise ValueError(f'cam2world must have shape [N, 4, 4], got {list(cam2world.shape)}')
    n = cam2world.shape[0]
    if intrinsics.shape == (3, 3):
        intrinsics = intrinsics.unsqueeze(0).expand(n, 3, 3)
    if intrinsics.ndim != 3 or intrinsics.shape != (n, 3, 3):
        raise ValueError(f'intrinsics must have shape [N, 3, 3] or [3, 3] with N={n}, got {list(intrinsics.shape)}')
    intrinsics = intrinsics.to(device=cam2world.device, dtype=cam2world.dtype)
    return torch.cat([cam2world.reshape(n, 16), intrinsics.reshape(n, 9)], dim=1)

#----------------------------------------------------------------------------
# Split labels [N,25] into cam2world [N,4,4] and intrinsics [N,3,3] (views, not copies).

def unpack_label(c):
    c = _as_label(c)
    n = c.shape[0]
    return c[:, _POSE_SLICE].reshape(n, 4, 4), c[:, _INTRINSICS_SLICE].reshape(n, 3, 3)

#----------------------------------------------------------------------------
# Intrinsics.

# Normalised pinhole intrinsics [3,3] from a focal length in units of the image size (FFHQ: 4.2647).
def intrinsics_from_focal(focal=FFHQ_FOCAL, cx=0.5, cy=0.5, device=None):
    return torch.tensor([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]], dtype=torch.float32, device=device)

# Normalised intrinsics [3,3] from a field of view in degrees, EG3D's FOV_to_intrinsics convention:
# f = 1 / (tan(fov/2) * 1.414) (a diagonal FOV). EG3D writes pi as 3.14159; we keep its constants so that the
# same FOV gives the same focal (18.837 deg -> 4.2634).
def fov_to_intrinsics(fov_deg, device=None):
    fov_deg = float(fov_deg)
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f'fov_deg must be in (0, 180) degrees, got {fov_deg}')
    focal = 1.0 / (math.tan(fov_deg * 3.14159 / 360.0) * 1.414)
    return intrinsics_from_focal(focal, device=device)

#----------------------------------------------------------------------------
# Extrinsics.

# Unit vectors along the last axis (EG3D's normalize_vecs: plain division, no epsilon).
def _normalize(v):
    return v / torch.norm(v, dim=-1, keepdim=True)

# cam2world [N,4,4] for cameras at origin [N,3] looking along forward [N,3], no roll, world y-up.
# Columns are the camera axes in world space: x right, y down, z forward (OpenCV), as EG3D builds them.
def create_cam2world(forward, origin):
    if forward.ndim != 2 or forward.shape[1] != 3 or origin.shape != forward.shape:
        raise ValueError(f'forward and origin must both have shape [N, 3], got {list(forward.shape)} and {list(origin.shape)}')
    forward = _normalize(forward)
    up = torch.tensor([0.0, 1.0, 0.0], dtype=forward.dtype, device=forward.device).expand_as(forward)
    right = -_normalize(torch.cross(up, forward, dim=-1))
    down = _normalize(torch.cross(forward, right, dim=-1))  # y down because right = -(up x forward)
    cam2world = torch.eye(4, dtype=forward.dtype, device=forward.device).repeat(forward.shape[0], 1, 1)
    cam2world[:, :3, :3] = torch.stack([right, down, forward], dim=-1)
    cam2world[:, :3, 3] = origin
    return cam2world

# Broadcast a scalar, [B] or [B,1] angle to a float32 column [B,1].
def _column(x, batch_size, device):
    x = torch.as_tensor(x, dtype=torch.float32, device=device).reshape(-1, 1)
    if x.shape[0] not in (1, batch_size):
        raise ValueError(f'expected a scalar or {batch_size} values, got {x.shape[0]}')
    return x.expand(batch_size, 1)

# Camera positions [B,3] on a sphere about the origin from EG3D's angles h (azimuth, pi/2 = frontal) and
# v (cos(phi) = 1 - 2v/pi, phi polar from +y), v clamped to (0, pi) as EG3D does.
def _sphere_positions(h, v, radius):
    v = torch.clamp(v, _V_EPS, math.pi - _V_EPS)
    phi = torch.arccos(1 - 2 * v / math.pi)
    x = radius * torch.sin(phi) * torch.cos(math.pi - h)
    z = radius * torch.sin(phi) * torch.sin(math.pi - h)
    y = radius * torch.cos(phi)
    return torch.cat([x, y, z], dim=1)

# cam2world [B,4,4] for cameras at positions [B,3] looking at lookat (None = origin; [3] or [B,3]).
def _look_at(positions, lookat):
    if lookat is None:
        return create_cam2world(-positions, positions)
    lookat = torch.as_tensor(lookat, dtype=positions.dtype, device=positions.device)
    if lookat.shape[-1] != 3:
        raise ValueError(f'lookat must be a 3-vector or [N, 3], got {list(lookat.shape)}')
    return create_cam2world((lookat - positions).expand_as(positions).contiguous(), positions)

#----------------------------------------------------------------------------
# EG3D's pose samplers, with an explicit generator. Angles are EG3D's (h, v); std in radians.
# The draws (h first, then v, each [B,1]) match EG3D so a seeded global RNG gives EG3D's poses.

class LookAtPoseSampler:
    # Gaussian (h, v) around the means; the camera looks at `lookat`.
    @staticmethod
    def sample(h, v, lookat, h_std=0.0, v_std=0.0, radius=DEFAULT_RADIUS, batch_size=1, device='cpu', generator=None):
        hs = torch.randn((batch_size, 1), device=device, generator=generator) * h_std + _column(h, batch_size, device)
        vs = torch.randn((batch_size, 1), device=device, generator=generator) * v_std + _column(v, batch_size, device)
        return _look_at(_sphere_positions(hs, vs, radius), lookat)

class GaussianCameraPoseSampler:
    # Gaussian (h, v) around the means; the camera looks at the origin.
    @staticmethod
    def sample(h, v, h_std=0.0, v_std=0.0, radius=DEFAULT_RADIUS, batch_size=1, device='cpu', generator=None):
        return LookAtPoseSampler.sample(h, v, None, h_std, v_std, radius, batch_size, device, generator)

class UniformCameraPoseSampler:
    # Uniform (h, v) in mean +- std; the camera looks at the origin.
    @staticmethod
    def sample(h, v, h_std=0.0, v_std=0.0, radius=DEFAULT_RADIUS, batch_size=1, device='cpu', generator=None):
        hs = (torch.rand((batch_size, 1), device=device, generator=generator) * 2 - 1) * h_std + _column(h, batch_size, device)
        vs = (torch.rand((batch_size, 1), device=device, generator=generator) * 2 - 1) * v_std + _column(v, batch_size, device)
        return _look_at(_sphere_positions(hs, vs, radius), None)

#----------------------------------------------------------------------------
# Our yaw/pitch <-> EG3D's (h, v).

# EG3D's v for an elevation angle pitch (radians): cos(phi) = sin(pitch) = 1 - 2v/pi.
def pitch_to_v(pitch):
    return math.pi / 2 * (1 - torch.sin(torch.as_tensor(pitch, dtype=torch.float32)))

# Elevation angle (radians) for EG3D's v.
def v_to_pitch(v):
    return torch.arcsin(1 - 2 * torch.as_tensor(v, dtype=torch.float32) / math.pi)

# cam2world [N,4,4] for yaw/pitch [N] (radians, our convention) on the sphere of `radius` about the origin,
# looking at `pivot`. Same numerics as LookAtPoseSampler(pi/2 + yaw, pitch_to_v(pitch), pivot).
def pose_from_angles(yaw, pitch, radius=DEFAULT_RADIUS, pivot=DEFAULT_PIVOT, device=None):
    if device is None:
        device = yaw.device if isinstance(yaw, torch.Tensor) else 'cpu'
    yaw = torch.as_tensor(yaw, dtype=torch.float32, device=device).reshape(-1)
    pitch = torch.as_tensor(pitch, dtype=torch.float32, device=device).reshape(-1)
    n = max(yaw.shape[0], pitch.shape[0])
    h = math.pi / 2 + _column(yaw, n, device)
    v = pitch_to_v(_column(pitch, n, device))
    return _look_at(_sphere_positions(h, v, radius), pivot)

# Labels [N,25] for yaw/pitch (radians) with the FFHQ intrinsics (or another focal).
def make_label(yaw, pitch, radius=DEFAULT_RADIUS, pivot=DEFAULT_PIVOT, focal=FFHQ_FOCAL, device=None):
    cam2world = pose_from_angles(yaw, pitch, radius=radius, pivot=pivot, device=device)
    return pack_label(cam2world, intrinsics_from_focal(focal, device=cam2world.device))

# (yaw [N], pitch [N]) in radians of each label's camera position; yaw in (-pi, pi].
def yaw_pitch_from_label(c):
    cam2world, _ = unpack_label(c)
    t = cam2world[:, :3, 3]
    yaw = torch.atan2(t[:, 0], t[:, 2])
    yaw = torch.where(yaw <= -math.pi, yaw + 2 * math.pi, yaw)
    pitch = torch.atan2(t[:, 1], torch.hypot(t[:, 0], t[:, 2]))
    return yaw, pitch

#----------------------------------------------------------------------------
# Pose-aware mirror across the world x=0 plane (yaw -> -yaw, pitch kept), to pair with a horizontal image
# flip. cam2world becomes M @ cam2world @ M with M = diag(-1, 1, 1, 1): the entries [0,1], [0,2], [1,0],
# [2,0] and [0,3] change sign, exactly EG3D's mirror_dataset.flip_yaw. The flipped image also mirrors the
# principal point (cx -> 1 - cx) and the skew; with EG3D's cx = 0.5 and zero skew that is a no-op.

def mirror_label(c):
    c = _as_label(c)
    cam2world, intrinsics = unpack_label(c)
    sign = torch.tensor([-1.0, 1.0, 1.0, 1.0], dtype=c.dtype, device=c.device)
    cam2world = sign[:, None] * cam2world * sign[None, :]
    intrinsics = intrinsics.clone()
    intrinsics[:, 0, 1] = -intrinsics[:, 0, 1]
    intrinsics[:, 0, 2] = intrinsics[:, 2, 2] - intrinsics[:, 0, 2]  # 1 - cx for normalised intrinsics
    return pack_label(cam2world, intrinsics)

#----------------------------------------------------------------------------
# Labels [F,25] for a full 360-degree yaw orbit starting at the frontal view (yaw_k = 2 pi k / F wrapped to
# (-pi, pi]), with pitch_k = pitch + pitch_wobble * sin(2 pi k / F) (radians).

def orbit_labels(num_frames, pitch=0.0, pitch_wobble=0.0, radius=DEFAULT_RADIUS, pivot=DEFAULT_PIVOT,
                 focal=FFHQ_FOCAL, device=None):
    if int(num_frames) < 1:
        raise ValueError(f'num_frames must be >= 1, got {num_frames}')
    phase = 2 * math.pi * torch.arange(int(num_frames), dtype=torch.float64) / int(num_frames)
    yaw = torch.where(phase > math.pi, phase - 2 * math.pi, phase)
    pitches = pitch + pitch_wobble * torch.sin(phase)
    return make_label(yaw.float(), pitches.float(), radius=radius, pivot=pivot, focal=focal, device=device)

#----------------------------------------------------------------------------
