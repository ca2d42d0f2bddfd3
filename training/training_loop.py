"""The training loop for every stage: data, phases, step, EMA, tick, snapshot (docs/ARCHITECTURE.md, "Training").

The loss object owns what is computed; the loop owns optimisers, gradient synchronisation, EMA, ADA's p,
logging and snapshots. Rerunning the same command resumes from the run dir's latest snapshot, exactly.
"""

import copy
import json
import os
import sys
import time

import numpy as np
import psutil
import torch

from dnnlib.util import EasyDict, get_obj_by_name
from torch_utils import distributed as dist
from torch_utils import misc, training_stats
from training import checkpoint
from training.config import to_plain
from training.augment import ADA_KEYS, AugmentPipe, ada_step
from training.dataset import ImageLabelDataset
from training.snapshot import SnapshotError, load_snapshot

#----------------------------------------------------------------------------
# Constructor kwargs of a network: the named preset's (training.networks.PRESETS[preset][G|D]) + explicit kwargs.

def net_kwargs(spec):
    from training.networks import PRESETS
    kwargs = {}
    if spec.get('preset') is not None:
        role = 'G' if spec['class'].endswith('TriPlaneGenerator') else 'D'
        if spec['preset'] not in PRESETS:
            raise ValueError(f'unknown network preset {spec["preset"]!r} (known: {", ".join(PRESETS)})')
        kwargs = copy.deepcopy(PRESETS[spec['preset']][role])
    for key, value in (spec.get('kwargs') or {}).items():
        kwargs[key] = {**kwargs[key], **value} if isinstance(value, dict) and isinstance(kwargs.get(key), dict) else value
    return kwargs

#----------------------------------------------------------------------------
# An endless iterator over one data set for this rank: (images float [-1,1] on device, labels on device).
# The order is InfiniteSampler's, started at `start_index` (global items already consumed) for exact resume.

def data_iterator(dataset, batch_gpu, seed, start_index, workers, device):
    sampler = misc.InfiniteSampler(len(dataset), rank=dist.get_rank(), num_replicas=dist.get_world_size(),
                                   seed=seed, start_index=start_index)
    loader = torch.utils.data.DataLoader(dataset, sampler=sampler, batch_size=batch_gpu, num_workers=workers,
                                         pin_memory=device.type == 'cuda', prefetch_factor=2 if workers else None,
                                         generator=torch.Generator().manual_seed(seed), persistent_workers=workers > 0)
    for images, labels in loader:
        images = images.to(device, non_blocking=True).to(torch.float32) / 127.5 - 1
        yield images, labels.to(device, non_blocking=True).to(torch.float32)

#----------------------------------------------------------------------------
# Sample grids of G_ema at fixed latents and cameras, saved as PNGs and TensorBoard images. Uses its own
# generator and leaves the global RNG untouched, so it never changes the training trajectory.

@torch.no_grad()
def save_grids(G_ema, grid_z, grid_c, run_dir, cur_nimg, writer, cols=None):
    from PIL import Image
    state = checkpoint.get_rng_state()
    gen = torch.Generator(device=grid_z.device).manual_seed(0)
    outs = [G_ema(z[None], c[None], noise_mode='const', generator=gen) for z, c in zip(grid_z, grid_c)]
    checkpoint.set_rng_state(state)
    for key, lo, hi in (('image', -1, 1), ('image_raw', -1, 1), ('image_depth', None, None)):
        x = torch.cat([o[key] for o in outs]).float().cpu()
        lo = x.min() if lo is None else lo
        hi = x.max() if hi is None else hi
        x = ((x - lo) / max(float(hi - lo), 1e-8)).clamp(0, 1)
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        n, c, h, w = x.shape
        cols = cols or int(np.ceil(np.sqrt(n)))       # grid_size[0] columns
        rows = int(np.ceil(n / cols))
        canvas = torch.zeros(c, rows * h, cols * w)
        for i in range(n):
            canvas[:, (i // cols) * h:(i // cols + 1) * h, (i % cols) * w:(i % cols + 1) * w] = x[i]
        img = (canvas.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        suffix = {'image': '', 'image_raw': '_raw', 'image_depth': '_depth'}[key]
        Image.fromarray(img).save(os.path.join(run_dir, f'fakes{cur_nimg:010d}{suffix}.png'))
        if writer is not None:
            writer.add_image(f'Images/{key}', canvas, global_step=cur_nimg)

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
# Initial weights of a fresh run: config `init` maps a net to 'init:KEY' or 'teacher:KEY' of the snapshots in
# paths (role -> path or None). With --init, nets not named take the same-named net of that snapshot, and G_ema
# follows G unless named itself.

def init_from_snapshots(modules, init, paths, device):
    sources = {role: load_snapshot(path, device=device)['nets'] for role, path in paths.items() if path is not None}
    mapping = dict(init)
    if 'init' in sources:
        for name in modules:
            if name not in mapping and name in sources['init']:
                mapping[name] = f'init:{name}'
    if 'G' in mapping and 'G_ema' not in init:
        mapping['G_ema'] = mapping['G']
    for name, src in mapping.items():
        role, key = src.split(':')
        if role not in sources:
            raise ValueError(f'init.{name} = {src!r} but no --{role} snapshot was given')
        if key not in sources[role]:
            raise ValueError(f'init.{name} = {src!r}: that snapshot has no network {key!r} (it has {", ".join(sources[role])})')
        misc.copy_params_and_buffers(sources[role][key], modules[name], require_all=True)

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

# A tick's statistics, one stats.jsonl line and the finite means as TensorBoard scalars (rank 0).
def write_tick_stats(collector, stats_file, writer, cur_nimg, p_val, sec_per_kimg, now):
    stats = collector.as_dict()
    stats.update({'Progress/kimg': dict(mean=cur_nimg / 1000), 'Progress/augment': dict(mean=p_val),
                  'Timing/sec_per_kimg': dict(mean=sec_per_kimg), 'timestamp': now})
    stats_file.write(json.dumps(stats) + '\n')
    stats_file.flush()
    for name, v in stats.items():
        if isinstance(v, dict) and np.isfinite(v['mean']):
            writer.add_scalar(name, v['mean'], global_step=cur_nimg)

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

def training_loop(
    run_dir                 = '.',      # Output directory (the run dir: snapshots, logs, config).
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
    rank_hash_file          = False,    # Each rank writes rank<R>.sha256 of its nets at the end (tests).
):
    run_config = to_plain({k: v for k, v in locals().items() if k != 'run_dir'})   # stored in every snapshot
    # Setup: devices, seeds, speed switches.
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device('cuda', dist.get_local_rank()) if torch.cuda.is_available() else torch.device('cpu')
    batch_gpu = batch_gpu or batch // world
    if batch_gpu < 1 or batch % (batch_gpu * world) != 0:
        raise ValueError(f'batch {batch} does not divide into world_size {world} x batch_gpu {batch_gpu} (x rounds)')
    num_rounds = batch // (batch_gpu * world)
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
    misc.set_seed(seed)     # same init weights on every rank
    training_stats.reset()  # nothing left over from an earlier run in this process

    # Data: one endless iterator per named set; label pools for the generator's cameras.
    datasets = {}
    for name, kwargs in data.items():
        if not kwargs.get('path'):
            raise ValueError(f'data set {name!r} has no path (pass --data / --faces / --heads or data.{name}.path)')
        datasets[name] = ImageLabelDataset(**kwargs)
    label_pools = {name: torch.as_tensor(ds.labels, dtype=torch.float32, device=device) for name, ds in datasets.items()}

    # Networks, frozen teacher, augment pipe, loss, optimisers.
    modules = {name: get_obj_by_name(spec['class'])(**net_kwargs(spec)).to(device).train().requires_grad_(False)
               for name, spec in nets.items()}
    modules['G_ema'] = copy.deepcopy(modules['G']).eval()
    frozen, teacher_info = {}, None
    if teacher_path is not None:
        t = load_snapshot(teacher_path, device=device)['nets']
        frozen['teacher'] = t.get('G_ema', t.get('G')).eval().requires_grad_(False)
        if 'D' in t:
            frozen['teacher_D'] = t['D'].eval().requires_grad_(False)
        teacher_info = dict(path=os.path.abspath(teacher_path), sha256=checkpoint.weights_hash(frozen['teacher']))
    aug_kwargs = {k: v for k, v in augment.items() if k not in ADA_KEYS}
    augment_pipe = AugmentPipe(**aug_kwargs).to(device) if augment.get('enabled') else None
    loss_kwargs = {k: v for k, v in loss.items() if k != 'class'}
    loss_obj = get_obj_by_name(loss['class'])(nets=modules, frozen=frozen, label_pools=label_pools,
                                              augment_pipe=augment_pipe, **loss_kwargs)
    phases = loss_obj.phases()
    opts = build_optimizers(modules, loss_obj.trainable, phases, optim)

    # State: resume from the run dir's latest snapshot, else an explicit --resume, else initialise.
    state = EasyDict(cur_nimg=0, tick=0, step=0, nonfinite=0)
    snap_path, snap = checkpoint.load_latest(run_dir, device=device)
    if snap is None and resume is not None:
        snap_path, snap = resume, load_snapshot(resume, device=device, build=False)
    if snap is not None:
        for name, module in modules.items():
            checkpoint.load_net_state(module, snap['nets'][name], name, snap_path)
        for name, opt in opts.items():
            opt.load_state_dict(snap['optim'][name])
        if augment_pipe is not None and snap.get('ada_p') is not None:
            augment_pipe.p.fill_(float(snap['ada_p']))
        if hasattr(loss_obj, 'load_state_dict') and snap.get('loss_state') is not None:
            loss_obj.load_state_dict(snap['loss_state'])
        state.update(cur_nimg=snap['cur_nimg'], tick=snap['tick'], step=snap['step'], nonfinite=snap.get('nonfinite', 0))
        dist.print0(f'Resuming from {snap_path} at kimg {state.cur_nimg / 1000:.3f}')
    else:
        init_from_snapshots(modules, init, dict(init=init_path, teacher=teacher_path), device)
    for module in modules.values():
        dist.broadcast_module(module)
    if snap is not None and len(snap['rng']) == world:
        checkpoint.set_rng_state(snap['rng'][rank])
    else:
        misc.set_seed(seed * world + rank)
    data_pos = {name: (snap['data_pos'][name] if snap is not None else 0) for name in datasets}
    iters = {name: data_iterator(ds, batch_gpu, seed, data_pos[name], workers, device) for name, ds in datasets.items()}
    del snap

    # Logging (rank 0): log.txt is teed by train.py; stats.jsonl, TensorBoard, sample grids, tqdm.
    writer = stats_file = pbar = None
    grid_n = grid_size[0] * grid_size[1]
    gen = torch.Generator(device=device).manual_seed(seed)
    first_pool = next(iter(label_pools.values()))
    grid_z = torch.randn([grid_n, modules['G'].z_dim], device=device, generator=gen)
    grid_c = first_pool[torch.randint(len(first_pool), (grid_n,), device=device, generator=gen)]
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(run_dir)
        stats_file = open(os.path.join(run_dir, 'stats.jsonl'), 'a', encoding='utf-8')
        if progress:
            from tqdm import tqdm
            # The bar goes to the terminal only (sys.__stderr__), not through train.py's log.txt tee.
            pbar = tqdm(total=int(kimg * 1000), initial=state.cur_nimg, unit='img', dynamic_ncols=True, leave=False,
                        file=sys.__stderr__ or sys.stderr)
        if state.cur_nimg == 0:
            save_grids(modules['G_ema'], grid_z, grid_c, run_dir, 0, writer, cols=grid_size[0])
    collector = training_stats.Collector(regex='.*', keep_previous=False)
    ada_signs = torch.zeros(2, device=device)  # (sum of real-logit signs, count) since the last ADA update
    ada_target, ada_interval = augment.get('target'), augment.get('interval', 4)
    total_nimg, tick_nimg, snap_nimg = int(kimg * 1000), int(tick_kimg * 1000), max(int(snap_kimg * 1000), 1)
    tick_start_nimg, tick_start_time, start_time = state.cur_nimg, time.time(), time.time()
    nonfinite_in_a_row = 0
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)

    # Save a training snapshot (rank 0 writes; RNG states are gathered from every rank).
    def snapshot():
        rng = [checkpoint.get_rng_state()]
        if dist.is_distributed():
            rng = [None] * world
            torch.distributed.all_gather_object(rng, checkpoint.get_rng_state())
        if rank != 0:
            return
        checkpoint.save_training_state(run_dir, modules, keep=snapshot_keep, cur_nimg=state.cur_nimg,
            config=run_config,
            optim={n: o.state_dict() for n, o in opts.items()}, tick=state.tick, step=state.step,
            ada_p=float(augment_pipe.p) if augment_pipe is not None else None, rng=rng, nonfinite=state.nonfinite,
            loss_state=loss_obj.state_dict() if hasattr(loss_obj, 'state_dict') else None,
            data_pos={n: state.step * batch for n in datasets}, teacher=teacher_info)
        save_grids(modules['G_ema'], grid_z, grid_c, run_dir, state.cur_nimg, writer, cols=grid_size[0])

    # The loop: fetch, phases, EMA, ADA, counters, tick, snapshot.
    while state.cur_nimg < total_nimg:
        rounds = [{name: next(it) for name, it in iters.items()} for _ in range(num_rounds)]
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
                    if key.startswith('Loss/signs/real'):
                        ada_signs += torch.stack([value.float().sum(), torch.tensor(float(value.numel()), device=device)])
            net.requires_grad_(False)
            params = [p for p in net.parameters()]
            if sync_grads(params, world * num_rounds):
                opt.step()
                nonfinite_in_a_row = 0
            else:
                opt.zero_grad(set_to_none=True)
                state.nonfinite += 1
                nonfinite_in_a_row += 1
                training_stats.report('Progress/nonfinite_skipped', 1.0)
                if nonfinite_in_a_row >= max_nonfinite_in_a_row:
                    raise RuntimeError(f'{nonfinite_in_a_row} non-finite steps in a row (last: phase {phase.name} at kimg '
                                       f'{state.cur_nimg / 1000:.3f}); stopping. The last good snapshot in {run_dir} is intact.')

        # G_ema: exponential moving average of G with ramp-up, after averaging running statistics over ranks.
        average_buffers([modules[name] for name in loss_obj.trainable])
        ema_nimg = ema_kimg * 1000 if ema_rampup is None else min(ema_kimg * 1000, state.cur_nimg * ema_rampup)
        update_ema(modules['G_ema'], modules['G'], beta=0.5 ** (batch / max(ema_nimg, 1e-8)))

        # ADA: move p toward the target rate of positive real logits every ada_interval steps.
        if augment_pipe is not None and ada_target is not None and (state.step + 1) % ada_interval == 0:
            if dist.is_distributed():
                torch.distributed.all_reduce(ada_signs)
            ada_step(augment_pipe, ada_signs[0] / ada_signs[1].clamp(min=1), ada_target, batch * ada_interval,
                     augment['adjust_kimg'])
            ada_signs.zero_()

        state.cur_nimg += batch
        state.step += 1
        if pbar is not None:
            pbar.update(batch)
        done = state.cur_nimg >= total_nimg

        # Tick: reduce the statistics, print one line, append stats.jsonl, TensorBoard scalars.
        if done or state.cur_nimg >= tick_start_nimg + tick_nimg:
            now = time.time()
            collector.update()
            tick_time = now - tick_start_time
            kimg_done = (state.cur_nimg - tick_start_nimg) / 1000
            p_val = float(augment_pipe.p) if augment_pipe is not None else 0.0
            line = tick_line(state.tick, state.cur_nimg, now - start_time, tick_time, kimg_done, p_val, device)
            if rank == 0:
                if pbar is not None:
                    pbar.clear()        # the bar is on the terminal's stderr, the tick line goes to stdout (and log.txt)
                print(line, flush=True)
                if pbar is not None:
                    pbar.refresh()
                write_tick_stats(collector, stats_file, writer, state.cur_nimg, p_val,
                                 tick_time / max(kimg_done, 1e-8), now)
            state.tick += 1
            tick_start_nimg, tick_start_time = state.cur_nimg, time.time()

        # Snapshot every snap_kimg and at the end.
        if done or state.cur_nimg // snap_nimg > (state.cur_nimg - batch) // snap_nimg:
            snapshot()

    # Done.
    if rank_hash_file:
        with open(os.path.join(run_dir, f'rank{rank}.sha256'), 'w') as f:
            f.write(''.join(checkpoint.weights_hash(modules[n]) for n in sorted(modules)))
    if rank == 0:
        if pbar is not None:
            pbar.close()
        writer.close()
        stats_file.close()
    return modules
