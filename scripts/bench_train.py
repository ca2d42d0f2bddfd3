"""Benchmark rows for one EG3D/head_ft training step, in scripts/bench.py's format (`bench_<name>(ctx) -> dict(what,
ms, per_s, unit)`, ctx = dict(device, repeat)), for bench.py to list.

One "train step" is what the training loop does on a step where every phase runs (Gmain, Greg, Dmain, Dreg: the
worst case, lazy regularisation included) with EG3DLoss, the ADA pipe (p = 0.2) and an Adam step per phase.

    python scripts/bench_train.py              # tiny row (and the full row with CUDA)
"""

import torch

from bench_timing import step_row
from training import cameras
from training.augment import AugmentPipe
from training.losses.eg3d import EG3DLoss
from training.networks import PRESETS, DualDiscriminator, TriPlaneGenerator

#----------------------------------------------------------------------------
# Build G, D, the loss and optimisers for a preset; returns a step function. ada: the ADA pipe (p = 0.2) as in
# head_ft, else none as in face. all_phases: also the lazy regularisation phases (the worst-case step); otherwise
# the phases that run every step (Gmain, Dmain), which is what bench_head3d times for the head3d step.

def train_step(preset, batch, nrr, device, ada=True, all_phases=True):
    torch.manual_seed(0)
    nets = dict(G=TriPlaneGenerator(**PRESETS[preset]['G']).to(device), D=DualDiscriminator(**PRESETS[preset]['D']).to(device))
    for net in nets.values():
        net.requires_grad_(False)
    pool = cameras.make_label(torch.linspace(-0.5, 0.5, 16), torch.zeros(16)).to(device)
    pipe = AugmentPipe(p=0.2).to(device) if ada else None
    loss = EG3DLoss(nets, {}, dict(main=pool), augment_pipe=pipe, nr_initial=nrr)
    res = nets['G'].img_resolution
    batch_data = dict(main=(torch.rand(batch, 3, res, res, device=device) * 2 - 1, pool[:batch]))
    opts = {name: torch.optim.Adam(nets[name].parameters(), lr=1e-4, betas=(0.0, 0.99)) for name in loss.trainable}
    phases = [p for p in loss.phases() if all_phases or p.interval == 1]

    def step():
        for phase in phases:
            net = nets[phase.net]
            net.requires_grad_(True)
            opts[phase.net].zero_grad(set_to_none=True)
            loss.accumulate_gradients(phase, batch_data, gain=phase.interval if all_phases else 1, cur_nimg=0)
            net.requires_grad_(False)
            opts[phase.net].step()
    return step, res

def _row(ctx, preset, batch, nrr, ada=True, all_phases=True, stage='train'):
    step, res = train_step(preset, batch, nrr, ctx['device'], ada=ada, all_phases=all_phases)
    what = f'{stage} step ({"all phases" if all_phases else "main phases"}) {preset} {res}^2, nr {nrr}, batch {batch}'
    return step_row(ctx, step, what, batch)

def bench_train_step_tiny(ctx):
    return _row(ctx, 'tiny', batch=4, nrr=32)

def bench_train_step_full(ctx):
    return _row(ctx, 'ffhq512', batch=8, nrr=64)

# The face (EG3D, no ADA) and head_ft (ADA) steps without lazy regularisation, comparable with the head3d step.
def bench_face_step_tiny(ctx):
    return _row(ctx, 'tiny', batch=4, nrr=32, ada=False, all_phases=False, stage='face')

def bench_face_step_full(ctx):
    return _row(ctx, 'ffhq512', batch=8, nrr=64, ada=False, all_phases=False, stage='face')

def bench_head_ft_step_tiny(ctx):
    return _row(ctx, 'tiny', batch=4, nrr=32, ada=True, all_phases=False, stage='head_ft')

def bench_head_ft_step_full(ctx):
    return _row(ctx, 'ffhq512', batch=4, nrr=128, ada=True, all_phases=False, stage='head_ft')

#----------------------------------------------------------------------------

if __name__ == '__main__':
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    ctx = dict(device=device, repeat=2)
    rows = [bench_train_step_tiny(ctx)] + ([bench_train_step_full(ctx)] if device.type == 'cuda' else [])
    for row in rows:
        print(f'{row["what"]:<60} {row["ms"]:>10.1f} ms {row["per_s"]:>10.2f} {row["unit"]}')
