"""Tests for scripts/dataset_tool.py: round trip, crop-adjusted intrinsics, no silent label drops."""

import json
import math
import os

import numpy as np
import PIL.Image
import pytest
import torch
from _scripts import load_program
from click.testing import CliRunner

from training import cameras
from training.dataset import ImageLabelDataset

dataset_tool = load_program('scripts/dataset_tool.py')

YAWS_DEG = [0.0, 20.0, -70.0, 100.0, 170.0]

#----------------------------------------------------------------------------
# A source folder of square RGB images with an EG3D dataset.json; returns (folder, {name: label}).

def _make_source(path, res=16, yaws_deg=YAWS_DEG):
    path.mkdir()
    yaw = torch.tensor(yaws_deg) * math.pi / 180
    labels = cameras.make_label(yaw, torch.zeros_like(yaw)).tolist()
    entries = {}
    rng = np.random.default_rng(0)
    for i, label in enumerate(labels):
        name = f'{i % 2}/img{i:02d}.png'
        (path / f'{i % 2}').mkdir(exist_ok=True)
        PIL.Image.fromarray(rng.integers(0, 255, (res, res, 3), dtype=np.uint8)).save(path / name)
        entries[name] = label
    (path / 'dataset.json').write_text(json.dumps({'labels': [[n, c] for n, c in entries.items()]}))
    return path, entries

def _run(*args):
    return CliRunner().invoke(dataset_tool.main, [str(a) for a in args])

#----------------------------------------------------------------------------

def test_round_trip_folder_to_zip(tmp_path):
    src, entries = _make_source(tmp_path / 'src')
    dest = tmp_path / 'out.zip'
    result = _run('--source', src, '--dest', dest, '--resolution', 16)
    assert result.exit_code == 0, result.output
    assert 'wrote 5 images' in result.output
    assert 'front (|yaw| < 45)   2' in result.output and 'back (> 135)         1' in result.output
    ds = ImageLabelDataset(dest)
    assert len(ds) == 5 and ds.resolution == 16
    for i in range(len(ds)):
        name = ds.image_name(i)
        assert np.array_equal(ds.labels[i], np.asarray(entries[name], dtype=np.float32))
        # same size: Lanczos resize to the same resolution keeps the pixels
        src_px = np.asarray(PIL.Image.open(src / name)).transpose(2, 0, 1)
        assert np.array_equal(ds[i][0], src_px)
    import zipfile
    with zipfile.ZipFile(dest) as z:
        assert all(info.compress_type == zipfile.ZIP_STORED for info in z.infolist())

def test_round_trip_to_folder_with_resize(tmp_path):
    src, entries = _make_source(tmp_path / 'src')
    dest = tmp_path / 'outdir'
    result = _run('--source', src, '--dest', dest, '--resolution', 8)
    assert result.exit_code == 0, result.output
    ds = ImageLabelDataset(dest)
    assert ds.resolution == 8 and len(ds) == 5
    assert np.allclose(ds.labels, np.asarray([entries[ds.image_name(i)] for i in range(5)], dtype=np.float32))

def test_missing_label_is_an_error(tmp_path):
    src, _ = _make_source(tmp_path / 'src')
    PIL.Image.new('RGB', (16, 16)).save(src / '0' / 'stray.png')
    result = _run('--source', src, '--dest', tmp_path / 'out.zip', '--resolution', 16)
    assert result.exit_code != 0
    assert '1 image(s) have no label' in result.output and '0/stray.png' in result.output
    result = _run('--source', src, '--dest', tmp_path / 'out2.zip', '--resolution', 16, '--skip-unlabeled')
    assert result.exit_code == 0, result.output
    assert 'skipped 1 image(s) without a label' in result.output
    assert len(ImageLabelDataset(tmp_path / 'out2.zip')) == 5

def test_label_without_image_is_an_error(tmp_path):
    src, _ = _make_source(tmp_path / 'src')
    os.remove(src / '1' / 'img03.png')
    result = _run('--source', src, '--dest', tmp_path / 'out.zip', '--resolution', 16)
    assert result.exit_code != 0 and '1 label(s) have no image' in result.output and '1/img03.png' in result.output

def test_center_crop_adjusts_intrinsics(tmp_path):
    # A 40x20 image whose camera has pixel intrinsics; a marker pixel at the principal point must land on the
    # principal point of the cropped, resized image.
    src = tmp_path / 'src'
    src.mkdir()
    pixels = np.full((20, 40, 3), 255, dtype=np.uint8)
    px, py = 24, 9  # marker pixel (column, row)
    pixels[py, px] = 0
    PIL.Image.fromarray(pixels).save(src / 'a.png')
    pose = cameras.pose_from_angles(torch.zeros(1), torch.zeros(1))[0].tolist()
    k_px = [[85.0, 0.0, px + 0.5], [0.0, 85.0, py + 0.5], [0.0, 0.0, 1.0]]
    (src / 'cams.json').write_text(json.dumps({'a.png': {'cam2world': pose, 'intrinsics': k_px}}))
    dest = tmp_path / 'out.zip'
    result = _run('--source', src, '--labels', src / 'cams.json', '--dest', dest, '--resolution', 20, '--pixel-intrinsics')
    assert result.exit_code == 0, result.output
    ds = ImageLabelDataset(dest)
    label = ds.labels[0]
    k = label[16:].reshape(3, 3)
    # crop takes columns 10..30: normalised fx = 85 / 20, cx = (24.5 - 10) / 20
    assert k[0, 0] == pytest.approx(85 / 20) and k[1, 1] == pytest.approx(85 / 20)
    assert k[0, 2] == pytest.approx((px + 0.5 - 10) / 20) and k[1, 2] == pytest.approx((py + 0.5) / 20)
    image = ds[0][0]
    row, col = np.unravel_index(np.argmin(image[0]), image[0].shape)
    assert (col + 0.5) / 20 == pytest.approx(k[0, 2]) and (row + 0.5) / 20 == pytest.approx(k[1, 2])

def test_pixel_intrinsics_without_flag_is_an_error(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    PIL.Image.new('RGB', (16, 16)).save(src / 'a.png')
    pose = cameras.pose_from_angles(torch.zeros(1), torch.zeros(1))[0].tolist()
    cams = {'a.png': {'cam2world': pose, 'intrinsics': [[68.0, 0, 8.0], [0, 68.0, 8.0], [0, 0, 1]]}}
    (src / 'cams.json').write_text(json.dumps(cams))
    result = _run('--source', src, '--labels', src / 'cams.json', '--dest', tmp_path / 'o.zip', '--resolution', 16)
    assert result.exit_code != 0 and 'a.png' in result.output and '--pixel-intrinsics' in result.output

def test_bad_rotation_is_an_error(tmp_path):
    src, entries = _make_source(tmp_path / 'src')
    data = json.loads((src / 'dataset.json').read_text())
    data['labels'][0][1][0] = 2.0
    (src / 'dataset.json').write_text(json.dumps(data))
    result = _run('--source', src, '--dest', tmp_path / 'o.zip', '--resolution', 16)
    assert result.exit_code != 0 and data['labels'][0][0] in result.output and 'orthonormal' in result.output
