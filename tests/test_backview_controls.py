"""scripts/backview_controls.py: the view accuracy's classifier on degraded real back views."""

import json

import pytest
import torch
from _scripts import load_program
from _world import write_set
from click.testing import CliRunner

from metrics import backview
from test_metrics_backview import _HeadG, _write_heads
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
    assert names == ['real back views', 'blur 16', 'blur 8', 'smooth (20 px)', 'smooth + 0.1 x face', 'smooth + 1 x face',
                     'featureless (mean colour + noise 0.01)']
    assert all(0 <= r[k] <= 1 for r in data['rows'] for k in ('value', 'value_matched'))
    assert f'| blur 8 | {data["rows"][2]["value"]:.3f} | {data["rows"][2]["value_matched"]:.3f} |' in res.output
    # the undegraded row is the metric's own ceiling, at both resolutions: the same views, the same
    # leave-own-identity-out vote
    ref, ref_nr = backview.reference_views(heads), backview.reference_views(heads, fraction=0.5)
    assert data['num'] == int(ref['is_back'].sum()) and abs(data['rows'][0]['value'] - backview.real_rates(ref)[1]) < 1e-9
    assert data['fraction'] == 0.5 and abs(data['rows'][0]['value_matched'] - backview.real_rates(ref_nr)[1]) < 1e-9
    # without a teacher there are no face rows
    res = CliRunner().invoke(bc.main, ['--heads', heads, '--outdir', str(tmp_path / 'd')])
    assert res.exit_code == 0 and 'x face' not in res.output, res.output

# --network: the classifier's vote on a generator's backs against the faces behind. A double that shows its face
# behind for the latents with z[0] > 0 and hair for the others: a clear face reads as a front view, hair as a back.
def test_the_vote_is_split_by_the_faces_behind(tmp_path):
    heads = _write_heads(tmp_path / 'heads')
    vote = bc.vote_vs_face(_HeadG('light_mirror'), heads, 12)
    faces = int((backview.draw_z(_HeadG('light_mirror'), 12, 0)[:, 0] > 0).sum())
    assert 0 < faces < 12 and vote['face_behind'] == faces and vote['latents'] == 12 and 'matched' not in vote
    assert vote['full']['face_behind'] == 0.0 and vote['full']['others'] == 1.0
    assert vote['full']['all'] == pytest.approx((12 - faces) / 12)
    # the CLI on a real (random) tri-plane generator: its overall rates are the metric's own, at both resolutions
    torch.manual_seed(0)
    snapshot.save_snapshot(tmp_path / 'g.pt', {'G_ema': networks.build_preset('tiny', G_overrides=SMALL)[0].eval()})
    res = CliRunner().invoke(bc.main, ['--heads', heads, '--network', str(tmp_path / 'g.pt'), '--num-latents', '6',
                                       '--blur', '', '--outdir', str(tmp_path / 'o')])
    assert res.exit_code == 0, res.output
    vote = json.loads((tmp_path / 'o' / 'controls.json').read_text())['networks'][0]
    G = snapshot.load_snapshot(tmp_path / 'g.pt')['nets']['G_ema']
    views = backview.generator_views(G, backview.reference_views(heads), 6,
                                     matched=backview.reference_views(heads, fraction=0.5))
    assert vote['network'] == str(tmp_path / 'g.pt') and vote['full']['all'] == views['back']
    assert vote['matched']['all'] == views['back_matched']
    assert f'(full, {vote["face_behind"]} of 6 with the face behind)' in res.output
    # a dataset with one folder has no real pairs to set the face-behind threshold: one line
    one = write_set(str(tmp_path / 'one.zip'), num=20, resolution=32, max_yaw_deg=180, seed=2)
    res = CliRunner().invoke(bc.main, ['--heads', one, '--network', str(tmp_path / 'g.pt'), '--num-latents', '4',
                                       '--outdir', str(tmp_path / 'p')])
    assert res.exit_code != 0 and 'no real front/back pairs' in res.output and 'Traceback' not in res.output

def test_bad_input_gets_one_line(tmp_path):
    heads = write_set(str(tmp_path / 'heads.zip'), num=8, resolution=32, max_yaw_deg=180, seed=2)
    for args, words in ((['--blur', '1'], 'whole numbers >= 2'), (['--blur', 'inf'], 'whole numbers >= 2'),
                        (['--alphas', '0,0.1'], 'in (0, 1]'), (['--alphas', 'x'], 'not a comma-separated'),
                        (['--heads', str(tmp_path / 'gone.zip')], 'gone.zip'),
                        (['--teacher', str(tmp_path / 'none.pt')], 'none.pt'),
                        (['--network', str(tmp_path / 'gone.pt')], 'gone.pt'), (['--fraction', '0'], '--fraction'),
                        (['--num-latents', '2'], '--num-latents')):
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
