"""scripts/backview_controls.py: the view accuracy's classifier on degraded real back views."""

import json

import torch
from _scripts import load_program
from _world import write_set
from click.testing import CliRunner

from metrics import backview
from training import networks, snapshot

bc = load_program('scripts/backview_controls.py')

SMALL = dict(img_resolution=32, plane_resolution=16, sr_input_resolution=16, neural_rendering_resolution=16,
             rendering_kwargs=dict(depth_resolution=6, depth_resolution_importance=6))

def test_controls_start_at_the_metrics_ceiling_and_write_every_row(tmp_path):
    heads = write_set(str(tmp_path / 'heads.zip'), num=60, resolution=32, max_yaw_deg=180, seed=2)
    torch.manual_seed(0)
    snapshot.save_snapshot(tmp_path / 'teacher.pt', {'G_ema': networks.build_preset('tiny', G_overrides=SMALL)[0].eval()})
    out = tmp_path / 'c'
    res = CliRunner().invoke(bc.main, ['--heads', heads, '--teacher', str(tmp_path / 'teacher.pt'), '--blur', '16,8',
                                       '--alphas', '0.1,1', '--outdir', str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads((out / 'controls.json').read_text())
    names = [r['control'] for r in data['rows']]
    assert names == ['real back views', 'blur 16', 'blur 8', 'smooth (20 px)', 'smooth + 0.1 x face', 'smooth + 1 x face']
    assert all(0 <= r['value'] <= 1 for r in data['rows']) and f'| blur 8 | {data["rows"][2]["value"]:.3f} |' in res.output
    # the undegraded row is the metric's own ceiling: the same views, the same leave-own-identity-out vote
    ref = backview.reference_views(heads)
    assert data['num'] == int(ref['is_back'].sum()) and abs(data['rows'][0]['value'] - backview.real_rates(ref)[1]) < 1e-9
    # without a teacher there are no face rows
    res = CliRunner().invoke(bc.main, ['--heads', heads, '--outdir', str(tmp_path / 'd')])
    assert res.exit_code == 0 and 'x face' not in res.output, res.output

def test_bad_input_gets_one_line(tmp_path):
    heads = write_set(str(tmp_path / 'heads.zip'), num=8, resolution=32, max_yaw_deg=180, seed=2)
    for args, words in ((['--blur', '1'], 'whole numbers >= 2'), (['--blur', 'inf'], 'whole numbers >= 2'),
                        (['--alphas', '0,0.1'], 'in (0, 1]'), (['--alphas', 'x'], 'not a comma-separated'),
                        (['--heads', str(tmp_path / 'gone.zip')], 'gone.zip'),
                        (['--teacher', str(tmp_path / 'none.pt')], 'none.pt')):
        base = {'--heads': heads, '--outdir': str(tmp_path / 'o')}
        argv = [a for k, v in base.items() if k not in args for a in (k, v)] + args
        res = CliRunner().invoke(bc.main, argv)
        assert res.exit_code != 0 and words in res.output and 'Traceback' not in res.output, (args, res.output)

def test_resample_removes_detail_finer_than_its_resolution_and_keeps_the_rest():
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing='ij')
    stripes = ((xx % 2) * 2 - 1).float().expand(1, 3, 32, 32)          # 1 px strands: above 8 px's Nyquist
    slow = torch.sin(yy.float() * 3.14159 / 16).expand(1, 3, 32, 32)   # one period over the image: below it
    assert bc.resample(stripes, 8).abs().max() < 0.1                   # from +-1
    assert (bc.resample(slow, 8) - slow).abs().mean() < 0.1 and bc.resample(slow, 8).shape == slow.shape
