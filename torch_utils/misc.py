"""Miscellaneous helpers: seeding, an infinite per-rank sampler, shape assertions, parameter copying and a
module summary."""

import random

import numpy as np
import torch

#----------------------------------------------------------------------------
# Seed Python, NumPy and torch (all devices) from one integer.

def set_seed(seed: int):
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)

#----------------------------------------------------------------------------
# Sampler that walks an endlessly reshuffled permutation of the dataset, one shard per rank. The position is
# part of its state so that a resumed run continues with exactly the next items. Written for torch's
# Sampler protocol without Sampler(data_source), which newer PyTorch removed.

class InfiniteSampler(torch.utils.data.Sampler):
    def __init__(self, dataset_size: int, rank: int = 0, num_replicas: int = 1, shuffle: bool = True,
                 seed: int = 0, window_size: float = 0.5, start_index: int = 0):
        if dataset_size <= 0:
            raise ValueError('InfiniteSampler: the dataset is empty')
        if not 0 <= rank < num_replicas:
            raise ValueError(f'InfiniteSampler: rank {rank} outside [0, {num_replicas})')
        if not 0 <= window_size <= 1:
            raise ValueError(f'InfiniteSampler: window_size {window_size} outside [0, 1]')
        super().__init__()
        self.dataset_size = dataset_size
        self.rank = rank
        self.num_replicas = num_replicas
        self.shuffle = shuffle
        self.seed = seed
        self.window_size = window_size
        self.index = start_index   # global step counter over all ranks; state for exact resume

    # The order is a shuffled permutation, locally re-shuffled with a sliding window (StyleGAN style),
    # fully determined by the seed; each rank takes every num_replicas-th item.
    def __iter__(self):
        order = np.arange(self.dataset_size)
        rnd = None
        window = 0
        if self.shuffle:
            rnd = np.random.RandomState(self.seed)
            rnd.shuffle(order)
            window = int(np.rint(order.size * self.window_size))
        # replay the swaps made before start_index so that the stream continues exactly
        idx = 0
        while True:
            i = idx % order.size
            if idx % self.num_replicas == self.rank and idx >= self.index:
                self.index = idx + 1
                yield int(order[i])
            if window >= 2:
                j = (i - rnd.randint(window)) % order.size
                order[i], order[j] = order[j], order[i]
            idx += 1

    def state_dict(self) -> dict:
        return dict(index=int(self.index))

    def load_state_dict(self, state: dict):
        self.index = int(state['index'])

#----------------------------------------------------------------------------
# Check a tensor's shape against a reference where None matches anything; the error names the tensor.

def assert_shape(tensor: torch.Tensor, ref_shape, name: str = 'tensor'):
    if tensor.ndim != len(ref_shape):
        raise ValueError(f'{name}: wrong number of dimensions: got {tensor.ndim}, expected {len(ref_shape)} '
                         f'(shape {list(tensor.shape)} vs {list(ref_shape)})')
    for idx, (size, ref) in enumerate(zip(tensor.shape, ref_shape)):
        if ref is None:
            continue
        if isinstance(ref, torch.Tensor):
            ref = int(ref)
        if size != ref:
            raise ValueError(f'{name}: wrong size for dimension {idx}: got {size}, expected {ref} '
                             f'(shape {list(tensor.shape)} vs {list(ref_shape)})')

#----------------------------------------------------------------------------
# Iterate over a module's named parameters and buffers together.

def named_params_and_buffers(module: torch.nn.Module):
    return list(module.named_parameters()) + list(module.named_buffers())

#----------------------------------------------------------------------------
# Copy parameters and buffers from src to dst by name. With require_all, any tensor of dst missing from src
# is an error; shape mismatches are always errors. Returns the names that were not copied.

@torch.no_grad()
def copy_params_and_buffers(src_module: torch.nn.Module, dst_module: torch.nn.Module, require_all: bool = False):
    src_tensors = dict(named_params_and_buffers(src_module))
    missing = []
    for name, tensor in named_params_and_buffers(dst_module):
        if name not in src_tensors:
            missing.append(name)
            continue
        src = src_tensors[name]
        if src.shape != tensor.shape:
            raise ValueError(f'copy_params_and_buffers: shape mismatch for {name}: '
                             f'{list(src.shape)} vs {list(tensor.shape)}')
        tensor.copy_(src.detach()).requires_grad_(tensor.requires_grad)
    if require_all and missing:
        raise ValueError(f'copy_params_and_buffers: missing in source: {", ".join(missing)}')
    return missing

#----------------------------------------------------------------------------
# Print a table of a module's submodules with parameter counts and output shapes for the given inputs.

def print_module_summary(module: torch.nn.Module, inputs, max_nesting: int = 3, skip_redundant: bool = True):
    if not isinstance(inputs, (tuple, list)):
        inputs = [inputs]
    entries = []

    def hook(mod, _inputs, outputs):
        outs = outputs if isinstance(outputs, (tuple, list)) else [outputs]
        if isinstance(outputs, dict):
            outs = list(outputs.values())
        shapes = [list(t.shape) for t in outs if isinstance(t, torch.Tensor)]
        entries.append((mod, shapes))

    handles = [m.register_forward_hook(hook) for m in module.modules()]
    try:
        outputs = module(*inputs)
    finally:
        for h in handles:
            h.remove()

    names = {mod: (name or '<top-level>') for name, mod in module.named_modules()}
    rows = [('Module', 'Parameters', 'Buffers', 'Output shape')]
    seen = set()
    total_params = total_buffers = 0
    for mod, shapes in entries:
        name = names.get(mod, type(mod).__name__)
        if name.count('.') >= max_nesting:
            continue
        params = [p for p in mod.parameters(recurse=False) if id(p) not in seen]
        buffers = [b for b in mod.buffers(recurse=False) if id(b) not in seen]
        seen.update(id(t) for t in params + buffers)
        n_p = sum(p.numel() for p in params)
        n_b = sum(b.numel() for b in buffers)
        total_params += n_p
        total_buffers += n_b
        if skip_redundant and n_p == 0 and n_b == 0 and not shapes:
            continue
        rows.append((name, str(n_p) if n_p else '-', str(n_b) if n_b else '-',
                     ' '.join(str(s) for s in shapes) or '-'))
    rows.append(('Total', str(sum(p.numel() for p in module.parameters())),
                 str(sum(b.numel() for b in module.buffers())), ''))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for i, r in enumerate(rows):
        print('  '.join(c.ljust(w) for c, w in zip(r, widths)))
        if i == 0 or i == len(rows) - 2:
            print('  '.join('-' * w for w in widths))
    return outputs
