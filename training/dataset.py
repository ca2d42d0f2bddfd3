"""EG3D-format datasets: a folder or zip of images plus a root `dataset.json` of camera labels.

`dataset.json` is `{"labels": [[relpath, [25 floats]], ...]}`: 16 floats for the OpenCV cam2world 4x4
(row-major) and 9 for the intrinsics normalised by image size (training/cameras.py). Every problem with the
input (a missing or extra label, a label that is not a camera, an odd image) is found when the dataset is
opened and raised as a DatasetError that names the file and the entry; every image is decoded once then, so
that a corrupt file never surfaces as a DataLoader traceback mid-run. Input that is used but deserves a look
(slightly skewed rotations, duplicate entries, extra keys) gives one DatasetWarning.
"""

import io
import json
import math
import os
import threading
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import PIL.Image
import torch

from training import cameras

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg')
LABEL_FILE = 'dataset.json'

# Tolerances of the label checks. Pose estimators write slightly skewed rotations (max |R^T R - I| of 2e-4 to
# 1.5e-2 measured on public EG3D-style labels, column norms about 1): those are used as they are, with one warning
# above ROTATION_WARN_TOL. Above ROTATION_MAX_ERR the block is no rotation (a scaled, sheared or garbled matrix).
ROTATION_WARN_TOL = 1e-3
ROTATION_MAX_ERR = 0.1
ROW_TOL = 1e-3              # bottom rows must be [0, 0, 0, 1] and [0, 0, 1]
PRINCIPAL_POINT_TOL = 0.25  # normalised principal point within this of the centre

# How many offending names an error message lists before it says "and N more".
_MAX_LISTED = 8

#----------------------------------------------------------------------------

class DatasetError(ValueError):
    """Bad dataset input; the message names the file and the problem."""

class DatasetWarning(UserWarning):
    """Input that is used but deserves a look (skewed rotations, duplicate entries, ignored keys)."""

#----------------------------------------------------------------------------
# A short list of names for an error message.

def _list_names(names):
    names = sorted(names)
    shown = ', '.join(repr(n) for n in names[:_MAX_LISTED])
    more = len(names) - _MAX_LISTED
    return shown + (f' and {more} more' if more > 0 else '')

#----------------------------------------------------------------------------
# True when a relative path would leave the dataset root (absolute, drive letter or a '..' component).

def _escapes_root(name):
    name = name.replace('\\', '/')
    if name.startswith('/') or (len(name) > 1 and name[1] == ':'):
        return True
    return '..' in name.split('/')

#----------------------------------------------------------------------------
# One label as float64 [25], or (None, problem). Numbers are taken as they are and numeric strings ("0.994012",
# as some public preprocessing pipelines write them) are parsed by numpy, so that the float32 label is exactly
# the one EG3D's loader (np.array(labels).astype(np.float32)) gets.

def label_values(values):
    if not isinstance(values, (list, tuple)):
        return None, f'label must be a list of {cameras.LABEL_DIM} numbers, got {type(values).__name__}'
    if len(values) == cameras.LABEL_DIM:                    # fast path (70k labels): numbers, or numeric strings
        try:
            arr = np.asarray(values)
            if arr.dtype.kind in 'fiuU' and arr.shape == (cameras.LABEL_DIM,):
                return arr.astype(np.float64), None
        except ValueError:
            pass                                            # the loop below names the bad value
    out = []
    for j, v in enumerate(values):
        if isinstance(v, str):
            try:
                v = np.asarray([v]).astype(np.float64)[0]
            except ValueError:
                return None, f'value {j} of the label is {v!r}, not a number'
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            return None, f'value {j} of the label is {v!r}, not a number'
        out.append(float(v))
    if len(out) != cameras.LABEL_DIM:
        return None, f'label has {len(out)} values, expected {cameras.LABEL_DIM} (16 cam2world + 9 intrinsics)'
    return np.asarray(out, dtype=np.float64), None

#----------------------------------------------------------------------------
# Max |R^T R - I| of the rotation block of a label (0 for an exact rotation).

def rotation_error(c):
    return float(rotation_errors(np.asarray(c, dtype=np.float64)[None])[0])

# The same for labels [N,25] -> [N].
def rotation_errors(c):
    rot = c[:, :16].reshape(-1, 4, 4)[:, :3, :3]
    return np.abs(np.swapaxes(rot, 1, 2) @ rot - np.eye(3)).max(axis=(1, 2))

#----------------------------------------------------------------------------
# Labels [N,25] that may fail check_label (a cheap vectorised pre-check, so that 70k labels check in well under a
# second; check_label makes the final call and the message).

def maybe_bad_labels(c):
    pose = c[:, :16].reshape(-1, 4, 4)
    k = c[:, 16:].reshape(-1, 3, 3)
    with np.errstate(invalid='ignore'):
        bad = ~np.all(np.isfinite(c), axis=1)
        bad |= np.abs(pose[:, 3] - [0, 0, 0, 1]).max(axis=1) > ROW_TOL * 0.5
        bad |= np.linalg.det(pose[:, :3, :3]) <= 1e-6
        bad |= rotation_errors(c) > ROTATION_MAX_ERR * 0.5
        bad |= (k[:, 0, 0] <= 1e-6) | (k[:, 1, 1] <= 1e-6) | (np.abs(k[:, 2] - [0, 0, 1]).max(axis=1) > ROW_TOL * 0.5)
        bad |= np.maximum(np.abs(k[:, 0, 2] - 0.5), np.abs(k[:, 1, 2] - 0.5)) > PRINCIPAL_POINT_TOL * 0.5
    return bad

#----------------------------------------------------------------------------
# The problem with one label (a message that names the likely cause), or None when it is a plausible EG3D
# camera. Rotations with a small skew pass (see ROTATION_WARN_TOL); the caller reports them.

def check_label(values):
    c, problem = label_values(values)
    if problem is not None:
        return problem
    if not np.all(np.isfinite(c)):
        return 'label contains NaN or inf'
    pose = c[:16].reshape(4, 4)
    if np.abs(pose[3] - [0, 0, 0, 1]).max() > ROW_TOL:
        hint = ''
        if np.abs(pose[:3, 3]).max() < ROW_TOL and np.abs(pose[3, :3]).max() > ROW_TOL:
            hint = ': the translation is in the bottom row, so the matrix looks transposed (column-major); write it row-major'
        return f'bottom row of cam2world is {pose[3].tolist()}, expected [0, 0, 0, 1]{hint}'
    rot = pose[:3, :3]
    det = np.linalg.det(rot)
    if det <= 0:
        return (f'rotation block of cam2world has determinant {det:.3g} <= 0: one axis is mirrored or the block is '
                'degenerate; expected a rotation (OpenCV camera axes: x right, y down, z forward)')
    err = rotation_error(c)
    if err > ROTATION_MAX_ERR:
        norms = np.linalg.norm(rot, axis=0)
        cause = (f'the matrix is scaled by about {norms.mean():.3g} (a scale folded into the pose?)'
                 if np.ptp(norms) < 0.05 and abs(norms.mean() - 1) > 0.05 else
                 'its axes are not perpendicular: a sheared matrix, or values in the wrong order')
        return (f'rotation block of cam2world is not orthonormal (max |R^T R - I| = {err:.3g}, above {ROTATION_MAX_ERR}, '
                f'the bound for pose-estimator skew; column norms {", ".join(f"{n:.3g}" for n in norms)}): {cause}')
    k = c[16:].reshape(3, 3)
    if k[0, 0] <= 0 or k[1, 1] <= 0:
        return f'intrinsics have a non-positive focal length (fx={k[0, 0]:.4g}, fy={k[1, 1]:.4g})'
    if np.abs(k[2] - [0, 0, 1]).max() > ROW_TOL:
        return f'bottom row of the intrinsics is {k[2].tolist()}, expected [0, 0, 1]'
    if abs(k[0, 2] - 0.5) > PRINCIPAL_POINT_TOL or abs(k[1, 2] - 0.5) > PRINCIPAL_POINT_TOL:
        cause = ('they look like pixels: intrinsics must be normalised by the image size (fx/W, cx/W, fy/H, cy/H)'
                 if max(k[0, 2], k[1, 2]) > 2 else 'the camera must be centred on the image (cx, cy near 0.5)')
        return f'principal point ({k[0, 2]:.4g}, {k[1, 2]:.4g}) is far from the image centre (0.5, 0.5); {cause}'
    return None

#----------------------------------------------------------------------------
# Parse dataset.json text into ({relpath: float64 [25]}, notes) without checking the cameras. Extra top-level
# keys are ignored and identical duplicate entries merged (each said once in `notes`); two different labels
# for one image, or a malformed entry, raise DatasetError naming the entries.

def read_label_entries(text, where):
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f'{where}: malformed JSON ({e})') from None
    if not isinstance(data, dict) or 'labels' not in data:
        raise DatasetError(f'{where}: expected an object with a "labels" key')
    if data['labels'] is None:
        raise DatasetError(f'{where}: "labels" is null; every image needs a camera label')
    if not isinstance(data['labels'], list):
        raise DatasetError(f'{where}: "labels" must be a list of [relpath, [25 floats]] pairs')
    notes = []
    extra = sorted(k for k in data if k != 'labels')
    if extra:
        notes.append(f'{where}: ignoring top-level key(s) {_list_names(extra)} (only "labels" is read)')
    labels, first_index, duplicates = {}, {}, []
    for i, entry in enumerate(data['labels']):
        if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], str)):
            raise DatasetError(f'{where}: labels[{i}] must be a [relpath, [25 floats]] pair, got {str(entry)[:80]}')
        name = entry[0].replace('\\', '/')
        c, problem = label_values(entry[1])
        if problem is not None:
            raise DatasetError(f'{where}: labels[{i}] ({name!r}): {problem}')
        if name in labels:
            j = first_index[name]
            if not np.array_equal(labels[name], c):
                raise DatasetError(f'{where}: labels[{j}] and labels[{i}] both label {name!r}, with different cameras; '
                                   'keep one of them')
            duplicates.append(name)
            continue
        labels[name] = c
        first_index[name] = i
    if duplicates:
        notes.append(f'{where}: {len(duplicates)} entry(ies) listed twice with the same label, used once: '
                     f'{_list_names(set(duplicates))}')
    return labels, notes

#----------------------------------------------------------------------------
# The note for labels whose rotations are slightly skewed (max |R^T R - I| above ROTATION_WARN_TOL), naming the
# worst one, or None. {name: float64 [25]} in; such labels are used as they are, as EG3D does.

def skew_note(labels, where):
    if not labels:
        return None
    errors = dict(zip(labels, rotation_errors(np.stack(list(labels.values()))).tolist()))
    skewed = [name for name, err in errors.items() if err > ROTATION_WARN_TOL]
    if not skewed:
        return None
    worst = max(skewed, key=lambda n: (errors[n], n))
    return (f'{where}: {len(skewed)} of {len(labels)} rotation(s) are not exactly orthonormal (worst {worst!r}: '
            f'max |R^T R - I| = {errors[worst]:.3g} > {ROTATION_WARN_TOL}); used as they are, as EG3D does; '
            'scripts/dataset_tool.py --orthonormalize snaps them to rotations')

#----------------------------------------------------------------------------
# Parse and check dataset.json text: ({relpath: float64 [25]}, notes); a bad camera raises DatasetError.

def parse_labels(text, where):
    labels, notes = read_label_entries(text, where)
    names = list(labels)
    suspects = np.flatnonzero(maybe_bad_labels(np.stack(list(labels.values())))) if labels else []
    for i in suspects:
        problem = check_label(labels[names[i]].tolist())
        if problem is not None:
            raise DatasetError(f'{where}: entry {names[i]!r}: {problem}')
    note = skew_note(labels, where)
    return labels, notes + ([note] if note is not None else [])

#----------------------------------------------------------------------------
# Resolve a yaw_range_deg option ('front', 'back', (lo, hi) or None) into (lo, hi) degrees on |yaw|.
# The range is lo <= |yaw| < hi, with hi = 180 inclusive, so 'front' and 'back' split the views at 90 degrees.

def resolve_yaw_range(yaw_range_deg):
    if yaw_range_deg is None:
        return None
    if isinstance(yaw_range_deg, str):
        shorthands = {'front': (0.0, 90.0), 'back': (90.0, 180.0), 'all': (0.0, 180.0)}
        if yaw_range_deg not in shorthands:
            raise DatasetError(f'yaw_range_deg must be "front", "back", "all" or (lo, hi) degrees, got {yaw_range_deg!r}')
        return shorthands[yaw_range_deg]
    try:
        lo, hi = (float(v) for v in yaw_range_deg)
    except (TypeError, ValueError):
        raise DatasetError(f'yaw_range_deg must be (lo, hi) in degrees, got {yaw_range_deg!r}') from None
    if not 0 <= lo < hi <= 180:
        raise DatasetError(f'yaw_range_deg must satisfy 0 <= lo < hi <= 180 (degrees of |yaw|), got ({lo}, {hi})')
    return lo, hi

#----------------------------------------------------------------------------
# Boolean mask of |yaw| (degrees) inside the resolved range.

def yaw_mask(abs_yaw_deg, lo, hi):
    eps = 1e-4  # labels are float32: a view at exactly 180 degrees can read 179.99999
    upper = abs_yaw_deg <= hi + eps if hi >= 180 else abs_yaw_deg < hi
    return (abs_yaw_deg >= lo) & upper

#----------------------------------------------------------------------------
# Resolution of a dataset from the header of its first image (in name order), without opening the whole set:
# (resolution, image name). For checks that must run before anything is built; the dataset class checks all.

def peek_resolution(path):
    path = str(path)
    try:
        if os.path.isdir(path):
            names = sorted(os.path.relpath(os.path.join(root, f), path).replace(os.sep, '/')
                           for root, _dirs, files in os.walk(path) for f in files if f.lower().endswith(IMAGE_EXTENSIONS))
            data = open(os.path.join(path, names[0]), 'rb').read() if names else None
        elif os.path.isfile(path) and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = sorted(n for n in z.namelist() if n.lower().endswith(IMAGE_EXTENSIONS))
                data = z.read(names[0]) if names else None
        else:
            raise DatasetError(f'{path}: not a folder or a zip file' if os.path.exists(path) else f'{path}: no such folder or zip file')
        if not names:
            raise DatasetError(f'{path}: contains no images ({", ".join(IMAGE_EXTENSIONS)})')
        with PIL.Image.open(io.BytesIO(data)) as img:
            w, h = img.size
    except (OSError, SyntaxError, zipfile.BadZipFile) as e:
        raise DatasetError(f'{path}: unreadable dataset or image ({e})') from None
    if w != h:
        raise DatasetError(f'{path}: image {names[0]!r} is not square ({w}x{h})')
    return w, names[0]

#----------------------------------------------------------------------------
# EG3D-compatible image + camera label dataset.
# Items are (image uint8 [C,H,W], label float32 [25]). Options, applied in this order: yaw range selection,
# max_size (a seeded subset of the selected images, kept in name order, as EG3D does), back_repeat (views with
# |yaw| >= 90 degrees appear back_repeat times, PanoHead style) and mirror (an x-flipped copy of every item
# with the pose-aware mirrored label).

class ImageLabelDataset(torch.utils.data.Dataset):
    def __init__(self,
        path,                   # Folder or zip holding the images and dataset.json.
        resolution      = None, # Expected image resolution; None = take it from the data.
        yaw_range_deg   = None, # Keep lo <= |yaw| < hi degrees ('front' = (0, 90), 'back' = (90, 180]); None = all.
        back_repeat     = 1,    # Repeat views with |yaw| >= 90 degrees this many times (integer >= 1).
        mirror          = False,# Add a pose-aware x-flipped copy of every item.
        max_size        = None, # Keep at most this many images (a subset chosen by seed); None = all.
        seed            = 0,    # Seed of the max_size subset.
        rgba            = 'error', # 'white' composites RGBA images on white; 'error' rejects them.
    ):
        self.path = str(path)
        self.name = os.path.splitext(os.path.basename(os.path.normpath(self.path)))[0]
        if rgba not in ('error', 'white'):
            raise DatasetError(f'rgba must be "error" or "white", got {rgba!r}')
        if isinstance(back_repeat, bool) or not isinstance(back_repeat, (int, np.integer)) or back_repeat < 1:
            raise DatasetError(f'back_repeat must be an integer >= 1, got {back_repeat!r}')
        if max_size is not None and (not isinstance(max_size, (int, np.integer)) or max_size < 1):
            raise DatasetError(f'max_size must be a positive integer or None, got {max_size!r}')
        self._rgba = rgba
        self._zip = None
        self._zip_pid = None

        # Index the source and pair every image with its label.
        if os.path.isdir(self.path):
            self._type = 'dir'
            names = self._list_folder()
        elif os.path.isfile(self.path):
            if not zipfile.is_zipfile(self.path):
                raise DatasetError(f'{self.path}: not a folder or a zip file')
            self._type = 'zip'
            names = self._list_zip()
        else:
            raise DatasetError(f'{self.path}: no such folder or zip file')
        if LABEL_FILE not in names:
            raise DatasetError(f'{self.path}: missing {LABEL_FILE} at the dataset root')
        labels, notes = parse_labels(self._read_bytes(LABEL_FILE), f'{self.path}/{LABEL_FILE}')
        for note in notes:
            warnings.warn(note, DatasetWarning, stacklevel=2)
        image_names = sorted(n for n in names if n.lower().endswith(IMAGE_EXTENSIONS))
        if not image_names:
            raise DatasetError(f'{self.path}: contains no images ({", ".join(IMAGE_EXTENSIONS)})')
        unlabeled = set(image_names) - set(labels)
        if unlabeled:
            raise DatasetError(f'{self.path}: {len(unlabeled)} image(s) have no label in {LABEL_FILE}: {_list_names(unlabeled)}')
        orphans = set(labels) - set(image_names)
        if orphans:
            raise DatasetError(f'{self.path}: {len(orphans)} label(s) in {LABEL_FILE} have no image: {_list_names(orphans)}')
        self._raw_names = image_names
        self._raw_labels = np.asarray([labels[n] for n in image_names], dtype=np.float64).astype(np.float32)
        self._check_images(resolution)

        # Select by yaw, subset, repeat back views, mirror.
        raw_yaw = np.abs(self._yaws_deg(self._raw_labels))
        keep = np.arange(len(image_names))
        yaw_range = resolve_yaw_range(yaw_range_deg)
        if yaw_range is not None:
            keep = keep[yaw_mask(raw_yaw, *yaw_range)]
            if len(keep) == 0:
                raise DatasetError(f'{self.path}: no image has |yaw| in [{yaw_range[0]}, {yaw_range[1]}) degrees')
        if max_size is not None and len(keep) > max_size:
            rng = np.random.RandomState(seed % (1 << 31))
            keep = np.sort(rng.permutation(keep)[:max_size])
        back = keep[raw_yaw[keep] >= 90.0]
        items = list(keep) + list(back) * (int(back_repeat) - 1)
        self._raw_idx = np.asarray(items, dtype=np.int64)
        self._xflip = np.zeros(len(items), dtype=bool)
        if mirror:
            self._raw_idx = np.concatenate([self._raw_idx, self._raw_idx])
            self._xflip = np.concatenate([self._xflip, np.ones(len(items), dtype=bool)])
        labels = self._raw_labels[self._raw_idx]
        if mirror:
            labels[self._xflip] = cameras.mirror_label(torch.from_numpy(labels[self._xflip])).numpy()
        self.labels = labels
        self.num_channels = 3

    #------------------------------------------------------------------------
    # Source access.

    # Relative paths (with '/') of all files under the folder.
    def _list_folder(self):
        names = []
        for root, _dirs, files in os.walk(self.path):
            for f in files:
                names.append(os.path.relpath(os.path.join(root, f), self.path).replace(os.sep, '/'))
        return names

    # Member names of the zip, refusing entries that would escape the root.
    def _list_zip(self):
        try:
            with zipfile.ZipFile(self.path) as z:
                infos = z.infolist()
        except (zipfile.BadZipFile, OSError) as e:
            raise DatasetError(f'{self.path}: unreadable zip file ({e})') from None
        names = []
        for info in infos:
            if _escapes_root(info.filename):
                raise DatasetError(f'{self.path}: zip entry {info.filename!r} escapes the dataset root (absolute path or "..")')
            if not info.is_dir():
                names.append(info.filename)
        return names

    # The zip handle of this process; reopened after a fork or unpickling in a DataLoader worker.
    def _get_zip(self):
        if self._zip is None or self._zip_pid != os.getpid():
            self._zip = zipfile.ZipFile(self.path)
            self._zip_pid = os.getpid()
        return self._zip

    # Raw bytes of one member.
    def _read_bytes(self, name):
        if self._type == 'zip':
            return self._get_zip().read(name)
        with open(os.path.join(self.path, name), 'rb') as f:
            return f.read()

    # The open zip handle is per process: drop it when pickled for a worker.
    def __getstate__(self):
        return dict(self.__dict__, _zip=None, _zip_pid=None)

    # Close the zip handle.
    def close(self):
        if self._zip is not None:
            self._zip.close()
        self._zip = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    #------------------------------------------------------------------------
    # Image checks and decoding.

    # Open an image (its header; pixels are decoded on use).
    def _open_image(self, name):
        where = f'{self.path}: image {name!r}'
        try:
            data = self._read_bytes(name)
            img = PIL.Image.open(io.BytesIO(data))
            return img
        except (OSError, SyntaxError, ValueError, zipfile.BadZipFile, PIL.Image.DecompressionBombError) as e:
            raise DatasetError(f'{where}: unreadable or corrupt image ({e})') from None

    # The colour layout of an image mode: 'rgb', 'rgba', or a DatasetError for grayscale and others.
    def _channel_kind(self, img, name):
        where = f'{self.path}: image {name!r}'
        mode = img.mode
        if mode == 'P':
            mode = 'RGBA' if 'transparency' in img.info else 'RGB'
        if mode == 'RGB':
            return 'rgb'
        if mode in ('RGBA', 'RGBa'):
            if self._rgba != 'white':
                raise DatasetError(f'{where}: has an alpha channel (RGBA); pass rgba="white" to composite it on white')
            return 'rgba'
        if mode in ('L', 'LA', '1', 'I', 'I;16', 'F'):
            raise DatasetError(f'{where}: is grayscale (mode {img.mode}); images must be RGB')
        raise DatasetError(f'{where}: unsupported image mode {img.mode}; images must be RGB')

    # Decode one image completely (a PNG with valid checksums but corrupt data fails only here); returns its size.
    def _decode_check(self, name, lock):
        with lock:                                  # one zip handle: reads in turn, decoding in parallel
            data = self._read_bytes(name)
        where = f'{self.path}: image {name!r}'
        try:
            with PIL.Image.open(io.BytesIO(data)) as img:
                self._channel_kind(img, name)
                img.load()
                return img.size
        except DatasetError:
            raise
        except (OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError) as e:
            raise DatasetError(f'{where}: unreadable or corrupt image ({e})') from None

    # Check every image at load: decodable, square, one resolution, RGB (or RGBA with rgba='white').
    def _check_images(self, resolution):
        sizes = {}
        lock = threading.Lock()
        pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))     # PIL decodes without the GIL
        try:
            image_sizes = list(pool.map(lambda n: self._decode_check(n, lock), self._raw_names))
        finally:
            pool.shutdown(cancel_futures=True)      # on the first bad image, do not decode the rest
        for name, (w, h) in zip(self._raw_names, image_sizes):
            if w != h:
                raise DatasetError(f'{self.path}: image {name!r} is not square ({w}x{h})')
            sizes.setdefault(w, name)
        if len(sizes) > 1:
            examples = ', '.join(f'{n!r} is {r}x{r}' for r, n in sorted(sizes.items()))
            raise DatasetError(f'{self.path}: mixed resolutions ({examples})')
        (res, first), = sizes.items()
        if resolution is not None and res != int(resolution):
            raise DatasetError(f'{self.path}: images are {res}x{res} (e.g. {first!r}), expected resolution {resolution}')
        self.resolution = res

    # Decode one raw image into uint8 [3,H,W].
    def _load_raw_image(self, raw_idx):
        name = self._raw_names[raw_idx]
        img = self._open_image(name)
        try:
            kind = self._channel_kind(img, name)
            if kind == 'rgba':
                rgba = np.asarray(img.convert('RGBA'), dtype=np.float32)
                alpha = rgba[:, :, 3:] / 255.0
                pixels = np.rint(rgba[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
            else:
                pixels = np.asarray(img.convert('RGB'), dtype=np.uint8)
        except OSError as e:
            raise DatasetError(f'{self.path}: image {name!r}: corrupt image data ({e})') from None
        finally:
            img.close()
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))

    #------------------------------------------------------------------------
    # Dataset interface.

    def __len__(self):
        return len(self._raw_idx)

    # (image uint8 [3,H,W], label float32 [25]).
    def __getitem__(self, idx):
        image = self._load_raw_image(self._raw_idx[idx])
        if self._xflip[idx]:
            image = np.ascontiguousarray(image[:, :, ::-1])
        return image, self.labels[idx].copy()

    # Relative path of the image behind item idx.
    def image_name(self, idx):
        return self._raw_names[self._raw_idx[idx]]

    # Whether item idx is a mirrored copy.
    def is_mirrored(self, idx):
        return bool(self._xflip[idx])

    # Yaw of every item in degrees, in (-180, 180].
    def yaws_deg(self):
        return self._yaws_deg(self.labels)

    @staticmethod
    def _yaws_deg(labels):
        yaw, _pitch = cameras.yaw_pitch_from_label(torch.from_numpy(np.asarray(labels, dtype=np.float32)))
        return yaw.double().numpy() * (180.0 / math.pi)

#----------------------------------------------------------------------------
