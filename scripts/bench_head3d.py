"""Benchmark rows for the Head3D distillation step, in scripts/bench.py's format (`bench_<name>(ctx) -> dict(what,
ms, per_s, unit)`, ctx = dict(device, repeat)); scripts/bench.py lists them next to the head_ft step.

One "head3d step" is what the training loop does on a step without lazy regularisation: the G phase (frozen
teacher + student with the same z, the distillation terms, L_gan_front/L_gan_back through D_front/D_back), then
D_front's and D_back's main phases, each followed by its Adam step. The perceptual network is the random-trunk
LPIPS-VGG (the same cost as LPIPS-VGG; the ImageNet weights are not needed for timing); where lpips cannot be
imported the row is timed without L_lpips and says so.

    python scripts/bench_head3d.py              # tiny row (and the full row with CUDA)
"""

import copy

import torch

from bench_timing import step_row
from training import cameras
from training.losses.head3d import Head3DLoss
from training.losses.perceptual import PerceptualError
from training.networks import PRESETS, DualDiscriminator, TriPlaneGenerator

#----------------------------------------------------------------------------
# Build teacher, student, two Ds, their optimisers and a Head3D loss for a network preset; returns a step function.

def _head3d_step(preset, batch, nrr, device):
    torch.manual_seed(0)
    G_kwargs = dict(PRESETS[preset]['G'], neural_rendering_resolution=nrr)
    teacher = TriPlaneGenerator(**G_kwargs).to(device).eval().requires_grad_(False)
    nets = dict(G=copy.deepcopy(teacher).train(), D_front=DualDiscriminator(**PRESETS[preset]['D']).to(device),
                D_back=DualDiscriminator(**PRESETS[preset]['D']).to(device))
    for net in nets.values():
        net.requires_grad_(False)
    yaw_front = torch.linspace(-0.5, 0.5, 16)
    yaw_back = torch.linspace(2.2, 4.0, 16)
    pools = dict(faces=cameras.make_label(yaw_front, torch.zeros(16)).to(device),
                 heads=cameras.make_label(yaw_back, torch.zeros(16)).to(device))
    try:
        loss = Head3DLoss(nets, dict(teacher=teacher), pools, perceptual='lpips_vgg_randtrunk')
        note = ''
    except PerceptualError:     # no lpips/torchvision on this machine: time the step without L_lpips, and say so
        loss = Head3DLoss(nets, dict(teacher=teacher), pools, perceptual='none', lambda_lpips=0)
        note = ', no lpips'

    res = G_kwargs['img_resolution']
    batch_data = {name: (torch.rand(batch, 3, res, res, device=device) * 2 - 1, pool[:batch])
                  for name, pool in pools.items()}
    opts = {name: torch.optim.Adam(nets[name].parameters(), lr=1e-4, betas=(0.0, 0.99)) for name in loss.trainable}
    phases = [p for p in loss.phases() if p.interval == 1]

    def step():
        for phase in phases:
            net = nets[phase.net]
            net.requires_grad_(True)
            opts[phase.net].zero_grad(set_to_none=True)
            loss.accumulate_gradients(phase, batch_data, gain=1, cur_nimg=0)
            net.requires_grad_(False)
            opts[phase.net].step()
    return step, G_kwargs['img_resolution'], note

#----------------------------------------------------------------------------
# Rows: tiny sizes everywhere; the ffhq512 networks at 128^2 neural rendering (the paper's stage) on CUDA.

def _row(ctx, preset, batch, nrr):
    step, res, note = _head3d_step(preset, batch, nrr, ctx['device'])
    return step_row(ctx, step, f'head3d step (main phases) {preset} {res}^2, nr {nrr}, batch {batch}{note}', batch)

def bench_head3d_step_tiny(ctx):
    return _row(ctx, 'tiny', batch=4, nrr=32)

def bench_head3d_step_full(ctx):
    return _row(ctx, 'ffhq512', batch=4, nrr=128)

#----------------------------------------------------------------------------

if __name__ == '__main__':
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    ctx = dict(device=device, repeat=3)
    rows = [bench_head3d_step_tiny(ctx)] + ([bench_head3d_step_full(ctx)] if device.type == 'cuda' else [])
    for row in rows:
        print(f'{row["what"]:<52} {row["ms"]:>10.1f} ms {row["per_s"]:>10.2f} {row["unit"]}')
