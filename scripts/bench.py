"""Benchmarks: one table of named timings (and a JSON file with --json).

Rows: the custom ops (reference, and CUDA on a GPU), generator inference at tiny size and at 512^2 (batch 1 and
8), and one training step of each stage (face, head_ft, head3d; tiny on CPU, the full ffhq512 networks on a GPU)
with s/kimg and peak memory. Each row is a function `bench_<name>(ctx) -> dict(what, ms, per_s, unit[, batch])`
listed in BENCHMARKS. The device is autodetected (CUDA if present).

    python scripts/bench.py                 # CPU: tiny sizes only
    python scripts/bench.py --full          # include the full-size rows on CPU (slow)
    python scripts/bench.py --json out.json --only g_tiny,head3d_tiny
"""

import json

import click
import torch

# The bench_* modules are this script's neighbours in scripts/ (Python puts a script's folder first on sys.path).
from bench_head3d import bench_head3d_step_full, bench_head3d_step_tiny
from bench_timing import timeit
from bench_train import (bench_face_step_full, bench_face_step_tiny, bench_head_ft_step_full, bench_head_ft_step_tiny,
                         bench_train_step_full, bench_train_step_tiny)
from torch_utils.ops import bias_act, upfirdn2d
from training import cameras
from training.networks import PRESETS, TriPlaneGenerator

#----------------------------------------------------------------------------
# Generator inference (z, c -> image) for a preset at a batch size.

def _bench_generator(ctx, preset, batch, nrr=None):
    device = ctx['device']
    torch.manual_seed(0)
    G = TriPlaneGenerator(**PRESETS[preset]['G']).eval().requires_grad_(False).to(device)
    z = torch.randn(batch, G.z_dim, device=device)
    c = cameras.make_label(torch.zeros(batch), torch.zeros(batch)).to(device)
    with torch.no_grad():
        ms = timeit(lambda: G(z, c, neural_rendering_resolution=nrr), device, repeat=ctx['repeat'])
    res = G.neural_rendering_resolution if nrr is None else nrr
    return dict(what=f'G forward {preset} {G.img_resolution}^2, nr {res}, batch {batch}', ms=ms,
                per_s=batch * 1e3 / ms, unit='img/s')

def bench_g_tiny(ctx):
    return _bench_generator(ctx, 'tiny', batch=4)

def bench_g_full(ctx):
    return _bench_generator(ctx, 'ffhq512', batch=1, nrr=128 if ctx['device'].type == 'cuda' else 64)

# Tiny generator forward + backward (the CPU training-step budget).
def bench_g_tiny_train(ctx):
    device = ctx['device']
    torch.manual_seed(0)
    G = TriPlaneGenerator(**PRESETS['tiny']['G']).train().to(device)
    z = torch.randn(4, G.z_dim, device=device)
    c = cameras.make_label(torch.zeros(4), torch.zeros(4)).to(device)
    def step():
        G.zero_grad(set_to_none=True)
        G(z, c, noise_mode='random')['image'].square().mean().backward()
    ms = timeit(step, device, repeat=ctx['repeat'])
    return dict(what='G forward+backward tiny 64^2, nr 32, batch 4', ms=ms, per_s=4e3 / ms, unit='img/s')

#----------------------------------------------------------------------------
# Custom ops: the reference path, and the CUDA kernel where there is a GPU (forward + backward).

def _bench_op(ctx, op, impl):
    device = ctx['device']
    big = device.type == 'cuda'
    torch.manual_seed(0)
    if op == 'bias_act':
        x = torch.randn([8, 512, 64, 64] if big else [4, 128, 32, 32], device=device, requires_grad=True)
        b = torch.randn(x.shape[1], device=device, requires_grad=True)
        fn = lambda: bias_act.bias_act(x, b, act='lrelu', impl=impl).sum().backward()
        what = f'bias_act lrelu {list(x.shape)} fwd+bwd, {impl}'
    else:
        x = torch.randn([8, 256, 128, 128] if big else [4, 64, 64, 64], device=device, requires_grad=True)
        f = upfirdn2d.setup_filter([1, 3, 3, 1], device=device)
        fn = lambda: upfirdn2d.upsample2d(x, f, up=2, impl=impl).sum().backward()
        what = f'upsample2d x2 [1,3,3,1] {list(x.shape)} fwd+bwd, {impl}'
    ms = timeit(fn, device, repeat=ctx['repeat'])
    return dict(what=what, ms=ms, per_s=1e3 / ms, unit='calls/s')

def bench_op_bias_act_ref(ctx):
    return _bench_op(ctx, 'bias_act', 'ref')

def bench_op_bias_act_cuda(ctx):
    return _bench_op(ctx, 'bias_act', 'cuda')

def bench_op_upfirdn2d_ref(ctx):
    return _bench_op(ctx, 'upfirdn2d', 'ref')

def bench_op_upfirdn2d_cuda(ctx):
    return _bench_op(ctx, 'upfirdn2d', 'cuda')

def bench_g_full_b8(ctx):
    return _bench_generator(ctx, 'ffhq512', batch=8, nrr=128 if ctx['device'].type == 'cuda' else 64)

#----------------------------------------------------------------------------
# The table: (name, function, where it runs: 'any', 'cuda' (GPU only), 'full' (GPU, or CPU with --full)).
# Training rows give ms per step and s/kimg; head_ft vs head3d compares the steps that run every iteration.

BENCHMARKS = [
    ('op_bias_act_ref',   bench_op_bias_act_ref,   'any'),
    ('op_bias_act_cuda',  bench_op_bias_act_cuda,  'cuda'),
    ('op_upfirdn2d_ref',  bench_op_upfirdn2d_ref,  'any'),
    ('op_upfirdn2d_cuda', bench_op_upfirdn2d_cuda, 'cuda'),
    ('g_tiny',            bench_g_tiny,            'any'),
    ('g_tiny_train',      bench_g_tiny_train,      'any'),
    ('g_full',            bench_g_full,            'full'),
    ('g_full_b8',         bench_g_full_b8,         'full'),
    ('face_tiny',         bench_face_step_tiny,    'any'),
    ('head_ft_tiny',      bench_head_ft_step_tiny, 'any'),
    ('head3d_tiny',       bench_head3d_step_tiny,  'any'),
    ('train_all_tiny',    bench_train_step_tiny,   'any'),
    ('face_full',         bench_face_step_full,    'full'),
    ('head_ft_full',      bench_head_ft_step_full, 'full'),
    ('head3d_full',       bench_head3d_step_full,  'full'),
    ('train_all_full',    bench_train_step_full,   'full'),
]

# Peak memory so far: CUDA allocator peak (reset per row), else the process's peak resident set.
def _peak_mem_gb(device):
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2**30
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

#----------------------------------------------------------------------------

@click.command()
@click.option('--full',    help='Also run the full-size rows on CPU (always on with CUDA)', is_flag=True)
@click.option('--only',    help='Comma-separated benchmark names', metavar='NAMES', default=None)
@click.option('--json',    'json_path', help='Write the results as JSON here', metavar='PATH', type=click.Path(dir_okay=False))
@click.option('--repeat',  help='Timed repetitions per row (median reported)', type=click.IntRange(min=1), default=3, show_default=True)
def main(full, only, json_path, repeat):
    """Time the ops, the generator and one training step of every stage; print one table (and JSON)."""
    if json_path is not None:
        from dnnlib.util import check_output_path
        check_output_path(json_path, '--json', kind='file')
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    ctx = dict(device=device, repeat=repeat)
    known = {n for n, _, _ in BENCHMARKS}
    names = None if only is None else set(only.split(','))
    if names is not None and names - known:
        raise click.BadParameter(f'unknown benchmark(s): {", ".join(sorted(names - known))}', param_hint='--only')
    device_name = torch.cuda.get_device_name(device) if device.type == 'cuda' else f'cpu ({torch.get_num_threads()} threads)'
    print(f'device: {device_name}, torch {torch.__version__}')
    print(f'{"name":<18} {"what":<62} {"ms":>10} {"rate":>16} {"s/kimg":>8} {"peak GB":>8}')
    rows = []
    for name, fn, where in BENCHMARKS:
        if names is not None and name not in names:
            continue
        if where == 'cuda' and device.type != 'cuda':
            continue
        if where == 'full' and device.type == 'cpu' and not full and names is None:
            continue
        if device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(device)
        row = dict(name=name, **fn(ctx))
        row['peak_mem_gb'] = _peak_mem_gb(device)
        if 'batch' in row:
            row['s_per_kimg'] = row['ms'] / row['batch']       # (ms / step) / (images / step) * 1000 images / 1000
        rows.append(row)
        kimg = f'{row["s_per_kimg"]:8.1f}' if 'batch' in row else f'{"-":>8}'
        print(f'{name:<18} {row["what"]:<62} {row["ms"]:>10.1f} {row["per_s"]:>9.2f} {row["unit"]:<6} {kimg} '
              f'{row["peak_mem_gb"]:>8.2f}', flush=True)
    by_name = {r['name']: r for r in rows}
    for size in ('tiny', 'full'):
        if f'head3d_{size}' in by_name and f'head_ft_{size}' in by_name:
            ratio = by_name[f'head3d_{size}']['ms'] / by_name[f'head_ft_{size}']['ms']
            print(f'head3d step / head_ft step ({size}): {ratio:.2f}x')
    result = dict(device=device_name, torch=torch.__version__, rows=rows)
    if json_path:
        with open(json_path, 'w') as f:
            json.dump(result, f, indent=2)
    print(json.dumps(result))

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()
