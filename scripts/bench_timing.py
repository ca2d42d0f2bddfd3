"""Timing for the benchmark scripts: the one home of how a row is timed, imported by scripts/bench.py (the table),
scripts/bench_train.py and scripts/bench_head3d.py (the training-step rows). A row is a dict(what, ms, per_s,
unit[, batch]); bench.py adds s/kimg for rows with a batch."""

import time

import torch

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

# A row for a training step function: its median time, images per second and batch (-> s/kimg).
def step_row(ctx, step, what, batch):
    ms = timeit(step, ctx['device'], repeat=ctx['repeat'])
    return dict(what=what, ms=ms, per_s=batch * 1e3 / ms, unit='img/s', batch=batch)

#----------------------------------------------------------------------------
