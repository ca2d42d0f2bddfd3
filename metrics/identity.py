"""Identity consistency between the teacher (face EG3D) and the student (head generator): paper table 4, "ID".

For the same latents z and the same frontal camera (conditioning and rendering), both generators render a face;
a face-recognition network embeds both and the score is the mean cosine similarity of the embedding pairs
(the paper uses ArcFace over 10,000 identities). The face model is a TorchScript file taking images
[N,3,112,112] in [-1,1] and returning embeddings [N,E] (e.g. an exported ArcFace). ONNX models are not supported
(onnxruntime is not a dependency). Nothing is downloaded: the file is given by path or placed in the cache.

'ID-proxy' replaces the face network where none applies (the synthetic world): the embedding of a face crop is
its 16x16 area-downsampled RGB with each channel's mean removed (the proxy of scripts/plane_swap.py), so the
score is a correlation between the teacher's and the student's frontal face crops. It measures "same face, same colours and layout",
not recognition-grade identity; never compare it with ArcFace ID values.
"""

import os

import torch
import torch.nn.functional as F

from metrics.detectors import DetectorError, detector_dir, load_torchscript
from metrics.features import RENDER_OVERRIDES, cond_for, draw_z
from training import cameras, generate

FACE_MODEL_FILE = 'arcface.pt'
FACE_SIZE = 112

#----------------------------------------------------------------------------
# Central crop covering `crop` of the image side, resized to size x size (antialiased bilinear); stays in [-1,1].

def face_crop(images, crop=1.0, size=FACE_SIZE):
    if not 0 < crop <= 1:
        raise ValueError(f'crop must be in (0, 1], got {crop}')
    res = images.shape[-1]
    side = max(1, int(round(res * crop)))
    top = (res - side) // 2
    x = images[..., top:top + side, top:top + side].float()
    return F.interpolate(x, size=(size, size), mode='bilinear', align_corners=False, antialias=True)

#----------------------------------------------------------------------------
# Load the face-recognition TorchScript model: `path` (file or explicit URL) or <cache_dir>/detectors/arcface.pt.
# Returns embed(images [N,3,112,112] in [-1,1]) -> [N,E] and the file's digest.

def load_face_model(path=None, cache_dir=None, device='cpu'):
    if path is None:
        path = os.path.join(detector_dir(cache_dir), FACE_MODEL_FILE)
        if not os.path.isfile(path):
            raise DetectorError(f'face-recognition model not found: put a TorchScript ArcFace (input [N,3,112,112] '
                                f'in [-1,1], output [N,E]) at {path}, or pass --face-model PATH. Without one, use '
                                f'the id_proxy metric.')
    net, digest = load_torchscript(path, device=device, cache_dir=cache_dir)

    # Embeddings of face crops, as float.
    @torch.no_grad()
    def embed(images):
        out = net(images.to(device))
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != images.shape[0]:
            raise DetectorError(f'face model {path} returned {list(getattr(out, "shape", []))}, expected [N, E]')
        return out.float()
    return embed, digest

# The ID-proxy embedding: 16x16 RGB of the crop with each channel's mean removed, flattened.
def pixel_embedding(images):
    x = F.adaptive_avg_pool2d(images.float(), 16)
    return (x - x.mean(dim=(2, 3), keepdim=True)).flatten(1)

#----------------------------------------------------------------------------
# Mean cosine similarity of embed(face crop) between teacher and student renders of the same `num` latents from
# the frontal camera (yaw 0, pitch 0) used for both conditioning and rendering.

@torch.no_grad()
def identity_similarity(teacher, student, embed, num=10000, crop=1.0, batch=16, seed=0, truncation_psi=1.0,
                        device='cpu', progress=None):
    if teacher.z_dim != student.z_dim:
        raise ValueError(f'teacher and student have different z_dim ({teacher.z_dim} vs {student.z_dim})')
    z = draw_z(student, num, seed, device=device)
    total, count = 0.0, 0
    for start in range(0, int(num), batch):
        zb = z[start:start + batch]
        c = cameras.make_label(torch.zeros(zb.shape[0]), torch.zeros(zb.shape[0]), **generate.camera_orbit(student)).to(device)
        emb = []
        for G in (teacher, student):
            out = G(zb, cond_for(G, c), c_render=c, truncation_psi=truncation_psi, noise_mode='const',
                    render_overrides=RENDER_OVERRIDES)
            emb.append(embed(face_crop(out['image'], crop)))
        sims = F.cosine_similarity(emb[0], emb[1], dim=1)
        total += float(sims.sum())
        count += zb.shape[0]
        if progress is not None:
            progress.update(zb.shape[0])
    return total / count

#----------------------------------------------------------------------------
