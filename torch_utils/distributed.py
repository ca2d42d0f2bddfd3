"""Process-group set-up for torchrun (env:// rendezvous, one node or many) and rank-aware helpers.
Without torchrun's variables everything runs as a single process with rank 0."""

import datetime
import os

import torch
import torch.distributed as dist

#----------------------------------------------------------------------------
# Initialise from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).
# NCCL when CUDA is available and requested, gloo otherwise. Returns the device this rank should use.

def init(backend: str | None = None, timeout_s: float = 1800.0) -> torch.device:
    use_cuda = torch.cuda.is_available()
    if 'WORLD_SIZE' in os.environ and int(os.environ['WORLD_SIZE']) > 1 and not dist.is_initialized():
        for var in ('RANK', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
            if var not in os.environ:
                raise RuntimeError(f'distributed launch: environment variable {var} is missing; launch with torchrun')
        backend = backend or ('nccl' if use_cuda else 'gloo')
        if backend == 'nccl':
            torch.cuda.set_device(int(os.environ['LOCAL_RANK']))
        dist.init_process_group(backend=backend, init_method='env://',
                                timeout=datetime.timedelta(seconds=timeout_s))
    if use_cuda:
        return torch.device('cuda', get_local_rank())
    return torch.device('cpu')


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_local_rank() -> int:
    return int(os.environ.get('LOCAL_RANK', '0'))


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1

#----------------------------------------------------------------------------
# Print on rank 0 only.

def print0(*args, **kwargs):
    if get_rank() == 0:
        print(*args, **kwargs)


def barrier():
    if is_distributed():
        dist.barrier()

#----------------------------------------------------------------------------
# Make all ranks start from rank 0's parameters and buffers.

@torch.no_grad()
def broadcast_module(module: torch.nn.Module, src: int = 0):
    if not is_distributed():
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=src)


def shutdown():
    if is_distributed():
        dist.destroy_process_group()
