"""A blind eye check of the backs of the head: does a face show behind?

The metrics read a face behind through correlations (docs/metrics.md), and on smooth backs they can disagree with
what the eye sees (README, "Which reading to trust"). This tool makes the eye check repeatable and blind:

  grid   renders the yaw-180 views of two or more networks for the same latents, shuffles all of them into one
         unlabelled, numbered grid (OUTDIR/grid.png) and writes which tile is which to OUTDIR/key.json, without
         printing it. The latents are picked from the teacher's frontal renders: 'light' = the --count ones with
         the brightest hair (the top centre of the image) among --seeds, where a dark face shows most easily
         through the hair; 'other' = --count random ones among the rest; 'all' = the first --count seeds.
         --real adds as many real back views of a dataset (one per identity folder) as a control, and --stretch
         stretches each tile's contrast, so that a face left at a few percent of the contrast on dark hair shows
         (read against the stretched real backs: strands and shading show too).
  score  takes the tiles you marked while looking at the grid only (--clear: eyes or a face plainly visible;
         --faint: faint eyes or spots where the eyes would be) and unblinds them: per network the number of
         clear, faint and clean backs.

\b
  python scripts/blind_backs.py grid --teacher weights/face_world.pt \\
      --networks head_ft=weights/head_ft_world.pt,head3d=runs/demo/head3d --select light --outdir runs/blind_light
  # look at runs/blind_light/grid.png, write down the tile numbers, then:
  python scripts/blind_backs.py score --key runs/blind_light/key.json --clear 1,2,6 --faint 10,11
"""

import json
import os

import click
import numpy as np
import PIL.Image
import PIL.ImageDraw
import torch

from dnnlib.util import check_output_path
from training import generate

TILE_SCALE = 3          # each render is shown at 3x its size
LABEL_ROWS = 16         # pixels above each tile for its number

#----------------------------------------------------------------------------
# The latents to show: the teacher's frontal renders, ranked by the brightness of the top centre of the image (the
# hair above the forehead: rows 1/16 to 7/32 of the height, the middle quarter of the width).

def hair_brightness(frontal):
    n, h, w, _ = frontal.shape
    top = frontal[:, h // 16:(7 * h) // 32, (3 * w) // 8:(5 * w) // 8].astype(np.float64)
    return top.reshape(n, -1).mean(axis=1)

def pick_seeds(teacher, seeds, select, count, pick_seed=7):
    if count > len(seeds):
        raise ValueError(f'--count {count} is more than the {len(seeds)} seeds given')
    if select == 'all':
        return seeds[:count]
    frontal = generate.to_uint8(generate.render_seed_views(teacher, seeds, [(0.0, 0.0)], batch=16)['image'][:, 0])
    order = np.argsort(-hair_brightness(frontal), kind='stable')
    if select == 'light':
        return [seeds[i] for i in order[:count]]
    rest = [seeds[i] for i in order[count:]]
    if len(rest) < count:
        raise ValueError(f'--select other needs at least 2 x --count seeds ({2 * count}), got {len(seeds)}')
    return sorted(int(s) for s in np.random.RandomState(pick_seed).choice(rest, count, replace=False))

# Shuffle the tiles [(image, (network, seed)), ...] into one numbered page; returns (page, key {number: [net, seed]}).
def blind_page(tiles, cols, shuffle_seed):
    order = np.random.RandomState(shuffle_seed).permutation(len(tiles))
    h, w = tiles[0][0].shape[:2]
    th, tw = h * TILE_SCALE, w * TILE_SCALE
    rows = (len(tiles) + cols - 1) // cols
    page = PIL.Image.new('RGB', (cols * tw, rows * (th + LABEL_ROWS)), 'white')
    draw = PIL.ImageDraw.Draw(page)
    key = {}
    for k, o in enumerate(order):
        r, c = divmod(k, cols)
        image, (name, seed) = tiles[o]
        page.paste(PIL.Image.fromarray(image).resize((tw, th), PIL.Image.LANCZOS), (c * tw, r * (th + LABEL_ROWS) + LABEL_ROWS))
        draw.text((c * tw + 4, r * (th + LABEL_ROWS) + 2), str(k), fill='black')
        key[str(k)] = [name, int(seed)]
    return page, key

# Contrast-stretch renders uint8 [N,H,W,3]: each from the 1st..99th percentile of its central half (where a face
# behind would be) to the full range. A face left at a few percent of the contrast on dark hair, invisible in the
# plain render, shows; so do strands and noise, so read stretched grids against stretched real backs.
def stretch(images, low=1.0, high=99.0):
    n, h, w, _ = images.shape
    centre = images[:, h // 4:h - h // 4, w // 4:w - w // 4].reshape(n, -1).astype(np.float64)
    lo, hi = np.percentile(centre, low, axis=1), np.percentile(centre, high, axis=1)
    scale = 255.0 / np.maximum(hi - lo, 1.0)
    out = (images.astype(np.float64) - lo[:, None, None, None]) * scale[:, None, None, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)

# The control tiles: `count` real back views (|yaw| >= REAL_BACK_DEG) of a dataset, one per identity folder where
# there are enough folders, at `size` px; returns (uint8 [count,size,size,3], dataset indices).
REAL_BACK_DEG = 165.0

def real_backs(path, count, size, pick_seed=7):
    from training.dataset import ImageLabelDataset
    ds = ImageLabelDataset(path)
    backs = np.flatnonzero(np.abs(ds.yaws_deg()) >= REAL_BACK_DEG)
    if backs.size < count:
        raise ValueError(f'{path}: {backs.size} views with |yaw| >= {REAL_BACK_DEG:g} degrees, --count needs {count}')
    rng = np.random.RandomState(pick_seed)
    folders = {}
    for i in rng.permutation(backs):
        folders.setdefault(os.path.dirname(ds.image_name(int(i))), []).append(int(i))
    firsts = [v[0] for v in folders.values()]
    rest = [i for v in folders.values() for i in v[1:]]
    picked = sorted((firsts + rest)[:count]) if len(firsts) < count else sorted(firsts[:count])
    images = []
    for i in picked:
        image = np.asarray(ds[i][0]).transpose(1, 2, 0)
        image = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
        if image.shape[0] != size:
            image = np.asarray(PIL.Image.fromarray(image).resize((size, size), PIL.Image.LANCZOS))
        images.append(image)
    return np.stack(images), picked

#----------------------------------------------------------------------------
# Unblind: counts of clear / faint / clean backs per network from the marked tile numbers.

def score(key, clear, faint):
    tiles = key['tiles']
    both = sorted(set(clear) & set(faint))
    if both:
        raise ValueError(f'tile {both[0]} is marked both clear and faint')
    unknown = sorted(t for t in set(clear) | set(faint) if str(t) not in tiles)
    if unknown:
        raise ValueError(f'tile {unknown[0]} is not in the grid (tiles 0-{len(tiles) - 1})')
    counts = {name: dict(clear=0, faint=0, clean=0) for name in key['networks']}
    for t, (name, _) in tiles.items():
        kind = 'clear' if int(t) in clear else 'faint' if int(t) in faint else 'clean'
        counts[name][kind] += 1
    return counts

def parse_tiles(text):
    return [] if not text.strip() else generate.parse_range(text)

#----------------------------------------------------------------------------

@click.group()
def main():
    """A blind eye check of the yaw-180 renders of several networks: grid, then score."""

@main.command('grid')
@click.option('--teacher', help='Face teacher snapshot: picks the latents from its frontal renders', metavar='PT', required=True)
@click.option('--networks', help='NAME=PATH pairs, comma-separated (snapshots or run dirs), at least two', required=True)
@click.option('--seeds', help='Latents to pick from', default='236-435', show_default=True)
@click.option('--select', help='Which latents', type=click.Choice(['light', 'other', 'all']), default='light', show_default=True)
@click.option('--count', help='Latents shown per network', type=click.IntRange(min=1), default=24, show_default=True)
@click.option('--shuffle-seed', help='Seed of the tile order', type=click.IntRange(min=0), default=321, show_default=True)
@click.option('--outdir', help='Where grid.png and key.json go', metavar='DIR', required=True)
@click.option('--real', help='Add --count real back views of this dataset as a control, named real', metavar='ZIP|DIR', default=None)
@click.option('--stretch', 'stretch_tiles', help='Contrast-stretch each tile (faint structure on dark hair shows)', is_flag=True)
@click.option('--threads', help='torch CPU threads (0 = all cores)', type=click.IntRange(min=0), default=1, show_default=True)
def grid_cmd(teacher, networks, seeds, select, count, shuffle_seed, outdir, real, stretch_tiles, threads):
    """Render, shuffle and number the backs; the key goes to a file, not to the screen."""
    if threads:
        torch.set_num_threads(threads)
    pairs = [p.strip() for p in networks.split(',') if p.strip()]
    if len(pairs) < 2 or any('=' not in p for p in pairs):
        raise click.BadParameter(f'{networks!r}: expected at least two NAME=PATH pairs', param_hint='--networks')
    named = [tuple(x.strip() for x in p.split('=', 1)) for p in pairs]
    names = [n for n, _ in named]
    if len(set(names)) != len(names) or not all(names):
        raise click.BadParameter(f'{networks!r}: network names must be non-empty and distinct', param_hint='--networks')
    if real is not None and 'real' in names:
        raise click.BadParameter(f'{networks!r}: the name real is taken by --real\'s control tiles', param_hint='--networks')
    try:
        seed_list = generate.parse_seeds(seeds)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint='--seeds')
    check_output_path(outdir, '--outdir')
    def load(what, path):
        try:
            return generate.load_generator(path)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
            raise click.ClickException(f'cannot load {what} {path!r}: {e}')
    teacher_G = load('--teacher', teacher)
    nets = {name: load(f'--networks {name}', path) for name, path in named}
    with torch.no_grad():
        try:
            picked = pick_seeds(teacher_G, seed_list, select, count)
        except ValueError as e:
            raise click.ClickException(str(e))
        tiles = []
        for name in names:
            backs = generate.to_uint8(generate.render_seed_views(nets[name], picked, [(180.0, 0.0)])['image'][:, 0])
            backs = stretch(backs) if stretch_tiles else backs
            tiles += [(backs[i], (name, seed)) for i, seed in enumerate(picked)]
        if real is not None:
            try:
                backs, index = real_backs(real, count, tiles[0][0].shape[0])
            except (OSError, ValueError) as e:
                raise click.ClickException(f'--real {real!r}: {e}')
            backs = stretch(backs) if stretch_tiles else backs
            tiles += [(backs[i], ('real', k)) for i, k in enumerate(index)]
            named.append(('real', real))
    page, key = blind_page(tiles, cols=8, shuffle_seed=shuffle_seed)
    os.makedirs(outdir, exist_ok=True)
    page.save(os.path.join(outdir, 'grid.png'))
    with open(os.path.join(outdir, 'key.json'), 'w') as f:
        json.dump(dict(networks=dict(named), teacher=teacher, select=select, seeds=seeds, picked=picked,
                       shuffle_seed=shuffle_seed, stretch=bool(stretch_tiles), tiles=key), f, indent=1)
    click.echo(f'wrote {os.path.join(outdir, "grid.png")} ({len(tiles)} tiles, {len(named)} sources x {count} backs) '
               f'and its key {os.path.join(outdir, "key.json")}; mark the tiles before opening the key')

@main.command('score')
@click.option('--key', 'key_path', help='key.json written by grid', metavar='JSON', required=True)
@click.option('--clear', help='Tiles with eyes or a face plainly visible behind, e.g. 1,2,6', default='', show_default=False)
@click.option('--faint', help='Tiles with faint eyes or spots where the eyes would be', default='', show_default=False)
def score_cmd(key_path, clear, faint):
    """Unblind the marked tiles: clear / faint / clean backs per network."""
    try:
        with open(key_path) as f:
            key = json.load(f)
        if not isinstance(key, dict) or not isinstance(key.get('tiles'), dict) or not isinstance(key.get('networks'), dict):
            raise ValueError('not a key.json written by `blind_backs.py grid` (no tiles / networks)')
    except (OSError, ValueError) as e:
        raise click.ClickException(f'--key {key_path!r}: {e}')
    try:
        marks = dict(clear=parse_tiles(clear), faint=parse_tiles(faint))
    except ValueError as e:
        raise click.ClickException(f'--clear / --faint: {e}')
    try:
        counts = score(key, marks['clear'], marks['faint'])
    except ValueError as e:
        raise click.ClickException(str(e))
    per = len(key['tiles']) // max(len(counts), 1)
    click.echo(f'{key.get("select", "?")} backs, {per} latents per network (seeds {key.get("seeds", "?")})')
    click.echo('| network | clear | faint | clean |')
    click.echo('|---|---|---|---|')
    for name, c in counts.items():
        click.echo(f'| {name} | {c["clear"]} | {c["faint"]} | {c["clean"]} |')

if __name__ == '__main__':
    main()
