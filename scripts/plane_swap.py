"""Tri-plane exchange analysis (Head3D paper, section 3.2, table 1 and figures 2-5).

For every pair of seeds (A, B) the planes of A are rendered with one plane (xy, xz or the third plane)
taken from B, from the frontal camera, and each result is compared with the renders of A and B. The table
has the layout of the paper's table 1: one row per swapped plane, the source of each plane, then the mean
identity similarity to A and to B.

Similarity: with --id-model, the cosine similarity of embeddings from a face-recognition model (e.g. ArcFace)
saved as TorchScript (torch.jit.save) or as a torch.export program (.pt2) that takes [N,3,H,W] in [-1,1] at
--id-res and returns [N,D]. Without
it, "proxy-ID": the cosine similarity of the central face crop (rows and columns 25%-75% of the frontal
render), area-downsampled to 16x16 RGB, with each image's per-channel mean removed. The proxy measures
pixel-level likeness of the face region, not identity; label it as a proxy wherever it is reported.

Options: --region swaps only a rectangle of each swapped plane (figure 3), --channels only some feature
channels (figure 4), --network2 takes B from a second generator (figure 5: the xy plane between a face and a
head generator). Swapped planes are rendered by A's generator with A's ws (w drives only the super-resolution).

Example:

\b
  python scripts/plane_swap.py --network face.pt --seeds 0-9 --outdir out/swap
"""

import itertools
import json
import os

import click
import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from tqdm import tqdm

from dnnlib.util import check_output_path
from training import generate
from metrics.identity import pixel_embedding

# Proxy-ID settings (see the module docstring).
PROXY_CROP = (0.25, 0.75)

#----------------------------------------------------------------------------
# Names of the three planes for a generator's plane axes: EG3D's third plane projects onto (z, x).

def plane_names(G):
    return ['xy', 'xz', 'zx' if getattr(G, 'plane_axes_kind', 'eg3d') == 'eg3d' else 'yz']

#----------------------------------------------------------------------------
# Parse 'x0,y0,x1,y1' in normalised plane coordinates [-1, 1] (u = 2x/box_warp picks the column, v = 2y/box_warp
# the row, as the renderer samples the planes).

def parse_region(text):
    values = generate.parse_floats(text, what='region')
    if len(values) != 4:
        raise ValueError(f'region {text!r} must have 4 numbers x0,y0,x1,y1')
    x0, y0, x1, y1 = values
    if not (-1 <= x0 < x1 <= 1 and -1 <= y0 < y1 <= 1):
        raise ValueError(f'region {text!r} must satisfy -1 <= x0 < x1 <= 1 and -1 <= y0 < y1 <= 1')
    return x0, y0, x1, y1

# Boolean mask [H,W] of the plane texels whose centres lie inside the region (align_corners=False centres).
def region_mask(region, height, width):
    x0, y0, x1, y1 = region
    u = (2 * torch.arange(width) + 1) / width - 1
    v = (2 * torch.arange(height) + 1) / height - 1
    return ((v >= y0) & (v <= y1))[:, None] & ((u >= x0) & (u <= x1))[None, :]

#----------------------------------------------------------------------------
# Planes [N,3,C,H,W] of A with plane `plane` (0, 1, 2) taken from B, restricted to `channels` (list or None =
# all) and to `region` (x0,y0,x1,y1 or None = whole plane). A and B are not modified.

def swap_planes(planes_a, planes_b, plane, channels=None, region=None):
    if planes_a.shape != planes_b.shape:
        raise ValueError(f'cannot swap planes of shapes {list(planes_a.shape)} and {list(planes_b.shape)}')
    n, p, c, h, w = planes_a.shape
    mask = torch.zeros([p, c, h, w], dtype=torch.bool, device=planes_a.device)
    chan = torch.zeros([c], dtype=torch.bool, device=planes_a.device)
    chan[list(range(c)) if channels is None else list(channels)] = True
    space = torch.ones([h, w], dtype=torch.bool) if region is None else region_mask(region, h, w)
    mask[plane] = chan[:, None, None] & space.to(planes_a.device)[None]
    return torch.where(mask[None], planes_b, planes_a)

#----------------------------------------------------------------------------
# Identity embeddings: unit vectors [N,D] of images [N,3,H,W] in [-1,1].

class ProxyEmbedder:
    label = 'proxy-ID'

    def __call__(self, images):
        _, _, h, w = images.shape
        lo, hi = PROXY_CROP
        crop = images[:, :, int(round(lo * h)):int(round(hi * h)), int(round(lo * w)):int(round(hi * w))].float()
        return F.normalize(pixel_embedding(crop), dim=1)     # the ID-proxy embedding of metrics/identity.py

class ModelEmbedder:
    label = 'ID'

    # Load a TorchScript file (torch.jit.save) or a torch.export program (.pt2, torch.export.save); neither
    # runs Python code from the file.
    def __init__(self, path, res, device):
        if not os.path.isfile(path):
            raise FileNotFoundError(f'identity model {path!r} does not exist (a TorchScript or torch.export .pt2 '
                                    f'file: [N,3,H,W] in [-1,1] -> [N,D] embeddings)')
        try:
            if path.endswith('.pt2'):
                self.model = torch.export.load(path).module().to(device)
            else:
                self.model = torch.jit.load(path, map_location=device).eval()
        except Exception as e:  # the loaders raise many types (BadZipFile, RuntimeError, ...) for a bad file
            kind = 'torch.export program' if path.endswith('.pt2') else 'TorchScript file'
            raise ValueError(f'identity model {path!r} is not a loadable {kind}: {e}') from None
        self.res, self.device = res, device

    @torch.no_grad()
    def __call__(self, images):
        x = F.interpolate(images.float().to(self.device), size=(self.res, self.res), mode='bilinear',
                          align_corners=False, antialias=True)
        emb = self.model(x)
        if not isinstance(emb, torch.Tensor) or emb.ndim < 2 or emb.shape[0] != x.shape[0]:
            raise ValueError(f'identity model returned {type(emb).__name__} {getattr(emb, "shape", "")}; '
                             f'expected embeddings [N, D]')
        return F.normalize(emb.float().flatten(1), dim=1).cpu()

#----------------------------------------------------------------------------
# Run the analysis. G2 (or None = G) supplies B. Each pair is rendered in one call, [A, A+plane0(B),
# A+plane1(B), A+plane2(B)] plus B when G2 is G, so that a swap that changes nothing gives exactly A's pixels
# (CPU convolutions may differ in the last bit between batch sizes). Returns (report dict, images) where
# images[(a, b)] is a uint8 strip [A, B, A+plane0(B), A+plane1(B), A+plane2(B)] when keep_images.

@torch.no_grad()
def plane_swap(G, seeds, embed, G2=None, channels=None, region=None, truncation_psi=1.0, truncation_cutoff=None,
               nrr=None, device='cpu', keep_images=False, progress=True):
    G2 = G if G2 is None else G2
    if len(seeds) < 2:
        raise ValueError(f'plane swap needs at least 2 seeds, got {seeds}')
    names = plane_names(G)
    front = generate.view_labels([(0.0, 0.0)], device=device, G=G)

    # ws and planes of every seed under one generator.
    def prepare(net):
        ws = generate.seeds_to_ws(net, seeds, c_cond=generate.front_labels(net, len(seeds), device=device),
                                  truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, device=device)
        return ws, generate.synthesize_planes(net, ws, batch=1)

    ws_a, planes_a = prepare(G)
    ws_b, planes_b = (ws_a, planes_a) if G2 is G else prepare(G2)
    if planes_a.shape[1:] != planes_b.shape[1:]:
        raise ValueError(f'the two generators make planes of different shapes: {list(planes_a.shape[1:])} '
                         f'and {list(planes_b.shape[1:])}')
    if channels is not None and not all(0 <= ch < planes_a.shape[2] for ch in channels):
        raise ValueError(f'channels {channels} are outside 0..{planes_a.shape[2] - 1} of these planes')
    refs_b = {}                                                                       # B renders by G2, per seed

    pairs = list(itertools.combinations(range(len(seeds)), 2))
    sims = {name: [] for name in names + ['none', 'all']}
    per_pair, images = [], {}
    for i, j in tqdm(pairs, desc='plane swap', unit='pair', disable=not progress):
        swapped = [swap_planes(planes_a[i:i + 1], planes_b[j:j + 1], p, channels, region) for p in range(3)]
        items, item_ws = [planes_a[i:i + 1]] + swapped, [ws_a[i:i + 1]] * 4
        if G2 is G:
            items, item_ws = items + [planes_b[j:j + 1]], item_ws + [ws_b[j:j + 1]]
        k = len(items)
        out = generate.render_planes_batched(G, torch.cat(items), torch.cat(item_ws), front.expand(k, -1), nrr=nrr,
                                             batch=k)['image']
        if G2 is G:
            img_b = out[4:5]
        else:
            if j not in refs_b:
                refs_b[j] = generate.render_planes_batched(G2, planes_b[j:j + 1], ws_b[j:j + 1], front, nrr=nrr)['image']
            img_b = refs_b[j]
        emb = embed(torch.cat([out[:4], img_b]))                                        # [A, swaps x3, B]
        row = {name: [float(emb[1 + p] @ emb[0]), float(emb[1 + p] @ emb[4])] for p, name in enumerate(names)}
        row['none'] = [float(emb[0] @ emb[0]), float(emb[0] @ emb[4])]
        row['all'] = [float(emb[4] @ emb[0]), float(emb[4] @ emb[4])]
        for name, value in row.items():
            sims[name].append(value)
        per_pair.append(dict(seed_a=seeds[i], seed_b=seeds[j], sims=row))
        if keep_images:
            strip = torch.cat([out[:1], img_b, out[1:4]])
            images[(seeds[i], seeds[j])] = generate.make_grid(generate.to_uint8(strip), 1, 5)

    restricted = channels is not None or region is not None
    rows = []
    for name in names + ['none', 'all']:
        source = {n: ('B' if name in (n, 'all') else 'A') for n in names}
        if restricted and name in names:
            source[name] = 'A+B'
        values = np.array(sims[name])
        rows.append(dict(swap=name, planes=source, sim_A=float(values[:, 0].mean()), sim_B=float(values[:, 1].mean()),
                         std_A=float(values[:, 0].std()), std_B=float(values[:, 1].std())))
    report = dict(metric=embed.label, planes=names, seeds=list(seeds), num_pairs=len(pairs),
                  channels=None if channels is None else list(channels), region=None if region is None else list(region),
                  rows=rows, per_pair=per_pair)
    return report, images

#----------------------------------------------------------------------------
# The table in the layout of the paper's table 1 (sources of the planes, then similarity to A and to B).

def format_table(report):
    names = report['planes']
    metric = report['metric']
    header = ' '.join(f'{"F_" + n:>5}' for n in names) + f' | {metric + " A":>11} {metric + " B":>11}'
    lines = [header, '-' * len(header)]
    for row in report['rows']:
        lines.append(' '.join(f'{row["planes"][n]:>5}' for n in names) + f' | {row["sim_A"]:11.3f} {row["sim_B"]:11.3f}')
    notes = [f'{report["num_pairs"]} pairs of seeds; A+B = region/channels of that plane from B']
    if report['metric'] == 'proxy-ID':
        notes.append('proxy-ID: cosine similarity of mean-centred 16x16 RGB of the central face crop, not a face '
                     'recognition score')
    return '\n'.join(lines + notes)

#----------------------------------------------------------------------------

@click.command()
@click.option('--network', 'network_path', help='Generator snapshot for identity A (and B)', metavar='PATH',
              required=True)
@click.option('--network2', 'network2_path', help='Second generator supplying identity B (e.g. the head generator)',
              metavar='PATH', default=None)
@click.option('--seeds', help='Seeds; every pair of them is analysed (e.g. 0-99)', required=True)
@click.option('--outdir', help='Where to write plane_swap.json (and images)', metavar='DIR', required=True)
@click.option('--id-model', help='Face-embedding model, TorchScript or torch.export .pt2 ([N,3,H,W] in [-1,1] -> '
              '[N,D]); default proxy-ID',
              metavar='PATH', default=None)
@click.option('--id-res', help='Input resolution of --id-model', type=click.IntRange(min=8), default=112,
              show_default=True)
@click.option('--region', help='Swap only this rectangle x0,y0,x1,y1 of the plane (normalised coords in [-1,1])',
              default=None)
@click.option('--channels', help='Swap only these feature channels, e.g. 0-15', default=None)
@click.option('--trunc', 'truncation_psi', help='Truncation psi', type=float, default=1.0, show_default=True)
@click.option('--trunc-cutoff', 'truncation_cutoff', help='Truncation cutoff', type=click.IntRange(min=0), default=None)
@click.option('--nrr', help='Neural rendering resolution override', type=click.IntRange(min=1), default=None)
@click.option('--device', help='Device', type=click.Choice(['auto', 'cpu', 'cuda']), default='auto', show_default=True)
@click.option('--save-images', is_flag=True, help='Write one strip per pair: A, B, A with each plane of B')
def main(network_path, network2_path, seeds, outdir, id_model, id_res, region, channels, truncation_psi,
         truncation_cutoff, nrr, device, save_images):
    """Swap tri-planes between identities and measure identity similarity (paper table 1)."""
    check_output_path(outdir, '--outdir')
    try:
        seeds = generate.parse_seeds(seeds)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint='--seeds')
    if len(seeds) < 2:
        raise click.BadParameter(f'{seeds} has fewer than 2 seeds (repeat a seed, e.g. 3,3, to pair it with itself)',
                                 param_hint='--seeds')
    try:
        region = None if region is None else parse_region(region)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint='--region')
    try:
        channels = None if channels is None else generate.parse_range(channels)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint='--channels')
    try:
        device = generate.resolve_device(device)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint='--device')
    nets = []
    for option, path in (('--network', network_path), ('--network2', network2_path)):
        if path is None:
            continue
        try:
            nets.append(generate.load_generator(path, device=device))
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
            raise click.ClickException(f'cannot load {option} {path!r}: {e}')
    try:
        embed = ProxyEmbedder() if id_model is None else ModelEmbedder(id_model, id_res, device)
    except (OSError, ValueError) as e:
        raise click.BadParameter(str(e), param_hint='--id-model')

    os.makedirs(outdir, exist_ok=True)
    try:
        report, images = plane_swap(nets[0], seeds, embed, G2=nets[1] if len(nets) > 1 else None, channels=channels,
                                    region=region, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                                    nrr=nrr, device=device, keep_images=save_images)
    except ValueError as e:
        raise click.ClickException(str(e))
    report.update(network=os.path.abspath(network_path),
                  network2=None if network2_path is None else os.path.abspath(network2_path),
                  id_model=None if id_model is None else os.path.abspath(id_model))
    with open(os.path.join(outdir, 'plane_swap.json'), 'w') as f:
        json.dump(report, f, indent=2)
    for (a, b), strip in images.items():
        PIL.Image.fromarray(strip, 'RGB').save(os.path.join(outdir, f'swap_seed{a:04d}_seed{b:04d}.png'))
    click.echo(format_table(report))
    click.echo(f'wrote {os.path.join(outdir, "plane_swap.json")}')

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()
