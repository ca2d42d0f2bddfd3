"""Tests for scripts/dataset_tool.py: round trip, crop-adjusted intrinsics, no silent label drops, real-format
labels, masks, and no lost or half-written output."""

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

#----------------------------------------------------------------------------
# Real-format input: string labels, extra keys, skewed rotations, soft masks; nothing lost on failure.

# Rewrite the source's dataset.json as strings with rotations sheared by `skew` and an extra key; returns the strings.
def _stringify(src, skew=1e-2):
    data = json.loads((src / 'dataset.json').read_text())
    for entry in data['labels']:
        pose = np.asarray(entry[1][:16]).reshape(4, 4)
        pose[:3, :3] = pose[:3, :3] @ np.array([[1, skew, 0], [0, 1, 0], [0, 0, 1]])
        entry[1] = [f'{v:.6f}' for v in pose.reshape(-1).tolist() + entry[1][16:]]
    data['files'] = [e[0] for e in data['labels']]
    (src / 'dataset.json').write_text(json.dumps(data))
    return {e[0].replace('.jpg', '.png'): e[1] for e in data['labels']}

# {relpath: bytes} of every file under a folder (to check that nothing changed).
def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob('*')) if p.is_file()}

def test_string_labels_skew_and_extra_keys(tmp_path):
    src, _ = _make_source(tmp_path / 'src')
    strings = _stringify(src)
    result = _run('--source', src, '--dest', tmp_path / 'out.zip', '--resolution', 16)
    assert result.exit_code == 0, result.output
    assert "ignoring top-level key(s) 'files'" in result.output
    assert 'warning:' in result.output and '5 of 5 rotation(s) are not exactly orthonormal' in result.output
    with pytest.warns(UserWarning, match='not exactly orthonormal'):
        ds = ImageLabelDataset(tmp_path / 'out.zip')
    names = [ds.image_name(i) for i in range(len(ds))]
    assert np.array_equal(ds.labels, np.array([strings[n] for n in names]).astype(np.float32))

def test_orthonormalize(tmp_path):
    src, _ = _make_source(tmp_path / 'src')
    strings = _stringify(src, skew=1e-2)
    result = _run('--source', src, '--dest', tmp_path / 'out.zip', '--resolution', 16, '--orthonormalize')
    assert result.exit_code == 0, result.output
    assert 'orthonormalized 5 rotation(s): largest change of an entry 0.00' in result.output
    assert 'not exactly orthonormal' not in result.output
    ds = ImageLabelDataset(tmp_path / 'out.zip')
    for i in range(len(ds)):
        pose = ds.labels[i, :16].reshape(4, 4).astype(np.float64)
        given = np.asarray(strings[ds.image_name(i)], dtype=np.float64)
        assert np.abs(pose[:3, :3].T @ pose[:3, :3] - np.eye(3)).max() < 1e-6
        assert np.array_equal(ds.labels[i, [3, 7, 11]], given[[3, 7, 11]].astype(np.float32))   # position kept
        assert np.abs(pose[:3, :3] - given[:16].reshape(4, 4)[:3, :3]).max() < 1e-2

def test_masks_composite_onto_background(tmp_path):
    src, _ = _make_source(tmp_path / 'src')
    masks = tmp_path / 'masks'
    rng = np.random.default_rng(1)
    alphas = {}
    for name in ['0/img00', '1/img01', '0/img02', '1/img03', '0/img04']:
        (masks / name).parent.mkdir(parents=True, exist_ok=True)
        alpha = rng.integers(0, 256, (16, 16), dtype=np.uint8)
        alpha[0, 0], alpha[0, 1] = 0, 255
        PIL.Image.fromarray(alpha, 'L').save(masks / (name + ('.jpg' if name.endswith('3') else '.png')))
        with PIL.Image.open(masks / (name + ('.jpg' if name.endswith('3') else '.png'))) as m:
            alphas[name + '.png'] = np.asarray(m, dtype=np.float32) / 255
    for background, expected_bg in ((None, (255, 255, 255)), ('0,0,255', (0, 0, 255))):
        dest = tmp_path / f'out{expected_bg[0]}.zip'
        extra = ['--background', background] if background else []
        result = _run('--source', src, '--masks', masks, '--dest', dest, '--resolution', 16, *extra)
        assert result.exit_code == 0, result.output
        ds = ImageLabelDataset(dest)
        for i in range(len(ds)):
            name = ds.image_name(i)
            image = np.asarray(PIL.Image.open(src / name), dtype=np.float32)
            a = alphas[name][:, :, None]
            want = np.rint(image * a + np.asarray(expected_bg, dtype=np.float32) * (1 - a)).astype(np.uint8)
            assert np.array_equal(ds[i][0], want.transpose(2, 0, 1)), name
            assert tuple(ds[i][0][:, 0, 0]) == expected_bg

def test_bad_masks_name_both_files(tmp_path):
    src, _ = _make_source(tmp_path / 'src')
    masks = tmp_path / 'masks'
    for i in range(5):
        (masks / f'{i % 2}').mkdir(parents=True, exist_ok=True)
        PIL.Image.new('L', (16, 16), 255).save(masks / f'{i % 2}/img{i:02d}.png')
    PIL.Image.new('L', (12, 16), 255).save(masks / '1/img03.png')
    result = _run('--source', src, '--masks', masks, '--dest', tmp_path / 'out.zip', '--resolution', 16)
    assert result.exit_code != 0
    assert str(masks / '1/img03.png') in result.output and str(src / '1/img03.png') in result.output
    os.remove(masks / '1/img03.png')
    result = _run('--source', src, '--masks', masks, '--dest', tmp_path / 'out.zip', '--resolution', 16)
    assert result.exit_code != 0 and str(src / '1/img03.png') in result.output and 'no mask' in result.output
    assert str(masks / '1/img03') in result.output
    assert sorted(os.listdir(tmp_path)) == ['masks', 'src']

def test_failed_build_keeps_existing_zip(tmp_path):
    src, entries = _make_source(tmp_path / 'src')
    good = _run('--source', src, '--dest', tmp_path / 'out.zip', '--resolution', 16)
    assert good.exit_code == 0
    before = (tmp_path / 'out.zip').read_bytes()
    data = json.loads((src / 'dataset.json').read_text())
    data['labels'][4][1][0] = 'garbage'
    (src / 'dataset.json').write_text(json.dumps(data))
    result = _run('--source', src, '--dest', tmp_path / 'out.zip', '--resolution', 8)
    assert result.exit_code != 0 and "'garbage'" in result.output
    assert (tmp_path / 'out.zip').read_bytes() == before and sorted(os.listdir(tmp_path)) == ['out.zip', 'src']
    data['labels'][4][1][0] = entries[data['labels'][4][0]][0]      # fixed: the rerun replaces the zip
    (src / 'dataset.json').write_text(json.dumps(data))
    result = _run('--source', src, '--dest', tmp_path / 'out.zip', '--resolution', 8)
    assert result.exit_code == 0 and 'replaced the old file' in result.output
    assert ImageLabelDataset(tmp_path / 'out.zip').resolution == 8 and sorted(os.listdir(tmp_path)) == ['out.zip', 'src']

def test_interrupted_build_leaves_no_partial_output(tmp_path, monkeypatch):
    src, _ = _make_source(tmp_path / 'src')
    assert _run('--source', src, '--dest', tmp_path / 'out.zip', '--resolution', 16).exit_code == 0
    before = _snapshot(tmp_path)
    real = dataset_tool.convert_one
    calls = []
    def interrupt_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    monkeypatch.setattr(dataset_tool, 'convert_one', interrupt_third)
    for dest in ('out.zip', 'outdir', 'new/sub/out.zip'):
        with pytest.raises(KeyboardInterrupt):
            dataset_tool.build_dataset(str(src), str(src / 'dataset.json'), str(tmp_path / dest), 8)
        calls.clear()
        assert _snapshot(tmp_path) == before and sorted(os.listdir(tmp_path)) == ['out.zip', 'src']

def test_bad_dest_paths(tmp_path):
    src, _ = _make_source(tmp_path / 'src')
    (tmp_path / 'dir.zip').mkdir()
    (tmp_path / 'file').write_text('keep me')
    cases = [(tmp_path / 'dir.zip', 'is an existing folder, expected a file'),
             (tmp_path / 'file', 'is an existing file, expected a folder'),
             (tmp_path / 'file' / 'out.zip', 'is a file, not a folder')]
    for dest, message in cases:
        result = _run('--source', src, '--dest', dest, '--resolution', 16)
        assert result.exit_code == 1 and result.output.startswith('Error: ') and message in result.output, result.output
        assert str(dest) in result.output
    assert (tmp_path / 'file').read_text() == 'keep me' and os.listdir(tmp_path / 'dir.zip') == []

def test_per_image_cameras_listed_twice(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    PIL.Image.new('RGB', (16, 16)).save(src / 'a.png')
    pose = json.dumps(cameras.pose_from_angles(torch.zeros(1), torch.zeros(1))[0].tolist())
    cam = lambda f: f'{{"cam2world": {pose}, "intrinsics": [[{f}, 0, 0.5], [0, {f}, 0.5], [0, 0, 1]]}}'
    (src / 'cams.json').write_text(f'{{"a.png": {cam(4.26)}, "a.png": {cam(4.5)}}}')
    result = _run('--source', src, '--labels', src / 'cams.json', '--dest', tmp_path / 'o.zip', '--resolution', 16)
    assert result.exit_code == 1 and "'a.png' appears twice with different values" in result.output

def test_bad_label_stops_before_any_image_work(tmp_path, monkeypatch):
    src, _ = _make_source(tmp_path / 'src')
    data = json.loads((src / 'dataset.json').read_text())
    for i in (0, 1, 2, 4, 5, 6, 8, 9, 10):                  # the last image's rotation is scaled
        data['labels'][-1][1][i] *= 1.3
    (src / 'dataset.json').write_text(json.dumps(data))
    calls = []
    monkeypatch.setattr(dataset_tool, 'convert_one', lambda *args: calls.append(args))
    result = _run('--source', src, '--dest', tmp_path / 'out.zip', '--resolution', 16)
    assert result.exit_code == 1 and data['labels'][-1][0] in result.output and 'scaled by about 1.3' in result.output
    assert calls == [] and sorted(os.listdir(tmp_path)) == ['src']
