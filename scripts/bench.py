"""Benchmarks: one table of named timings (and a JSON file with --json).

Each benchmark is a function `bench_<name>(ctx) -> dict(what=..., ms=..., per_s=..., note=...)` listed in
BENCHMARKS; add a row by writing a function and appending it. The device is autodetected (CUDA if present).

    python scripts/bench.py                 # CPU: tiny sizes only
    python scripts/bench.py --full          # include the full 512^2 generator (slow on CPU)
    python scripts/bench.py --json out.json --only g_tiny
"""

import json
import os
import sys
import time
import click
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from training import cameras                       # noqa: E402
from training.networks import PRESETS, TriPlaneGenerator  # noqa: E402

#----------------------------------------------------------------------------
# Median wall time of fn() in milliseconds after warmup, synchronising CUDA around each call.

def timeit(fn, device, warmup=1, repeat=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return sorted(times)[len(times) // 2]

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

# (name, function, needs --full on CPU)
BENCHMARKS = [
    ('g_tiny',       bench_g_tiny,       False),
    ('g_tiny_train', bench_g_tiny_train, False),
    ('g_full',       bench_g_full,       True),
]

#----------------------------------------------------------------------------

@click.command()
@click.option('--full',    help='Also run the full-size rows on CPU (always on with CUDA)', is_flag=True)
@click.option('--only',    help='Comma-separated benchmark names', metavar='NAMES', default=None)
@click.option('--json',    'json_path', help='Write the results as JSON here', metavar='PATH', type=click.Path(dir_okay=False))
@click.option('--repeat',  help='Timed repetitions per row (median reported)', type=click.IntRange(min=1), default=3, show_default=True)
def main(full, only, json_path, repeat):
    """Time the generator (and rows added by other parts) and print one table."""
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    ctx = dict(device=device, repeat=repeat)
    names = None if only is None else set(only.split(','))
    if names is not None and names - {n for n, _, _ in BENCHMARKS}:
        raise click.BadParameter(f'unknown benchmark(s): {", ".join(sorted(names - {n for n, _, _ in BENCHMARKS}))}', param_hint='--only')
    device_name = torch.cuda.get_device_name(device) if device.type == 'cuda' else f'cpu ({torch.get_num_threads()} threads)'
    rows = []
    for name, fn, heavy in BENCHMARKS:
        if (names is not None and name not in names) or (heavy and device.type == 'cpu' and not full and names is None):
            continue
        row = dict(name=name, **fn(ctx))
        rows.append(row)
        print(f'{name:<14} {row["what"]:<52} {row["ms"]:>10.1f} ms {row["per_s"]:>10.2f} {row["unit"]}', flush=True)
    result = dict(device=device_name, torch=torch.__version__, rows=rows)
    if json_path:
        with open(json_path, 'w') as f:
            json.dump(result, f, indent=2)
    print(json.dumps(result))

#----------------------------------------------------------------------------

if __name__ == '__main__':
    main()
