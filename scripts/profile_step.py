"""Profile one training step with torch.profiler and print where the time goes (top kernels / ops), to find why a
step is slower than it should be (see README "Speed"). The step is scripts/bench_train.py's: the `face` phases
(Gmain, Dmain, or every phase with --all-phases) for a network preset at a batch size.

    python scripts/profile_step.py                                  # GPU: ffhq512, batch 8, nr 64
    python scripts/profile_step.py --preset tiny --batch 4 --nrr 32 # CPU-sized
    python scripts/profile_step.py --trace trace.json               # also a Chrome trace (chrome://tracing)
"""

import click
import torch

from bench_train import train_step
from training.networks import PRESETS

@click.command()
@click.option('--preset', help='Network preset', type=click.Choice(sorted(PRESETS)), default=None,
              show_default='ffhq512 on a GPU, tiny on CPU')
@click.option('--batch', help='Batch size', type=click.IntRange(min=1), default=None, show_default='8 GPU / 4 CPU')
@click.option('--nrr', help='Neural rendering resolution', type=click.IntRange(min=8), default=None,
              show_default='64 GPU / 32 CPU')
@click.option('--all-phases', help='Also the lazy regularisation phases (R1, density reg)', is_flag=True)
@click.option('--ada', help='With the ADA pipe (p = 0.2), as head_ft', is_flag=True)
@click.option('--steps', help='Profiled steps (after 3 warm-up steps)', type=click.IntRange(min=1), default=3, show_default=True)
@click.option('--rows', help='Rows of the table', type=click.IntRange(min=1), default=30, show_default=True)
@click.option('--tf32/--no-tf32', help='TF32 matmul/conv (the training default is on)', default=True, show_default=True)
@click.option('--trace', help='Write a Chrome trace here', metavar='PATH', default=None)
def main(preset, batch, nrr, all_phases, ada, steps, rows, tf32, trace):
    """Profile one training step and print the most expensive operations."""
    if trace is not None:
        from dnnlib.util import check_output_path
        check_output_path(trace, '--trace', kind='file')
    from torch.profiler import ProfilerActivity, profile
    cuda = torch.cuda.is_available()
    device = torch.device('cuda' if cuda else 'cpu')
    preset = preset or ('ffhq512' if cuda else 'tiny')
    batch = batch or (8 if cuda else 4)
    nrr = nrr or (64 if cuda else 32)
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True
    step, res = train_step(preset, batch, nrr, device, ada=ada, all_phases=all_phases)
    for _ in range(3):
        step()
    if cuda:
        torch.cuda.synchronize()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities, record_shapes=True) as prof:
        for _ in range(steps):
            step()
        if cuda:
            torch.cuda.synchronize()
    key = 'self_cuda_time_total' if cuda else 'self_cpu_time_total'
    print(f'{preset} {res}^2, nr {nrr}, batch {batch}, {"all phases" if all_phases else "main phases"}'
          f'{", ADA" if ada else ""}, TF32 {"on" if tf32 else "off"}, {steps} steps on {device}')
    print(prof.key_averages().table(sort_by=key, row_limit=rows))
    print(prof.key_averages(group_by_input_shape=True).table(sort_by=key, row_limit=rows))
    if trace:
        prof.export_chrome_trace(trace)
        print(f'trace: {trace}')

if __name__ == '__main__':
    main()
