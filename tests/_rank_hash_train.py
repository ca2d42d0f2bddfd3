"""train.py with a test-only hook: each rank writes rank<R>.sha256 (a hash of all its nets) into the run dir when
training returns, so that a test can check that the ranks finished with identical weights. Run with torchrun
(tests/test_distributed.py does); train.py is loaded from its file like the other tests do."""

import os

from _scripts import load_program
from torch_utils import distributed as dist
from training import checkpoint, training_loop

train = load_program('train.py')        # first: training.config binds the real loop's signature as its schema
real_loop = training_loop.training_loop

def hashing_loop(run_dir, **kwargs):
    modules = real_loop(run_dir=run_dir, **kwargs)
    with open(os.path.join(run_dir, f'rank{dist.get_rank()}.sha256'), 'w') as f:
        f.write(''.join(checkpoint.weights_hash(modules[n]) for n in sorted(modules)))
    return modules

if __name__ == '__main__':
    training_loop.training_loop = hashing_loop      # train.py calls it through the module
    train.main()
