"""Invert photos into a tri-plane generator: latent projection (W or W+) from the w average, optional pivotal
tuning (PTI), then a 360-degree orbit video and a coloured mesh of the inverted head.

Examples:

\b
  python invert.py --network run/snapshot.pt --target photo.png --label photo.json --outdir out
  python invert.py --network run/ --target faces.zip --space w+ --pti-steps 350 --outdir out
  python invert.py --network G.pt --target photos/ --masks masks/ --perceptual lpips_vgg --outdir out

Each image needs its EG3D camera label (25 numbers): from the dataset's dataset.json, a dataset.json beside the
image, or --label (25 comma-separated numbers or a JSON file). See docs/inversion.md.
"""

import copy
import json
import os

import click
import numpy as np
import PIL.Image
import torch
from tqdm import tqdm

from dnnlib.util import check_output_path
from training import generate, inversion, mesh, snapshot
from training.checkpoint import latest_snapshot, weights_hash
from training.losses.perceptual import PERCEPTUAL_KINDS, PerceptualError, build_perceptual

#----------------------------------------------------------------------------
# Output files of one image, under OUTDIR/<image stem>/.

OUTPUTS = dict(compare='compare.png', latent='latent.npz', tuned='G_pti.pt', video='orbit.mp4', mesh='mesh.ply',
               metrics='metrics.json', curve='loss.csv', curve_png='loss.png', failed='latent_last_finite.npz')

# The perceptual kinds an inversion can use ('none' leaves the pixel loss alone).
KINDS = [k for k in PERCEPTUAL_KINDS]

# Label of the perceptual distance in every output: the stand-in is never reported as LPIPS.
def perceptual_label(kind):
    return {'lpips_vgg': 'LPIPS-VGG', 'lpips_vgg_randtrunk': 'lpips_randtrunk (offline stand-in: random VGG '
            'trunk, not LPIPS)', 'none': 'none'}[kind]

#----------------------------------------------------------------------------
# Small output helpers.

def _save_png(pixels, path):
    PIL.Image.fromarray(np.asarray(pixels), 'RGB').save(path)

# The loss curve as CSV (one row per step and stage) and a small PNG plot of log10(loss) per stage.
def _write_curve(path_csv, path_png, curves):
    keys = ['stage', 'step', 'loss', 'image_loss', 'psnr', 'pixel', 'perceptual', 'noise_reg', 'locality', 'lr']
    with open(path_csv, 'w') as f:
        f.write(','.join(keys) + '\n')
        for stage, curve in curves:
            for row in curve:
                f.write(','.join(stage if k == 'stage' else f'{row[k]:.6g}' if k in row else '' for k in keys) + '\n')
    losses = [row['loss'] for _, curve in curves for row in curve]
    if not losses:
        return
    h, w = 120, max(len(losses), 2)
    img = np.full([h, w, 3], 255, np.uint8)
    v = np.log10(np.maximum(np.asarray(losses), 1e-12))
    y = ((v.max() - v) / max(v.max() - v.min(), 1e-12) * (h - 1)).round().astype(int)
    colors = [(31, 119, 180), (214, 39, 40)]
    x = 0
    for k, (_, curve) in enumerate(curves):
        for _ in curve:
            img[y[x], x] = colors[k % 2]
            x += 1
    _save_png(img, path_png)

# Refuse to write an output onto an input the user gave (image, mask, label file, network).
def _check_not_input(path, inputs):
    real = os.path.realpath(path)
    for p in inputs:
        if p and os.path.exists(p) and os.path.realpath(p) == real:
            raise click.ClickException(f'output {path} would overwrite the input {p}; choose another --outdir')

# A file stem from an image name ('00001/img.png' -> '00001_img').
def _stem(name):
    return os.path.splitext(name)[0].replace('/', '_').replace('\\', '_')

#----------------------------------------------------------------------------

@click.command(context_settings=dict(max_content_width=120))
# Main options
@click.option('--network', 'network_path', help='Generator snapshot (.pt) or run dir (its newest); G_ema if present',
              metavar='PATH', required=True)
@click.option('--target', help='An image, or an EG3D dataset (folder or zip with dataset.json)', metavar='PATH',
              required=True)
@click.option('--outdir', help='Where to write the outputs (one folder per image)', metavar='DIR', required=True)
@click.option('--label', help='Camera label of a single image: 25 comma-separated numbers or a JSON file',
              metavar='LABEL|JSON', default=None)
@click.option('--masks', 'mask_dir', help='Folder of soft masks (same stem as each image; white = head)',
              metavar='DIR', default=None)
# Projection
@click.option('--space', help='Latent space of the projection', type=click.Choice(['w', 'w+']), default='w',
              show_default=True)
@click.option('--steps', help='Projection steps', type=click.IntRange(min=1), default=500, show_default=True)
@click.option('--lr', help='Initial learning rate of the projection', type=click.FloatRange(min=0, min_open=True),
              default=0.1, show_default=True)
@click.option('--perceptual', help='Perceptual loss (lpips_vgg needs the VGG16 file; the randtrunk stand-in is for '
              'the synthetic world)', type=click.Choice(KINDS), default='lpips_vgg', show_default=True)
@click.option('--vgg16', 'vgg16_path', help="torchvision's vgg16-397923af.pth (default: the torch hub checkpoints dir)",
              metavar='PATH', default=None)
@click.option('--pixel-weight', help='Weight of the pixel MSE', type=click.FloatRange(min=0), default=1.0,
              show_default=True)
@click.option('--noise-reg', help='Weight of the noise regulariser', type=click.FloatRange(min=0), default=1e5,
              show_default=True)
@click.option('--no-noise', 'no_noise', is_flag=True, help='Keep the synthesis noise maps fixed (optimise w only)')
# Pivotal tuning
@click.option('--pti-steps', help='Pivotal tuning steps (0 = none)', type=click.IntRange(min=0), default=0,
              show_default=True)
@click.option('--pti-lr', help='Learning rate of pivotal tuning', type=click.FloatRange(min=0, min_open=True),
              default=3e-4, show_default=True)
@click.option('--locality', 'locality_weight', help='Weight of the PTI locality regulariser',
              type=click.FloatRange(min=0), default=0.1, show_default=True)
# Outputs
@click.option('--video-frames', help='Frames of the orbit video (0 = none)', type=click.IntRange(min=0), default=120,
              show_default=True)
@click.option('--fps', help='Video frames per second', type=click.IntRange(min=1), default=30, show_default=True)
@click.option('--shape-res', help='Density grid points per axis for the mesh (0 = no mesh)',
              type=click.IntRange(min=0), default=128, show_default=True)
@click.option('--level', help='Iso level of the raw density for the mesh', type=float, default=10.0, show_default=True)
# Performance
@click.option('--device', help='Device', type=click.Choice(['auto', 'cpu', 'cuda']), default='auto', show_default=True)
@click.option('--seed', help='Seed of the projection noise', type=click.IntRange(min=0), default=0, show_default=True)
@click.option('--threads', help='torch CPU threads (default: torch\'s; 1 was much faster on a busy 2-core machine)',
              type=click.IntRange(min=1), default=None)
def main(network_path, target, outdir, label, mask_dir, space, steps, lr, perceptual, vgg16_path, pixel_weight,
         noise_reg, no_noise, pti_steps, pti_lr, locality_weight, video_frames, fps, shape_res, level, device, seed,
         threads):
    """Invert images (with EG3D camera labels) into a tri-plane generator: W/W+ projection, optional pivotal tuning,
    reconstruction, latent, orbit video, mesh and metrics per image."""
    check_output_path(outdir, '--outdir')
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        device = generate.resolve_device(device)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint='--device')
    try:
        G = generate.load_generator(network_path, device=device)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
        raise click.ClickException(f'cannot load --network {network_path!r}: {e}')
    if os.path.isdir(network_path):
        network_path = latest_snapshot(network_path)
    # Outputs never go inside an input folder: new images there would change the user's dataset (or masks).
    for folder, option in ((target, '--target'), (mask_dir, '--masks')):
        if folder and os.path.isdir(folder):
            inside = os.path.commonpath([os.path.realpath(outdir), os.path.realpath(folder)]) == os.path.realpath(folder)
            if inside:
                raise click.ClickException(f'--outdir {outdir} is inside the {option} folder {folder}; writing there '
                                           f'would change your data: choose an --outdir outside it')
    try:
        items = inversion.load_inputs(target, G.img_resolution, label=label, mask_dir=mask_dir)
    except inversion.InversionError as e:
        raise click.ClickException(str(e))
    try:
        P = build_perceptual(perceptual, vgg16_path=vgg16_path, device=device)
    except PerceptualError as e:
        raise click.ClickException(f'--perceptual {perceptual}: {e}')
    kind = perceptual_label(perceptual)
    click.echo(f'{len(items)} image(s); perceptual loss: {kind}')
    inputs = [target, label if label and os.path.isfile(label) else None, network_path, vgg16_path]
    for item in items:
        if item['resized'] is not None:
            click.echo(f'{item["name"]}: resized {item["resized"]}x{item["resized"]} -> {G.img_resolution}x'
                       f'{G.img_resolution} (square resize: the normalised intrinsics stay valid)')
        invert_one(G, item, P, kind, os.path.join(outdir, _stem(item['name'])), network_path, inputs, device,
                   dict(space=space, steps=steps, lr=lr, pixel_weight=pixel_weight, noise_reg=noise_reg,
                        optimize_noise=not no_noise, seed=seed),
                   dict(steps=pti_steps, lr=pti_lr, pixel_weight=pixel_weight, locality_weight=locality_weight, seed=seed),
                   video_frames, fps, shape_res, level)

#----------------------------------------------------------------------------
# Orbit video and coloured mesh of the inverted head (gen_samples' functions); the mesh outcome goes into `metrics`.

def write_orbit_and_mesh(G_out, ws, paths, metrics, name, video_frames, fps, shape_res, level, device):
    if video_frames > 0:
        frames = generate.orbit_frames_ws(G_out, ws, (1, 1), video_frames, device=device)
        generate.write_video(paths['video'], frames, fps=fps)
    if shape_res > 0:
        planes = generate.synthesize_planes(G_out, ws)
        sigma = generate.sample_density(G_out, planes, shape_res)
        try:
            verts, faces = generate.mesh_from_volume(sigma, level, float(G_out.rendering.box_warp))
            mesh.write_ply(paths['mesh'], verts, faces, generate.vertex_colors(G_out, planes, verts))
            metrics['mesh_vertices'] = int(len(verts))
        except ValueError as e:
            metrics['mesh'] = f'not written: {e} (--level)'
            click.echo(f'{name}: no mesh: {e}')

#----------------------------------------------------------------------------
# Invert one image and write its outputs.

def invert_one(G, item, P, kind, out, network_path, inputs, device, proj_kwargs, pti_kwargs, video_frames, fps,
               shape_res, level):
    paths = {k: os.path.join(out, v) for k, v in OUTPUTS.items()}
    for p in paths.values():
        _check_not_input(p, inputs + [item['source'], item['mask_source']])
    os.makedirs(out, exist_ok=True)
    target, c = inversion.item_tensors(item, device)
    curves = []
    info = dict(image=item['source'], network=os.path.abspath(network_path), perceptual=kind, **proj_kwargs)

    def stage_bar(name, total):
        bar = tqdm(total=total, desc=f'{item["name"]} {name}', unit='step')
        def update(step, row):
            bar.update(1)
            bar.set_postfix(image_loss=f'{row["image_loss"]:.4g}', psnr=f'{row["psnr"]:.2f}', refresh=False)
        return bar, update

    bar, update = stage_bar(f'project {proj_kwargs["space"]}', proj_kwargs['steps'])
    try:
        proj = inversion.project(G, target, c, perceptual=P, progress=update, **proj_kwargs)
    except inversion.NonFiniteLoss as e:
        bar.close()
        inversion.save_latent(paths['failed'], e.ws, e.noise, c, proj_kwargs['space'], network_path, dict(info, failed_step=e.step))
        raise click.ClickException(f'{item["name"]}: {e}; the last latent with a finite loss is in {paths["failed"]} '
                                   f'(try a smaller --lr)')
    bar.close()
    curves.append(('project', proj['curve']))
    G_out, ws, noise = G, proj['ws'], proj['noise']
    G_proj = copy.deepcopy(G)                       # G with the projected noise maps
    inversion.set_noise(G_proj, noise)

    pti = None
    if pti_kwargs['steps'] > 0:
        bar, update = stage_bar('pivotal tuning', pti_kwargs['steps'])
        try:
            pti = inversion.pivotal_tune(G, ws, noise, target, c, perceptual=P, w_dist=proj['w_dist'],
                                         progress=update, **pti_kwargs)
        except inversion.NonFiniteLoss as e:
            bar.close()
            inversion.save_latent(paths['latent'], ws, noise, c, proj_kwargs['space'], network_path, info)
            raise click.ClickException(f'{item["name"]}: {e}; the projected latent is in {paths["latent"]} and no '
                                       f'tuned generator was written (try a smaller --pti-lr)')
        bar.close()
        curves.append(('pti', pti['curve']))
        G_out = pti['G']
        info.update(pti_steps=pti_kwargs['steps'], pti_lr=pti_kwargs['lr'], locality_weight=pti_kwargs['locality_weight'])
        # The tuned copy in the safe snapshot format; the original network file is not touched.
        snapshot.save_snapshot(paths['tuned'], dict(G_ema=G_out), inversion=dict(
            source_network=os.path.abspath(network_path), source_weights_sha256=weights_hash(G), image=item['source'],
            latent=paths['latent']))
    else:
        G_out = G_proj
    inversion.save_latent(paths['latent'], ws, noise, c, proj_kwargs['space'], network_path, info)

    # Reconstruction at the input view: input | projection (| PTI).
    with torch.no_grad():
        recon = {'projection': inversion.render(G_proj, ws, c)}
        if pti is not None:
            recon['pti'] = inversion.render(G_out, ws, c)
    row = [generate.to_uint8(target)[0]] + [generate.to_uint8(r)[0] for r in recon.values()]
    _save_png(np.concatenate(row, axis=1), paths['compare'])
    _write_curve(paths['curve'], paths['curve_png'], curves)

    metrics = dict(image=item['source'], network=os.path.abspath(network_path), space=proj_kwargs['space'],
                   steps=proj_kwargs['steps'], pti_steps=pti_kwargs['steps'], perceptual=kind,
                   resized_from=item['resized'], masked=item['mask'] is not None,
                   time_projection_s=round(proj['time'], 2), time_pti_s=round(pti['time'], 2) if pti else 0.0)
    for name, img in recon.items():
        metrics[f'psnr_{name}'] = round(float(inversion.psnr(img, target)[0]), 3)
        if P is not None:
            with torch.no_grad():
                metrics[f'perceptual_{name}'] = round(float(P(img, target)[0]), 4)
    with torch.no_grad():
        start = inversion.render(G_proj, proj['w_avg'], c)
    metrics['psnr_w_avg_start'] = round(float(inversion.psnr(start, target)[0]), 3)

    write_orbit_and_mesh(G_out, ws, paths, metrics, item['name'], video_frames, fps, shape_res, level, device)
    with open(paths['metrics'], 'w') as f:
        json.dump(metrics, f, indent=2)
    click.echo(f'{item["name"]}: PSNR {metrics["psnr_w_avg_start"]:.2f} dB (w average) -> '
               f'{metrics["psnr_projection"]:.2f} dB (projection)'
               + (f' -> {metrics["psnr_pti"]:.2f} dB (PTI)' if pti else '') + f'; outputs in {out}')

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()
