"""Build an EG3D-format dataset (uncompressed zip or folder + dataset.json) from images and camera labels.

    # images + an EG3D dataset.json (normalised intrinsics), center crop, 512^2:
    python scripts/dataset_tool.py --source raw/ --labels raw/dataset.json --dest data/heads512.zip --resolution 512

    # images + per-image cameras {"a/b.jpg": {"cam2world": 4x4, "intrinsics": 3x3 in pixels}, ...}:
    python scripts/dataset_tool.py --source raw/ --labels cams.json --pixel-intrinsics --dest data/heads.zip --resolution 256

Every image needs a label and every label an image; otherwise the tool stops and lists them (--skip-unlabeled
drops them and reports the counts). Labels are checked (orthonormal rotation, plausible intrinsics), the
intrinsics are adjusted for the crop, and the result is loaded back with training.dataset.ImageLabelDataset.
"""

import io
import json
import os
import zipfile

import click
import numpy as np
import PIL.Image

from training import cameras
from training.dataset import IMAGE_EXTENSIONS, DatasetError, ImageLabelDataset, check_label

# Yaw bins reported after a build (degrees of |yaw|).
YAW_BINS = [('front (|yaw| < 45)', 0.0, 45.0), ('side (45-135)', 45.0, 135.0), ('back (> 135)', 135.0, 180.01)]

#----------------------------------------------------------------------------
# Images under a source folder: {relative path with '/': absolute path}.

def list_images(source):
    if not os.path.isdir(source):
        raise click.ClickException(f'--source {source}: not a folder')
    found = {}
    for root, _dirs, files in os.walk(source):
        for f in files:
            if f.lower().endswith(IMAGE_EXTENSIONS):
                full = os.path.join(root, f)
                found[os.path.relpath(full, source).replace(os.sep, '/')] = full
    return found

#----------------------------------------------------------------------------
# Camera labels from a JSON file: {relpath: (cam2world [4,4], intrinsics [3,3])}. Accepts an EG3D
# dataset.json ({"labels": [[relpath, [25 floats]], ...]}) or {relpath: {"cam2world": 4x4, "intrinsics": 3x3}}.

def load_cameras(path):
    try:
        with open(path, 'r', encoding='utf-8') as f:
            data = json.load(f)
    except OSError as e:
        raise click.ClickException(f'--labels {path}: cannot read ({e})')
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise click.ClickException(f'--labels {path}: malformed JSON ({e})')
    out = {}
    if isinstance(data, dict) and 'labels' in data:
        entries = data['labels']
        if not isinstance(entries, list):
            raise click.ClickException(f'--labels {path}: "labels" must be a list of [relpath, [25 floats]] pairs')
        for i, entry in enumerate(entries):
            ok = isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], str) \
                and isinstance(entry[1], list) and len(entry[1]) == cameras.LABEL_DIM
            if not ok:
                raise click.ClickException(f'--labels {path}: labels[{i}] must be [relpath, [{cameras.LABEL_DIM} floats]]')
            c = np.asarray(entry[1], dtype=np.float64)
            out[entry[0].replace('\\', '/')] = (c[:16].reshape(4, 4), c[16:].reshape(3, 3))
    elif isinstance(data, dict):
        for name, cam in data.items():
            try:
                pose = np.asarray(cam['cam2world'], dtype=np.float64)
                k = np.asarray(cam['intrinsics'], dtype=np.float64)
            except (TypeError, KeyError, ValueError):
                raise click.ClickException(f'--labels {path}: entry {name!r} must be {{"cam2world": 4x4, "intrinsics": 3x3}}')
            if pose.shape != (4, 4) or k.shape != (3, 3):
                raise click.ClickException(f'--labels {path}: entry {name!r}: cam2world must be 4x4 and intrinsics 3x3, '
                                           f'got {list(pose.shape)} and {list(k.shape)}')
            out[name.replace('\\', '/')] = (pose, k)
    else:
        raise click.ClickException(f'--labels {path}: expected an EG3D dataset.json or an object of per-image cameras')
    return out

#----------------------------------------------------------------------------
# Normalised intrinsics [3,3] of a width x height image after cropping the box (left, top, side, side) and
# resizing it to a square: pixel intrinsics shift by the crop offset and are divided by the crop side.
# Input intrinsics are normalised by (width, height) unless pixel=True.

def crop_intrinsics(k, width, height, box, pixel=False):
    k = np.array(k, dtype=np.float64)
    if not pixel:
        k[0] *= width
        k[1] *= height
    left, top, crop_w, crop_h = box
    k[0, 2] -= left * k[2, 2]
    k[1, 2] -= top * k[2, 2]
    k[0] /= crop_w
    k[1] /= crop_h
    return k

#----------------------------------------------------------------------------
# Crop box (left, top, w, h) for a width x height image: 'center-crop' takes the centred square, 'resize' the
# whole image (squashed to a square when it is not one).

def crop_box(width, height, transform):
    if transform == 'center-crop':
        side = min(width, height)
        return ((width - side) // 2, (height - side) // 2, side, side)
    return (0, 0, width, height)

#----------------------------------------------------------------------------
# Open an image as RGB uint8 (RGBA composited on white with rgba='white'), naming the file on failure.

def open_rgb(path, name, rgba):
    try:
        with PIL.Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode == 'P':
                img = img.convert('RGBA' if 'transparency' in img.info else 'RGB')
                mode = img.mode
            if mode in ('RGBA', 'LA') and rgba != 'white':
                raise click.ClickException(f'image {name!r} has an alpha channel; pass --rgba white to composite it on white')
            if mode in ('L', 'LA', '1', 'I', 'I;16', 'F'):
                raise click.ClickException(f'image {name!r} is grayscale (mode {mode}); images must be RGB')
            if mode in ('RGBA', 'LA'):
                white = PIL.Image.new('RGBA', img.size, (255, 255, 255, 255))
                return PIL.Image.alpha_composite(white, img.convert('RGBA')).convert('RGB')
            return img.convert('RGB')
    except (OSError, SyntaxError, PIL.Image.DecompressionBombError) as e:
        raise click.ClickException(f'image {name!r} is unreadable or corrupt ({e})')

#----------------------------------------------------------------------------
# Output writer: an uncompressed zip with fixed timestamps (reproducible) or a new folder.

class _Writer:
    def __init__(self, dest):
        self.dest = dest
        self.zip = None
        if dest.lower().endswith('.zip'):
            parent = os.path.dirname(os.path.abspath(dest))
            os.makedirs(parent, exist_ok=True)
            self.zip = zipfile.ZipFile(dest, 'w', compression=zipfile.ZIP_STORED)
        else:
            if os.path.isdir(dest) and os.listdir(dest):
                raise click.ClickException(f'--dest {dest}: folder exists and is not empty')
            os.makedirs(dest, exist_ok=True)

    def write(self, name, data):
        if self.zip is not None:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            self.zip.writestr(info, data, compress_type=zipfile.ZIP_STORED)
        else:
            path = os.path.join(self.dest, *name.split('/'))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, 'wb') as f:
                f.write(data)

    def close(self):
        if self.zip is not None:
            self.zip.close()

#----------------------------------------------------------------------------
# Build the dataset; returns dict(count, skipped_images, skipped_labels, yaw_bins). Raises ClickException with
# the offending names on any problem.

def build_dataset(source, labels_path, dest, resolution, transform='center-crop', pixel_intrinsics=False,
                  skip_unlabeled=False, rgba='error', log=print):
    images = list_images(source)
    cams = load_cameras(labels_path)
    if not images:
        raise click.ClickException(f'--source {source}: contains no images ({", ".join(IMAGE_EXTENSIONS)})')
    unlabeled = sorted(set(images) - set(cams))
    orphans = sorted(set(cams) - set(images))
    if (unlabeled or orphans) and not skip_unlabeled:
        problems = []
        if unlabeled:
            problems.append(f'{len(unlabeled)} image(s) have no label in {labels_path}: {", ".join(unlabeled[:10])}'
                            + (' ...' if len(unlabeled) > 10 else ''))
        if orphans:
            problems.append(f'{len(orphans)} label(s) have no image under {source}: {", ".join(orphans[:10])}'
                            + (' ...' if len(orphans) > 10 else ''))
        raise click.ClickException('; '.join(problems) + ' (pass --skip-unlabeled to drop them)')
    names = sorted(set(images) & set(cams))
    if not names:
        raise click.ClickException(f'no image under {source} has a label in {labels_path}')
    out_names = {}
    for name in names:
        out = os.path.splitext(name)[0] + '.png'
        if out in out_names:
            raise click.ClickException(f'images {out_names[out]!r} and {name!r} would both be written as {out!r}')
        out_names[out] = name

    writer = _Writer(dest)
    entries = []
    try:
        for out, name in sorted(out_names.items()):
            img = open_rgb(images[name], name, rgba)
            width, height = img.size
            box = crop_box(width, height, transform)
            pose, k = cams[name]
            k = crop_intrinsics(k, width, height, box, pixel=pixel_intrinsics)
            label = [float(v) for v in np.concatenate([pose.reshape(-1), k.reshape(-1)])]
            problem = check_label(label)
            if problem is not None:
                hint = '' if pixel_intrinsics else ' (if the intrinsics are in pixels, pass --pixel-intrinsics)'
                raise click.ClickException(f'label of {name!r}: {problem}{hint}')
            left, top, w, h = box
            img = img.crop((left, top, left + w, top + h)).resize((resolution, resolution), PIL.Image.LANCZOS)
            buf = io.BytesIO()
            img.save(buf, format='PNG', compress_level=6)
            writer.write(out, buf.getvalue())
            entries.append([out, label])
        writer.write('dataset.json', json.dumps({'labels': entries}).encode('utf-8'))
    finally:
        writer.close()

    # Load the result back with the training dataset class: same count, same labels.
    try:
        ds = ImageLabelDataset(dest, resolution=resolution)
    except DatasetError as e:
        raise click.ClickException(f'the written dataset does not load: {e}')
    if len(ds) != len(entries) or not np.allclose(ds.labels, np.asarray([e[1] for e in entries], dtype=np.float32)):
        raise click.ClickException(f'the written dataset {dest} does not read back with the same labels')
    yaw = np.abs(ds.yaws_deg())
    bins = {label: int(np.sum((yaw >= lo) & (yaw < hi))) for label, lo, hi in YAW_BINS}
    return dict(count=len(entries), skipped_images=len(unlabeled), skipped_labels=len(orphans), yaw_bins=bins)

#----------------------------------------------------------------------------

@click.command()
@click.option('--source',           help='Folder of images (png/jpg, searched recursively)', metavar='DIR', required=True)
@click.option('--labels',           help='Camera labels: EG3D dataset.json or {relpath: {cam2world, intrinsics}}; default SOURCE/dataset.json', metavar='JSON')
@click.option('--dest',             help='Output: a .zip (uncompressed) or a new folder', metavar='PATH', required=True)
@click.option('--resolution',       help='Output resolution (square)', type=click.IntRange(min=4), required=True)
@click.option('--transform',        help='How to make images square', type=click.Choice(['center-crop', 'resize']), default='center-crop', show_default=True)
@click.option('--pixel-intrinsics', help='Intrinsics are in pixels of each source image (else normalised by its size)', is_flag=True)
@click.option('--skip-unlabeled',   help='Drop images without a label and labels without an image (counts reported)', is_flag=True)
@click.option('--rgba',             help='RGBA images: error, or composite on white', type=click.Choice(['error', 'white']), default='error', show_default=True)
def main(source, labels, dest, resolution, transform, pixel_intrinsics, skip_unlabeled, rgba):
    """Build an EG3D-format dataset from images and camera labels."""
    if labels is None:
        labels = os.path.join(source, 'dataset.json')
    if os.path.abspath(dest) == os.path.abspath(source):
        raise click.ClickException('--dest must differ from --source')
    info = build_dataset(source, labels, dest, resolution, transform=transform, pixel_intrinsics=pixel_intrinsics,
                         skip_unlabeled=skip_unlabeled, rgba=rgba)
    if skip_unlabeled:
        print(f'skipped {info["skipped_images"]} image(s) without a label and {info["skipped_labels"]} label(s) without an image')
    print(f'wrote {info["count"]} images at {resolution}x{resolution} to {dest}')
    for name, count in info['yaw_bins'].items():
        print(f'  {name:20s} {count}')

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()
