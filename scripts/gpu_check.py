"""One-shot check of the custom CUDA ops on a GPU machine: build both plugins, run the op tests (CUDA vs
reference parity of forward, first and second derivatives in fp32/fp16, plus the CPU reference tests on
this torch version), then time CUDA against reference at StyleGAN2-typical shapes.

Usage: python scripts/gpu_check.py [--skip-tests] [--iters N]     (or: bash scripts/gpu_check.sh)
Needs only torch, numpy, scipy and pytest.
"""

import argparse
import os
import platform
import subprocess
import sys
import time

import torch

from torch_utils import custom_ops
from torch_utils.ops import bias_act, upfirdn2d

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#----------------------------------------------------------------------------
# Build one op's plugin and report how long it took; a failure is fatal here (no silent fallback).

def build(op, name):
    start = time.time()
    try:
        op._plugin = custom_ops.get_plugin(**op.PLUGIN_SPEC)
    except Exception as e:
        print(f'BUILD FAILED: {name}: {e}', flush=True)
        raise
    op._init_done = True
    print(f'built {name:10s} in {time.time() - start:6.1f} s -> {op._plugin.__file__}', flush=True)

#----------------------------------------------------------------------------
# Median milliseconds per call of fn() on the GPU (CUDA events, after warm-up).

def time_ms(fn, iters):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]

# Timings of forward and forward+backward for impl='cuda' and impl='ref'.
def bench_case(label, make_fn, x, iters):
    row = [label]
    for impl in ('cuda', 'ref'):
        fwd = make_fn(impl)
        xg = x.detach().requires_grad_()
        y = fwd(xg)
        dy = torch.randn_like(y)
        def step():
            torch.autograd.grad(fwd(xg), xg, dy)
        with torch.no_grad():
            row.append(time_ms(lambda: fwd(x), iters))
        row.append(time_ms(step, iters))
    return row

def benchmark(iters):
    dev = torch.device('cuda')
    f4 = upfirdn2d.setup_filter([1, 3, 3, 1], device=dev)
    rows = []
    for dtype in (torch.float32, torch.float16):
        tag = 'fp32' if dtype == torch.float32 else 'fp16'
        x = torch.randn(8, 512, 64, 64, device=dev, dtype=dtype)
        b = torch.randn(512, device=dev, dtype=dtype)
        rows.append(bench_case(f'bias_act lrelu [8,512,64,64] {tag}',
                               lambda impl: (lambda t: bias_act.bias_act(t, b, act='lrelu', impl=impl)), x, iters))
        rows.append(bench_case(f'bias_act lrelu clamp256 {tag}',
                               lambda impl: (lambda t: bias_act.bias_act(t, b, act='lrelu', clamp=256, impl=impl)), x, iters))
        x = torch.randn(8, 256, 128, 128, device=dev, dtype=dtype)
        rows.append(bench_case(f'upsample2d x2 [8,256,128,128] {tag}',
                               lambda impl: (lambda t: upfirdn2d.upsample2d(t, f4, impl=impl)), x, iters))
        rows.append(bench_case(f'downsample2d x2 [8,256,128,128] {tag}',
                               lambda impl: (lambda t: upfirdn2d.downsample2d(t, f4, impl=impl)), x, iters))
        rows.append(bench_case(f'filter2d [8,256,128,128] {tag}',
                               lambda impl: (lambda t: upfirdn2d.filter2d(t, f4, impl=impl)), x, iters))
    print(f'\nCUDA vs reference, median ms ({torch.cuda.get_device_name()}, torch {torch.__version__}, 4x4 filter)')
    head = f'{"case":40s} {"cuda fwd":>9s} {"cuda f+b":>9s} {"ref fwd":>9s} {"ref f+b":>9s} {"speed-up f+b":>12s}'
    print(head)
    print('-' * len(head))
    for label, cf, cb, rf, rb in rows:
        print(f'{label:40s} {cf:9.3f} {cb:9.3f} {rf:9.3f} {rb:9.3f} {rb / cb:11.2f}x')

#----------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--skip-tests', action='store_true', help='only build and benchmark')
    parser.add_argument('--iters', type=int, default=20, help='timed iterations per benchmark case')
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit('gpu_check: no CUDA device visible')
    print(f'python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), '
          f'GPU {torch.cuda.get_device_name()}', flush=True)
    if os.environ.get('HEAD3D_OPS_IMPL') == 'ref':
        sys.exit('gpu_check: unset HEAD3D_OPS_IMPL=ref, it disables the CUDA ops')

    build(bias_act, 'bias_act')
    build(upfirdn2d, 'upfirdn2d')

    status = 0
    if not args.skip_tests:
        # the compile test would only rebuild what was just built
        cmd = [sys.executable, '-m', 'pytest', '-q', '-rfs', '-p', 'no:cacheprovider', '-k', 'not compile',
               *sorted(os.path.join('tests', f) for f in os.listdir(os.path.join(REPO, 'tests')) if f.startswith('test_ops_'))]
        print('\n$ ' + ' '.join(cmd), flush=True)
        status = subprocess.call(cmd, cwd=REPO)
        print(f'op tests: {"PASSED" if status == 0 else "FAILED"}', flush=True)

    benchmark(args.iters)
    sys.exit(status)

if __name__ == '__main__':
    main()
