"""Training configuration: YAML presets (configs/*.yaml) + CLI values + dotted overrides -> one validated EasyDict.

The top-level keys are exactly the keyword arguments of `training.training_loop.training_loop` (its signature is
the schema, with the defaults). The open sections are checked against the signature of whatever they build:
`data.SET` against `ImageLabelDataset`, `nets.NAME.kwargs` against the network class, `loss` against the loss
class, `augment` against `AugmentPipe`.
"""

import copy
import inspect
import json
import math
import os
import re

import yaml

from dnnlib.util import EasyDict, get_obj_by_name, to_plain
from training.augment import ADA_KEYS, AugmentPipe
from training.dataset import ImageLabelDataset
from training.networks import net_kwargs
from training.training_loop import training_loop

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'configs')
# Keys that may change when a run dir is resumed: the length, and the settings of the machine that do not change what
# is trained (CPU threads, data-loading processes: the sampler fixes the data order; the progress bar), so that a run
# can continue on another machine. A thread count does change float rounding, so bits then differ (README, numbers).
IGNORED_ON_RESUME = ('kimg', 'resume', 'num_threads', 'workers', 'progress')
LOOP_ARGS_NOT_IN_CONFIG = ('run_dir', 'snapshot_hooks')   # given by train.py, not by a config

#----------------------------------------------------------------------------

class ConfigError(ValueError):
    pass

#----------------------------------------------------------------------------
# Preset name ('face_tiny') or YAML path -> absolute path, with a clear error listing the known presets.

def preset_path(name_or_path):
    if os.path.isfile(name_or_path):
        return os.path.abspath(name_or_path)
    path = os.path.join(CONFIG_DIR, f'{name_or_path}.yaml')
    if os.path.isfile(path):
        return path
    known = sorted(f[:-5] for f in os.listdir(CONFIG_DIR) if f.endswith('.yaml')) if os.path.isdir(CONFIG_DIR) else []
    raise ConfigError(f'unknown config {name_or_path!r}: not a file and not a preset in {CONFIG_DIR} (known: {", ".join(known)})')

#----------------------------------------------------------------------------
# Recursive merge: dicts merge key by key, anything else in `over` replaces the value in `base`.

def merge(base, over):
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out

#----------------------------------------------------------------------------
# Read a preset and the chain of its `base:` presets (a base is looked up like a --config value).

def read_preset(name_or_path, _seen=()):
    path = preset_path(name_or_path)
    if path in _seen:
        raise ConfigError(f'config {path}: circular "base:" chain')
    try:
        with open(path, encoding='utf-8') as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise ConfigError(f'config {path}: invalid YAML: {e}') from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f'config {path}: top level must be a mapping, got {type(data).__name__}')
    base = data.pop('base', None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f'config {path}: "base" must be a preset name or path')
    if not os.path.isabs(base) and not os.path.isfile(base):
        sibling = os.path.join(os.path.dirname(path), base if base.endswith('.yaml') else f'{base}.yaml')
        base = sibling if os.path.isfile(sibling) else base
    return merge(read_preset(base, _seen + (path,)), data)

#----------------------------------------------------------------------------
# 'loss.r1_gamma=5' -> (['loss', 'r1_gamma'], 5); the value is parsed as YAML ('null', '[0, 0.99]', 'true').

def parse_override(text):
    key, sep, raw = text.partition('=')
    if not sep or not key.strip() or not re.fullmatch(r'[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*', key.strip()):
        raise ConfigError(f'bad override {text!r}: expected KEY.SUBKEY=VALUE')
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise ConfigError(f'bad override {text!r}: value is not valid YAML') from None
    return key.strip().split('.'), value

#----------------------------------------------------------------------------
# Set a dotted key, creating intermediate mappings; refuses to index into a non-mapping.

def set_dotted(cfg, keys, value):
    node = cfg
    for i, k in enumerate(keys[:-1]):
        if node.get(k) is None:
            node[k] = {}
        if not isinstance(node[k], dict):
            raise ConfigError(f'cannot set {".".join(keys)}: {".".join(keys[:i + 1])} is not a mapping')
        node = node[k]
    node[keys[-1]] = value

#----------------------------------------------------------------------------
# Keyword arguments (name -> default, inspect.Parameter.empty when required) of a callable, and whether it takes **kw.

def signature_defaults(fn, skip=()):
    params = inspect.signature(fn).parameters
    out = {n: p.default for n, p in params.items()
           if n not in skip and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return out, any(p.kind == p.VAR_KEYWORD for p in params.values())

#----------------------------------------------------------------------------
# Check a value against the type of its default (int for float is fine; bool is never a number).

def check_type(name, value, default):
    if default is None or default is inspect.Parameter.empty or value is None:
        return
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and isinstance(default, int) and not isinstance(value, int) and not float(value).is_integer():
            ok = False
        if ok and not math.isfinite(value):
            raise ConfigError(f'{name}: must be finite, got {value!r}')
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple))
    elif isinstance(default, dict):
        ok = isinstance(value, dict)
    else:
        ok = True
    if not ok:
        raise ConfigError(f'{name}: expected {type(default).__name__} like the default {default!r}, got {value!r}')

#----------------------------------------------------------------------------
# Check keys of `section` against the signature of `fn` (minus `skip`, plus `extra`); returns nothing, raises by name.

def check_kwargs(prefix, section, fn, skip=(), extra=()):
    if not isinstance(section, dict):
        raise ConfigError(f'{prefix}: expected a mapping, got {section!r}')
    defaults, var_kw = signature_defaults(fn, skip)
    for key, value in section.items():
        if key in extra:
            continue
        if key not in defaults:
            if var_kw:
                continue
            raise ConfigError(f'unknown key {prefix}.{key} (known: {", ".join(sorted(list(defaults) + list(extra)))})')
        check_type(f'{prefix}.{key}', value, defaults[key])

#----------------------------------------------------------------------------

def _require(cond, msg):
    if not cond:
        raise ConfigError(msg)

def _positive(cfg, *keys, allow_zero=False):
    for k in keys:
        v = cfg[k]
        if v is not None:
            _require(v > 0 or (allow_zero and v == 0), f'{k}: must be {"non-negative" if allow_zero else "positive"}, got {v!r}')

def _import(prefix, name):
    try:
        return get_obj_by_name(name)
    except Exception as e:
        raise ConfigError(f'{prefix}: cannot import {name!r}: {e}') from None

#----------------------------------------------------------------------------
# Validate a merged config against the loop signature and the classes it names; returns a complete EasyDict.

def validate(raw):
    defaults, _ = signature_defaults(training_loop, skip=LOOP_ARGS_NOT_IN_CONFIG)
    for key in raw:
        if key not in defaults:
            raise ConfigError(f'unknown key {key!r} (known: {", ".join(sorted(defaults))})')
    cfg = to_easydict(merge({k: v for k, v in defaults.items() if v is not inspect.Parameter.empty}, raw))
    for key, value in cfg.items():
        check_type(key, value, defaults[key])

    # Scalars.
    _positive(cfg, 'kimg', 'batch', 'batch_gpu', 'tick_kimg', 'snap_kimg', 'snapshot_keep', 'max_nonfinite_in_a_row', 'num_threads')
    _positive(cfg, 'ema_kimg', 'ema_rampup', 'workers', allow_zero=True)
    _require(cfg.batch_gpu is None or cfg.batch % cfg.batch_gpu == 0,
             f'batch: {cfg.batch} is not divisible by batch_gpu {cfg.batch_gpu}')
    _require(isinstance(cfg.grid_size, (list, tuple)) and len(cfg.grid_size) == 2 and all(isinstance(v, int) and v > 0 for v in cfg.grid_size),
             f'grid_size: expected [columns, rows] of positive ints, got {cfg.grid_size!r}')

    # Data sets.
    _require(isinstance(cfg.data, dict) and cfg.data, 'data: expected a mapping of named sets, e.g. {main: {path: ...}}')
    for name, ds in cfg.data.items():
        check_kwargs(f'data.{name}', ds, ImageLabelDataset)

    # Networks, initialisation, optimisers.
    _require(isinstance(cfg.nets, dict) and cfg.nets, 'nets: expected a mapping of named networks, e.g. {G: {...}, D: {...}}')
    _require('G' in cfg.nets and 'G_ema' not in cfg.nets, 'nets: must contain G and must not list G_ema (always a copy of G)')
    for name, spec in cfg.nets.items():
        _require(isinstance(spec, dict), f'nets.{name}: expected a mapping with class/preset/kwargs')
        for key in spec:
            _require(key in ('class', 'preset', 'kwargs'), f'unknown key nets.{name}.{key} (known: class, kwargs, preset)')
        _require(isinstance(spec.get('class'), str), f'nets.{name}.class: expected a dotted class name')
        cls = _import(f'nets.{name}.class', spec['class'])
        check_kwargs(f'nets.{name}.kwargs', spec.get('kwargs') or {}, cls)
        if spec.get('preset') is not None:
            try:
                net_kwargs(spec)
            except ValueError as e:
                raise ConfigError(f'nets.{name}.preset: {e}') from None
    for name, src in cfg.init.items():
        _require(name in cfg.nets or name == 'G_ema', f'init.{name}: no such network (nets: {", ".join(cfg.nets)}, G_ema)')
        _require(isinstance(src, str) and re.fullmatch(r'(init|teacher):\w+', src or ''),
                 f'init.{name}: expected "init:KEY" or "teacher:KEY", got {src!r}')
    for name, opt in cfg.optim.items():
        _require(name in cfg.nets, f'optim.{name}: no such network (nets: {", ".join(cfg.nets)})')
        _require(isinstance(opt, dict), f'optim.{name}: expected a mapping with lr, betas, eps')
        for key in opt:
            _require(key in ('lr', 'betas', 'eps'), f'unknown key optim.{name}.{key} (known: betas, eps, lr)')
        lr, betas, eps = opt.get('lr'), opt.get('betas', [0, 0.99]), opt.get('eps', 1e-8)
        _require(isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0, f'optim.{name}.lr: must be a positive number, got {lr!r}')
        _require(isinstance(betas, (list, tuple)) and len(betas) == 2 and all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas),
                 f'optim.{name}.betas: expected two numbers in [0, 1), got {betas!r}')
        _require(isinstance(eps, (int, float)) and eps > 0, f'optim.{name}.eps: must be positive, got {eps!r}')

    # Loss and augmentation.
    _require(isinstance(cfg.loss, dict) and isinstance(cfg.loss.get('class'), str), 'loss.class: expected a dotted class name')
    loss_cls = _import('loss.class', cfg.loss['class'])
    check_kwargs('loss', cfg.loss, loss_cls, skip=('self', 'nets', 'frozen', 'label_pools', 'augment_pipe'), extra=('class',))
    check_kwargs('augment', cfg.augment, AugmentPipe, extra=ADA_KEYS)
    aug = cfg.augment
    _require(aug.get('target') is None or 0 < aug['target'] < 1, f'augment.target: must be in (0, 1), got {aug.get("target")!r}')
    _require(0 <= aug.get('p', 0) <= 1, f'augment.p: must be in [0, 1], got {aug.get("p")!r}')
    return to_easydict(cfg)

#----------------------------------------------------------------------------

def to_easydict(obj):
    if isinstance(obj, dict):
        return EasyDict({k: to_easydict(v) for k, v in obj.items()})
    if isinstance(obj, (list, tuple)):
        return [to_easydict(v) for v in obj]
    return obj


#----------------------------------------------------------------------------
# The whole pipeline: preset chain -> CLI values (dotted keys, None = not given) -> --set overrides -> validate.

def load_config(name_or_path, overrides=(), cli=None):
    cfg = read_preset(name_or_path)
    for key, value in (cli or {}).items():
        if value is not None:
            set_dotted(cfg, key.split('.'), value)
    for text in overrides:
        keys, value = parse_override(text)
        set_dotted(cfg, keys, value)
    return validate(cfg)

#----------------------------------------------------------------------------
# Dotted paths where two configs differ (ignoring `ignore`), e.g. ['loss.r1_gamma: 1 -> 5'].

def diff_configs(old, new, ignore=IGNORED_ON_RESUME, prefix=''):
    out = []
    for key in sorted(set(old) | set(new)):
        name = f'{prefix}{key}'
        if not prefix and key in ignore:
            continue
        a, b = old.get(key, '<missing>'), new.get(key, '<missing>')
        if isinstance(a, dict) and isinstance(b, dict):
            out += diff_configs(a, b, ignore, prefix=f'{name}.')
        elif to_plain(a) != to_plain(b):
            out.append(f'{name}: {a!r} -> {b!r}')
    return out

#----------------------------------------------------------------------------

def dump_yaml(cfg):
    return yaml.safe_dump(to_plain(cfg), sort_keys=False, default_flow_style=None)

# Write config.yaml + config.json into the run dir (atomically, so a crash never leaves half a file).
def save_config(cfg, run_dir):
    for name, text in (('config.yaml', dump_yaml(cfg)), ('config.json', json.dumps(to_plain(cfg), indent=2))):
        tmp = os.path.join(run_dir, f'.{name}.tmp')
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write(text)
        os.replace(tmp, os.path.join(run_dir, name))
