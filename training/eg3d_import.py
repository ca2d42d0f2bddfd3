"""Import official EG3D network pickles (e.g. ffhq512-128.pkl) without executing anything in them.

EG3D pickles its networks through torch_utils.persistence: each network is a call to
`_reconstruct_persistent_obj(meta)` with meta = dict(type, version, module_src, class_name, state),
and loading normally exec()s `module_src`. Here a restricted unpickler allows only tensor/storage
rebuilding and plain containers, turns the persistence hook into a function that returns `meta` as
data, and turns other classes of EG3D's own packages into inert placeholders that only hold their
pickled state. The records' init kwargs and module trees (_parameters/_buffers/_modules) are then
mapped onto training.networks.TriPlaneGenerator / DualDiscriminator (plane_axes='eg3d')."""

import collections
import io
import pickle
import numpy as np
import torch
from torch_utils.ops import upfirdn2d
from training.networks import DualDiscriminator, TriPlaneGenerator

#----------------------------------------------------------------------------

class EG3DImportError(RuntimeError):
    """An EG3D pickle that cannot be read safely or does not map onto our networks."""

#----------------------------------------------------------------------------
# Inert stand-ins produced by the unpickler.

class OpaqueObject:
    """Placeholder for an instance of a non-persistent class of EG3D's packages: holds its state only."""
    source = '?'
    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)
    def __setstate__(self, state):
        self.__dict__['pickled_state'] = state
    def __repr__(self):
        return f'<opaque {self.source}>'

class _DictData(dict):
    """dnnlib.util.EasyDict as a plain dict (no attribute access, no code)."""

# The persistence hook, defused: returns the record as data. module_src is never executed.
def _persistent_record(meta):
    if not isinstance(meta, dict) or meta.get('type') != 'class':
        raise EG3DImportError(f'unexpected persistence record: {type(meta).__name__}')
    return dict(meta)

# torch.storage._load_from_bytes, but through the weights-only loader.
def _storage_from_bytes(data):
    return torch.load(io.BytesIO(data), map_location='cpu', weights_only=True)

def _copyreg_reconstructor(cls, base, state):
    if not (isinstance(cls, type) and issubclass(cls, (OpaqueObject, _DictData))):
        raise EG3DImportError(f'refusing to reconstruct {cls!r}')
    return cls.__new__(cls)

#----------------------------------------------------------------------------
# Restricted unpickler: a whitelist of callables, placeholders for EG3D's own classes, nothing else.

_ALLOWED = {
    ('torch_utils.persistence', '_reconstruct_persistent_obj'): _persistent_record,
    ('torch._utils', '_rebuild_tensor_v2'): torch._utils._rebuild_tensor_v2,
    ('torch._utils', '_rebuild_parameter'): torch._utils._rebuild_parameter,
    ('torch._utils', '_rebuild_parameter_with_state'): torch._utils._rebuild_parameter_with_state,
    ('torch.storage', '_load_from_bytes'): _storage_from_bytes,
    ('torch', 'Size'): torch.Size,
    ('collections', 'OrderedDict'): collections.OrderedDict,
    ('builtins', 'set'): set,
    ('builtins', 'frozenset'): frozenset,
    ('copyreg', '_reconstructor'): _copyreg_reconstructor,
    ('dnnlib.util', 'EasyDict'): _DictData,
    ('dnnlib', 'EasyDict'): _DictData,
    ('numpy', 'dtype'): np.dtype,
}
_np_scalar = np._core.multiarray.scalar if hasattr(np, '_core') else np.core.multiarray.scalar
_ALLOWED[('numpy.core.multiarray', 'scalar')] = _np_scalar     # pickles written with numpy 1.x
_ALLOWED[('numpy._core.multiarray', 'scalar')] = _np_scalar    # and with numpy 2.x

# Packages whose classes become OpaqueObject placeholders (EG3D's non-persistent modules, torch layers).
_OPAQUE_PREFIXES = ('training.', 'torch.nn.modules.')

class RestrictedUnpickler(pickle.Unpickler):
    _opaque_classes = {}

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module.startswith(_OPAQUE_PREFIXES) and name.isidentifier():
            key = f'{module}.{name}'
            if key not in self._opaque_classes:
                self._opaque_classes[key] = type(name, (OpaqueObject,), {'source': key})
            return self._opaque_classes[key]
        raise EG3DImportError(f'refusing to load {module}.{name}: not an EG3D network component')

    def persistent_load(self, pid):
        raise EG3DImportError('unexpected persistent id in pickle (not an EG3D network pickle)')

#----------------------------------------------------------------------------
# Read an EG3D pickle as data. Returns the top-level dict with records in place of networks.

def read_eg3d_pickle(path_or_file):
    try:
        if hasattr(path_or_file, 'read'):
            return RestrictedUnpickler(path_or_file).load()
        with open(path_or_file, 'rb') as f:
            return RestrictedUnpickler(f).load()
    except EG3DImportError:
        raise
    except FileNotFoundError:
        raise EG3DImportError(f'EG3D pickle not found: {path_or_file}') from None
    except Exception as e:
        raise EG3DImportError(f'{path_or_file}: not a readable EG3D network pickle: {type(e).__name__}: {e}') from e

#----------------------------------------------------------------------------
# Pickled module state of a record or placeholder, and its tensors as a flat state dict.

def _module_state(node):
    if isinstance(node, dict) and 'class_name' in node and 'state' in node:
        return node['state']
    if isinstance(node, OpaqueObject):
        return node.__dict__.get('pickled_state', {})
    raise EG3DImportError(f'expected a network module, found {type(node).__name__}')

def flatten_module_state(node, prefix=''):
    state = _module_state(node)
    out = {}
    non_persistent = state.get('_non_persistent_buffers_set', set())
    for name, t in (state.get('_parameters') or {}).items():
        if t is not None:
            out[prefix + name] = t.detach()
    for name, t in (state.get('_buffers') or {}).items():
        if t is not None and name not in non_persistent:
            out[prefix + name] = t
    for name, child in (state.get('_modules') or {}).items():
        if child is not None:
            out.update(flatten_module_state(child, prefix + name + '.'))
    return out

# Containers of the pickle as plain Python data (EasyDict -> dict, numpy scalars -> numbers).
def pickle_data(x):
    if isinstance(x, dict):
        return {str(k): pickle_data(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [pickle_data(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    raise EG3DImportError(f'unexpected value of type {type(x).__name__} in init kwargs')

def _init_kwargs(record, positional):
    state = _module_state(record)
    kwargs = pickle_data(dict(state.get('_init_kwargs') or {}))
    for name, value in zip(positional, state.get('_init_args') or ()):
        kwargs[name] = pickle_data(value)
    return kwargs

#----------------------------------------------------------------------------
# EG3D's super-resolution classes as (input_resolution, block channels) of our SuperResolution.

_EG3D_SR = {
    'SuperresolutionHybrid8XDC': (128, [256, 128]),
    'SuperresolutionHybrid8X':   (128, [128, 64]),
    'SuperresolutionHybrid4X':   (128, [128, 64]),
    'SuperresolutionHybrid2X':   (64, [128, 64]),
}

# rendering_kwargs entries that configure training or the viewers, not the network.
_RENDERING_NOT_NETWORK = {'image_resolution', 'gpc_reg_prob', 'gpc_reg_fade_kimg', 'density_reg', 'density_reg_every',
                          'density_reg_p_dist', 'reg_type', 'avg_camera_radius', 'avg_camera_pivot', 'superresolution_module',
                          'c_disc_bp_conditioning_zero'}

# The backbone's output resolution: 256 in EG3D (hard-coded there), read from the weights.
def _plane_resolution(record):
    prefix = 'backbone.synthesis.b'
    res = [int(k[len(prefix):].split('.')[0]) for k in flatten_module_state(record) if k.startswith(prefix)]
    if not res:
        raise EG3DImportError('no backbone.synthesis weights in the generator record')
    return max(res)

# Our TriPlaneGenerator kwargs from an EG3D TriPlaneGenerator record; returns (kwargs, unused keys).
def generator_kwargs(record):
    ik = _init_kwargs(record, ['z_dim', 'c_dim', 'w_dim', 'img_resolution', 'img_channels'])
    state = _module_state(record)
    rk = dict(ik.get('rendering_kwargs') or pickle_data(state.get('rendering_kwargs') or {}))
    sr_name = str(rk.get('superresolution_module', '')).rsplit('.', 1)[-1]
    if sr_name not in _EG3D_SR:
        raise EG3DImportError(f'unsupported super-resolution module {rk.get("superresolution_module")!r}')
    for key in ('ray_start', 'ray_end'):
        if not isinstance(rk.get(key), (int, float)):
            raise EG3DImportError(f'unsupported rendering_kwargs[{key!r}] = {rk.get(key)!r} (need a number)')
    sr_kwargs = dict(ik.get('sr_kwargs') or {})
    fused = ik.get('fused_modconv_default', True)           # SynthesisBlock's default when not given
    unused = []
    if sr_kwargs.get('fused_modconv_default', True) != fused:
        unused.append('sr_kwargs.fused_modconv_default (differs from the backbone; backbone value used)')
    sr_input, sr_channels = _EG3D_SR[sr_name]
    kwargs = dict(
        z_dim=ik['z_dim'], c_dim=ik['c_dim'], w_dim=ik['w_dim'], img_resolution=ik['img_resolution'],
        img_channels=ik['img_channels'], plane_resolution=_plane_resolution(record), plane_channels=32,
        channel_base=ik.get('channel_base', 32768), channel_max=ik.get('channel_max', 512),
        num_fp16_res=ik.get('num_fp16_res', 4), conv_clamp=ik.get('conv_clamp', 256),
        fused_modconv_default=fused, mapping_kwargs=dict(ik.get('mapping_kwargs') or {}),
        sr_input_resolution=sr_input, sr_channels=sr_channels, sr_num_fp16_res=ik.get('sr_num_fp16_res', 0),
        sr_antialias=rk.get('sr_antialias', True), sr_noise_mode=rk.get('superresolution_noise_mode', 'none'),
        decoder_lr_mul=rk.get('decoder_lr_mul', 1), c_gen_conditioning_zero=bool(rk.get('c_gen_conditioning_zero', False)),
        c_scale=rk.get('c_scale', 0),                        # EG3D's mapping reads c_scale with default 0
        rendering_kwargs=dict(ray_start=rk['ray_start'], ray_end=rk['ray_end'], box_warp=rk.get('box_warp', 1),
                              depth_resolution=rk['depth_resolution'],
                              depth_resolution_importance=rk['depth_resolution_importance'],
                              white_back=bool(rk.get('white_back', False)), clamp_mode=rk.get('clamp_mode', 'softplus'),
                              density_shift=-1.0,            # hard-coded in EG3D's MipRayMarcher2
                              disparity_space_sampling=bool(rk.get('disparity_space_sampling', False))),
        plane_axes='eg3d',
        neural_rendering_resolution=int(state.get('neural_rendering_resolution', 64)),
        avg_camera_radius=float(rk.get('avg_camera_radius', 2.7)),
        avg_camera_pivot=[float(v) for v in rk.get('avg_camera_pivot', [0, 0, 0.2])],
    )
    known = {'z_dim', 'c_dim', 'w_dim', 'img_resolution', 'img_channels', 'channel_base', 'channel_max', 'num_fp16_res',
             'conv_clamp', 'fused_modconv_default', 'mapping_kwargs', 'sr_num_fp16_res', 'sr_kwargs', 'rendering_kwargs'}
    unused += sorted(f'init_kwargs.{k}' for k in set(ik) - known)
    unused += sorted(f'rendering_kwargs.{k}' for k in set(rk) - _RENDERING_NOT_NETWORK - {
        'ray_start', 'ray_end', 'box_warp', 'depth_resolution', 'depth_resolution_importance', 'white_back',
        'clamp_mode', 'disparity_space_sampling', 'sr_antialias', 'superresolution_noise_mode', 'decoder_lr_mul',
        'c_gen_conditioning_zero', 'c_scale'})
    unused += [k for k in sorted(set(sr_kwargs) - {'fused_modconv_default', 'channel_base', 'channel_max'})]
    return kwargs, unused

# Our DualDiscriminator kwargs from an EG3D DualDiscriminator record; returns (kwargs, unused keys).
def discriminator_kwargs(record):
    ik = _init_kwargs(record, ['c_dim', 'img_resolution', 'img_channels'])
    if ik.get('architecture', 'resnet') != 'resnet':
        raise EG3DImportError(f'unsupported discriminator architecture {ik["architecture"]!r}')
    block_kwargs = dict(ik.get('block_kwargs') or {})
    unused = [f'block_kwargs.{k}' for k in sorted(set(block_kwargs) - {'activation', 'resample_filter', 'freeze_layers'})]
    block_kwargs = {k: v for k, v in block_kwargs.items() if k in ('activation', 'resample_filter', 'freeze_layers')}
    kwargs = dict(
        c_dim=ik['c_dim'], img_resolution=ik['img_resolution'], img_channels=ik['img_channels'],
        channel_base=ik.get('channel_base', 32768), channel_max=ik.get('channel_max', 512),
        num_fp16_res=ik.get('num_fp16_res', 4), conv_clamp=ik.get('conv_clamp', 256), cmap_dim=ik.get('cmap_dim'),
        disc_c_noise=ik.get('disc_c_noise', 0), block_kwargs=block_kwargs,
        mapping_kwargs=dict(ik.get('mapping_kwargs') or {}), epilogue_kwargs=dict(ik.get('epilogue_kwargs') or {}),
    )
    known = set(kwargs) | {'architecture'}
    unused += sorted(f'init_kwargs.{k}' for k in set(ik) - known)
    return kwargs, unused

#----------------------------------------------------------------------------
# Copy a flat EG3D state dict into `net`. Constant [1,3,3,1] filter buffers that exist on one side only
# (EG3D keeps a few unused ones) are ignored; everything else must match by name and shape.

def load_state(net, src):
    dst = net.state_dict()
    standard_filter = upfirdn2d.setup_filter([1, 3, 3, 1])
    def is_constant_filter(k, t):
        return k.endswith('resample_filter') and t.shape == standard_filter.shape and torch.equal(t.cpu().float(), standard_filter)
    report = dict(mapped=0, unmapped_src=[], missing_dst=[], shape_mismatch=[], ignored_constants=[])
    with torch.no_grad():
        for k, t in src.items():
            if k not in dst:
                (report['ignored_constants'] if is_constant_filter(k, t) else report['unmapped_src']).append(k)
            elif tuple(t.shape) != tuple(dst[k].shape):
                report['shape_mismatch'].append(f'{k}: {list(t.shape)} vs {list(dst[k].shape)}')
            else:
                dst[k].copy_(t.to(dst[k].dtype))
                report['mapped'] += 1
        for k, t in dst.items():
            if k not in src:
                (report['ignored_constants'] if is_constant_filter(k, t) else report['missing_dst']).append(k)
    return report

#----------------------------------------------------------------------------
# EG3D's training loop registers this buffer on G (and so on G_ema): the per-dimension std of the training set's
# camera labels, kept for its metrics, not a weight of the network. The import records its values in the report.

LABEL_STD_BUFFER = 'dataset_label_std'

#----------------------------------------------------------------------------
# Convert an EG3D network pickle. Returns (nets {G, D, G_ema present in the pickle}, report,
# training_set_kwargs as plain data or None). strict: fail unless every tensor maps both ways.

def import_eg3d(path_or_file, strict=True):
    data = read_eg3d_pickle(path_or_file)
    if not isinstance(data, dict) or not any(k in data for k in ('G', 'D', 'G_ema')):
        raise EG3DImportError(f'{path_or_file}: no G, D or G_ema in the pickle (not an EG3D network pickle)')
    builders = dict(TriPlaneGenerator=(TriPlaneGenerator, generator_kwargs),
                    DualDiscriminator=(DualDiscriminator, discriminator_kwargs))
    nets, report = {}, {}
    for name in ('G', 'D', 'G_ema'):
        record = data.get(name)
        if record is None:
            continue
        if not (isinstance(record, dict) and 'class_name' in record):
            raise EG3DImportError(f'{name}: not a persistent EG3D network record')
        if record['class_name'] not in builders:
            raise EG3DImportError(f'{name}: unsupported network class {record["class_name"]!r}')
        cls, to_kwargs = builders[record['class_name']]
        kwargs, unused = to_kwargs(record)
        net = cls(**kwargs).eval().requires_grad_(False)
        state = flatten_module_state(record)
        label_std = state.pop(LABEL_STD_BUFFER, None)
        rep = load_state(net, state)
        rep.update(eg3d_class=record['class_name'], unused_kwargs=unused)
        if label_std is not None:       # recorded, not a weight: EG3D's loop registers it on every G it saves
            rep[LABEL_STD_BUFFER] = [float(v) for v in label_std.flatten()]
        if strict and (rep['unmapped_src'] or rep['missing_dst'] or rep['shape_mismatch']):
            raise EG3DImportError(f'{name}: weights do not map onto {cls.__name__}: ' + '; '.join(
                f'{k}: {", ".join(rep[k])}' for k in ('unmapped_src', 'missing_dst', 'shape_mismatch') if rep[k]))
        nets[name] = net
        report[name] = rep
    ts = data.get('training_set_kwargs')
    try:
        ts = pickle_data(ts) if ts is not None else None
    except EG3DImportError:
        ts = None
    return nets, report, ts

#----------------------------------------------------------------------------
