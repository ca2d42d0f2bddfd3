"""Snapshots: exact round trip, plain extras, atomic write, and clear errors for bad files."""

import os
import pickle
import random
import stat

import numpy as np
import pytest
import torch
from training import cameras, checkpoint
from training.networks import build_preset
from training.snapshot import SnapshotError, load_snapshot, save_snapshot

#----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def nets():
    torch.manual_seed(0)
    G, D = build_preset('tiny')
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p) * 0.01)     # make the state differ from a fresh init
        G.backbone.mapping.w_avg.normal_()
    return dict(G=G.eval(), D=D.eval())

def test_round_trip_is_exact(nets, tmp_path):
    extras = dict(cur_nimg=1234, tick=5, ada_p=0.25, config={'a': [1, 2.5, 'x', None], 'b': {'c': True}},
                  rng={'torch': torch.get_rng_state()}, optim={'G': {'state': {0: {'step': torch.tensor(3.0)}}}})
    path = tmp_path / 'snap.pt'
    save_snapshot(path, nets, **extras)
    assert [p.name for p in tmp_path.iterdir()] == ['snap.pt']    # no temp file left behind
    snap = load_snapshot(path)
    for k, v in extras.items():
        if k not in ('rng', 'optim'):
            assert snap[k] == v, k
    assert torch.equal(snap['rng']['torch'], extras['rng']['torch'])
    assert torch.equal(snap['optim']['G']['state'][0]['step'], torch.tensor(3.0))

    G, G2 = nets['G'], snap['nets']['G'].eval()
    assert G2.init_kwargs == G.init_kwargs
    z, c = torch.randn(2, G.z_dim), cameras.make_label(torch.zeros(2), torch.zeros(2))
    det = dict(deterministic=True)
    with torch.no_grad():
        a, b = G(z, c, render_overrides=det), G2(z, c, render_overrides=det)
        assert torch.equal(a['image'], b['image']) and torch.equal(a['image_depth'], b['image_depth'])
        assert torch.equal(nets['D'](a, c), snap['nets']['D'].eval()(a, c))

def test_unbuilt_records(nets, tmp_path):
    save_snapshot(tmp_path / 's.pt', nets)
    snap = load_snapshot(tmp_path / 's.pt', build=False)
    assert snap['nets']['G']['class'] == 'TriPlaneGenerator' and 'backbone.mapping.w_avg' in snap['nets']['G']['state']

def _write_record(tmp_path, nets, mutate):
    save_snapshot(tmp_path / 's.pt', nets)
    data = torch.load(tmp_path / 's.pt', weights_only=True)
    mutate(data)
    torch.save(data, tmp_path / 'bad.pt')
    return tmp_path / 'bad.pt'

def test_foreign_class_is_rejected(nets, tmp_path):
    path = _write_record(tmp_path, nets, lambda d: d['nets']['G'].update({'class': 'os.system'}))
    with pytest.raises(SnapshotError, match="unknown class 'os.system'"):
        load_snapshot(path)

def test_state_mismatch_names_keys(nets, tmp_path):
    def mutate(d):
        st = d['nets']['D']['state']
        del st['b4.out.weight']
        st['extra.weight'] = torch.zeros(1)
    with pytest.raises(SnapshotError, match=r'missing: b4\.out\.weight.*unexpected: extra\.weight'):
        load_snapshot(_write_record(tmp_path, nets, mutate))

def test_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(SnapshotError, match='not found: .*nope.pt'):
        load_snapshot(tmp_path / 'nope.pt')
    (tmp_path / 'corrupt.pt').write_bytes(b'definitely not a checkpoint')
    with pytest.raises(SnapshotError, match='not a readable'):
        load_snapshot(tmp_path / 'corrupt.pt')
    torch.save({'weights': torch.zeros(2)}, tmp_path / 'other.pt')
    with pytest.raises(SnapshotError, match='not a Head3D snapshot'):
        load_snapshot(tmp_path / 'other.pt')
    # A pickle that would run code is refused by the weights-only loader, and nothing runs.
    marker = tmp_path / 'pwned'
    class Evil:
        def __reduce__(self):
            return (os.system, (f'touch {marker}',))
    with open(tmp_path / 'evil.pt', 'wb') as f:
        pickle.dump({'format': 'head3d-snapshot', 'x': Evil()}, f, protocol=2)
    with pytest.raises(SnapshotError):
        load_snapshot(tmp_path / 'evil.pt')
    assert not marker.exists()

#----------------------------------------------------------------------------
# RNG states survive a snapshot round trip, also when the snapshot is loaded onto the GPU (map_location='cuda'
# puts every tensor there; numpy and torch need host tensors: this failed on an H200 before the fix).

def _rng_draws():
    return random.random(), float(np.random.rand()), float(torch.rand(1))

@pytest.mark.parametrize('device', ['cpu', pytest.param('cuda', marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason='needs CUDA'))])
def test_rng_state_round_trip(tmp_path, device):
    torch.manual_seed(1)
    state = checkpoint.get_rng_state()
    expected = _rng_draws()
    save_snapshot(tmp_path / 's.pt', {}, rng=[state])
    loaded = load_snapshot(tmp_path / 's.pt', device=device, build=False)['rng'][0]
    _rng_draws()                                  # move the generators on
    checkpoint.set_rng_state(loaded)
    assert _rng_draws() == expected

def test_snapshot_gets_the_users_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        save_snapshot(tmp_path / 'a.pt', {}, cur_nimg=1)
        os.umask(0o077)
        save_snapshot(tmp_path / 'b.pt', {}, cur_nimg=1)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / 'a.pt').st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / 'b.pt').st_mode) == 0o600
