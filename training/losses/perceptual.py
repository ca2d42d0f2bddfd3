# Frozen perceptual distance for Head3D's L_lpips (paper eq. 9): LPIPS on a VGG16 trunk.
#
# The standard LPIPS-VGG needs torchvision's ImageNet VGG16 weights, which torchvision would normally download.
# Nothing here downloads: the trunk is always built randomly initialised (lpips' `pnet_rand=True`, which never
# calls the torchvision zoo) and then, for `lpips_vgg`, filled from a local copy of torchvision's
# `vgg16-397923af.pth`. The offline stand-in `lpips_vgg_randtrunk` keeps the real LPIPS linear calibration
# weights (shipped inside the lpips wheel) on the random trunk; its values are not LPIPS values and it is
# logged under its own name.

import os
import warnings

import torch

PERCEPTUAL_KINDS = ('lpips_vgg', 'lpips_vgg_randtrunk', 'none')
VGG16_FILE = 'vgg16-397923af.pth'

# torchvision's `vgg16().features` indices of the conv layers, grouped into lpips' five slices
# (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3).
_VGG_SLICES = {1: (0, 2), 2: (5, 7), 3: (10, 12, 14), 4: (17, 19, 21), 5: (24, 26, 28)}


class PerceptualError(RuntimeError):
    """The perceptual network cannot be built (missing or malformed local weights, bad option)."""

#----------------------------------------------------------------------------
# Where torchvision keeps its zoo weights: $TORCH_HOME/hub/checkpoints/ (torch.hub's own rule).

def default_vgg16_path():
    return os.path.join(torch.hub.get_dir(), 'checkpoints', VGG16_FILE)

#----------------------------------------------------------------------------
# Build lpips' VGG LPIPS with a random trunk and its real linear layers; never touches the network.

def _lpips_vgg_random_trunk():
    try:
        import lpips
    except ImportError as err:
        raise PerceptualError('the perceptual loss needs the `lpips` package (pip install lpips==0.1.4), '
                              'or set perceptual: none') from err
    # A fixed seed makes the random trunk the same network in every run (and after a resume), without touching
    # the caller's RNG stream.
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        # lpips calls torchvision's deprecated `pretrained=` argument; with pnet_rand it means weights=None.
        warnings.simplefilter('ignore', UserWarning)
        torch.manual_seed(0)
        return lpips.LPIPS(net='vgg', pretrained=True, pnet_rand=True, verbose=False)

#----------------------------------------------------------------------------
# Copy torchvision VGG16 `features.*` tensors from a local file into the lpips trunk (`net.sliceK.*`).

def _load_vgg16_trunk(model, path):
    if not os.path.isfile(path):
        raise PerceptualError(
            f'LPIPS-VGG needs torchvision\'s ImageNet VGG16 weights, file "{VGG16_FILE}", which is not downloaded '
            f'at run time. Place it at {path} (torch hub checkpoints dir, i.e. $TORCH_HOME/hub/checkpoints/) or '
            f'give its path with loss.vgg16_path; or choose the offline stand-in perceptual: lpips_vgg_randtrunk.')
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:
        raise PerceptualError(f'cannot read VGG16 weights from {path}: {err}') from err
    if not isinstance(state, dict):
        raise PerceptualError(f'{path} does not hold a state dict of tensors')
    trunk = {}
    for k, layers in _VGG_SLICES.items():
        for i in layers:
            for p in ('weight', 'bias'):
                src = f'features.{i}.{p}'
                if src not in state:
                    raise PerceptualError(f'{path} is not torchvision VGG16 weights: missing "{src}"')
                trunk[f'slice{k}.{i}.{p}'] = state[src]
    try:
        model.net.load_state_dict(trunk, strict=True)
    except RuntimeError as err:
        raise PerceptualError(f'{path}: VGG16 tensors do not fit the LPIPS trunk: {err}') from err

#----------------------------------------------------------------------------
# Frozen LPIPS distance between two image batches in [-1, 1]; returns one distance per sample [N].

class PerceptualDistance(torch.nn.Module):
    def __init__(self, kind='lpips_vgg', vgg16_path=None):
        super().__init__()
        if kind not in PERCEPTUAL_KINDS[:2]:
            raise PerceptualError(f'perceptual must be one of {PERCEPTUAL_KINDS[:2]} here, got {kind!r}')
        self.kind = kind
        self.log_name = 'lpips' if kind == 'lpips_vgg' else 'lpips_randtrunk'
        self.net = _lpips_vgg_random_trunk()
        if kind == 'lpips_vgg':
            _load_vgg16_trunk(self.net, vgg16_path or default_vgg16_path())
        self.net.eval().requires_grad_(False)

    # Keep the frozen net in eval mode whatever the owner's mode is (no dropout in the linear layers).
    def train(self, mode=True):
        return super().train(False)

    def forward(self, a, b):
        return self.net(a, b).flatten()  # lpips expects [-1, 1] inputs, returns [N,1,1,1]

#----------------------------------------------------------------------------
# Build the perceptual network named by the config, or None for `none`.

def build_perceptual(kind, vgg16_path=None, device='cpu'):
    if kind not in PERCEPTUAL_KINDS:
        raise PerceptualError(f'unknown perceptual network {kind!r}; choose one of {", ".join(PERCEPTUAL_KINDS)}')
    if kind == 'none':
        return None
    return PerceptualDistance(kind, vgg16_path=vgg16_path).to(device)
