"""Named training statistics: any code reports scalars by name during a tick; a Collector reduces them
across ranks (count, mean, std) at tick time. Reporting never synchronises with the host."""

import re

import numpy as np
import torch

from . import distributed

_counters = {}        # name -> tensor [3] of (count, sum, sum of squares), float64 on the reporting device
_device = torch.device('cpu')

#----------------------------------------------------------------------------
# Record one or more values under a name. Returns the value unchanged so it can be used inline.

def report(name: str, value):
    if not isinstance(name, str) or not name:
        raise ValueError('training_stats.report: name must be a non-empty string')
    elems = torch.as_tensor(value).detach().flatten().to(torch.float64)
    if elems.numel() == 0:
        return value
    moments = torch.stack([torch.ones_like(elems).sum(), elems.sum(), elems.square().sum()])
    if name in _counters:
        _counters[name] = _counters[name] + moments.to(_counters[name].device)
    else:
        _counters[name] = moments
    return value


def reset():
    """Drop every value reported and not yet collected (e.g. by a run that stopped mid-tick in this process)."""
    _counters.clear()

#----------------------------------------------------------------------------
# Collects what was reported since the last update(), reduced over ranks; names filtered by a regex.

class Collector:
    def __init__(self, regex: str = '.*', keep_previous: bool = True):
        self._regex = re.compile(regex)
        self._keep_previous = keep_previous
        self._moments = {}

    def names(self):
        return sorted(self._moments)

    # Pull the pending counters (all names, in a fixed order so that ranks agree) and reduce them.
    def update(self):
        names = sorted(_counters)
        if distributed.is_distributed():
            gathered = [None] * distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, names)
            names = sorted(set().union(*gathered))
        moments = {}
        if names:
            stack = torch.stack([_counters.get(n, torch.zeros(3, dtype=torch.float64)).cpu() for n in names])
            if distributed.is_distributed():
                dev = torch.device('cuda', distributed.get_local_rank()) if torch.cuda.is_available() \
                    and torch.distributed.get_backend() == 'nccl' else torch.device('cpu')
                stack = stack.to(dev)
                torch.distributed.all_reduce(stack)
                stack = stack.cpu()
            moments = {n: stack[i].numpy() for i, n in enumerate(names) if self._regex.fullmatch(n)}
        _counters.clear()
        if not self._keep_previous:
            self._moments = {}
        self._moments.update(moments)

    def num(self, name):
        m = self._moments.get(name)
        return float(m[0]) if m is not None else 0.0

    def mean(self, name):
        m = self._moments.get(name)
        if m is None or m[0] == 0:
            return float('nan')
        return float(m[1] / m[0])

    def std(self, name):
        m = self._moments.get(name)
        if m is None or m[0] == 0:
            return float('nan')
        mean = m[1] / m[0]
        return float(np.sqrt(max(m[2] / m[0] - mean * mean, 0.0)))

    def as_dict(self):
        return {n: dict(num=self.num(n), mean=self.mean(n), std=self.std(n)) for n in self.names()}

    def __getitem__(self, name):
        return self.mean(name)
