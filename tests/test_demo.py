"""The main job, scripts/demo.py, end to end at toy lengths: every stage runs through its CLI and the report holds
the stage table, the metrics (with the view accuracy and its real-view ceiling) and the samples."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

@pytest.mark.slow
def test_demo_runs_every_stage_and_writes_the_report(tmp_path):
    out = tmp_path / 'demo'
    cmd = [sys.executable, os.path.join(ROOT, 'scripts', 'demo.py'), '--outdir', str(out), '--faces', '16',
           '--head-ids', '2', '--views', '8', '--face-kimg', '0.008', '--head-ft-kimg', '0.008', '--head3d-kimg', '0.008',
           '--metric-num', '16']
    env = dict(os.environ, OMP_NUM_THREADS='2')
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]

    report = (out / 'report.md').read_text()
    assert (out / 'report.html').is_file()
    for stage in ('world', 'face', 'head_ft', 'head3d', 'samples', 'metrics'):
        assert f'| {stage} |' in report
    for name in ('face', 'head_ft', 'head3d'):
        assert (out / name / 'snapshot-0000000008.pt').is_file()
        assert (out / 'samples' / name / 'grid.png').is_file()
        assert f'![{name}: seeds 0-5' in report
    assert list((out / 'samples' / 'video').glob('orbit_image_seed0000-0003.mp4'))
    # Two training steps leave no surface at the default iso level: the mesh is then reported as not written.
    assert 'samples/shapes/seed0000.ply' in report or 'coloured mesh: not written' in report
    rows = [line for line in report.splitlines() if line.startswith('| ')]
    for net in ('face', 'head_ft', 'head3d', 'real views (held out)'):
        assert any(line.startswith(f'| {net} | View accuracy (kNN) | back |') for line in rows), net
    for label in ('FD-randconv', 'KD-randconv x100', 'ID-proxy', '3D-consistency PSNR (dB)'):
        assert any(line.startswith(f'| head3d | {label} |') for line in rows), label
    assert 'scripts/calc_metrics.py --network' in report and 'train.py --config head3d_tiny' in report
