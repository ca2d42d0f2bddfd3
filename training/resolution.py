"""Image resolution from the data, as EG3D does: checked (or chosen) before any network is built.

A network spec fixes its resolution with `img_resolution` (the presets do: ffhq512 = 512, tiny = 64). Set it to
null (`--set nets.G.kwargs.img_resolution=null`) and it is taken from the data: the generator then gets the
matching super-resolution chain and a neural rendering resolution that fits it. A fixed resolution that differs
from the data's is refused with one message naming both and the `--set` keys that change it.
"""

import inspect

from training.config import ConfigError
from training.dataset import DatasetError, peek_resolution
from training.networks.superresolution import EG3D_SR_CONFIGS

# Super-resolution chain by output resolution: (SR input resolution, (block0, block1) channels). EG3D's for
# 128..512 (2X, 4X, 8XDC); 64 is ours: 2X from 32, with the 128 chain's channels.
SR_CHAINS = {64: (32, (128, 64)), **EG3D_SR_CONFIGS}

#----------------------------------------------------------------------------
# {set name: (resolution, path)} of the data sets that have a path.

def data_resolutions(cfg):
    out = {}
    for name, ds in cfg.data.items():
        if ds.get('path'):
            try:
                out[name] = (peek_resolution(ds['path'])[0], ds['path'])
            except DatasetError as e:
                raise ConfigError(f'data.{name}.path: {e}') from None
    return out

#----------------------------------------------------------------------------
# {net name: img_resolution or None (= from the data)} of the nets that have one (generators, discriminators).

def net_resolutions(cfg):
    from dnnlib.util import get_obj_by_name
    from training.training_loop import net_kwargs
    out = {}
    for name, spec in cfg.nets.items():
        kwargs = net_kwargs(spec)
        if 'img_resolution' in kwargs:
            out[name] = kwargs['img_resolution']
        else:
            default = inspect.signature(get_obj_by_name(spec['class'])).parameters.get('img_resolution')
            if default is not None:
                out[name] = default.default
    return out

#----------------------------------------------------------------------------
# Check the nets' resolution against the data and fill in the nets that take it from the data (in place).
# Returns a one-line summary for --dry-run and the log; raises ConfigError naming both resolutions and the keys.

def resolve_resolution(cfg):
    data = data_resolutions(cfg)
    nets = net_resolutions(cfg)
    fixed = {name: res for name, res in nets.items() if res is not None}
    free = [name for name, res in nets.items() if res is None]
    if len({res for res, _path in data.values()}) > 1:
        sets = ', '.join(f'data.{n} ({p}) is {r}x{r}' for n, (r, p) in sorted(data.items()))
        raise ConfigError(f'the data sets have different resolutions: {sets}; build them at one resolution')
    if not data:
        if free:
            raise ConfigError(f'nets {", ".join(free)} take their resolution from the data, but no data set has a path')
        return f'resolution: not checked (no data path given); the config fixes {_describe(fixed)}'
    (res, path), = {v[0]: v for v in data.values()}.values()
    where = ', '.join(f'data.{n}' for n in sorted(data)) + f' ({path})'
    has = f'{where} {"have" if len(data) > 1 else "has"} {res}x{res} images'
    wrong = [name for name, r in fixed.items() if r != res]
    if wrong:
        config_res = ', '.join(f'nets.{n} {fixed[n]}' for n in wrong)
        rebuild = f'rebuild the data at {fixed[wrong[0]]} (scripts/dataset_tool.py --resolution {fixed[wrong[0]]})'
        if res not in SR_CHAINS:
            raise ConfigError(f'{has} but the config fixes {config_res}, and {res} is not one of {sorted(SR_CHAINS)}; {rebuild}')
        keys = ' '.join(f'--set nets.{n}.kwargs.img_resolution=null' for n in wrong)
        raise ConfigError(f'{has} but the config fixes {config_res}; to train at {res}, add {keys} (the super-resolution '
                          f'chain and rendering resolution then follow the data), or {rebuild}')
    if free and res not in SR_CHAINS:
        raise ConfigError(f'{has}; nets {", ".join(free)} take their resolution from the data, which must be one of '
                          f'{sorted(SR_CHAINS)} (rebuild it with scripts/dataset_tool.py --resolution)')
    notes = [_from_data(cfg, name, res) for name in free]
    return f'resolution: {has}; ' + '; '.join([f'{_describe(fixed)}: matches'] * bool(fixed) + notes)

#----------------------------------------------------------------------------
# Fill in a net that takes its resolution from the data; returns what was chosen.

def _from_data(cfg, name, res):
    spec = cfg.nets[name]
    if spec.get('kwargs') is None:
        spec['kwargs'] = {}
    kwargs = spec['kwargs']
    kwargs['img_resolution'] = res
    if not spec['class'].endswith('TriPlaneGenerator'):
        return f'nets.{name} {res} (from the data)'
    from training.training_loop import net_kwargs
    sr_input, channels = SR_CHAINS[res]
    nr = min(net_kwargs(spec).get('neural_rendering_resolution', 64), sr_input)
    kwargs.update(sr_input_resolution=sr_input, sr_channels=list(channels), neural_rendering_resolution=nr)
    clipped = []
    if name == 'G':
        for key in ('nr_initial', 'nr_final'):
            if isinstance(cfg.loss.get(key), int) and cfg.loss[key] > sr_input:
                cfg.loss[key] = sr_input
                clipped.append(f'loss.{key} {sr_input}')
    return (f'nets.{name} {res} (from the data: super-resolution {sr_input} -> {res}, channels {list(channels)}, '
            f'neural rendering {nr}' + ''.join(f', {c}' for c in clipped) + ')')

# 'nets.G, nets.D 512' style description of fixed resolutions.
def _describe(fixed):
    by_res = {}
    for name, res in fixed.items():
        by_res.setdefault(res, []).append(f'nets.{name}')
    return '; '.join(f'{", ".join(names)} at {res}' for res, names in sorted(by_res.items())) or 'no resolution'
