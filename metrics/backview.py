"""View accuracy (metric `backview`): from behind, does the generator show the back of a head, or a second face?

The mirror face is the failure Head3D exists to fix (the paper's "mirroring-face artifacts"): a face generator's
tri-plane shares its xy plane between front and back, so the view from behind repeats the face. This metric asks a
plain question of each render: which real views does it look like?

  reference  the dataset's real views with |yaw| <= 30 degrees (class front) and |yaw| >= 150 degrees (class back)
  features   the layout of edge orientations in the central half of the image (where a face has its eyes, nose
             and mouth): grey levels of that crop at 32x32 px, Sobel gradients, their magnitudes summed into 8
             orientation bins on a 4x4 grid of cells (a HOG-like 128-vector), scaled to unit length. Unit length
             makes it blind to brightness and contrast: a dim mirror face has the structure of a face, not the
             colour of dark hair (with RGB colours pooled to 8x8, the previous features, the shipped face
             teacher's yaw-180 mirror faces scored 0.56 as backs; these score 0.035)
  classify   a render is a back view when most of its k = 5 nearest reference views (Euclidean) are back views
             (a tie, possible when fewer than 5 are available, goes to the nearest one)
  renders    each latent at yaw 0 and yaw 180 (pitch 0, the generator's camera orbit), the mapping conditioned on
             the frontal pose for both (one 3D head per latent; the back split's protocol in metrics/splits.py)

Values per split: 'back' = fraction of the yaw-180 renders classified as back views, 'front' = fraction of the
yaw-0 renders classified as front views, 'all' = their mean. 1.0 is best; a generator with a mirror face scores
near 0 on 'back'. The same classifier's accuracy on held-out real views is returned as `real_value`, the ceiling to
read the value against: each real view is classified against the views of the other groups (images in other
folders: one identity per folder in the synthetic world's heads.zip; leave-one-out when the dataset has one folder).

At the rendering resolution (metric `backview_nr`). The generator renders its features at
neural_rendering_resolution (32 px for the tiny preset's 64^2 images, 128 px for EG3D's 512^2) and the super-
resolution adds the rest. Real back views carry detail finer than that (hair strands), and the unit-length features
make such detail decide the vote: a featureless back (flat grey plus faint noise) reads as a front view 100% of the
time, because real fronts have edges of all orientations and real backs mostly vertical strand edges. So a render
that is a clean back at its own resolution reads as a front when its super-resolved image carries a little fine
texture that is not vertical. `backview_nr` is the same classifier with the reference views AND the renders first
resampled through that fraction of their size (antialiased down, then up again: `resample`), so that both sides are
compared at the detail the generator has; its ceiling is the real views read the same way. The teacher's mirror
faces still read as faces there (README).

Neither reading is a detector of faint faces. On the synthetic world's students, the latents whose mirror-face
similarity says the face shows through (below) read as back views at least as often as the others, at either
resolution (scripts/backview_controls.py --network measures it): the classifier separates a whole face from the back
of a head, not a trace of eyes on hair. Read the mirror-face similarity for that.

It is a coarse, offline check (no network weights): it asks whether the centre of the image has a face's edge
layout or not; it does not judge realism (use FID/KID for that). Because the features ignore contrast, a faint
face (eyes barely visible on a dark back) counts as a face: on blurred renders with little structure the vote
rests on faint edges, so read the value together with the yaw-180 grids.

Mirror-face similarity (metric `mirror`): a second, per-latent reading of the same renders that needs no
classifier. For each latent it compares the yaw-180 render, flipped left-right, with the latent's own yaw-0 render:
the absolute normalised cross-correlation of their high-passed grey centres (the central half at 32x32 px, each
pixel minus the mean of its 7x7 neighbourhood, so that shading and the silhouette's brightness drop out and eyes,
brows, nose and mouth stay). Absolute, because a face can also show through with inverted contrast: dark blobs
where the front has bright eyes, as longer stage-1 runs render. A mirror face repeats the latent's face there and
scores high; a back of the head scores about what unrelated images score. Read against: `other_z` (the same
renders paired with another latent's front view: what two heads of the generator share anyway) and `real_value`
(same-identity real pairs of the dataset, a front view within 15 degrees of yaw 0 and a back view within 15 degrees
of yaw 180, one identity per folder: what a true back scores). The mean can hide a minority of faces behind, so the
result also gives `face_rate`: the share of latents whose similarity is above the 90th percentile of the real
pairs (0.10 for real heads by construction), and where those faces are: `face_rate_light` and `face_rate_dark` split
the latents by the brightness of their yaw-180 render's grey centre at `light_cut`, the brightness that a third of
the real pairs' back views exceed (light hair), with `light_share` the share of latents above it (about 1/3 for
real heads); the real pairs' own rates on the two sides are `real_face_rate_light` / `real_face_rate_dark`. A face
shows more easily through a light back than through a dark one. Like the kNN features it ignores brightness and contrast (a dimmed
copy of the face scores as high as the face); unlike them it compares each render with its own latent's face, so
structure that is not that face (hair, noise, blur) lowers the value instead of casting a vote. On the synthetic
world's students, sorting the yaw-180 renders by it runs from plain dark backs to clearly visible eyes, which the
kNN vote does not follow (README).
"""

import math
import os

import numpy as np
import torch
import torch.nn.functional as F

from metrics.features import RENDER_OVERRIDES, cond_for, draw_z
from training import cameras, generate
from training.dataset import ImageLabelDataset
from training.networks.dual_discriminator import filtered_resizing

FRONT_MAX_DEG = 30.0
BACK_MIN_DEG = 150.0
CROP = 0.5          # the central fraction of the image (per side) that the features look at
RES = 32            # the crop's size in pixels before the gradients
CELLS = 4           # CELLS x CELLS cells
BINS = 8            # unsigned gradient orientations, 0 to 180 degrees
K = 5

#----------------------------------------------------------------------------
# Images (uint8 [N,C,H,W] or float in [-1,1]) as float in [-1, 1].

def _signed(images):
    x = images.float()
    return x / 127.5 - 1 if images.dtype == torch.uint8 else x

# Images [N,C,H,W] resampled through `res` x `res` px (antialiased down, then back up to H x W): detail finer than
# res px goes, the layout stays. res >= H returns the images.

def resample(images, res):
    size = images.shape[-1]
    if res >= size:
        return images
    return filtered_resizing(filtered_resizing(images, res), size)

# The resolution [px] that `fraction` of a size-px image is resampled through (at least 2 px); None = not resampled.
def matched_res(size, fraction):
    return None if fraction is None or fraction >= 1 else max(2, int(round(size * fraction)))

# The grey central crop [N,1,RES,RES] of images (uint8 [N,3,H,W] or float in [-1,1]): what both readings look at.

def grey_centre(images):
    x = _signed(images)
    size = x.shape[-1]
    lo = int(round(size * (1 - CROP) / 2))
    x = x[..., lo:size - lo, lo:size - lo].mean(1, keepdim=True)
    return filtered_resizing(x, RES) if x.shape[-1] != RES else x

# Features [N, BINS*CELLS*CELLS] of images (uint8 [N,3,H,W] or float in [-1,1]), each of unit length (an image
# without any edge in its centre gets the zero vector).

# fraction (optional): first resample the images through that fraction of their size (the matched reading).

def view_features(images, fraction=None):
    res = matched_res(images.shape[-1], fraction)
    if res is not None:
        images = resample(_signed(images), res)
    x = grey_centre(images)
    sobel = torch.tensor([[-1., 0., 1.], [-2., 0., 2.], [-1., 0., 1.]]) / 8
    x = F.pad(x, (1, 1, 1, 1), mode='replicate')
    gx = F.conv2d(x, sobel.view(1, 1, 3, 3).to(x.device))
    gy = F.conv2d(x, sobel.t().reshape(1, 1, 3, 3).to(x.device))
    magnitude = torch.sqrt(gx ** 2 + gy ** 2)
    orientation = torch.remainder(torch.atan2(gy, gx), math.pi)
    bins = (orientation * (BINS / math.pi)).long().clamp(max=BINS - 1)
    hist = torch.zeros(x.shape[0], BINS, RES, RES, device=x.device).scatter_(1, bins, magnitude)
    hist = F.adaptive_avg_pool2d(hist, CELLS).flatten(1)
    return hist / hist.norm(dim=1, keepdim=True).clamp(min=1e-12)

#----------------------------------------------------------------------------
# The reference views of a dataset: dict(features [N,D], is_back [N] bool, groups [N] int (image folder), index [N]
# (their dataset indices),
# intrinsics [9] (of the first front view), num_front, num_back, fraction). max_real caps each class (a seeded
# subset); fraction (optional, in (0, 1)): the features of the views resampled through that fraction of their size.

def reference_views(path, max_real=None, seed=0, fraction=None):
    if fraction is not None and not 0 < fraction <= 1:
        raise ValueError(f'backview: the resampling fraction must be in (0, 1], got {fraction!r}')
    ds = ImageLabelDataset(path)
    abs_yaw = np.abs(ds.yaws_deg())
    classes = []
    for is_back, mask in ((False, abs_yaw <= FRONT_MAX_DEG), (True, abs_yaw >= BACK_MIN_DEG)):
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            raise ValueError(f'backview needs real {"back" if is_back else "front"} views in {path}: no image has '
                             f'|yaw| {">= %g" % BACK_MIN_DEG if is_back else "<= %g" % FRONT_MAX_DEG} degrees')
        if max_real is not None and idx.size > max_real:
            idx = np.sort(np.random.default_rng(seed).permutation(idx)[:int(max_real)])
        classes.append((is_back, idx))
    order = np.concatenate([idx for _, idx in classes])
    feats = [view_features(torch.stack([torch.as_tensor(ds[int(i)][0]) for i in order[b:b + 256]]), fraction)
             for b in range(0, order.size, 256)]     # in batches: a real set does not fit in memory at once
    names = [ds.image_name(int(i)) for i in order]
    folders = sorted({os.path.dirname(n) for n in names})
    if len(folders) > 1:
        index = {f: i for i, f in enumerate(folders)}
        groups = torch.tensor([index[os.path.dirname(n)] for n in names])
    else:
        groups = torch.arange(len(names))
    is_back = torch.cat([torch.full([idx.size], b) for b, idx in classes])
    return dict(features=torch.cat(feats), is_back=is_back, groups=groups, index=torch.as_tensor(order),
                intrinsics=torch.as_tensor(ds.labels[classes[0][1][0], 16:25]),
                num_front=int(classes[0][1].size), num_back=int(classes[1][1].size), fraction=fraction)

#----------------------------------------------------------------------------
# Back-view probability [M] of query features [M,D]: the fraction of its k nearest reference views that are back
# views; 0 for the zero vector (an image whose centre is blank is not the back of a head). exclude_groups [M]
# (optional) drops the reference views of the query's own group (fewer than k may remain).

def back_probability(query, ref, k=K, exclude_groups=None, chunk=1024):
    out = []
    for start in range(0, query.shape[0], chunk):
        d = torch.cdist(query[start:start + chunk], ref['features'])
        if exclude_groups is not None:
            same = exclude_groups[start:start + chunk, None] == ref['groups'][None, :]
            d = d.masked_fill(same, math.inf)
        dist, idx = d.topk(min(k, d.shape[1]), largest=False)
        valid = torch.isfinite(dist)            # a small set can leave fewer than k views outside a group: vote with those
        if not valid.any(1).all():
            raise ValueError('backview: a query has no reference view outside its own group (one folder holds them all)')
        votes = ref['is_back'][idx].float()
        p = (votes * valid).sum(1) / valid.sum(1)
        p = torch.where(p == 0.5, votes[:, 0], p)           # a tie goes to the nearest view's class
        blank = query[start:start + chunk].norm(dim=1) == 0   # no edge at all in the centre: no head, not a back
        out.append(p.masked_fill(blank, 0.0))
    return torch.cat(out)

# (front accuracy, back accuracy) of the classifier on the real reference views, each held out from its group.
def real_rates(ref, k=K):
    p = back_probability(ref['features'], ref, k=k, exclude_groups=ref['groups'])
    back = p > 0.5
    return float((~back[~ref['is_back']]).float().mean()), float(back[ref['is_back']].float().mean())

#----------------------------------------------------------------------------
# Render `num` latents at yaw 0 and 180 and classify them: (front rate, back rate).

def generator_rates(G, ref, num, k=K, batch=16, seed=0, truncation_psi=1.0, device='cpu', progress=None):
    views = generator_views(G, ref, num, k=k, batch=batch, seed=seed, truncation_psi=truncation_psi, device=device,
                            progress=progress)
    return views['front'], views['back']

# The same renders, all readings: dict(front, back (rates), mirror [num] (each latent's mirror-face similarity),
# mirror_other [num] (each latent's yaw-180 render against the next latent's yaw-0 render), back_brightness [num] (of
# each yaw-180 render's grey centre, in [-1, 1]), back_prob [num] (each yaw-180 render's back-view probability)).
# matched (optional): a second reference from reference_views(..., fraction=...); the renders are read against it
# resampled through the same fraction, adding front_matched, back_matched and back_prob_matched.
@torch.no_grad()
def generator_views(G, ref, num, k=K, batch=16, seed=0, truncation_psi=1.0, device='cpu', progress=None, matched=None):
    orbit = generate.camera_orbit(G)
    intr = ref['intrinsics'].to(device)

    def labels(yaw_deg, n):
        c = cameras.make_label(torch.full([n], math.radians(yaw_deg)), torch.zeros(n), **orbit).to(device)
        c[:, 16:25] = intr
        return c

    z = draw_z(G, num, seed, device=device)
    probs = {0.0: [], 180.0: []}
    probs_m = {0.0: [], 180.0: []}
    feats = {0.0: [], 180.0: []}
    bright = []
    for start in range(0, int(num), batch):
        zz = z[start:start + batch]
        n = zz.shape[0]
        ws = G.mapping(zz, cond_for(G, labels(0.0, n)), truncation_psi=truncation_psi)
        planes = G.synthesis_planes(ws, noise_mode='const')
        for yaw in probs:
            img = G.render_planes(planes, ws, labels(yaw, n), render_overrides=RENDER_OVERRIDES)['image']
            img = img.float().clamp(-1, 1)
            probs[yaw].append(back_probability(view_features(img).cpu(), ref, k=k))
            if matched is not None:
                probs_m[yaw].append(back_probability(view_features(img, matched['fraction']).cpu(), matched, k=k))
            feats[yaw].append(mirror_features(img).cpu())
            if yaw == 180.0:
                bright.append(back_brightness(img).cpu())
        if progress is not None:
            progress.update(n)
    front_feat, back_feat = torch.cat(feats[0.0]), torch.cat(feats[180.0])
    out = dict(front=float((torch.cat(probs[0.0]) <= 0.5).float().mean()),
               back=float((torch.cat(probs[180.0]) > 0.5).float().mean()),
               back_prob=torch.cat(probs[180.0]),
               mirror=mirror_similarity(front_feat, back_feat),
               mirror_upper=mirror_similarity(front_feat, back_feat, rows=MIRROR_UPPER_ROWS),
               mirror_other=mirror_similarity(front_feat.roll(1, 0), back_feat),
               back_brightness=torch.cat(bright))
    if matched is not None:
        out.update(front_matched=float((torch.cat(probs_m[0.0]) <= 0.5).float().mean()),
                   back_matched=float((torch.cat(probs_m[180.0]) > 0.5).float().mean()),
                   back_prob_matched=torch.cat(probs_m[180.0]))
    return out

# The fraction of a generator's image size that it renders before the super-resolution (neural_rendering_resolution
# over img_resolution; 1 without super-resolution): the matched reading's resampling.
def rendering_fraction(G):
    nr = getattr(G, 'neural_rendering_resolution', None)
    return min(1.0, float(nr) / float(G.img_resolution)) if nr else 1.0

#----------------------------------------------------------------------------
# Mirror-face similarity (see the module text).

MIRROR_PAIR_DEG = 15.0   # real pairs: a front view within this of yaw 0 and a back view within this of yaw 180
MIRROR_BOX = 7           # the high-pass: minus the mean of this many pixels square (at RES x RES)
MIRROR_MAX_PAIRS = 1000  # real pairs used at most (a seeded subset)
MIRROR_REAL_QUANTILE = 0.9   # face_rate: the share of latents above this quantile of the real pairs (0.1 for reals)
MIRROR_LIGHT_QUANTILE = 2 / 3   # light_cut: this quantile of the real pairs' back brightness (a third are above it)
MIRROR_UPPER_ROWS = 24   # the upper reading: the top rows (of RES) only; the bottom quarter holds the mouth, the jaw and
                         # the neck, whose silhouette corners a head's front and back views share whatever the hair

# Mean brightness [N] in [-1, 1] of the grey centre of images (uint8 [N,3,H,W] or float in [-1,1]): the part of a
# yaw-180 render that mirror_features looks at, i.e. mostly the colour of the hair behind.
def back_brightness(images):
    return grey_centre(images).mean((1, 2, 3))

# High-passed grey centres [N, RES*RES] of images (uint8 [N,3,H,W] or float in [-1,1]).
def mirror_features(images):
    x = grey_centre(images)
    pad = MIRROR_BOX // 2
    local = F.avg_pool2d(F.pad(x, (pad, pad, pad, pad), mode='replicate'), MIRROR_BOX, stride=1)
    return (x - local).flatten(1)

# Absolute normalised cross-correlation [N] of front features with the features of the left-right flipped back
# views (both from mirror_features of the unflipped images: flipping the crop = flipping the image). Absolute: a
# face that shows through with inverted contrast (dark blobs where the front has bright eyes) is a face too.
# 0 where either is flat.
# rows: compare only the top `rows` rows of the crops (None = all; MIRROR_UPPER_ROWS for the upper reading).
def mirror_similarity(front_feat, back_feat, rows=None):
    f = front_feat.view(front_feat.shape[0], RES, RES)[:, :rows].flatten(1)
    b = back_feat.view(back_feat.shape[0], RES, RES).flip(-1)[:, :rows].flatten(1)
    return ((f * b).sum(1) / (f.norm(dim=1) * b.norm(dim=1)).clamp(min=1e-12)).abs()

# The real pairs of a dataset: (dict(value = mean similarity of same-identity pairs, other = the same fronts with
# backs of other identities, num_pairs, p90 = the pairs' MIRROR_REAL_QUANTILE quantile), None), or (None, the reason)
# when the dataset has no such pairs (no front and back view near yaw 0 / 180 in one folder, or a single folder).
def real_mirror(path, max_pairs=MIRROR_MAX_PAIRS, seed=0):
    ds = ImageLabelDataset(path)
    abs_yaw = np.abs(ds.yaws_deg())
    folder = np.array([os.path.dirname(ds.image_name(i)) for i in range(len(ds))])
    if len(set(folder.tolist())) < 2:
        return None, 'one folder: no identities to pair (mirror needs one folder per identity)'
    fronts = np.flatnonzero(abs_yaw <= MIRROR_PAIR_DEG)
    backs = np.flatnonzero(abs_yaw >= 180 - MIRROR_PAIR_DEG)
    pairs = [(i, j) for i in fronts for j in backs if folder[i] == folder[j]]
    if not pairs:
        return None, (f'no identity folder has both a view within {MIRROR_PAIR_DEG:g} degrees of yaw 0 and one '
                      f'within {MIRROR_PAIR_DEG:g} degrees of yaw 180')
    if len(pairs) > max_pairs:
        pairs = [pairs[k] for k in sorted(np.random.default_rng(seed).permutation(len(pairs))[:max_pairs])]
    used = sorted({i for p in pairs for i in p})
    feat, bright = {}, {}
    for b in range(0, len(used), 256):
        idx = used[b:b + 256]
        imgs = torch.stack([torch.as_tensor(ds[int(i)][0]) for i in idx])
        feat.update(zip(idx, mirror_features(imgs)))
        bright.update(zip(idx, back_brightness(imgs)))
    front = torch.stack([feat[i] for i, _ in pairs])
    back = torch.stack([feat[j] for _, j in pairs])
    same = mirror_similarity(front, back)
    p90 = float(same.quantile(MIRROR_REAL_QUANTILE))
    back_bright = torch.stack([bright[j] for _, j in pairs])
    light_cut = float(back_bright.quantile(MIRROR_LIGHT_QUANTILE))
    split = split_face_rates(same, back_bright, p90, light_cut)
    # Other identities: each front with the back of the pair half the list away, where that is another folder.
    shift = [(k + len(pairs) // 2) % len(pairs) for k in range(len(pairs))]
    keep = [k for k, m in enumerate(shift) if folder[pairs[k][0]] != folder[pairs[m][1]]]
    other = float(mirror_similarity(front[keep], back[[shift[k] for k in keep]]).mean()) if keep else None
    upper = mirror_similarity(front, back, rows=MIRROR_UPPER_ROWS)
    upper_p90 = float(upper.quantile(MIRROR_REAL_QUANTILE))
    upper_split = split_face_rates(upper, back_bright, upper_p90, light_cut)
    return dict(value=float(same.mean()), other=other, num_pairs=len(pairs), p90=p90, light_cut=light_cut,
                **split, upper_value=float(upper.mean()), upper_p90=upper_p90,
                upper_face_rate_light=upper_split['face_rate_light'],
                upper_face_rate_dark=upper_split['face_rate_dark']), None

# The share of latents (or pairs) whose back is lighter than light_cut, and the face-behind share (similarity above
# p90) among those and among the others; a rate is None where its side has none.
def split_face_rates(similarity, brightness, p90, light_cut):
    light = brightness > light_cut
    rate = lambda m: float((similarity[m] > p90).float().mean()) if bool(m.any()) else None
    return dict(light_share=float(light.float().mean()), face_rate_light=rate(light), face_rate_dark=rate(~light))

# The value of a split from (front, back) rates.
def split_value(rates, split):
    front, back = rates
    return {'front': front, 'back': back, 'all': 0.5 * (front + back)}[split]

#----------------------------------------------------------------------------
