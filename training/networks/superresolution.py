"""EG3D's super-resolution module ("Efficient Geometry-aware 3D GANs", section 4.2) as one class.

EG3D ships SuperresolutionHybrid2X/4X/8X/8XDC, which differ only in sizes: the raw feature image is
resized to `input_resolution`, then two StyleGAN2 synthesis blocks take it to `img_resolution` while
accumulating the RGB image (the raw image is the starting skip image). Both blocks are modulated by
the generator's last w only. Parameter names (block0, block1) match EG3D's so official weights load."""

import torch
from .stylegan2 import SynthesisBlock

#----------------------------------------------------------------------------
# EG3D's configurations, by output resolution: (input_resolution, (block0 channels, block1 channels)).
# 512 = SuperresolutionHybrid8XDC (the FFHQ model), 256 = 4X, 128 = 2X. training/resolution.py picks from them.

EG3D_SR_CONFIGS = {
    512: (128, (256, 128)),
    256: (128, (128, 64)),
    128: (64, (128, 64)),
}

#----------------------------------------------------------------------------

class SuperResolution(torch.nn.Module):
    def __init__(self,
        in_channels,                            # Channels of the raw feature image (32).
        w_dim,                                  # Intermediate latent (W) size.
        img_resolution,                         # Output resolution.
        input_resolution,                       # The feature image is resized to this first (EG3D: 128 or 64).
        block_channels          = (256, 128),   # Output channels of block0 and block1.
        img_channels            = 3,            # Channels of the output image.
        num_fp16_res            = 4,            # > 0 runs both blocks in fp16 with conv_clamp 256 (CUDA only), as EG3D.
        antialias               = True,         # Antialiased bilinear resize of the input (EG3D's sr_antialias).
        fused_modconv_default   = 'inference_only', # See SynthesisBlock.
    ):
        super().__init__()
        factor = img_resolution // input_resolution
        assert factor in (2, 4) and factor * input_resolution == img_resolution, 'SR supports 2x or 4x after the resize'
        self.img_resolution = img_resolution
        self.input_resolution = input_resolution
        self.antialias = antialias
        use_fp16 = num_fp16_res > 0
        common = dict(w_dim=w_dim, img_channels=img_channels, use_fp16=use_fp16, conv_clamp=(256 if use_fp16 else None),
                      fused_modconv_default=fused_modconv_default)
        self.block0 = SynthesisBlock(in_channels, block_channels[0], resolution=img_resolution // 2, up=factor // 2,
                                     **common)
        self.block1 = SynthesisBlock(block_channels[0], block_channels[1], resolution=img_resolution, up=2, **common)

    # rgb [N, 3, h, h] (raw image), x [N, in_channels, h, h] (feature image), ws [N, num_ws, w_dim]
    # -> image [N, img_channels, img_resolution, img_resolution].
    def forward(self, rgb, x, ws, **block_kwargs):
        ws = ws[:, -1:, :].repeat(1, 3, 1)
        if x.shape[-1] != self.input_resolution:
            size = (self.input_resolution, self.input_resolution)
            x = torch.nn.functional.interpolate(x, size=size, mode='bilinear', align_corners=False, antialias=self.antialias)
            rgb = torch.nn.functional.interpolate(rgb, size=size, mode='bilinear', align_corners=False, antialias=self.antialias)
        x, rgb = self.block0(x, rgb, ws, **block_kwargs)
        x, rgb = self.block1(x, rgb, ws, **block_kwargs)
        return rgb

#----------------------------------------------------------------------------
