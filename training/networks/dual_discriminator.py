"""EG3D's DualDiscriminator ("Efficient Geometry-aware 3D GANs", section 4.3): a StyleGAN2 resnet
discriminator on the 6-channel image cat(image, image_raw resized to the image's resolution),
conditioned on the rendering camera by projection onto a mapped label. Parameter names (b512 ... b8,
mapping, b4) match EG3D's so official weights load one to one."""

import torch
from .stylegan2 import Discriminator, capture_init_kwargs

#----------------------------------------------------------------------------
# EG3D's 'antialiased' filtered resizing of the raw image to the SR image's resolution.

def filtered_resizing(image, size):
    return torch.nn.functional.interpolate(image, size=(size, size), mode='bilinear', align_corners=False, antialias=True)

#----------------------------------------------------------------------------

class DualDiscriminator(Discriminator):
    def __init__(self,
        c_dim               = 25,       # Conditioning camera label size, 0 = unconditional.
        img_resolution      = 512,      # Resolution of the (super-resolved) image.
        img_channels        = 3,        # Channels of each of the two images (the network sees twice as many).
        channel_base        = 32768,    # Overall multiplier for the number of channels.
        channel_max         = 512,      # Maximum number of channels in any layer.
        num_fp16_res        = 4,        # Use fp16 for the N highest resolutions (CUDA only).
        conv_clamp          = 256,      # Clamp conv outputs to +-X, None = no clamping.
        cmap_dim            = None,     # Size of the mapped camera, None = channels at 4x4.
        disc_c_noise        = 0,        # Std of noise (relative to the batch's per-entry std) added to c.
        block_kwargs        = {},       # Arguments for DiscriminatorBlock.
        mapping_kwargs      = {},       # Arguments for MappingNetwork (the camera mapping, 8 layers).
        epilogue_kwargs     = {},       # Arguments for DiscriminatorEpilogue (mbstd group 4).
    ):
        kwargs = capture_init_kwargs(locals())
        super().__init__(c_dim=c_dim, img_resolution=img_resolution, img_channels=2 * img_channels,
                         channel_base=channel_base, channel_max=channel_max, num_fp16_res=num_fp16_res,
                         conv_clamp=conv_clamp, cmap_dim=cmap_dim, block_kwargs=block_kwargs,
                         mapping_kwargs=mapping_kwargs, epilogue_kwargs=epilogue_kwargs)
        self.init_kwargs = kwargs
        self.disc_c_noise = disc_c_noise

    # img = dict(image [N, 3, R, R], image_raw [N, 3, r, r]), c [N, c_dim] -> logits [N, 1].
    def forward(self, img, c, update_emas=False, **block_kwargs):
        _ = update_emas # no running statistics in D
        image = img['image']
        x = torch.cat([image, filtered_resizing(img['image_raw'], image.shape[-1])], dim=1)
        if self.c_dim > 0 and self.disc_c_noise > 0:
            c = c + torch.randn_like(c) * c.std(0) * self.disc_c_noise
        return self.run(x, c, **block_kwargs)

#----------------------------------------------------------------------------
