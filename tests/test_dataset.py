"""Tests for training/dataset.py: validation of bad input, yaw selection, back_repeat, mirroring, subsets."""

import json
import math
import pickle
import zipfile

import numpy as np
import PIL.Image
import pytest
import torch

from training import cameras
from training.dataset import DatasetError, ImageLabelDataset

YAWS_DEG = [0.0, 30.0, -60.0, 100.0, -150.0, 180.0]

#----------------------------------------------------------------------------
# Labels [N,25] as nested lists for yaws in degrees (pitch 0, FFHQ intrinsics).

def _labels(yaws_deg):
    yaw = torch.tensor(yaws_deg, dtype=torch.float32) * math.pi / 180
    return cameras.make_label(yaw, torch.zeros_like(yaw)).tolist()

# A random RGB image whose left half is dark and right half bright, so that a flip is visible.
def _image(res=8, seed=0, mode='RGB'):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 128, size=(res, res, len(mode)), dtype=np.uint8)
    pixels[:, res // 2:] += 127
    return PIL.Image.fromarray(pixels.squeeze(-1) if mode == 'L' else pixels, mode)

# Write a dataset folder: img{i}.png per yaw plus dataset.json; returns the folder.
def _make_folder(path, yaws_deg=YAWS_DEG, res=8):
    path.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, label in enumerate(_labels(yaws_deg)):
        name = f'sub/img{i:03d}.png'
        (path / 'sub').mkdir(exist_ok=True)
        _image(res, seed=i).save(path / name)
        entries.append([name, label])
    (path / 'dataset.json').write_text(json.dumps({'labels': entries}))
    return path

# The folder's files (images and dataset.json) stored in a zip at zpath, plus `extra` {name: bytes}; returns zpath.
def _zip_folder(folder, zpath, extra=None):
    with zipfile.ZipFile(zpath, 'w') as z:
        for f in sorted(folder.rglob('*')):
            if f.is_file():
                z.write(f, f.relative_to(folder).as_posix())
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return zpath

# Rewrite one label entry of a folder dataset with fn(label) -> label.
def _edit_label(path, idx, fn):
    data = json.loads((path / 'dataset.json').read_text())
    data['labels'][idx][1] = fn(data['labels'][idx][1])
    (path / 'dataset.json').write_text(json.dumps(data))

# Assert that opening the dataset raises DatasetError whose message contains every fragment.
def _expect_error(path, *fragments, **kwargs):
    with pytest.raises(DatasetError) as info:
        ImageLabelDataset(path, **kwargs)
    msg = str(info.value)
    for frag in fragments:
        assert frag in msg, f'{frag!r} not in {msg!r}'
    return msg

#----------------------------------------------------------------------------
# Good data.

def test_folder_and_zip_load_identically(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    zpath = _zip_folder(folder, tmp_path / 'ds.zip')
    a, b = ImageLabelDataset(folder), ImageLabelDataset(zpath)
    assert len(a) == len(b) == len(YAWS_DEG)
    assert a.resolution == 8 and a.num_channels == 3 and b.name == 'ds'
    for i in range(len(a)):
        ia, la = a[i]
        ib, lb = b[i]
        assert ia.dtype == np.uint8 and ia.shape == (3, 8, 8)
        assert np.array_equal(ia, ib) and np.array_equal(la, lb)
    assert np.allclose(np.sort(a.yaws_deg()), np.sort(YAWS_DEG), atol=1e-3)

def test_zip_handle_is_pickle_safe(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    zpath = _zip_folder(folder, tmp_path / 'ds.zip')
    ds = ImageLabelDataset(zpath)
    first = ds[0][0]  # opens the zip handle
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._zip is None
    assert np.array_equal(clone[0][0], first)

def test_rgba_composited_on_white(tmp_path):
    folder = _make_folder(tmp_path / 'ds', yaws_deg=[0.0])
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:, :4, 3] = 255  # left half opaque red-ish, right half transparent
    PIL.Image.fromarray(rgba, 'RGBA').save(folder / 'sub/img000.png')
    _expect_error(folder, 'img000.png', 'RGBA', 'rgba="white"')
    image, _ = ImageLabelDataset(folder, rgba='white')[0]
    assert np.all(image[:, :, 4:] == 255)
    assert np.all(image[0, :, :4] == 200) and np.all(image[1, :, :4] == 0)

#----------------------------------------------------------------------------
# Bad input: each raises DatasetError naming the file and the problem.

def test_missing_label(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    _image(seed=9).save(folder / 'sub/extra.png')
    _expect_error(folder, str(folder), 'sub/extra.png', 'no label')

def test_label_without_image(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    (folder / 'sub/img002.png').unlink()
    _expect_error(folder, 'sub/img002.png', 'no image')

def test_wrong_label_length(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    _edit_label(folder, 1, lambda c: c[:24])
    _expect_error(folder, 'dataset.json', 'sub/img001.png', '24 values')

def test_nan_label(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    data = (folder / 'dataset.json').read_text()
    data = json.loads(data)
    data['labels'][2][1][3] = float('nan')
    (folder / 'dataset.json').write_text(json.dumps(data))  # json writes NaN, which json.loads accepts
    _expect_error(folder, 'sub/img002.png', 'NaN')

def test_non_orthonormal_rotation(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    _edit_label(folder, 0, lambda c: [v * 1.1 if i in (0, 5, 10) else v for i, v in enumerate(c)])
    _expect_error(folder, 'sub/img000.png', 'not orthonormal', 'scaled by about 1.1')

def test_bad_pose_bottom_row(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    _edit_label(folder, 0, lambda c: c[:12] + [0.0, 0.0, 1.0, 1.0] + c[16:])
    _expect_error(folder, 'sub/img000.png', 'bottom row of cam2world')

def test_pixel_intrinsics_rejected(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    _edit_label(folder, 3, lambda c: c[:16] + [2183.5, 0, 256, 0, 2183.5, 256, 0, 0, 1])
    _expect_error(folder, 'sub/img003.png', 'principal point', 'normalised')

def test_non_positive_focal(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    _edit_label(folder, 3, lambda c: c[:16] + [-4.26, 0, 0.5, 0, 4.26, 0.5, 0, 0, 1])
    _expect_error(folder, 'sub/img003.png', 'non-positive focal')

def test_intrinsics_bottom_row(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    _edit_label(folder, 3, lambda c: c[:16] + [4.26, 0, 0.5, 0, 4.26, 0.5, 0, 0, 0])
    _expect_error(folder, 'sub/img003.png', 'bottom row of the intrinsics')

def test_mixed_resolutions(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    _image(res=16, seed=1).save(folder / 'sub/img001.png')
    _expect_error(folder, 'mixed resolutions', 'sub/img001.png')

def test_expected_resolution(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    _expect_error(folder, 'expected resolution 16', resolution=16)

def test_non_square(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    PIL.Image.new('RGB', (8, 6)).save(folder / 'sub/img004.png')
    _expect_error(folder, 'sub/img004.png', 'not square')

def test_corrupt_image(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    data = (folder / 'sub/img002.png').read_bytes()
    (folder / 'sub/img002.png').write_bytes(data[:40])
    _expect_error(folder, 'sub/img002.png', 'corrupt')

def test_garbage_image(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    (folder / 'sub/img002.png').write_bytes(b'not an image at all')
    _expect_error(folder, 'sub/img002.png', 'unreadable')

def test_grayscale_rejected(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    _image(mode='L').save(folder / 'sub/img005.png')
    _expect_error(folder, 'sub/img005.png', 'grayscale')

def test_empty_dataset(tmp_path):
    folder = tmp_path / 'empty'
    folder.mkdir()
    (folder / 'dataset.json').write_text(json.dumps({'labels': []}))
    _expect_error(folder, str(folder), 'no images')

def test_zip_entry_escaping_root(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    zpath = _zip_folder(folder, tmp_path / 'evil.zip', extra={'../outside.png': b'x'})
    _expect_error(zpath, 'evil.zip', '../outside.png', 'escapes')

def test_missing_dataset_json(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    (folder / 'dataset.json').unlink()
    _expect_error(folder, str(folder), 'missing dataset.json')

def test_malformed_json(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    (folder / 'dataset.json').write_text('{"labels": [["a.png", [1, 2,')
    _expect_error(folder, 'dataset.json', 'malformed JSON')

def test_null_labels(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    (folder / 'dataset.json').write_text('{"labels": null}')
    _expect_error(folder, 'dataset.json', 'null')

def test_missing_path(tmp_path):
    _expect_error(tmp_path / 'nope', 'nope', 'no such folder')

def test_bad_options(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    _expect_error(folder, 'back_repeat', back_repeat=0)
    _expect_error(folder, 'yaw_range_deg', yaw_range_deg=(90, 10))
    _expect_error(folder, 'yaw_range_deg', yaw_range_deg='sideways')
    _expect_error(folder, 'no image has |yaw|', yaw_range_deg=(40, 50))

#----------------------------------------------------------------------------
# Options.

def test_front_back_selection(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    front = ImageLabelDataset(folder, yaw_range_deg='front')
    back = ImageLabelDataset(folder, yaw_range_deg='back')
    assert sorted(np.round(np.abs(front.yaws_deg()))) == [0, 30, 60]
    assert sorted(np.round(np.abs(back.yaws_deg()))) == [100, 150, 180]
    middle = ImageLabelDataset(folder, yaw_range_deg=(20, 120))
    assert sorted(np.round(np.abs(middle.yaws_deg()))) == [30, 60, 100]

def test_back_repeat(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    ds = ImageLabelDataset(folder, back_repeat=3)
    assert len(ds) == 3 + 3 * 3
    names = [ds.image_name(i) for i in range(len(ds))]
    assert names.count('sub/img003.png') == 3 and names.count('sub/img000.png') == 1
    assert np.sum(np.abs(ds.yaws_deg()) >= 90) == 9

def test_mirror_is_pose_aware(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    ds = ImageLabelDataset(folder, mirror=True)
    assert len(ds) == 2 * len(YAWS_DEG)
    n = len(YAWS_DEG)
    yaws = ds.yaws_deg()
    for i in range(n):
        img, label = ds[i]
        flipped, mlabel = ds[i + n]
        assert ds.is_mirrored(i + n) and not ds.is_mirrored(i)
        assert np.array_equal(flipped, img[:, :, ::-1])
        wrapped = (yaws[i + n] + yaws[i] + 180) % 360 - 180  # yaw -> -yaw (180 stays 180)
        assert abs(wrapped) < 1e-3
        assert np.allclose(mlabel[16:], label[16:])
    assert not np.array_equal(ds[1][0], ds[1 + n][0])

def test_max_size_deterministic_subset(tmp_path):
    folder = _make_folder(tmp_path / 'ds', yaws_deg=[float(y) for y in range(-170, 180, 10)])
    a = ImageLabelDataset(folder, max_size=10, seed=1)
    b = ImageLabelDataset(folder, max_size=10, seed=1)
    c = ImageLabelDataset(folder, max_size=10, seed=2)
    names = lambda ds: [ds.image_name(i) for i in range(len(ds))]
    assert len(a) == 10
    assert names(a) == names(b) and np.array_equal(a.labels, b.labels)
    assert names(a) != names(c)
    assert names(a) == sorted(names(a))

def test_dataloader_workers_read_zip(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    zpath = _zip_folder(folder, tmp_path / 'ds.zip')
    ds = ImageLabelDataset(zpath, mirror=True)
    ds[0]  # the parent's open handle must not leak into the workers
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    images = torch.cat([img for img, _ in loader])
    labels = torch.cat([lab for _, lab in loader])
    assert images.shape == (len(ds), 3, 8, 8)
    assert all(np.array_equal(images[i].numpy(), ds[i][0]) for i in range(len(ds)))
    assert np.allclose(labels.numpy(), ds.labels)

#----------------------------------------------------------------------------
# Labels as public preprocessing pipelines write them.

# Labels as JSON strings with 6 decimals (as written by pose-estimation pipelines), rotations sheared by `skew`.
def _string_labels(yaws_deg, skew=0.0):
    out = []
    for c in _labels(yaws_deg):
        pose = np.asarray(c[:16]).reshape(4, 4)
        pose[:3, :3] = pose[:3, :3] @ np.array([[1, skew, 0], [0, 1, 0], [0, 0, 1]])
        out.append([f'{v:.6f}' for v in pose.reshape(-1).tolist() + c[16:]])
    return out

def _write_labels(path, entries, **extra):
    (path / 'dataset.json').write_text(json.dumps({'labels': entries, **extra}))

def test_string_labels_and_extra_keys(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    strings = _string_labels(YAWS_DEG)
    _write_labels(folder, [[f'sub/img{i:03d}.png', s] for i, s in enumerate(strings)], files=['a.png', 'b.png'])
    with pytest.warns(UserWarning, match=r"ignoring top-level key\(s\) 'files'") as record:
        ds = ImageLabelDataset(folder)
    assert len(record) == 1
    assert np.array_equal(ds.labels, np.array(strings).astype(np.float32))   # EG3D's own conversion
    assert ds.labels[0, 0] == np.float32(float(strings[0][0]))

def test_skewed_rotations_accepted_unchanged_with_one_warning(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    entries = [[f'sub/img{i:03d}.png', s] for i, s in enumerate(_string_labels(YAWS_DEG, skew=1e-2))]
    entries[3][1] = _string_labels([YAWS_DEG[3]], skew=2e-2)[0]
    _write_labels(folder, entries)
    with pytest.warns(UserWarning, match=r"6 of 6 rotation\(s\).*worst 'sub/img003.png'.*= 0.02 ") as record:
        ds = ImageLabelDataset(folder)
    assert len(record) == 1
    assert np.array_equal(ds.labels, np.array([e[1] for e in entries]).astype(np.float32))

def test_non_numeric_string(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    _edit_label(folder, 2, lambda c: c[:5] + ['n/a'] + c[6:])
    _expect_error(folder, 'dataset.json', 'labels[2]', 'sub/img002.png', "'n/a'", 'not a number')

def test_clearly_broken_rotations(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    _edit_label(folder, 1, lambda c: [c[0] + 0.3] + c[1:])
    _expect_error(folder, 'sub/img001.png', 'not orthonormal', 'sheared')
    folder = _make_folder(tmp_path / 'ds2')
    _edit_label(folder, 1, lambda c: [-v if i in (0, 4, 8) else v for i, v in enumerate(c)])    # x axis flipped
    _expect_error(folder, 'sub/img001.png', 'determinant', 'mirrored')
    folder = _make_folder(tmp_path / 'ds3')
    _edit_label(folder, 1, lambda c: np.asarray(c[:16]).reshape(4, 4).T.reshape(-1).tolist() + c[16:])
    _expect_error(folder, 'sub/img001.png', 'transposed')

def test_duplicate_entries(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    data = json.loads((folder / 'dataset.json').read_text())
    data['labels'].append(list(data['labels'][1]))
    (folder / 'dataset.json').write_text(json.dumps(data))
    with pytest.warns(UserWarning, match=r"listed twice with the same label.*'sub/img001.png'"):
        assert len(ImageLabelDataset(folder)) == len(YAWS_DEG)
    data['labels'][-1] = [data['labels'][1][0], data['labels'][2][1]]
    (folder / 'dataset.json').write_text(json.dumps(data))
    _expect_error(folder, 'labels[1]', f'labels[{len(YAWS_DEG)}]', 'sub/img001.png', 'different cameras')

# A PNG whose chunks all have valid CRCs but whose image data stops early: only a full decode finds it.
def _png_with_short_data(res=8):
    import struct
    import zlib
    def chunk(kind, payload):
        return struct.pack('>I', len(payload)) + kind + payload + struct.pack('>I', zlib.crc32(kind + payload))
    header = struct.pack('>IIBBBBB', res, res, 8, 2, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', zlib.compress(b'\x00' * (3 * res)))
            + chunk(b'IEND', b''))

def test_corrupt_data_with_valid_checksums(tmp_path):
    folder = _make_folder(tmp_path / 'ds')
    (folder / 'sub/img004.png').write_bytes(_png_with_short_data())
    with PIL.Image.open(folder / 'sub/img004.png') as img:
        img.verify()                                # the checksums are fine
    _expect_error(folder, 'sub/img004.png', 'corrupt')
    _expect_error(_zip_folder(folder, tmp_path / 'ds.zip'), 'ds.zip', 'sub/img004.png', 'corrupt')

def test_vectorised_precheck_flags_every_bad_label():
    # parse_labels runs check_label only where maybe_bad_labels flags a label: it must flag every bad one
    from training.dataset import check_label, maybe_bad_labels
    rng = np.random.default_rng(0)
    good = np.asarray(_labels([float(y) for y in rng.uniform(-180, 180, 400)]), dtype=np.float64)
    c = good + rng.normal(0, 1, good.shape) * (rng.random(good.shape) < 0.02) * rng.choice([1e-3, 0.05, 0.3, 3], good.shape)
    c[::50, 3] = np.nan
    flagged = maybe_bad_labels(c)
    bad = np.array([check_label(row.tolist()) is not None for row in c])
    assert bad.sum() > 50 and (~bad).sum() > 50
    assert np.all(flagged[bad])
