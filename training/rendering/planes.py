"""Tri-plane projection and feature lookup."""

import torch

#----------------------------------------------------------------------------
# The three plane frames [3,3,3]; a point's plane coordinates are the first two entries of point @ inv(axes).
# 'eg3d' is EG3D's generate_planes(), which projects onto XY, XZ and ZX (the third plane is a known bug,
# EG3D #67, kept so official weights render identically). 'xyz' projects onto XY, XZ and YZ.
# Plane 0 is XY in both.

def generate_plane_axes(kind='eg3d'):
    xy = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    xz = [[1, 0, 0], [0, 0, 1], [0, 1, 0]]
    if kind == 'eg3d':
        third = [[0, 0, 1], [1, 0, 0], [0, 1, 0]]   # -> (z, x)
    elif kind == 'xyz':
        third = [[0, 1, 0], [0, 0, 1], [1, 0, 0]]   # -> (y, z)
    else:
        raise ValueError(f"plane axes kind must be 'eg3d' or 'xyz', got {kind!r}")
    return torch.tensor([xy, xz, third], dtype=torch.float32)

#----------------------------------------------------------------------------
# Plane coordinates [N,P,M,2] of points [N,M,3] for plane axes [P,3,3]. Written as a broadcast product rather
# than a matmul so TF32 never rounds the coordinates (exact for EG3D's permutation axes).

def project_onto_planes(plane_axes, coords):
    inv = torch.linalg.inv(plane_axes.to(device=coords.device, dtype=torch.float32))[:, :, :2]  # [P,3,2]
    return (coords[:, None, :, :, None] * inv[None, :, None, :, :]).sum(-2)                     # [N,P,M,2]

#----------------------------------------------------------------------------
# Bilinear features [N,P,M,C] of planes [N,P,C,H,W] at points [N,M,3]. Points are scaled by 2/box_warp so the
# cube [-box_warp/2, box_warp/2]^3 maps onto the plane extent; grid_sample with zeros padding and
# align_corners=False, so plane coordinate u picks the column (W) and v the row (H).

def sample_from_planes(plane_axes, planes, coords, box_warp):
    if planes.ndim != 5:
        raise ValueError(f'planes must have shape [N, P, C, H, W], got {list(planes.shape)}')
    if coords.ndim != 3 or coords.shape[0] != planes.shape[0] or coords.shape[2] != 3:
        raise ValueError(f'coords must have shape [{planes.shape[0]}, M, 3], got {list(coords.shape)}')
    if plane_axes.shape != (planes.shape[1], 3, 3):
        raise ValueError(f'plane_axes must have shape [{planes.shape[1]}, 3, 3], got {list(plane_axes.shape)}')
    n, p, c, h, w = planes.shape
    m = coords.shape[1]
    grid = project_onto_planes(plane_axes, (2 / box_warp) * coords.float())          # [N,P,M,2]
    grid = grid.reshape(n * p, 1, m, 2).to(planes.dtype)
    out = torch.nn.functional.grid_sample(planes.reshape(n * p, c, h, w), grid, mode='bilinear',
                                          padding_mode='zeros', align_corners=False)  # [N*P,C,1,M]
    return out.permute(0, 3, 2, 1).reshape(n, p, m, c)

#----------------------------------------------------------------------------
