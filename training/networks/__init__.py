"""Networks: StyleGAN2 layers, EG3D's TriPlaneGenerator and DualDiscriminator, and the registry that
snapshots build networks from (by class name, never by importing a path stored in a file)."""

import copy

from .stylegan2 import Discriminator, Generator
from .triplane import TriPlaneGenerator
from .dual_discriminator import DualDiscriminator

#----------------------------------------------------------------------------
# Classes a snapshot may name.

REGISTRY = {cls.__name__: cls for cls in (TriPlaneGenerator, DualDiscriminator, Generator, Discriminator)}

#----------------------------------------------------------------------------
# Named configurations as plain constructor kwargs: PRESETS[name]['G' | 'D'].
# 'ffhq512' is EG3D's FFHQ 512^2 model (train.py --cfg=ffhq, see EG3D-NOTES section 2);
# 'tiny' keeps the same structure (32-channel planes, 2x SR, resnet D) at 64^2 for CPU tests; its cameras orbit
# the origin like the synthetic world's (training/synthetic.py WORLD_PIVOT).

PRESETS = {
    'ffhq512': dict(
        G=dict(z_dim=512, c_dim=25, w_dim=512, img_resolution=512, img_channels=3, plane_resolution=256,
               plane_channels=32, channel_base=32768, channel_max=512, num_fp16_res=0, conv_clamp=None,
               mapping_kwargs=dict(num_layers=2), sr_input_resolution=128, sr_channels=[256, 128], sr_num_fp16_res=4,
               sr_antialias=True, sr_noise_mode='none', decoder_lr_mul=1, c_gen_conditioning_zero=False, c_scale=1,
               rendering_kwargs=dict(ray_start=2.25, ray_end=3.3, box_warp=1.0, depth_resolution=48,
                                     depth_resolution_importance=48, clamp_mode='softplus', white_back=False),
               plane_axes='eg3d', neural_rendering_resolution=64),
        D=dict(c_dim=25, img_resolution=512, img_channels=3, channel_base=32768, channel_max=512, num_fp16_res=4,
               conv_clamp=256, disc_c_noise=0, epilogue_kwargs=dict(mbstd_group_size=4)),
    ),
    'tiny': dict(
        G=dict(z_dim=64, c_dim=25, w_dim=64, img_resolution=64, img_channels=3, plane_resolution=64,
               plane_channels=32, channel_base=2048, channel_max=64, num_fp16_res=0, conv_clamp=None,
               mapping_kwargs=dict(num_layers=2), sr_input_resolution=32, sr_channels=[32, 32], sr_num_fp16_res=4,
               sr_antialias=True, sr_noise_mode='none', decoder_lr_mul=1, c_gen_conditioning_zero=False, c_scale=1,
               rendering_kwargs=dict(ray_start=2.25, ray_end=3.3, box_warp=1.0, depth_resolution=12,
                                     depth_resolution_importance=12, clamp_mode='softplus', white_back=False),
               plane_axes='eg3d', neural_rendering_resolution=32,
               avg_camera_radius=2.7, avg_camera_pivot=[0.0, 0.0, 0.0]),   # the synthetic world's cameras
        D=dict(c_dim=25, img_resolution=64, img_channels=3, channel_base=2048, channel_max=64, num_fp16_res=4,
               conv_clamp=256, disc_c_noise=0, epilogue_kwargs=dict(mbstd_group_size=4)),
    ),
}

#----------------------------------------------------------------------------
# Constructor kwargs of a config's network spec {class, preset, kwargs}: the preset's G or D kwargs (chosen by the
# class) updated by the explicit kwargs, dicts merged one level deep (rendering_kwargs, mapping_kwargs, ...).

def net_kwargs(spec):
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
# Build a preset's G and D (optionally with kwargs overrides per net).

def build_preset(name, G_overrides=None, D_overrides=None):
    preset = PRESETS[name]
    return (TriPlaneGenerator(**{**preset['G'], **(G_overrides or {})}),
            DualDiscriminator(**{**preset['D'], **(D_overrides or {})}))

#----------------------------------------------------------------------------
