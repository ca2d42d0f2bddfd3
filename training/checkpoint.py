"""Training-state snapshots on top of training/snapshot.py: everything a run needs to continue exactly
(nets, optimiser states, ADA p and its sign accumulator, counters, per-rank RNG states), as
tensors and plain data. `TrainingState` is the one place that names those pieces, for saving and for restoring.

Run dir files are `snapshot-NNNNNNNNNN.pt` (NNN = cur_nimg); the latest is found by scanning the dir, so there is no
pointer file to get out of step; the newest `keep` are kept. Files are written atomically by save_snapshot.
"""

import hashlib
import json
import os
import random
import re
import warnings

import numpy as np
import torch

from torch_utils import misc
from training.snapshot import SnapshotError, load_snapshot, save_snapshot

SNAPSHOT_RE = re.compile(r'^snapshot-(\d{10})\.pt$')
TEMP_RE = re.compile(r'^\.snapshot-\d{10}\.pt\..*\.tmp$')      # save_snapshot's temporary files

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
# The networks a scripts/demo.py output folder started from. The face teacher: the file its teacher.json names (the
# shipped weights/face_world.pt or --teacher), else the newest snapshot of its face/ run (--train-teacher), else None.
# The stage-1 head generator likewise: head_ft.json (the shipped weights/head_ft_world.pt or --head-ft), else the
# newest snapshot of its head_ft/ run (--train-head-ft, or a demo from before head_ft.json), else None.

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'weights')
SHIPPED_TEACHER = os.path.join(WEIGHTS_DIR, 'face_world.pt')
SHIPPED_HEAD_FT = os.path.join(WEIGHTS_DIR, 'head_ft_world.pt')
DEMO_RECORDS = dict(face='teacher.json', head_ft='head_ft.json')

def demo_network(demo_dir, stage):
    record = os.path.join(demo_dir, DEMO_RECORDS[stage])
    if os.path.isfile(record):
        with open(record) as f:
            return json.load(f)['path']
    run_dir = os.path.join(demo_dir, stage)
    return latest_snapshot(run_dir) if os.path.isdir(run_dir) else None

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
# SHA-256 of a file, read in blocks (the shipped weights' checksum in weights/README.md and the demo's teacher.json).

def file_sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
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
# The config stored in the run dir's newest readable snapshot, or None (no snapshot). Read through a memory map,
# so the tensors are not loaded: train.py checks a rerun's config against it before touching the run dir.

def latest_snapshot_config(run_dir):
    for path in list_snapshots(run_dir):
        try:
            return path, load_snapshot(path, build=False, mmap=True).get('config')
        except SnapshotError as e:
            warnings.warn(f'skipping unreadable snapshot: {e}')
    return None, None

#----------------------------------------------------------------------------
# Copy a stored net record's state into an existing module, strictly. A mismatch names the snapshot, the net and
# the first tensor that differs (not every key), e.g. when --init comes from a run with other network kwargs.

def load_net_state(module, record, name, where):
    own = module.state_dict()
    state = record['state']
    problem = None
    for key in sorted(set(own) | set(state)):
        if key not in state:
            problem = f'tensor {key!r} is missing from the snapshot'
        elif key not in own:
            problem = f'the snapshot has an extra tensor {key!r}'
        elif tuple(own[key].shape) != tuple(state[key].shape):
            problem = f'tensor {key!r} has shape {list(state[key].shape)} in the snapshot, {list(own[key].shape)} here'
        if problem is not None:
            raise SnapshotError(f'{where}: network {name!r} does not match this config: {problem} '
                                f'(was it trained with other network kwargs?)')
    module.load_state_dict(state, strict=True)

#----------------------------------------------------------------------------
# Leftovers of a killed run, removed at the next start (rank 0): temporary snapshot files that a kill -9 left
# mid-write. Returns the removed names.

def remove_stale_temp_files(run_dir):
    removed = []
    for f in sorted(os.listdir(run_dir)) if os.path.isdir(run_dir) else []:
        if TEMP_RE.match(f):
            os.remove(os.path.join(run_dir, f))
            removed.append(f)
    return removed

# Drop the rows of a JSON-lines log written after the snapshot a run resumes from (their steps are redone), so
# that no row appears twice. `nimg_of(row)` gives a row's image count (None: keep the row). Rewritten atomically.
def truncate_jsonl(path, max_nimg, nimg_of):
    if not os.path.isfile(path):
        return 0
    with open(path, encoding='utf-8') as f:
        lines = f.readlines()
    keep = []
    for line in lines:
        try:
            nimg = nimg_of(json.loads(line))
        except (ValueError, KeyError, TypeError):
            if not line.endswith('\n'):
                continue                # the torn last line of a write cut by kill -9
            nimg = None                 # a line this reader does not understand is kept
        if nimg is None or nimg <= max_nimg:
            keep.append(line)
    if len(keep) == len(lines):
        return 0
    tmp = f'{path}.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.writelines(keep)
    os.replace(tmp, path)
    return len(lines) - len(keep)

#----------------------------------------------------------------------------
# Everything of a run that a snapshot holds besides its config: the nets, and the loop state below. `_entries()`
# names each piece once with its getter and setter, so save() and restore() cannot drift apart (a piece added to
# one is in the other). The loop reads and advances the counters as attributes (state.cur_nimg, ...).

COUNTERS = ('cur_nimg', 'tick', 'step', 'nonfinite', 'nonfinite_in_a_row')

class TrainingState:
    def __init__(self, nets, opts, ada=None, loss=None):
        self.nets, self.opts, self.ada, self.loss = nets, opts, ada, loss
        for name in COUNTERS:
            setattr(self, name, 0)
        self.rng = None             # the per-rank RNG states of a restored snapshot, until apply_rng()

    # name -> (get, set) of every piece of loop state. get() is called on every rank (the RNG states are gathered).
    def _entries(self):
        entries = {name: (lambda n=name: int(getattr(self, n)), lambda v, n=name: setattr(self, n, int(v)))
                   for name in COUNTERS}
        entries['optim'] = (lambda: {n: o.state_dict() for n, o in self.opts.items()},
                            lambda v: [o.load_state_dict(v[n]) for n, o in self.opts.items()])
        entries['rng'] = (gather_rng_states, lambda v: setattr(self, 'rng', v))
        if self.ada is not None:
            entries['ada'] = (self.ada.state_dict, self.ada.load_state_dict)
        if hasattr(self.loss, 'state_dict'):
            entries['loss_state'] = (self.loss.state_dict, self.loss.load_state_dict)
        return entries

    # Write a snapshot (rank 0; every rank must call, for the RNG gather). Returns the path on rank 0, else None.
    def save(self, run_dir, keep, rank=0, **meta):
        plain = {name: get() for name, (get, _) in self._entries().items()}
        if rank != 0:
            return None
        return save_training_state(run_dir, self.nets, keep, **plain, **meta)

    # Restore from a snapshot loaded with build=False (`where` names it in errors). The data iterators continue at
    # `step * batch` items; the RNG states are applied by apply_rng() once the nets are built and broadcast.
    def restore(self, snap, where):
        entries = self._entries()
        missing = [name for name in entries if name not in snap and name != 'loss_state']
        if missing:
            raise SnapshotError(f'{where}: not a training snapshot of this config (it lacks {", ".join(missing)}); '
                                'a networks-only snapshot starts a run with --init (or --teacher), not --resume')
        for name, module in self.nets.items():
            if name not in snap['nets']:
                raise SnapshotError(f'{where}: has no network {name!r} (it has {", ".join(snap["nets"])})')
            load_net_state(module, snap['nets'][name], name, where)
        for name, (_, put) in entries.items():
            if name in snap:
                put(snap[name])

    # This rank's RNG state from the restored snapshot when the world size matches, else `fallback_seed`.
    def apply_rng(self, rank, world, fallback_seed):
        if self.rng is not None and len(self.rng) == world:
            set_rng_state(self.rng[rank])
        else:
            misc.set_seed(fallback_seed)
        self.rng = None

# RNG states of every rank, in rank order (a collective when distributed).
def gather_rng_states():
    states = [get_rng_state()]
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        states = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(states, get_rng_state())
    return states
