"""The training loop for every stage: data, phases, step, EMA, tick, snapshot (docs/ARCHITECTURE.md, "Training").

The loss object owns what is computed; the loop owns optimisers, gradient synchronisation, EMA, ADA's p,
logging and snapshots. Rerunning the same command resumes from the run dir's latest snapshot, exactly; SIGINT and
SIGTERM stop the run at the current step with a snapshot (checkpoint.TrainingState names what a snapshot holds).
"""

import copy
import json
import os
import signal
import sys
import threading
import time

import numpy as np
import psutil
import torch
from PIL import Image
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from dnnlib.util import get_obj_by_name, to_plain
from torch_utils import distributed as dist
from torch_utils import misc, training_stats
from training import checkpoint
from training.augment import ADA_KEYS, AugmentPipe, ada_step
from training.dataset import ImageLabelDataset
from training.generate import depth_to_uint8, make_grid, to_uint8
from training.networks import net_kwargs
from training.networks.triplane import expand_xy_layers
from training.snapshot import SnapshotError, build_net, load_snapshot

#----------------------------------------------------------------------------
# Raised after a SIGINT/SIGTERM stop once the snapshot of the current step is written; train.py turns it into a
# message that says how to resume and an exit status of 128 + the signal number.

class TrainingStopped(Exception):
    def __init__(self, signum, snapshot_path, cur_nimg):
        self.signum, self.snapshot_path, self.cur_nimg = signum, snapshot_path, cur_nimg
        super().__init__(f'stopped by {signal.Signals(signum).name} at kimg {cur_nimg / 1000:.3f}; '
                         f'snapshot {snapshot_path}')

#----------------------------------------------------------------------------
# Torch switches: TF32, cudnn autotuning, deterministic algorithms, CPU threads.

def setup_torch(device, tf32, cudnn_benchmark, deterministic, num_threads):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = cudnn_benchmark and not deterministic
    if deterministic:
        # cuBLAS needs a fixed workspace for repeatable results (read when its handle is made, i.e. later). On CUDA
        # some kernels (grid_sample's backward: atomic adds) have no deterministic version: warn, do not fail.
        if device.type == 'cuda':
            os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
        torch.use_deterministic_algorithms(True, warn_only=device.type == 'cuda')
    if device.type == 'cpu':
        torch.set_num_threads(num_threads or os.cpu_count())

#----------------------------------------------------------------------------
# Named data sets and their label pools (the generator's cameras), on the device.

def build_datasets(data, device):
    datasets = {}
    for name, kwargs in data.items():
        if not kwargs.get('path'):
            raise ValueError(f'data set {name!r} has no path (pass --data / --faces / --heads or data.{name}.path)')
        datasets[name] = ImageLabelDataset(**kwargs)
    pools = {name: torch.as_tensor(ds.labels, dtype=torch.float32, device=device) for name, ds in datasets.items()}
    return datasets, pools

# DataLoader workers ignore SIGINT/SIGTERM: the main process decides when to stop, and a worker killed by the
# terminal's Ctrl-C (sent to the whole process group) would fail the loader before the stop snapshot.
def _worker_ignores_stop_signals(_worker_id):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

# An endless iterator over one data set for this rank: (images float [-1,1] on device, labels on device).
# The order is InfiniteSampler's, started at `start_index` (global items already consumed) for exact resume.
def data_iterator(dataset, batch_gpu, seed, start_index, workers, device):
    sampler = misc.InfiniteSampler(len(dataset), rank=dist.get_rank(), num_replicas=dist.get_world_size(),
                                   seed=seed, start_index=start_index)
    loader = torch.utils.data.DataLoader(dataset, sampler=sampler, batch_size=batch_gpu, num_workers=workers,
                                         pin_memory=device.type == 'cuda', prefetch_factor=2 if workers else None,
                                         generator=torch.Generator().manual_seed(seed), persistent_workers=workers > 0,
                                         worker_init_fn=_worker_ignores_stop_signals if workers else None)
    for images, labels in loader:
        images = images.to(device, non_blocking=True).to(torch.float32) / 127.5 - 1
        yield images, labels.to(device, non_blocking=True).to(torch.float32)

#----------------------------------------------------------------------------
# The frozen teacher: only its G_ema (else G) is built and moved to the device, from one read of the file. Returns
# (frozen {'teacher': net}, info recorded in snapshots, the file's unbuilt net records for `init: teacher:KEY`).

def load_teacher(teacher_path, device):
    if teacher_path is None:
        return {}, None, None
    records = load_snapshot(teacher_path, device='cpu', build=False)['nets']
    teacher = _frozen_generator(records, teacher_path, '--teacher', device)
    info = dict(path=os.path.abspath(teacher_path), sha256=checkpoint.weights_hash(teacher))
    return {'teacher': teacher}, info, records

# A snapshot's G_ema (else G), built on the device, eval, no grad. flag names the option in the error.
def _frozen_generator(records, path, flag, device):
    key = 'G_ema' if 'G_ema' in records else 'G' if 'G' in records else None
    if key is None:
        raise SnapshotError(f'{path}: {flag} needs a generator snapshot (G_ema or G); '
                            f'it holds only {", ".join(records) or "no networks"}')
    return build_net(key, records[key], device, where=path).eval().requires_grad_(False)

# The frozen head template of the loss's lambda_tpl term: the --init snapshot's generator (the fine-tuned head
# generator that stage 2 starts from), read again on resume from the path the run config recorded.
def load_template(loss, init_path, device):
    if not loss.get('lambda_tpl'):
        return {}
    if init_path is None:
        raise ValueError('loss.lambda_tpl > 0 needs --init (the head generator whose xz/yz planes it keeps)')
    records = load_snapshot(init_path, device='cpu', build=False)['nets']
    return {'template': _frozen_generator(records, init_path, '--init', device)}

#----------------------------------------------------------------------------
# Initial weights of a fresh run: config `init` maps a net to 'init:KEY' or 'teacher:KEY' of the snapshots in
# paths (role -> path or None; teacher records already read). With --init, nets not named take the same-named net
# of that snapshot, and G_ema follows G unless named itself. A snapshot without G (a shipped G_ema + D file such as
# weights/face_world.pt) gives G its G_ema: fine-tuning starts from the averaged generator, as from EG3D's pickles.

def init_from_snapshots(modules, init, init_path, teacher_path, teacher_records):
    sources = {'teacher': (teacher_path, teacher_records)} if teacher_records is not None else {}
    if init_path is not None:
        sources['init'] = (init_path, load_snapshot(init_path, build=False)['nets'])
    mapping = dict(init)
    if 'init' in sources:
        records = sources['init'][1]
        mapping.update({name: f'init:{name}' for name in modules if name not in init and
                        (name in records or (name == 'G' and 'G_ema' in records))})
    if 'G' in mapping and 'G_ema' not in init:
        mapping['G_ema'] = mapping['G']
    for name, src in mapping.items():
        role, key = src.split(':')
        if role not in sources:
            raise ValueError(f'init.{name} = {src!r} but no --{role} snapshot was given')
        path, records = sources[role]
        if key == 'G' and key not in records and 'G_ema' in records:
            key = 'G_ema'                   # a G_ema + D file: G starts from G_ema
        if key not in records:
            raise ValueError(f'init.{name} = {src!r}: {path} has no network {key!r} (it has {", ".join(records)})')
        record = records[key]
        gate = getattr(modules[name], 'xy_gate', None)
        if gate is not None and not any(k.startswith('xy_gate.') for k in record['state']):
            # an init snapshot without the XY depth gate (e.g. a plain EG3D): the gate keeps its identity init
            own = {f'xy_gate.{k}': v for k, v in gate.state_dict().items()}
            record = {**record, 'state': {**record['state'], **own}}
        layers = getattr(modules[name], 'xy_depth_layers', 1)
        src_layers = (record.get('kwargs') or {}).get('xy_depth_layers', 1)
        if hasattr(modules[name], 'xy_depth_layers') and src_layers > 1 and src_layers != layers:
            raise SnapshotError(f'{path}: its {key} has {src_layers} XY depth layers, this config\'s {name} {layers}; '
                                f'train with --set nets.G.kwargs.xy_depth_layers={src_layers}')
        sharp = float(getattr(modules[name], 'xy_layer_sharpness', 1.0))
        src_sharp = (record.get('kwargs') or {}).get('xy_layer_sharpness', 1.0)
        if hasattr(modules[name], 'xy_layer_sharpness') and src_layers > 1 and src_sharp != sharp:
            raise SnapshotError(f'{path}: its {key} blends its XY depth layers with xy_layer_sharpness {src_sharp:g}, '
                                f'this config\'s {name} {sharp:g}; train with '
                                f'--set nets.G.kwargs.xy_layer_sharpness={src_sharp:g}')
        C = getattr(modules[name], 'plane_channels', None)
        rows = record['state'].get('backbone.synthesis.b4.torgb.bias')
        if layers > 1 and rows is not None and rows.shape[0] == 3 * C:
            # an init snapshot with a single XY plane (a tri-plane, e.g. EG3D): it becomes the front XY layer, the
            # deeper ones start as zero or as copies of it (the module's xy_layers_init)
            record = {**record, 'state': expand_xy_layers(record['state'], C, layers, modules[name].xy_layers_init)}
        checkpoint.load_net_state(modules[name], record, key, path)

#----------------------------------------------------------------------------
# One Adam per trainable net. A net with lazy regularisation every k steps gets lr * k/(k+1) and betas **
# (k/(k+1)) (StyleGAN2 appendix B), k being the largest interval among its phases.

def build_optimizers(modules, trainable, phases, optim):
    opts = {}
    for name in trainable:
        if name not in optim:
            raise ValueError(f'loss trains {name!r} but the config has no optim.{name} (lr, betas, eps)')
        k = max([p.interval for p in phases if p.net == name] + [1])
        ratio = k / (k + 1) if k > 1 else 1
        o = optim[name]
        betas = [float(b) ** ratio for b in o.get("betas", [0.0, 0.99])]
        opts[name] = torch.optim.Adam(modules[name].parameters(), lr=o['lr'] * ratio, betas=betas, eps=o.get('eps', 1e-8))
    return opts

#----------------------------------------------------------------------------
# ADA's controller: accumulates the signs of D's real logits and, every `interval` steps, moves p toward the
# target rate. Its state (p and the accumulator) is part of every snapshot, so a resume inside an interval is exact.

class AdaController:
    def __init__(self, pipe, target, interval, adjust_kimg, batch, device):
        self.pipe, self.target, self.interval, self.adjust_kimg, self.batch = pipe, target, interval, adjust_kimg, batch
        self.signs = torch.zeros(2, device=device)  # (sum of real-logit signs, count) since the last update

    def accumulate(self, terms):
        for key, value in terms.items():
            if key.startswith('Loss/signs/real'):
                self.signs += torch.stack([value.float().sum(), torch.tensor(float(value.numel()), device=self.signs.device)])

    # After training step `step` (0-based): an update every `interval` steps, summed over ranks.
    def update(self, step):
        if self.target is None or (step + 1) % self.interval != 0:
            return
        if dist.is_distributed():
            torch.distributed.all_reduce(self.signs)
        ada_step(self.pipe, self.signs[0] / self.signs[1].clamp(min=1), self.target, self.batch * self.interval,
                 self.adjust_kimg)
        self.signs.zero_()

    # The accumulator is stored summed over ranks (a collective) and restored on rank 0 (sums of +-1 are exact).
    def state_dict(self):
        signs = self.signs.clone()
        if dist.is_distributed():
            torch.distributed.all_reduce(signs)
        return dict(p=float(self.pipe.p), signs=signs.cpu())

    def load_state_dict(self, state):
        self.pipe.p.fill_(float(state['p']))
        self.signs.copy_(state['signs'] if dist.get_rank() == 0 else torch.zeros_like(self.signs))

#----------------------------------------------------------------------------
# SIGINT (Ctrl-C) and SIGTERM (what cluster schedulers send) ask the loop to stop after the current step; the
# ranks agree on it once per step. A second signal of the same kind acts as usual (kills the process).

class StopRequest:
    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, device):
        self.signum, self.device, self.previous = 0, device, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    def _handle(self, signum, _frame):
        self.signum = signum
        signal.signal(signum, self.previous.get(signum, signal.SIG_DFL))

    # The signal number any rank received (0 = none): one small all_reduce per step when distributed.
    def agreed(self):
        if not dist.is_distributed():
            return self.signum
        flag = torch.tensor([self.signum], dtype=torch.int64, device=self.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return int(flag.item())

#----------------------------------------------------------------------------
# Rank 0's outputs: the tick line, stats.jsonl, TensorBoard, the progress bar and sample grids. On resume the rows
# and events logged after the snapshot are dropped (those steps run again), so none appears twice.

class RunLog:
    def __init__(self, run_dir, cur_nimg, total_nimg, progress):
        self.run_dir = run_dir
        checkpoint.remove_stale_temp_files(run_dir)
        for name in os.listdir(run_dir):
            if name == 'stats.jsonl':
                checkpoint.truncate_jsonl(os.path.join(run_dir, name), cur_nimg,
                                          lambda row: round(row['Progress/kimg']['mean'] * 1000))
            elif name.startswith('metric-') and name.endswith('.jsonl'):
                checkpoint.truncate_jsonl(os.path.join(run_dir, name), cur_nimg, lambda row: row.get('cur_nimg'))
        self.writer = SummaryWriter(run_dir, purge_step=cur_nimg + 1 if cur_nimg else None)
        self.stats_file = open(os.path.join(run_dir, 'stats.jsonl'), 'a', encoding='utf-8')
        # The bar goes to the terminal only (sys.__stderr__), not through train.py's log.txt tee.
        self.pbar = tqdm(total=total_nimg, initial=cur_nimg, unit='img', dynamic_ncols=True, leave=False,
                         file=sys.__stderr__ or sys.stderr) if progress else None

    def step(self, nimg):
        if self.pbar is not None:
            self.pbar.update(nimg)

    # One tick: the status line on stdout (and log.txt), one stats.jsonl row, the finite means as scalars.
    def tick(self, line, collector, cur_nimg, p_val, sec_per_kimg):
        if self.pbar is not None:
            self.pbar.clear()
        print(line, flush=True)
        if self.pbar is not None:
            self.pbar.refresh()
        stats = collector.as_dict()
        stats.update({'Progress/kimg': dict(mean=cur_nimg / 1000), 'Progress/augment': dict(mean=p_val),
                      'Timing/sec_per_kimg': dict(mean=sec_per_kimg), 'timestamp': time.time()})
        self.stats_file.write(json.dumps(stats) + '\n')
        self.stats_file.flush()
        for name, v in stats.items():
            if isinstance(v, dict) and np.isfinite(v['mean']):
                self.writer.add_scalar(name, v['mean'], global_step=cur_nimg)

    # Sample grids of G_ema at fixed latents and cameras (image, raw, depth), as PNGs and TensorBoard images. Uses
    # its own generator and leaves the global RNG untouched, so it never changes the training trajectory.
    @torch.no_grad()
    def grids(self, G_ema, grid_z, grid_c, cur_nimg, cols):
        state = checkpoint.get_rng_state()
        gen = torch.Generator(device=grid_z.device).manual_seed(0)
        outs = [G_ema(z[None], c[None], noise_mode='const', generator=gen) for z, c in zip(grid_z, grid_c)]
        checkpoint.set_rng_state(state)
        rows = len(outs) // cols
        depth = torch.cat([o['image_depth'] for o in outs])
        for suffix, images in (('', to_uint8(torch.cat([o['image'] for o in outs]))),
                               ('_raw', to_uint8(torch.cat([o['image_raw'] for o in outs]))),
                               ('_depth', depth_to_uint8(depth, depth.min(), depth.max()))):  # one range for the grid
            grid = make_grid(images, rows, cols)
            Image.fromarray(grid).save(os.path.join(self.run_dir, f'fakes{cur_nimg:010d}{suffix}.png'))
            self.writer.add_image(f'Images/image{suffix}', grid, global_step=cur_nimg, dataformats='HWC')

    def close(self):
        if self.pbar is not None:
            self.pbar.close()
        self.writer.close()
        self.stats_file.close()

#----------------------------------------------------------------------------
# Running statistics that each rank updates from its own samples (w_avg) are averaged over ranks, so that all
# ranks hold the same nets.

@torch.no_grad()
def average_buffers(nets):
    if not dist.is_distributed():
        return
    for net in nets:
        for b in net.buffers():
            if b.is_floating_point():
                torch.distributed.all_reduce(b)
                b /= dist.get_world_size()

#----------------------------------------------------------------------------
# G_ema <- lerp(G, G_ema, beta) for parameters; buffers are copied.

@torch.no_grad()
def update_ema(G_ema, G, beta):
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.detach().lerp(p_ema, beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)

#----------------------------------------------------------------------------
# The tick line: progress, timing, memory (the CUDA peak since the last tick, then reset) and ADA p.

def tick_line(tick, cur_nimg, elapsed, tick_time, kimg_done, p_val, device):
    mem = f'cpumem {psutil.Process().memory_info().rss / 2**30:.2f}'
    if device.type == 'cuda':
        mem += f' gpumem {torch.cuda.max_memory_allocated(device) / 2**30:.2f}'
        torch.cuda.reset_peak_memory_stats(device)
    return (f'tick {tick:<5d} kimg {cur_nimg / 1000:<9.3f} time {elapsed:<8.1f} '
            f'sec/tick {tick_time:<7.2f} sec/kimg {tick_time / max(kimg_done, 1e-8):<8.2f} '
            f'img/s {kimg_done * 1000 / max(tick_time, 1e-8):<7.1f} {mem} augment {p_val:.3f}')

#----------------------------------------------------------------------------
# Sum of the gradients of `params` over ranks and accumulation rounds, divided by `divisor`, and whether all
# of them are finite. One flattened all_reduce; the finiteness check is the one host sync per phase.

def sync_grads(params, divisor):
    if not params:
        return True
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params])
    if dist.is_distributed():
        torch.distributed.all_reduce(flat)
    flat /= divisor
    finite = bool(torch.isfinite(flat).all())
    if finite:
        for p, g in zip(params, flat.split([p.numel() for p in params])):
            p.grad = g.view_as(p).clone()
    return finite

#----------------------------------------------------------------------------
# One training step's phases on the fetched rounds: gradients, sync, optimiser step or a skipped non-finite step.

def run_phases(phases, modules, opts, loss_obj, rounds, state, ada, bf16, device, divisor, max_nonfinite_in_a_row):
    for phase in phases:
        if state.step % phase.interval != 0:
            continue
        net, opt = modules[phase.net], opts[phase.net]
        net.requires_grad_(True)
        opt.zero_grad(set_to_none=True)
        for round_batch in rounds:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                terms = loss_obj.accumulate_gradients(phase, round_batch, gain=phase.interval, cur_nimg=state.cur_nimg)
            for key, value in terms.items():
                training_stats.report(key, value)
            if ada is not None:
                ada.accumulate(terms)
        net.requires_grad_(False)
        if sync_grads(list(net.parameters()), divisor):
            opt.step()
            state.nonfinite_in_a_row = 0
            continue
        opt.zero_grad(set_to_none=True)
        state.nonfinite += 1
        state.nonfinite_in_a_row += 1
        training_stats.report('Progress/nonfinite_skipped', 1.0)
        if state.nonfinite_in_a_row >= max_nonfinite_in_a_row:
            raise RuntimeError(f'{state.nonfinite_in_a_row} non-finite steps in a row (last: phase {phase.name} at kimg '
                               f'{state.cur_nimg / 1000:.3f}); stopping. The last good snapshot is intact.')

#----------------------------------------------------------------------------

def training_loop(
    run_dir                 = '.',      # Output directory (the run dir: snapshots, logs, config).
    snapshot_hooks          = (),       # Callables hook(snapshot_path, cur_nimg, writer) run on rank 0 after each
                                        # snapshot (train.py's --metrics); not part of the config.
    data                    = {},       # Named data sets: {name: ImageLabelDataset kwargs}.
    nets                    = {},       # Trainable networks: {name: {class, preset, kwargs}}; G_ema = copy of G.
    init                    = {},       # Initial weights on a fresh run: {net: 'init:KEY' | 'teacher:KEY'}.
    init_path               = None,     # Snapshot for `init:` sources (--init).
    teacher_path            = None,     # Frozen teacher snapshot (--teacher), handed to the loss.
    resume                  = None,     # Explicit training snapshot to continue from when the run dir has none.
    loss                    = {},       # Loss: {class: dotted name, **kwargs}.
    optim                   = {},       # Adam per trainable net: {net: {lr, betas, eps}}.
    augment                 = {'enabled': False}, # ADA: {enabled, target, adjust_kimg, interval, **AugmentPipe kwargs}.
    kimg                    = 25000.0,  # Train until this many thousand images.
    batch                   = 32,       # Global batch size.
    batch_gpu               = None,     # Per-rank batch per round; None = batch / world size.
    ema_kimg                = 10.0,     # Half-life of the G_ema average, in kimg.
    ema_rampup              = 0.05,     # EMA ramp-up (half-life <= cur_nimg * rampup); None = off.
    seed                    = 0,        # Global seed (per-rank seeds derive from it).
    tick_kimg               = 4.0,      # Status line every N kimg.
    snap_kimg               = 200.0,    # Snapshot every N kimg (and at the end).
    snapshot_keep           = 5,        # Keep the newest N snapshots.
    grid_size               = [4, 2],   # Sample grid [columns, rows] saved with each snapshot.
    tf32                    = True,     # Allow TF32 matmul/conv on GPUs that have it.
    bf16                    = False,    # bf16 autocast for the loss computations (CUDA).
    cudnn_benchmark         = True,     # cudnn.benchmark (off in deterministic mode).
    num_threads             = None,     # CPU threads for torch; None = all cores.
    workers                 = 2,        # DataLoader worker processes per set and rank.
    deterministic           = False,    # torch deterministic algorithms (exact repeatability, slower).
    max_nonfinite_in_a_row  = 20,       # Stop after this many consecutive skipped (non-finite) steps.
    progress                = True,     # tqdm progress bar on rank 0.
):
    run_config = to_plain({k: v for k, v in locals().items() if k not in ('run_dir', 'snapshot_hooks')})
    # Setup: devices, seeds, speed switches.
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device('cuda', dist.get_local_rank()) if torch.cuda.is_available() else torch.device('cpu')
    batch_gpu = batch_gpu or batch // world
    if batch_gpu < 1 or batch % (batch_gpu * world) != 0:
        raise ValueError(f'batch {batch} does not divide into world_size {world} x batch_gpu {batch_gpu} (x rounds)')
    num_rounds = batch // (batch_gpu * world)
    setup_torch(device, tf32, cudnn_benchmark, deterministic, num_threads)
    misc.set_seed(seed)     # same init weights on every rank
    training_stats.reset()  # nothing left over from an earlier run in this process

    # Data, networks, the frozen teacher, augment pipe and ADA, loss, optimisers.
    datasets, label_pools = build_datasets(data, device)
    modules = {name: get_obj_by_name(spec['class'])(**net_kwargs(spec)).to(device).train().requires_grad_(False)
               for name, spec in nets.items()}
    modules['G_ema'] = copy.deepcopy(modules['G']).eval()
    frozen, teacher_info, teacher_records = load_teacher(teacher_path, device)
    frozen.update(load_template(loss, init_path, device))
    augment_pipe = AugmentPipe(**{k: v for k, v in augment.items() if k not in ADA_KEYS}).to(device) \
        if augment.get('enabled') else None
    ada = AdaController(augment_pipe, augment.get('target'), augment.get('interval', 4), augment.get('adjust_kimg'),
                        batch, device) if augment_pipe is not None else None
    loss_obj = get_obj_by_name(loss['class'])(nets=modules, frozen=frozen, label_pools=label_pools,
                                              augment_pipe=augment_pipe, **{k: v for k, v in loss.items() if k != 'class'})
    phases = loss_obj.phases()
    opts = build_optimizers(modules, loss_obj.trainable, phases, optim)

    # State: resume from the run dir's latest snapshot, else an explicit --resume, else initialise.
    state = checkpoint.TrainingState(modules, opts, ada=ada, loss=loss_obj)
    snap_path, snap = checkpoint.load_latest(run_dir, device=device)
    if snap is None and resume is not None:
        snap_path, snap = resume, load_snapshot(resume, device=device, build=False)
    if snap is not None:
        state.restore(snap, snap_path)
        dist.print0(f'Resuming from {snap_path} at kimg {state.cur_nimg / 1000:.3f}')
    else:
        init_from_snapshots(modules, init, init_path, teacher_path, teacher_records)
    del snap, teacher_records
    for module in modules.values():
        dist.broadcast_module(module)
    state.apply_rng(rank, world, fallback_seed=seed * world + rank)
    iters = {name: data_iterator(ds, batch_gpu, seed, state.step * batch, workers, device) for name, ds in datasets.items()}

    # Logging (rank 0; log.txt is teed by train.py) and the fixed latents and cameras of the sample grids.
    gen = torch.Generator(device=device).manual_seed(seed)
    first_pool = next(iter(label_pools.values()))
    grid_z = torch.randn([grid_size[0] * grid_size[1], modules['G'].z_dim], device=device, generator=gen)
    grid_c = first_pool[torch.randint(len(first_pool), (len(grid_z),), device=device, generator=gen)]
    log = RunLog(run_dir, state.cur_nimg, int(kimg * 1000), progress) if rank == 0 else None
    if log is not None and state.cur_nimg == 0:
        log.grids(modules['G_ema'], grid_z, grid_c, 0, cols=grid_size[0])
    collector = training_stats.Collector(regex='.*', keep_previous=False)
    total_nimg, tick_nimg, snap_nimg = int(kimg * 1000), int(tick_kimg * 1000), max(int(snap_kimg * 1000), 1)
    tick_start_nimg, tick_start_time, start_time = state.cur_nimg, time.time(), time.time()
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)

    # The loop: fetch, phases, EMA, ADA, counters, tick, snapshot; SIGINT/SIGTERM end it after the current step.
    with StopRequest(device) as stop:
        signum = 0
        while state.cur_nimg < total_nimg and not signum:
            rounds = [{name: next(it) for name, it in iters.items()} for _ in range(num_rounds)]
            run_phases(phases, modules, opts, loss_obj, rounds, state, ada, bf16, device, world * num_rounds,
                       max_nonfinite_in_a_row)

            # G_ema: exponential moving average of G with ramp-up, after averaging running statistics over ranks.
            average_buffers([modules[name] for name in loss_obj.trainable])
            ema_nimg = ema_kimg * 1000 if ema_rampup is None else min(ema_kimg * 1000, state.cur_nimg * ema_rampup)
            update_ema(modules['G_ema'], modules['G'], beta=0.5 ** (batch / max(ema_nimg, 1e-8)))
            if ada is not None:
                ada.update(state.step)
            state.cur_nimg += batch
            state.step += 1
            signum = stop.agreed()
            done = state.cur_nimg >= total_nimg or bool(signum)
            if log is not None:
                log.step(batch)

            # Tick: reduce the statistics, print one line, append stats.jsonl, TensorBoard scalars.
            if done or state.cur_nimg >= tick_start_nimg + tick_nimg:
                collector.update()
                tick_time, kimg_done = time.time() - tick_start_time, (state.cur_nimg - tick_start_nimg) / 1000
                p_val = float(augment_pipe.p) if augment_pipe is not None else 0.0
                if log is not None:
                    log.tick(tick_line(state.tick, state.cur_nimg, time.time() - start_time, tick_time, kimg_done,
                                       p_val, device), collector, state.cur_nimg, p_val, tick_time / max(kimg_done, 1e-8))
                state.tick += 1
                tick_start_nimg, tick_start_time = state.cur_nimg, time.time()

            # Snapshot every snap_kimg, at the end and at a stop; then the grids and the hooks (metrics) on rank 0,
            # except at a stop (a scheduler's grace period is short).
            if done or state.cur_nimg // snap_nimg > (state.cur_nimg - batch) // snap_nimg:
                path = state.save(run_dir, snapshot_keep, rank, config=run_config, teacher=teacher_info)
                if log is not None:
                    log.grids(modules['G_ema'], grid_z, grid_c, state.cur_nimg, cols=grid_size[0])
                    for hook in snapshot_hooks if not signum else ():
                        hook(path, state.cur_nimg, log.writer)

    if log is not None:
        log.close()
    if signum:
        raise TrainingStopped(signum, checkpoint.latest_snapshot(run_dir), state.cur_nimg)
    return modules
