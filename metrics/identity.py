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

import numpy as np
import torch
import torch.nn.functional as F

from metrics.detectors import DetectorError, detector_dir, load_torchscript
from metrics.features import RENDER_OVERRIDES, cond_for, draw_z
from training import cameras, generate
from training.dataset import ImageLabelDataset
from training.losses import perceptual

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
# Frontal fidelity (metric `fidelity`): is the student's face the teacher's face for the same latent? A score means
# little on its own (two unrelated faces of a synthetic world already share colours and layout), so every quantity
# comes with two references:
#   same z      teacher vs student, frontal renders of the same latents (what Head3D should keep high)
#   other z     teacher vs the teacher itself with other latents (the different-z baseline: unrelated faces)
#   real        on real data with several views per identity (one folder each): the two most frontal views of one
#               identity (same face, ~15 degrees apart in the synthetic world's heads.zip) vs the most frontal views
#               of two different identities; the scale of "same person" vs "other person" on the data itself.
# Quantities: ID-proxy on the face crop (as id_proxy), PSNR (dB) of the whole frontal image, and LPIPS-VGG (lower
# = closer) when torchvision's VGG16 weights are on disk (training/losses/perceptual.py; never downloaded).

# PSNR [N] in dB of image pairs in [-1,1] (peak-to-peak 2).
def psnr(a, b):
    mse = (a.float() - b.float()).square().flatten(1).mean(1).clamp(min=1e-10)
    return 10 * torch.log10(4.0 / mse)

# The LPIPS-VGG distance, or None when torchvision's VGG16 weights are not on disk (checked first: building the
# network only to find the file missing costs seconds).
def load_lpips(device='cpu'):
    if not os.path.isfile(perceptual.default_vgg16_path()):
        return None
    return perceptual.build_perceptual('lpips_vgg', device=device)

# Per-pair scores of image batches a, b [N,3,H,W] (renders, [-1,1] up to overshoot): dict(quantity -> [N]).
# ID-proxy sees the images as id_proxy does (unclamped); PSNR and LPIPS see them as saved, clamped to [-1,1].
def pair_scores(a, b, crop, lpips=None):
    scores = dict(id_proxy=F.cosine_similarity(pixel_embedding(face_crop(a, crop)),
                                               pixel_embedding(face_crop(b, crop)), dim=1))
    a, b = a.float().clamp(-1, 1), b.float().clamp(-1, 1)
    scores['psnr'] = psnr(a, b)
    if lpips is not None:
        scores['lpips'] = lpips(a, b)
    return scores

# Mean scores of teacher vs student (same z) and teacher vs teacher (other z) over `num` latents:
# dict(quantity -> (same z, other z)).
@torch.no_grad()
def frontal_fidelity(teacher, student, num=1000, crop=0.5, batch=16, seed=0, truncation_psi=1.0, lpips=None,
                     device='cpu', progress=None):
    if teacher.z_dim != student.z_dim:
        raise ValueError(f'teacher and student have different z_dim ({teacher.z_dim} vs {student.z_dim})')
    z = draw_z(student, num, seed, device=device)
    z_other = draw_z(teacher, num, seed + 1, device=device)      # an independent stream: unrelated faces
    sums = {}
    for start in range(0, int(num), batch):
        n = min(batch, int(num) - start)
        c = cameras.make_label(torch.zeros(n), torch.zeros(n), **generate.camera_orbit(student)).to(device)

        def render(G, zz):
            return G(zz, cond_for(G, c), c_render=c, truncation_psi=truncation_psi, noise_mode='const',
                     render_overrides=RENDER_OVERRIDES)['image']
        t = render(teacher, z[start:start + n])
        pairs = dict(same=(t, render(student, z[start:start + n])),
                     other=(t, render(teacher, z_other[start:start + n])))
        for which, (a, b) in pairs.items():
            for key, value in pair_scores(a, b, crop, lpips).items():
                sums[(key, which)] = sums.get((key, which), 0.0) + float(value.sum())
        if progress is not None:
            progress.update(n)
    keys = dict.fromkeys(key for key, _which in sums)
    return {key: (sums[(key, 'same')] / num, sums[(key, 'other')] / num) for key in keys}

# The same scores on real views: dict(quantity -> (same identity, different identities)). Identities are the
# dataset's folders, each with at least two views. Pairs: each identity's two most frontal views (smallest |yaw|),
# and the most frontal views of identity i and identity i - 1.
@torch.no_grad()
def real_fidelity(path, crop=0.5, lpips=None):
    ds = ImageLabelDataset(path)
    yaws = np.abs(ds.yaws_deg())
    by_id = {}
    for i in range(len(ds)):
        by_id.setdefault(os.path.dirname(ds.image_name(i)), []).append(i)
    ids = sorted(k for k, v in by_id.items() if len(v) >= 2)
    if len(ids) < 2:
        raise ValueError(f'fidelity: the real reference needs at least 2 identities (image folders) with 2 views each '
                         f'in {path}; found {len(ids)}. Leave --data out to skip it.')
    first, second = [], []
    for key in ids:
        views = sorted(by_id[key], key=lambda i: yaws[i])
        first.append(views[0])
        second.append(views[1])

    def images(indices):
        return torch.stack([torch.as_tensor(ds[i][0]) for i in indices]).float() / 127.5 - 1
    a, b = images(first), images(second)
    same = pair_scores(a, b, crop, lpips)
    other = pair_scores(a, a.roll(1, dims=0), crop, lpips)
    return {key: (float(same[key].mean()), float(other[key].mean())) for key in same}

#----------------------------------------------------------------------------
