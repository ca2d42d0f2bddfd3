# Custom ops (CUDA kernels with pure-PyTorch reference twins). Import the modules directly,
# e.g. `from torch_utils.ops import bias_act, upfirdn2d`.
