"""Build an EG3D-format dataset (uncompressed zip or folder + dataset.json) from images and camera labels.

    # images + an EG3D dataset.json (normalised intrinsics), center crop, 512^2:
    python scripts/dataset_tool.py --source raw/ --labels raw/dataset.json --dest data/heads512.zip --resolution 512

    # images + per-image cameras {"a/b.jpg": {"cam2world": 4x4, "intrinsics": 3x3 in pixels}, ...}:
    python scripts/dataset_tool.py --source raw/ --labels cams.json --pixel-intrinsics --dest data/heads.zip --resolution 256

    # face crops + soft masks (same base names) composited onto white before the crop, 512^2:
    python scripts/dataset_tool.py --source crops/ --masks masks/ --dest data/faces512.zip --resolution 512

Every image needs a label and every label an image; otherwise the tool stops and lists them (--skip-unlabeled
drops them and reports the counts). Labels are checked (a rotation up to pose-estimator skew, plausible
intrinsics; --orthonormalize snaps skewed rotations), the intrinsics are adjusted for the crop, and the result
is loaded back with training.dataset.ImageLabelDataset. The output is written beside --dest under a temporary
name and renamed only when complete, so a failed or interrupted build leaves an existing --dest as it was.
"""

import io
import json
import os
import shutil
import signal
import sys
import tempfile
import warnings
import zipfile

import click
import numpy as np
import PIL.Image

from dnnlib.util import output_path_problem
from training.dataset import (IMAGE_EXTENSIONS, DatasetError, ImageLabelDataset, check_label, read_label_entries,
                              skew_note)

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
# Camera labels from a JSON file: ({relpath: (cam2world [4,4], intrinsics [3,3])}, notes). Accepts an EG3D
# dataset.json ({"labels": [[relpath, [25 values]], ...]}, values as numbers or numeric strings, extra top-level
# keys ignored) or {relpath: {"cam2world": 4x4, "intrinsics": 3x3}}.

def load_cameras(path):
    try:
        with open(path, 'rb') as f:
            text = f.read()
    except OSError as e:
        raise click.ClickException(f'--labels {path}: cannot read ({e})')
    def unique_keys(pairs):             # json keeps the last of two equal keys: never drop a camera silently
        obj = {}
        for key, value in pairs:
            if key in obj and obj[key] != value:
                raise click.ClickException(f'--labels {path}: key {key!r} appears twice with different values')
            obj[key] = value
        return obj
    try:
        data = json.loads(text, object_pairs_hook=unique_keys)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise click.ClickException(f'--labels {path}: malformed JSON ({e})')
    out = {}
    if isinstance(data, dict) and 'labels' in data:
        try:
            labels, notes = read_label_entries(text, f'--labels {path}')
        except DatasetError as e:
            raise click.ClickException(str(e))
        for name, c in labels.items():
            out[name] = (c[:16].reshape(4, 4), c[16:].reshape(3, 3))
        return out, notes
    if not isinstance(data, dict):
        raise click.ClickException(f'--labels {path}: expected an EG3D dataset.json or an object of per-image cameras')
    for name, cam in data.items():
        try:
            pose = np.asarray(cam['cam2world']).astype(np.float64)     # numeric strings parse as in EG3D
            k = np.asarray(cam['intrinsics']).astype(np.float64)
        except (TypeError, KeyError, ValueError) as e:
            raise click.ClickException(f'--labels {path}: entry {name!r} must be {{"cam2world": 4x4, "intrinsics": 3x3}} '
                                       f'of numbers ({e})')
        if pose.shape != (4, 4) or k.shape != (3, 3):
            raise click.ClickException(f'--labels {path}: entry {name!r}: cam2world must be 4x4 and intrinsics 3x3, '
                                       f'got {list(pose.shape)} and {list(k.shape)}')
        out[name.replace('\\', '/')] = (pose, k)
    return out, []

#----------------------------------------------------------------------------
# The nearest rotation to a cam2world's rotation block (SVD: U V^T, the polar factor), camera position kept.
# Returns (new pose [4,4], largest change of a matrix entry).

def orthonormalize_pose(pose):
    u, _s, vt = np.linalg.svd(pose[:3, :3])
    rot = u @ vt                                            # det > 0: check_label refused reflections before
    out = pose.copy()
    out[:3, :3] = rot
    return out, float(np.abs(rot - pose[:3, :3]).max())

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
# Open an image as RGB (RGBA composited on `background` with rgba='white'), naming the file on failure.

def open_rgb(path, name, rgba, background=(255, 255, 255)):
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
                back = PIL.Image.new('RGBA', img.size, tuple(background) + (255,))
                return PIL.Image.alpha_composite(back, img.convert('RGBA')).convert('RGB')
            return img.convert('RGB')
    except (OSError, SyntaxError, PIL.Image.DecompressionBombError) as e:
        raise click.ClickException(f'image {name!r} is unreadable or corrupt ({e})')

#----------------------------------------------------------------------------
# Masks under a folder: {relative path without extension: absolute path}; two masks for one base name is an error.

def list_masks(masks_dir):
    if not os.path.isdir(masks_dir):
        raise click.ClickException(f'--masks {masks_dir}: not a folder')
    found = {}
    for root, _dirs, files in os.walk(masks_dir):
        for f in sorted(files):
            if f.lower().endswith(IMAGE_EXTENSIONS):
                full = os.path.join(root, f)
                base = os.path.splitext(os.path.relpath(full, masks_dir))[0].replace(os.sep, '/')
                if base in found:
                    raise click.ClickException(f'--masks {masks_dir}: two masks for {base!r}: {found[base]} and {full}')
                found[base] = full
    return found

#----------------------------------------------------------------------------
# Alpha [H,W] float in [0,1] of a grayscale soft mask (255 = keep the pixel), checked against the image size.

def load_mask(mask_path, image_path, size):
    try:
        with PIL.Image.open(mask_path) as m:
            m.load()
            mode = m.mode
            if mode in ('L', '1', 'P'):
                alpha = np.asarray(m.convert('L'), dtype=np.float32)
            elif mode in ('LA', 'RGB', 'RGBA'):
                rgb = np.asarray(m.convert('RGB'), dtype=np.float32)
                if mode == 'LA' or np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
                    alpha = rgb[..., 0]
                else:
                    raise click.ClickException(f'mask {mask_path} (for {image_path}) is a colour image; masks must be grayscale')
            else:
                raise click.ClickException(f'mask {mask_path} (for {image_path}) has mode {mode}; masks must be 8-bit grayscale')
            if m.size != size:
                raise click.ClickException(f'mask {mask_path} is {m.size[0]}x{m.size[1]} but image {image_path} is '
                                           f'{size[0]}x{size[1]}; a mask must have the size of its image')
    except (OSError, SyntaxError, PIL.Image.DecompressionBombError) as e:
        raise click.ClickException(f'mask {mask_path} (for {image_path}) is unreadable or corrupt ({e})')
    return alpha / 255.0

#----------------------------------------------------------------------------
# Composite an RGB image onto `background` with a soft alpha [H,W]: out = alpha * image + (1 - alpha) * background.

def composite(img, alpha, background):
    pixels = np.asarray(img, dtype=np.float32)
    a = alpha[:, :, None]
    out = pixels * a + np.asarray(background, dtype=np.float32) * (1.0 - a)
    return PIL.Image.fromarray(np.rint(out).astype(np.uint8), 'RGB')

#----------------------------------------------------------------------------
# Output writer: an uncompressed zip with fixed timestamps (reproducible) or a folder. Everything goes to a
# temporary path beside `dest` (same filesystem); commit() renames it into place, discard() removes it, so that
# `dest` is either untouched or complete.

class _Writer:
    def __init__(self, dest):
        self.dest = os.path.abspath(dest)
        self.is_zip = dest.lower().endswith('.zip')
        parent, base = os.path.split(self.dest)
        self.made = []                                      # folders made for dest, removed again by discard()
        folder = parent
        while not os.path.isdir(folder):
            self.made.append(folder)
            folder = os.path.dirname(folder)
        os.makedirs(parent, exist_ok=True)
        self.zip = None
        if self.is_zip:
            fd, self.tmp = tempfile.mkstemp(prefix=f'.{base}.', suffix='.partial', dir=parent)
            os.close(fd)
            self.zip = zipfile.ZipFile(self.tmp, 'w', compression=zipfile.ZIP_STORED)
        else:
            self.tmp = tempfile.mkdtemp(prefix=f'.{base}.', suffix='.partial', dir=parent)

    def write(self, name, data):
        if self.zip is not None:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            self.zip.writestr(info, data, compress_type=zipfile.ZIP_STORED)
        else:
            path = os.path.join(self.tmp, *name.split('/'))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, 'wb') as f:
                f.write(data)

    # Finish writing; the temporary output can then be read back before commit().
    def close(self):
        if self.zip is not None:
            self.zip.close()
            self.zip = None

    # Move the finished output into place (a zip replaces an existing file; a folder takes an empty one's place).
    def commit(self):
        self.close()
        if self.is_zip:
            os.chmod(self.tmp, 0o644)
            os.replace(self.tmp, self.dest)
        else:
            if os.path.isdir(self.dest):
                os.rmdir(self.dest)                         # empty: checked before the build
            os.rename(self.tmp, self.dest)

    # Remove the temporary output (after a failure or an interruption).
    def discard(self):
        try:
            self.close()
        except Exception:
            pass
        if os.path.isdir(self.tmp):
            shutil.rmtree(self.tmp, ignore_errors=True)
        elif os.path.exists(self.tmp):
            os.remove(self.tmp)
        for folder in self.made:                            # innermost first
            try:
                os.rmdir(folder)
            except OSError:
                break

#----------------------------------------------------------------------------
# Why `dest` cannot receive a dataset (a message), or None: the path checks every CLI makes, plus a .zip that
# is a folder and a folder that is not empty.

def dest_problem(dest):
    is_zip = dest.lower().endswith('.zip')
    problem = output_path_problem(dest, '--dest', kind='file' if is_zip else 'dir')
    if problem is None and not is_zip and os.path.isdir(dest) and os.listdir(dest):
        problem = f'--dest {dest}: folder exists and is not empty'
    return problem

#----------------------------------------------------------------------------
# Width and height of an image from its header (no decoding), naming the file on failure.

def image_size(path, what):
    try:
        with PIL.Image.open(path) as img:
            return img.size
    except (OSError, SyntaxError, PIL.Image.DecompressionBombError) as e:
        raise click.ClickException(f'{what} is unreadable or corrupt ({e})')

#----------------------------------------------------------------------------
# The output label of one image (width x height): checked, the crop applied to the intrinsics and, with
# orthonormalize, the rotation snapped. Returns (25 floats, largest change of the rotation).

def make_label(name, cam, width, height, transform, pixel_intrinsics, orthonormalize):
    pose, k = cam
    k = crop_intrinsics(k, width, height, crop_box(width, height, transform), pixel=pixel_intrinsics)
    problem = check_label([float(v) for v in np.concatenate([pose.reshape(-1), k.reshape(-1)])])
    if problem is not None:
        hint = ' (if they are in pixels of the source image, pass --pixel-intrinsics)' \
            if 'look like pixels' in problem and not pixel_intrinsics else ''
        raise click.ClickException(f'label of {name!r}: {problem}{hint}')
    change = 0.0
    if orthonormalize:
        pose, change = orthonormalize_pose(pose)
    return [float(v) for v in np.concatenate([pose.reshape(-1), k.reshape(-1)])], change

#----------------------------------------------------------------------------
# One output image as PNG bytes: load (decoding it fully), composite (alpha or mask), crop, resize.

def convert_one(name, image_path, resolution, transform, rgba, background, mask_path):
    img = open_rgb(image_path, name, rgba, background)
    if mask_path is not None:
        img = composite(img, load_mask(mask_path, image_path, img.size), background)
    left, top, w, h = crop_box(img.size[0], img.size[1], transform)
    img = img.crop((left, top, left + w, top + h)).resize((resolution, resolution), PIL.Image.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format='PNG', compress_level=6)
    return buf.getvalue()

#----------------------------------------------------------------------------
# Build the dataset; returns dict(count, skipped_images, skipped_labels, yaw_bins, notes, max_change,
# max_change_name, replaced). Raises ClickException with the offending names on any problem, leaving `dest`
# as it was.

def build_dataset(source, labels_path, dest, resolution, transform='center-crop', pixel_intrinsics=False,
                  skip_unlabeled=False, rgba='error', masks=None, background=(255, 255, 255), orthonormalize=False):
    problem = dest_problem(dest)
    if problem is not None:
        raise click.ClickException(problem)
    images = list_images(source)
    cams, notes = load_cameras(labels_path)
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
    mask_paths = {}
    if masks is not None:
        found = list_masks(masks)
        for name in names:
            base = os.path.splitext(name)[0]
            if base not in found:
                raise click.ClickException(f'image {images[name]} has no mask: expected {os.path.join(masks, base)}.png '
                                           f'(any of {", ".join(IMAGE_EXTENSIONS)}) under --masks {masks}')
            mask_paths[name] = found[base]
    if not orthonormalize:
        note = skew_note({n: np.concatenate([cams[n][0].reshape(-1), cams[n][1].reshape(-1)]) for n in names},
                         f'--labels {labels_path}')
        notes = notes + ([note] if note is not None else [])

    # Every label (and mask size) first, from the image headers: a bad one stops the tool before any image work.
    labels, max_change, max_change_name = {}, 0.0, None
    for name in names:
        width, height = image_size(images[name], f'image {name!r}')
        if name in mask_paths and image_size(mask_paths[name], f'mask {mask_paths[name]}') != (width, height):
            load_mask(mask_paths[name], images[name], (width, height))      # raises, naming both files
        labels[name], change = make_label(name, cams[name], width, height, transform, pixel_intrinsics, orthonormalize)
        if change > max_change:
            max_change, max_change_name = change, name

    replaced = os.path.isfile(dest)
    writer = _Writer(dest)
    try:
        entries = []
        for out, name in sorted(out_names.items()):
            writer.write(out, convert_one(name, images[name], resolution, transform, rgba, background, mask_paths.get(name)))
            entries.append([out, labels[name]])
        writer.write('dataset.json', json.dumps({'labels': entries}).encode('utf-8'))
        writer.close()
        ds = read_back(writer.tmp, resolution, entries, dest)
        yaw = np.abs(ds.yaws_deg())
        ds.close()
        writer.commit()
    except BaseException:               # a failure or Ctrl-C: no partial output, `dest` untouched
        writer.discard()
        raise
    bins = {label: int(np.sum((yaw >= lo) & (yaw < hi))) for label, lo, hi in YAW_BINS}
    return dict(count=len(entries), skipped_images=len(unlabeled), skipped_labels=len(orphans), yaw_bins=bins,
                notes=notes, max_change=max_change, max_change_name=max_change_name, replaced=replaced)

#----------------------------------------------------------------------------
# Load the written (temporary) output with the training dataset class: same count, same float32 labels.

def read_back(path, resolution, entries, dest):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')             # its notes were reported from the source labels
            ds = ImageLabelDataset(path, resolution=resolution)
    except DatasetError as e:
        raise click.ClickException(f'the written dataset does not load: {e}')
    expected = np.asarray([e[1] for e in entries], dtype=np.float64).astype(np.float32)
    if len(ds) != len(entries) or not np.array_equal(ds.labels, expected):
        raise click.ClickException(f'the dataset written for {dest} does not read back with the same labels')
    return ds

#----------------------------------------------------------------------------
# '255,255,255' -> (255, 255, 255).

def parse_background(ctx, param, value):
    try:
        rgb = tuple(int(v) for v in value.split(','))
    except ValueError:
        rgb = ()
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise click.BadParameter(f'{value!r}: expected R,G,B with each in 0..255, e.g. 255,255,255')
    return rgb

#----------------------------------------------------------------------------
# A termination signal (kill, a job scheduler) raises SystemExit, so the build cleans up as after Ctrl-C.

def _exit_on_signal(signum, _frame):
    raise SystemExit(128 + signum)

#----------------------------------------------------------------------------

@click.command()
@click.option('--source',           help='Folder of images (png/jpg, searched recursively)', metavar='DIR', required=True)
@click.option('--labels',           help='Camera labels: EG3D dataset.json or {relpath: {cam2world, intrinsics}}; default SOURCE/dataset.json', metavar='JSON')
@click.option('--dest',             help='Output: a .zip (uncompressed) or a new folder', metavar='PATH', required=True)
@click.option('--resolution',       help='Output resolution (square)', type=click.IntRange(min=4), required=True)
@click.option('--transform',        help='How to make images square', type=click.Choice(['center-crop', 'resize']), default='center-crop', show_default=True)
@click.option('--pixel-intrinsics', help='Intrinsics are in pixels of each source image (else normalised by its size)', is_flag=True)
@click.option('--skip-unlabeled',   help='Drop images without a label and labels without an image (counts reported)', is_flag=True)
@click.option('--rgba',             help='RGBA images: error, or composite on the background', type=click.Choice(['error', 'white']), default='error', show_default=True)
@click.option('--masks',            help='Folder of grayscale soft masks (same relative names, any image extension): composite onto the background', metavar='DIR')
@click.option('--background',       help='Background colour for --masks and --rgba white', metavar='R,G,B', default='255,255,255', show_default=True, callback=parse_background)
@click.option('--orthonormalize',   help='Snap each cam2world rotation to the nearest rotation (SVD), camera position kept', is_flag=True)
def main(source, labels, dest, resolution, transform, pixel_intrinsics, skip_unlabeled, rgba, masks, background, orthonormalize):
    """Build an EG3D-format dataset from images and camera labels."""
    signal.signal(signal.SIGTERM, _exit_on_signal)
    if labels is None:
        labels = os.path.join(source, 'dataset.json')
    if os.path.abspath(dest) == os.path.abspath(source):
        raise click.ClickException('--dest must differ from --source')
    info = build_dataset(source, labels, dest, resolution, transform=transform, pixel_intrinsics=pixel_intrinsics,
                         skip_unlabeled=skip_unlabeled, rgba=rgba, masks=masks, background=background,
                         orthonormalize=orthonormalize)
    for note in info['notes']:
        print(f'warning: {note}')
    if orthonormalize:
        where = f' ({info["max_change_name"]!r})' if info['max_change_name'] is not None else ''
        print(f'orthonormalized {info["count"]} rotation(s): largest change of an entry {info["max_change"]:.3g}{where}')
    if skip_unlabeled:
        print(f'skipped {info["skipped_images"]} image(s) without a label and {info["skipped_labels"]} label(s) without an image')
    print(f'wrote {info["count"]} images at {resolution}x{resolution} to {dest}' + (' (replaced the old file)' if info['replaced'] else ''))
    for name, count in info['yaw_bins'].items():
        print(f'  {name:20s} {count}')

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()
