"""GAN inversion of a tri-plane generator: latent projection (W or W+) and pivotal tuning (PTI).

    photo + EG3D camera label --project--> w (or w+) and the synthesis noise maps, starting from the w average
                              --pivotal_tune (optional)--> a copy of G fine-tuned around that pivot

The projection follows the StyleGAN2 projector (Karras et al. 2020, appendix D), as the EG3D projectors do: Adam
on w with a cosine ramp-down of the learning rate, Gaussian noise added to w early on (its scale ramps to zero),
a perceptual + pixel loss and a regulariser that keeps the optimised noise maps free of spatial structure.
Pivotal tuning follows PTI (Roich et al. 2022): the found latent is fixed and all generator weights are tuned with
the same loss, while a locality regulariser keeps renders of other latents near the pivot unchanged. The caller's
G is never modified: both steps work on copies.

Every render here is the generator's deterministic render (no depth jitter, constant synthesis noise), so the
loss is a smooth function of the latent and a latent renders to the same pixels in gen_samples.py.
Images are float [-1, 1] [N,3,H,W]; labels are EG3D's 25 floats.
"""

import copy
import io
import json
import math
import os
import time
import zipfile

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

from training import cameras, dataset, generate

RENDER_OVERRIDES = generate.RENDER_OVERRIDES

# How docs and errors tell users to obtain camera labels for their own photos.
LABEL_HELP = ('EG3D labels (25 numbers: cam2world 4x4 + normalised intrinsics) come from EG3D\'s preprocessing '
              '(dataset_preprocessing/ffhq/preprocess_in_the_wild.py: face alignment, Deep3DFaceRecon pose, crop); '
              'see docs/inversion.md "Camera labels" and docs/datasets.md')

#----------------------------------------------------------------------------

class InversionError(ValueError):
    """Bad inversion input (image, label, mask, option); the message names the file and the problem."""

class NonFiniteLoss(RuntimeError):
    """The loss became NaN or inf; carries the step and the last latent whose loss was finite."""
    def __init__(self, stage, step, loss, ws, noise):
        super().__init__(f'{stage}: the loss became {loss} at step {step}')
        self.stage, self.step, self.ws, self.noise = stage, step, ws, noise

#----------------------------------------------------------------------------
# Statistics of W: the average w of `num` mapped latents (conditioned on c_cond [1,25]) [1,1,w_dim], the
# per-dimension spread sqrt(sum var) (StyleGAN2 projector's w_std, a scalar) and the mean distance of a w from
# the average (the scale of PTI's locality ball).

@torch.no_grad()
def w_stats(G, c_cond, num=10000, seed=123, batch=1000):
    gen = torch.Generator().manual_seed(seed)
    ws = []
    for start in range(0, num, batch):
        n = min(batch, num - start)
        z = torch.randn([n, G.z_dim], generator=gen).to(c_cond.device)
        ws.append(G.mapping(z, generate.cond_like(G, c_cond.expand(n, -1)))[:, :1].float())
    ws = torch.cat(ws)                                                          # [num,1,w_dim]
    w_avg = ws.mean(0, keepdim=True)
    w_std = float(((ws - w_avg).square().sum() / num).sqrt())
    w_dist = float((ws - w_avg).flatten(1).norm(dim=1).mean())
    return w_avg, w_std, w_dist

#----------------------------------------------------------------------------
# Synthesis noise maps: the backbone's constant noise buffers by module name ({'...conv0': [res,res]}). The
# projector optimises them like w; the super-resolution draws no noise in a render (sr_noise_mode 'none').

def noise_buffers(G):
    return {name: m.noise_const for name, m in G.named_modules() if hasattr(m, 'noise_const')}

# Copy noise maps {name: [res,res]} into G's buffers (in place); shapes must match.
@torch.no_grad()
def set_noise(G, noise):
    bufs = noise_buffers(G)
    if set(noise) != set(bufs):
        raise ValueError(f'noise maps do not match this generator (missing {sorted(set(bufs) - set(noise))[:3]}, '
                         f'unexpected {sorted(set(noise) - set(bufs))[:3]})')
    for name, value in noise.items():
        value = torch.as_tensor(value)
        if tuple(value.shape) != tuple(bufs[name].shape):
            raise ValueError(f'noise map {name!r} has shape {list(value.shape)}, this generator needs {list(bufs[name].shape)}')
        bufs[name].copy_(value)

# StyleGAN2's noise regulariser: squared autocorrelation at one-pixel shifts, summed over a pyramid of each map.
def noise_regularization(bufs):
    reg = 0.0
    for v in bufs:
        v = v[None, None]
        while True:
            reg = reg + (v * torch.roll(v, 1, dims=3)).mean().square() + (v * torch.roll(v, 1, dims=2)).mean().square()
            if v.shape[2] <= 8:
                break
            v = F.avg_pool2d(v, 2)
    return reg

# Renormalise noise maps to zero mean and unit variance (in place), as the projector does after every step.
@torch.no_grad()
def normalize_noise_(bufs):
    for v in bufs:
        v.sub_(v.mean()).mul_(v.square().mean().rsqrt())

#----------------------------------------------------------------------------
# The projector's learning-rate schedule at progress t in [0, 1]: a linear warm-up over `rampup`, then a cosine
# ramp-down over the last `rampdown` of the steps.

def learning_rate(t, initial, rampdown=0.25, rampup=0.05):
    ramp = min(1.0, (1.0 - t) / rampdown) if rampdown > 0 else 1.0
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    ramp = ramp * min(1.0, t / rampup) if rampup > 0 else ramp
    return initial * ramp

#----------------------------------------------------------------------------
# Image comparisons.

# PSNR in dB per image of a, b float [-1,1] [N,3,H,W] (peak-to-peak 2).
def psnr(a, b):
    mse = (a.float() - b.float()).square().flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(4.0 / mse)

# Reconstruction loss: perceptual (a PerceptualDistance, or None) + pixel MSE; returns (total [N], parts dict).
def image_loss(img, target, perceptual, perceptual_weight=1.0, pixel_weight=1.0):
    pixel = (img - target).square().flatten(1).mean(1)
    total = pixel_weight * pixel
    parts = dict(pixel=pixel)
    if perceptual is not None and perceptual_weight > 0:
        dist = perceptual(img, target)
        total = total + perceptual_weight * dist
        parts['perceptual'] = dist
    return total, parts

# Render ws [N,num_ws,w_dim] at cameras c [N,25] with gradients: the full-resolution image [N,3,H,W].
def render(G, ws, c):
    return G.synthesis(ws, c, noise_mode='const', render_overrides=RENDER_OVERRIDES)['image']

#----------------------------------------------------------------------------
# Project one target image [1,3,H,W] seen from camera c [1,25] into G's latent space.
#   space       'w' (one w for every layer) or 'w+' (one w per layer)
#   c_cond      conditioning label of the mapping for the w average (default: G's frontal pose; one head)
# Returns dict(ws [1,num_ws,w_dim], noise {name: [res,res]}, curve [dict per step], w_avg, w_dist, time).
# progress(step, parts) is called after every step. A non-finite loss raises NonFiniteLoss with the last finite state.

def project(G, target, c, space='w', steps=500, lr=0.1, perceptual=None, perceptual_weight=1.0, pixel_weight=1.0,
            noise_reg=1e5, optimize_noise=True, init_noise=0.05, noise_ramp=0.75, lr_rampdown=0.25, lr_rampup=0.05,
            c_cond=None, w_avg_samples=10000, seed=0, progress=None):
    if space not in ('w', 'w+'):
        raise ValueError(f'space must be "w" or "w+", got {space!r}')
    if steps < 0:
        raise ValueError(f'steps must be >= 0, got {steps}')
    t0 = time.time()
    device = target.device
    G = copy.deepcopy(G).eval().requires_grad_(False)                 # the noise maps are optimised in this copy
    if c_cond is None:
        c_cond = generate.front_labels(G, 1, device=device) if G.c_dim else torch.zeros([1, 25], device=device)
    w_avg, w_std, w_dist = w_stats(G, c_cond.to(device), num=w_avg_samples, seed=seed + 123)
    w_opt = w_avg.clone() if space == 'w' else w_avg.repeat(1, G.num_ws, 1)
    w_opt.requires_grad_(True)
    bufs = list(noise_buffers(G).values())
    gen = torch.Generator(device=device).manual_seed(seed)
    if optimize_noise:
        with torch.no_grad():
            for v in bufs:
                v.copy_(torch.randn(v.shape, generator=gen, device=device))
            normalize_noise_(bufs)
        for v in bufs:
            v.requires_grad_(True)
    opt = torch.optim.Adam([w_opt] + (bufs if optimize_noise else []), betas=(0.9, 0.999), lr=lr)

    def full(w):
        return w.repeat(1, G.num_ws, 1) if space == 'w' else w

    def state():
        return full(w_opt).detach().clone(), {k: v.detach().clone() for k, v in noise_buffers(G).items()}

    last = state()
    curve = []
    for step in range(steps):
        t = step / steps
        noise_scale = w_std * init_noise * max(0.0, 1.0 - t / noise_ramp) ** 2 if noise_ramp > 0 else 0.0
        for group in opt.param_groups:
            group['lr'] = learning_rate(t, lr, lr_rampdown, lr_rampup)
        w_noise = torch.randn(w_opt.shape, generator=gen, device=device) * noise_scale
        img = render(G, full(w_opt + w_noise), c)
        loss, parts = image_loss(img, target, perceptual, perceptual_weight, pixel_weight)
        loss = loss.sum()
        reg = noise_regularization(bufs) if optimize_noise and noise_reg > 0 else torch.zeros([], device=device)
        total = loss + noise_reg * reg
        if not torch.isfinite(total):
            raise NonFiniteLoss('projection', step, float(total.detach()), *last)
        last = state()                                                  # the latent of this finite loss
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        if optimize_noise:
            normalize_noise_(bufs)
        row = dict(step=step, loss=float(total.detach()), image_loss=float(loss.detach()),
                   psnr=float(psnr(img.detach(), target)[0]), lr=opt.param_groups[0]['lr'],
                   **{k: float(v.detach().sum()) for k, v in parts.items()}, noise_reg=float(reg.detach()))
        curve.append(row)
        if progress is not None:
            progress(step, row)
    final = state()
    finite = torch.isfinite(final[0]).all() and all(torch.isfinite(v).all() for v in final[1].values())
    ws, noise = final if finite else last
    return dict(ws=ws, noise=noise, curve=curve, w_avg=w_avg.repeat(1, G.num_ws, 1), w_dist=w_dist,
                time=time.time() - t0)

#----------------------------------------------------------------------------
# Pivotal tuning: fine-tune a copy of G so that the pivot ws [1,num_ws,w_dim] (with its noise maps) reproduces the
# target from camera c. Locality regulariser (PTI's): every `locality_every` steps a latent w_r is drawn on the
# sphere of radius locality_radius * w_dist around the pivot, towards a random mapped w, and rendered by the tuned
# and the original G at a random yaw of the orbit; their difference (pixel + perceptual) is penalised, so that
# only the neighbourhood of the pivot moves. Returns dict(G (the tuned copy, eval, no grad), curve, time).

def pivotal_tune(G, ws, noise, target, c, steps=350, lr=3e-4, perceptual=None, perceptual_weight=1.0,
                 pixel_weight=1.0, locality_weight=0.1, locality_radius=1.0, locality_every=1, w_dist=None,
                 c_cond=None, seed=0, progress=None):
    t0 = time.time()
    device = target.device
    G_orig = copy.deepcopy(G).eval().requires_grad_(False)
    set_noise(G_orig, noise)
    G_tune = copy.deepcopy(G_orig).train().requires_grad_(True)
    for v in noise_buffers(G_tune).values():
        v.requires_grad_(False)
    opt = torch.optim.Adam(G_tune.parameters(), lr=lr, betas=(0.9, 0.999))
    if c_cond is None:
        c_cond = generate.front_labels(G, 1, device=device) if G.c_dim else torch.zeros([1, 25], device=device)
    if w_dist is None:
        w_dist = w_stats(G, c_cond, num=1000, seed=seed + 123)[2]
    gen = torch.Generator(device=device).manual_seed(seed + 1)
    ws = ws.detach()
    curve = []
    for step in range(steps):
        img = render(G_tune, ws, c)
        loss, parts = image_loss(img, target, perceptual, perceptual_weight, pixel_weight)
        total = loss.sum()
        row = dict(step=step, image_loss=float(total.detach()), psnr=float(psnr(img.detach(), target)[0]),
                   **{k: float(v.detach().sum()) for k, v in parts.items()})
        if locality_weight > 0 and step % locality_every == 0:
            z = torch.randn([1, G.z_dim], generator=gen, device=device)
            with torch.no_grad():
                w_z = G_orig.mapping(z, generate.cond_like(G_orig, c_cond))
            direction = w_z - ws
            w_r = ws + locality_radius * w_dist * direction / direction.norm(dim=2, keepdim=True).clamp_min(1e-8)
            yaw = float(torch.rand([], generator=gen, device=device)) * 2 * math.pi - math.pi
            c_r = cameras.make_label(torch.tensor([yaw]), torch.zeros(1), focal=float(c[0, 16]),
                                     **generate.camera_orbit(G)).to(device)
            with torch.no_grad():
                ref = render(G_orig, w_r, c_r)
            local, _ = image_loss(render(G_tune, w_r, c_r), ref, perceptual, perceptual_weight, pixel_weight)
            total = total + locality_weight * local.sum()
            row['locality'] = float(local.detach().sum())
        row['loss'] = float(total.detach())
        if not torch.isfinite(total):              # the caller keeps the projected latent; no tuned G is kept
            raise NonFiniteLoss('pivotal tuning', step, float(total.detach()), ws, noise)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        curve.append(row)
        if progress is not None:
            progress(step, row)
    if not all(torch.isfinite(p).all() for p in G_tune.parameters()):
        raise NonFiniteLoss('pivotal tuning', steps, float('nan'), ws, noise)
    return dict(G=G_tune.eval().requires_grad_(False), curve=curve, time=time.time() - t0)

#----------------------------------------------------------------------------
# Latent files (.npz): ws [1,num_ws,w_dim] float32, the space, the camera, and one array per noise map
# ('noise/<module name>'). Plain arrays only (np.load with allow_pickle=False reads them).

def save_latent(path, ws, noise, c, space, network, extra=None):
    arrays = {'ws': ws.detach().cpu().float().numpy(), 'c': c.detach().cpu().float().numpy(),
              'space': np.array(space), 'network': np.array(os.path.abspath(network)),
              'info': np.array(json.dumps(extra or {}))}
    arrays.update({f'noise/{k}': v.detach().cpu().float().numpy() for k, v in noise.items()})
    tmp = path + '.tmp.npz'
    np.savez(tmp, **arrays)
    os.replace(tmp, path)

# Load a latent file for G: (ws [1,num_ws,w_dim] tensor, noise dict or {}); ValueError names the file and the problem.
def load_latent(path, num_ws, w_dim):
    if not os.path.isfile(path):
        raise FileNotFoundError(f'latent file {path!r} does not exist')
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise ValueError(f'latent file {path!r} is not an .npz of plain arrays: {e}') from None
    if 'ws' not in arrays:
        raise ValueError(f'latent file {path!r} has no "ws" array (keys: {", ".join(sorted(arrays)) or "none"}); '
                         f'expected the latent.npz written by invert.py')
    ws = arrays['ws']
    if ws.ndim == 2:
        ws = ws[None]
    if ws.ndim != 3 or ws.shape[1:] != (num_ws, w_dim) or not np.issubdtype(ws.dtype, np.floating):
        raise ValueError(f'latent in {path!r} has shape {list(arrays["ws"].shape)}; this generator needs '
                         f'[N, {num_ws}, {w_dim}] floats')
    if not np.isfinite(ws).all():
        raise ValueError(f'latent in {path!r} contains NaN or inf')
    noise = {k[len('noise/'):]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith('noise/')}
    return torch.from_numpy(ws.astype(np.float32)), noise

#----------------------------------------------------------------------------
# Inputs: images with their labels (and optional masks), checked with the dataset's rules.

# Decode an image file's bytes into uint8 [H,W,3] (RGBA composited on white, as the training sets are).
def _decode_image(data, where):
    try:
        with PIL.Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.mode in ('RGBA', 'LA', 'PA') or (img.mode == 'P' and 'transparency' in img.info):
                rgba = np.asarray(img.convert('RGBA'), dtype=np.float32)
                alpha = rgba[:, :, 3:] / 255.0
                return np.rint(rgba[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
            return np.asarray(img.convert('RGB'), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError) as e:
        raise InversionError(f'{where}: unreadable image ({e})') from None

# Parse a --label value: 25 comma-separated numbers, or a JSON file holding a list of 25 numbers, an object
# {image name: [25]}, or an EG3D dataset.json. Returns the 25 floats for `image_name`.
def parse_label_option(text, image_name):
    if os.path.isfile(text):
        try:
            with open(text, 'rb') as f:
                data = json.loads(f.read())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InversionError(f'--label file {text}: not readable JSON ({e})') from None
        if isinstance(data, dict) and 'labels' in data:
            try:
                data = dict(dataset.parse_labels(json.dumps(data), text))
            except dataset.DatasetError as e:
                raise InversionError(str(e)) from None
        if isinstance(data, dict):
            base = os.path.basename(image_name)
            hits = [v for k, v in data.items() if k.replace('\\', '/') == image_name or os.path.basename(k) == base]
            if len(hits) != 1:
                raise InversionError(f'--label file {text}: {"no" if not hits else "more than one"} entry for image '
                                     f'{base!r} (entries: {", ".join(list(data)[:5])}{" ..." if len(data) > 5 else ""})')
            values, where = hits[0], f'--label file {text}, entry {base!r}'
        else:
            values, where = data, f'--label file {text}'
    else:
        try:
            values = [float(v) for v in text.replace(',', ' ').split()]
        except ValueError:
            raise InversionError(f'--label {text[:60]!r} is neither a file nor 25 comma-separated numbers') from None
        where = '--label'
    problem = dataset.check_label(values)
    if problem is not None:
        raise InversionError(f'{where}: {problem}')
    return [float(v) for v in values]

# The camera label of a single image: from --label, else from a dataset.json beside it; otherwise an error that
# says how to obtain one.
def _single_label(image_path, label):
    name = os.path.basename(image_path)
    if label is not None:
        return parse_label_option(label, name)
    beside = os.path.join(os.path.dirname(os.path.abspath(image_path)), dataset.LABEL_FILE)
    if os.path.isfile(beside):
        with open(beside, 'rb') as f:
            try:
                labels = dataset.parse_labels(f.read(), beside)
            except dataset.DatasetError as e:
                raise InversionError(str(e)) from None
        if name in labels:
            return [float(v) for v in labels[name]]
    raise InversionError(f'image {image_path} has no camera label: give --label (25 numbers or a JSON file), '
                         f'put it in a {dataset.LABEL_FILE} beside the image, or pass an EG3D dataset folder/zip. '
                         + LABEL_HELP)

# Resize uint8 [H,W,C] square pixels to res x res (Lanczos; normalised intrinsics do not change with a uniform
# resize of the whole image, so the label stays valid).
def _resize(pixels, res):
    if pixels.shape[0] == res:
        return pixels
    mode = 'RGB' if pixels.ndim == 3 else 'L'
    return np.asarray(PIL.Image.fromarray(pixels, mode).resize((res, res), PIL.Image.LANCZOS))

# One input item: dict(name, pixels uint8 [res,res,3] (after mask compositing), label [25] list, mask float
# [res,res] or None, mask_source (its file), source (path), resized (original size or None)).
def _make_item(name, pixels, label, res, source, mask_dir):
    h, w = pixels.shape[:2]
    if h != w:
        raise InversionError(f'{source}: image is not square ({w}x{h}); crop it to a square around the head first '
                             f'(scripts/dataset_tool.py crops and adjusts the label\'s intrinsics), since a '
                             f'non-square image cannot be resized without changing the camera')
    resized = None
    if w != res:
        resized, pixels = w, _resize(pixels, res)
    mask = mask_source = None
    if mask_dir is not None:
        stem = os.path.splitext(name)[0]
        found = [os.path.join(mask_dir, stem + ext) for ext in ('.png', '.jpg', '.jpeg')
                 if os.path.isfile(os.path.join(mask_dir, stem + ext))]
        if not found:
            raise InversionError(f'--masks {mask_dir}: no mask for image {name!r} (expected {stem}.png there)')
        mask_source = found[0]
        try:
            with PIL.Image.open(found[0]) as m:
                mask_px = np.asarray(m.convert('L'), dtype=np.uint8)
        except (OSError, SyntaxError, ValueError) as e:
            raise InversionError(f'{found[0]}: unreadable mask ({e})') from None
        if mask_px.shape != (h, w):
            raise InversionError(f'{found[0]}: mask is {mask_px.shape[1]}x{mask_px.shape[0]}, its image {name!r} '
                                 f'is {w}x{h}; they must match')
        mask = _resize(mask_px, res).astype(np.float32) / 255.0
        # White background as in training: keep the masked head, fill the rest with white.
        pixels = np.rint(pixels * mask[..., None] + 255.0 * (1.0 - mask[..., None])).astype(np.uint8)
    return dict(name=name, pixels=pixels, label=label, mask=mask, mask_source=mask_source, source=source,
                resized=resized)

# Read the inputs: `target` is an image file or an EG3D dataset (folder or zip with dataset.json). Returns a list of
# items (see _make_item) at resolution res.
def load_inputs(target, res, label=None, mask_dir=None):
    if mask_dir is not None and not os.path.isdir(mask_dir):
        raise InversionError(f'--masks {mask_dir}: no such folder')
    is_dataset = os.path.isdir(target) or (os.path.isfile(target) and zipfile.is_zipfile(target))
    if is_dataset:
        if label is not None:
            raise InversionError(f'--label is for a single image; the dataset {target} has its labels in {dataset.LABEL_FILE}')
        try:
            ds = dataset.ImageLabelDataset(target, rgba='white')
        except dataset.DatasetError as e:
            raise InversionError(str(e) + ('' if 'dataset.json' not in str(e) else '. ' + LABEL_HELP)) from None
        items = []
        for i in range(len(ds)):
            image, c = ds[i]
            items.append(_make_item(ds.image_name(i), np.ascontiguousarray(image.transpose(1, 2, 0)), c.tolist(),
                                    res, f'{target}: image {ds.image_name(i)!r}', mask_dir))
        ds.close()
        return items
    if not os.path.isfile(target):
        raise InversionError(f'--target {target}: no such image, folder or zip')
    with open(target, 'rb') as f:
        pixels = _decode_image(f.read(), target)
    return [_make_item(os.path.basename(target), pixels, _single_label(target, label), res, target, mask_dir)]

# An item's image as float [1,3,H,W] in [-1,1] and its label [1,25] on device.
def item_tensors(item, device):
    img = torch.from_numpy(np.array(item['pixels'])).permute(2, 0, 1)[None].float().to(device) / 127.5 - 1
    return img, torch.tensor([item['label']], dtype=torch.float32, device=device)
