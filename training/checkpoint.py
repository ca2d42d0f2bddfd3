"""Training-state snapshots on top of training/snapshot.py: everything a run needs to continue exactly
(nets, optimiser states, ADA p, counters, per-rank RNG states, data positions), as tensors and plain data.

Run dir files are `snapshot-NNNNNNNNNN.pt` (NNN = cur_nimg); the latest is found by scanning the dir, so there is no
pointer file to get out of step; the newest `keep` are kept. Files are written atomically by save_snapshot.
"""

import hashlib
import os
import random
import re
import warnings

import numpy as np
import torch

from training.snapshot import SnapshotError, load_snapshot, save_snapshot

SNAPSHOT_RE = re.compile(r'^snapshot-(\d{10})\.pt$')

#----------------------------------------------------------------------------

def snapshot_name(cur_nimg):
    return f'snapshot-{int(cur_nimg):010d}.pt'

# Snapshots in a run dir, newest first (by the cur_nimg in the name); temp files never match.
def list_snapshots(run_dir):
    if not os.path.isdir(run_dir):
        return []
    found = [(int(m.group(1)), f) for f in os.listdir(run_dir) if (m := SNAPSHOT_RE.match(f))]
    return [os.path.join(run_dir, f) for _, f in sorted(found, reverse=True)]

def latest_snapshot(run_dir):
    snaps = list_snapshots(run_dir)
    return snaps[0] if snaps else None

#----------------------------------------------------------------------------
# RNG states of this process as tensors and plain lists (loadable with weights_only=True).

def get_rng_state():
    py = random.getstate()
    np_state = np.random.get_state()
    return dict(
        python=[py[0], list(py[1]), py[2]],
        numpy=[np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        torch=torch.get_rng_state(),
        cuda=[s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
    )

def set_rng_state(state):
    py = state['python']
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, pos, has_gauss, cached = state['numpy']
    # A snapshot loaded with map_location='cuda' holds these tensors on the GPU: numpy and torch take host tensors.
    np.random.set_state((kind, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state['torch'].cpu())
    if state['cuda'] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])

#----------------------------------------------------------------------------
# SHA-256 of a module's parameters and buffers (names + bytes), to record which frozen net a run used.

def weights_hash(module):
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b'')
    return h.hexdigest()

#----------------------------------------------------------------------------
# Write a training snapshot into run_dir and prune to the newest `keep`. Returns the path.

def save_training_state(run_dir, nets, keep, cur_nimg, **state):
    path = os.path.join(run_dir, snapshot_name(cur_nimg))
    save_snapshot(path, nets, cur_nimg=int(cur_nimg), **state)
    for old in list_snapshots(run_dir)[keep:]:
        try:
            os.remove(old)
        except OSError as e:
            warnings.warn(f'could not remove old snapshot {old}: {e}')
    return path

#----------------------------------------------------------------------------
# Load the newest readable snapshot of a run dir (a corrupt newest one is skipped with a warning), or None.

def load_latest(run_dir, device='cpu'):
    for path in list_snapshots(run_dir):
        try:
            return path, load_snapshot(path, device=device, build=False)
        except SnapshotError as e:
            warnings.warn(f'skipping unreadable snapshot: {e}')
    return None, None

#----------------------------------------------------------------------------
# Copy a stored net record's state into an existing module, strictly, naming the net on mismatch.

def load_net_state(module, record, name, where):
    own = module.state_dict()
    state = record['state']
    if set(own) != set(state) or any(own[k].shape != state[k].shape for k in own):
        missing = sorted(set(own) - set(state))[:5]
        extra = sorted(set(state) - set(own))[:5]
        raise SnapshotError(f'{where}: network {name!r} does not match this config (missing {missing}, unexpected {extra}, '
                            f'or shapes differ); was it trained with other network kwargs?')
    module.load_state_dict(state, strict=True)
