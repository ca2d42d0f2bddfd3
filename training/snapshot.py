"""Snapshots that hold tensors and plain data only (DESIGN.md section 7).

A snapshot is a torch.save of
    {'format': 'head3d-snapshot', 'version': 1,
     'nets': {name: {'class': class name, 'kwargs': init_kwargs, 'state': state_dict}},
     **plain}
written atomically, and read back with torch.load(weights_only=True): loading never runs code from the
file. Networks are rebuilt from training.networks.REGISTRY by class name."""

import os
import tempfile
import zipfile

import torch

from training.networks import REGISTRY

FORMAT = 'head3d-snapshot'
VERSION = 1

#----------------------------------------------------------------------------

class SnapshotError(RuntimeError):
    """A snapshot that cannot be read or does not match the networks it names."""

#----------------------------------------------------------------------------
# The permissions of a newly created file under the process umask (0644 under the usual umask 022).

def _new_file_mode():
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask

#----------------------------------------------------------------------------
# Save networks (by class name, init kwargs and state dict) plus plain extras to `path`, atomically:
# a temporary file in the same directory is written, flushed to disk and renamed over `path`.

def save_snapshot(path, nets, **plain):
    for reserved in ('format', 'version', 'nets'):
        if reserved in plain:
            raise ValueError(f'{reserved!r} is reserved in a snapshot')
    data = dict(format=FORMAT, version=VERSION, nets={})
    for name, net in nets.items():
        if not hasattr(net, 'init_kwargs'):
            raise ValueError(f'network {name!r} ({type(net).__name__}) has no init_kwargs and cannot be rebuilt')
        state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        data['nets'][name] = {'class': type(net).__name__, 'kwargs': net.init_kwargs, 'state': state}
    data.update(plain)

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            os.fchmod(f.fileno(), _new_file_mode())     # mkstemp's 0600 -> what open() would give the user
            torch.save(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise

#----------------------------------------------------------------------------
# Build one network from its record and load its state strictly; errors name the net and the keys (and the
# file, `where`, when given).

def build_net(name, record, device, where=None):
    try:
        return _build_net(name, record, device)
    except SnapshotError as e:
        raise SnapshotError(f'{where}: {e}' if where else str(e)) from e

def _build_net(name, record, device):
    if not isinstance(record, dict) or not {'class', 'kwargs', 'state'} <= record.keys():
        raise SnapshotError(f'network {name!r}: record must hold class, kwargs and state')
    cls = REGISTRY.get(record['class'])
    if cls is None:
        raise SnapshotError(f'network {name!r}: unknown class {record["class"]!r} (known: {", ".join(sorted(REGISTRY))})')
    try:
        net = cls(**record['kwargs'])
    except (TypeError, ValueError, AssertionError, KeyError) as e:
        raise SnapshotError(f'network {name!r}: cannot build {record["class"]} from its stored kwargs: {e}') from e
    own = net.state_dict()
    state = record['state']
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad_shape = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or bad_shape:
        parts = [f'{label}: {", ".join(keys)}' for label, keys in
                 (('missing', missing), ('unexpected', unexpected), ('shape mismatch', bad_shape)) if keys]
        raise SnapshotError(f'network {name!r} ({record["class"]}): state does not match; ' + '; '.join(parts))
    net.load_state_dict(state, strict=True)
    return net.to(device)

#----------------------------------------------------------------------------
# A plain pickle (what EG3D's training writes, `network-snapshot-*.pkl`) rather than torch.save's zip: it is named
# as such, with the way to convert it, and never handed to an unpickler. Other load errors drop torch's advice to
# load with weights_only=False (which would run code from the file).

PICKLE_PROTOCOL_MARK = b'\x80'

def _is_plain_pickle(path):
    with open(path, 'rb') as f:
        head = f.read(1)
    return head == PICKLE_PROTOCOL_MARK and not zipfile.is_zipfile(path)

def _unreadable(path, err):
    reason = str(err).split('\n')[0]
    if 'weights_only' in reason.lower():
        reason = 'it holds objects other than tensors and plain data'
    return f'{path}: not a readable Head3D snapshot (corrupt, truncated, or not tensors and plain data only): {reason}'

#----------------------------------------------------------------------------
# Load a snapshot. Returns dict(nets={name: module}, **plain); with build=False the net records
# ({'class', 'kwargs', 'state'}) are returned unbuilt. Modules come back as freshly constructed (train
# mode, parameters requiring grad); callers set eval()/requires_grad_ as their role needs.

def load_snapshot(path, device='cpu', build=True, mmap=False):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SnapshotError(f'snapshot not found: {path}')
    if _is_plain_pickle(path):
        raise SnapshotError(f'{path}: a plain pickle, not a Head3D snapshot; if it is an EG3D network pickle, convert '
                            f'it with scripts/import_eg3d.py (python scripts/import_eg3d.py --src {path} --dst converted.pt)')
    try:
        data = torch.load(path, map_location=device, weights_only=True, mmap=mmap)
    except Exception as e:
        raise SnapshotError(_unreadable(path, e)) from e
    if not isinstance(data, dict) or data.get('format') != FORMAT:
        raise SnapshotError(f'{path}: not a Head3D snapshot (no format={FORMAT!r} marker)')
    if data.get('version') != VERSION:
        raise SnapshotError(f'{path}: snapshot version {data.get("version")!r} is not supported (expected {VERSION})')
    nets = data.get('nets')
    if not isinstance(nets, dict):
        raise SnapshotError(f'{path}: snapshot has no nets table')

    plain = {k: v for k, v in data.items() if k not in ('format', 'version', 'nets')}
    if not build:
        return dict(nets=nets, **plain)
    return dict(nets={name: build_net(name, record, device, where=path) for name, record in nets.items()}, **plain)

#----------------------------------------------------------------------------
# The XY depth layers (TriPlaneGenerator xy_depth_layers; 1 = EG3D's tri-plane) of a snapshot's generator (G_ema,
# else G), and their hand-over over depth (xy_layer_sharpness, 1 = linear), read from its stored constructor kwargs
# without building it. A stage that starts from the snapshot (--init) gives its own G the same with these train.py
# overrides (none for a tri-plane, none for the default sharpness).

def _xy_layer_kwargs(path):
    nets = load_snapshot(path, build=False)['nets']
    record = nets.get('G_ema', nets.get('G'))
    if not isinstance(record, dict):
        raise SnapshotError(f'{path}: no generator (G_ema or G) in the file; it holds {", ".join(nets) or "no networks"}')
    kwargs = record.get('kwargs') or {}
    layers, sharpness = kwargs.get('xy_depth_layers', 1), kwargs.get('xy_layer_sharpness', 1.0)
    if not isinstance(layers, int) or isinstance(layers, bool) or layers < 1:
        raise SnapshotError(f'{path}: its generator\'s xy_depth_layers is {layers!r}, not an integer >= 1')
    if isinstance(sharpness, bool) or not isinstance(sharpness, (int, float)) or not sharpness >= 1:
        raise SnapshotError(f'{path}: its generator\'s xy_layer_sharpness is {sharpness!r}, not a number >= 1')
    return layers, sharpness

def generator_xy_depth_layers(path):
    return _xy_layer_kwargs(path)[0]

def xy_depth_layers_overrides(path):
    layers, sharpness = _xy_layer_kwargs(path)
    if layers == 1:
        return []
    out = ['--set', f'nets.G.kwargs.xy_depth_layers={layers}']
    return out + (['--set', f'nets.G.kwargs.xy_layer_sharpness={sharpness:g}'] if sharpness != 1 else [])
