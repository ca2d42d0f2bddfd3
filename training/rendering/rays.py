"""Camera rays from cam2world + normalised intrinsics (EG3D's RaySampler numerics)."""

import torch

#----------------------------------------------------------------------------
# One ray per pixel centre of a resolution x resolution image, rows top to bottom, columns left to right
# (ray index = row * resolution + col). Pixel centres sit at (k + 0.5) / resolution in normalised image
# coordinates; the intrinsics may carry a skew. Returns origins [N,R,3] and unit directions [N,R,3].

def sample_rays(cam2world, intrinsics, resolution):
    if cam2world.ndim != 3 or cam2world.shape[1:] != (4, 4):
        raise ValueError(f'cam2world must have shape [N, 4, 4], got {list(cam2world.shape)}')
    if intrinsics.shape != (cam2world.shape[0], 3, 3):
        raise ValueError(f'intrinsics must have shape [{cam2world.shape[0]}, 3, 3], got {list(intrinsics.shape)}')
    n, res, device = cam2world.shape[0], int(resolution), cam2world.device
    fx, fy = intrinsics[:, 0, 0, None], intrinsics[:, 1, 1, None]       # [N,1]
    cx, cy, sk = intrinsics[:, 0, 2, None], intrinsics[:, 1, 2, None], intrinsics[:, 0, 1, None]

    # normalised pixel centres, x along columns and y along rows
    centres = (torch.arange(res, dtype=torch.float32, device=device) + 0.5) / res
    y_img, x_img = torch.meshgrid(centres, centres, indexing='ij')
    x_img, y_img = x_img.reshape(1, -1), y_img.reshape(1, -1)         # [1,R]

    # un-project onto the z = 1 plane of the camera (inverse of u = fx x + sk y + cx, v = fy y + cy)
    y_cam = (y_img - cy) / fy
    x_cam = (x_img - cx + cy * sk / fy - sk * y_img / fy) / fx
    points = torch.stack([x_cam, y_cam, torch.ones_like(x_cam)], dim=-1)  # [N,R,3]

    # rotate into the world; an elementwise sum keeps full fp32 precision even when TF32 matmuls are on
    rotation = cam2world[:, None, :3, :3]                                # [N,1,3,3]
    dirs = (rotation * points[:, :, None, :]).sum(-1)                    # [N,R,3]
    dirs = torch.nn.functional.normalize(dirs, dim=-1)
    origins = cam2world[:, None, :3, 3].expand(n, res * res, 3).contiguous()
    return origins, dirs

#----------------------------------------------------------------------------
