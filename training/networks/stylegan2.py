"""StyleGAN2 building blocks ("Analyzing and Improving the Image Quality of StyleGAN", Karras et al. 2020),
with the numerics and parameter layout of NVlabs' PyTorch port as used by EG3D, so that official weights
load one to one: equalised learning rate (runtime weight gains), lr multipliers, weight demodulation,
per-pixel noise, the [1,3,3,1] resampling filter, per-resolution fp16 with conv clamping (CUDA only;
on other devices every layer runs in fp32), skip generator and resnet discriminator."""

import copy
import numpy as np
import torch
from torch_utils import misc
from torch_utils.ops import bias_act, conv2d_resample, fma, upfirdn2d

#----------------------------------------------------------------------------
# Default activation gains (the variance-preserving gains StyleGAN uses for each activation).

_ACT_GAIN = {'linear': 1.0, 'relu': np.sqrt(2), 'lrelu': np.sqrt(2), 'sigmoid': 1.0, 'tanh': 1.0, 'softplus': 1.0}

#----------------------------------------------------------------------------
# The constructor arguments of a network as plain data (stored as `init_kwargs` and in snapshots).

def capture_init_kwargs(frame_locals):
    return {k: copy.deepcopy(v) for k, v in frame_locals.items() if k not in ('self', '__class__')}

#----------------------------------------------------------------------------
# Scale x to unit second moment along `dim` (pixel norm).

def normalize_2nd_moment(x, dim=1, eps=1e-8):
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()

#----------------------------------------------------------------------------
# Whether a block runs in fp16: only when asked for and only on CUDA.

def _block_dtype(use_fp16, device, force_fp32=False):
    return torch.float16 if use_fp16 and device.type == 'cuda' and not force_fp32 else torch.float32

#----------------------------------------------------------------------------
# Modulated convolution with optional demodulation (StyleGAN2 eq. 1-3). The fused path folds the
# per-sample styles into the weights and runs one grouped convolution; the non-fused path scales the
# activations before and after a shared convolution (cheaper for the backward pass in training).

def modulated_conv2d(
    x,                          # Input activations [N, I, H, W].
    weight,                     # Weights [O, I, kh, kw].
    styles,                     # Per-sample modulation [N, I].
    noise           = None,     # Optional noise added to the output, broadcastable to [N, O, H', W'].
    up              = 1,        # Integer upsampling factor.
    down            = 1,        # Integer downsampling factor.
    padding         = 0,        # Padding with respect to the upsampled image.
    resample_filter = None,     # Prepared low-pass filter (upfirdn2d.setup_filter) for resampling.
    demodulate      = True,     # Normalise each output feature map to unit expected variance?
    flip_weight     = True,     # False = convolution, True = correlation (torch conv2d).
    fused_modconv   = True,     # One grouped convolution instead of scaling the activations?
):
    batch_size = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    misc.assert_shape(weight, [out_channels, in_channels, kh, kw])
    misc.assert_shape(x, [batch_size, in_channels, None, None])
    misc.assert_shape(styles, [batch_size, in_channels])

    # Pre-normalise so that fp16 intermediates cannot overflow (demodulation undoes the scale).
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (1 / np.sqrt(in_channels * kh * kw) / weight.norm(float('inf'), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float('inf'), dim=1, keepdim=True)

    # Per-sample weights and demodulation coefficients.
    w = None
    dcoefs = None
    if demodulate or fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(batch_size, 1, -1, 1, 1)     # [N, O, I, kh, kw]
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()                # [N, O]
    if demodulate and fused_modconv:
        w = w * dcoefs.reshape(batch_size, -1, 1, 1, 1)

    # Non-fused: modulate the activations, convolve with the shared weights, demodulate the result.
    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch_size, -1, 1, 1)
        x = conv2d_resample.conv2d_resample(x=x, w=weight.to(x.dtype), f=resample_filter, up=up, down=down,
                                            padding=padding, flip_weight=flip_weight)
        if demodulate and noise is not None:
            x = fma.fma(x, dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1), noise.to(x.dtype))
        elif demodulate:
            x = x * dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1)
        elif noise is not None:
            x = x + noise.to(x.dtype)
        return x

    # Fused: the batch becomes the group dimension of a single convolution.
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample.conv2d_resample(x=x, w=w.to(x.dtype), f=resample_filter, up=up, down=down,
                                        padding=padding, groups=batch_size, flip_weight=flip_weight)
    x = x.reshape(batch_size, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x

#----------------------------------------------------------------------------
# Dense layer with equalised learning rate: weights are stored divided by lr_multiplier and scaled
# at runtime by lr_multiplier / sqrt(fan_in).

class FullyConnectedLayer(torch.nn.Module):
    def __init__(self,
        in_features,                # Number of input features.
        out_features,               # Number of output features.
        bias            = True,     # Learn an additive bias?
        activation      = 'linear', # Activation: 'linear', 'lrelu', 'relu', ...
        lr_multiplier   = 1,        # Learning-rate multiplier.
        bias_init       = 0,        # Initial value of the bias.
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.full([out_features], np.float32(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / np.sqrt(in_features)
        self.bias_gain = lr_multiplier

    # x: [N, in_features] -> [N, out_features].
    def forward(self, x):
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == 'linear' and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act.bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self):
        return f'in_features={self.in_features:d}, out_features={self.out_features:d}, activation={self.activation:s}'

#----------------------------------------------------------------------------
# 2D convolution with equalised learning rate, optional FIR up/downsampling and output clamping.

class Conv2dLayer(torch.nn.Module):
    def __init__(self,
        in_channels,                    # Number of input channels.
        out_channels,                   # Number of output channels.
        kernel_size,                    # Width and height of the kernel.
        bias            = True,         # Learn an additive bias?
        activation      = 'linear',     # Activation: 'linear', 'lrelu', ...
        up              = 1,            # Integer upsampling factor.
        down            = 1,            # Integer downsampling factor.
        resample_filter = [1, 3, 3, 1], # Low-pass filter for resampling.
        conv_clamp      = None,         # Clamp the output to +-X, None = no clamping.
        trainable       = True,         # False = weights are buffers (Freeze-D).
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size ** 2))
        self.act_gain = _ACT_GAIN[activation]

        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        bias = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = torch.nn.Parameter(weight)
            self.bias = torch.nn.Parameter(bias) if bias is not None else None
        else:
            self.register_buffer('weight', weight)
            self.register_buffer('bias', bias)

    # x: [N, I, H, W] -> [N, O, H*up/down, W*up/down]; `gain` scales the output and the clamp.
    def forward(self, x, gain=1):
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = conv2d_resample.conv2d_resample(x=x, w=w.to(x.dtype), f=self.resample_filter, up=self.up, down=self.down,
                                            padding=self.padding, flip_weight=(self.up == 1))
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act.bias_act(x, b, act=self.activation, gain=act_gain, clamp=act_clamp)

    def extra_repr(self):
        return (f'in_channels={self.in_channels:d}, out_channels={self.out_channels:d}, activation={self.activation:s}, '
                f'up={self.up}, down={self.down}')

#----------------------------------------------------------------------------
# Mapping network z, c -> w. The camera label is embedded by a linear layer, both inputs are normalised
# to unit second moment and concatenated; tracks the running mean of w for truncation.

class MappingNetwork(torch.nn.Module):
    def __init__(self,
        z_dim,                      # Latent (Z) size, 0 = no latent.
        c_dim,                      # Conditioning label (C) size, 0 = no label.
        w_dim,                      # Intermediate latent (W) size.
        num_ws,                     # Number of ws to broadcast to, None = return [N, w_dim].
        num_layers      = 8,        # Number of mapping layers.
        embed_features  = None,     # Label embedding size, None = w_dim.
        layer_features  = None,     # Hidden layer size, None = w_dim.
        activation      = 'lrelu',  # Activation of the mapping layers.
        lr_multiplier   = 0.01,     # Learning-rate multiplier of the mapping layers.
        w_avg_beta      = 0.998,    # Decay of the running mean of W, None = do not track.
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta

        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]

        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            setattr(self, f'fc{idx}', FullyConnectedLayer(features[idx], features[idx + 1], activation=activation,
                                                          lr_multiplier=lr_multiplier))
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer('w_avg', torch.zeros([w_dim]))

    # z [N, z_dim], c [N, c_dim] -> ws [N, num_ws, w_dim] (or [N, w_dim] when num_ws is None).
    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False):
        x = None
        if self.z_dim > 0:
            misc.assert_shape(z, [None, self.z_dim])
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            misc.assert_shape(c, [None, self.c_dim])
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y

        for idx in range(self.num_layers):
            x = getattr(self, f'fc{idx}')(x)

        if update_emas and self.w_avg_beta is not None:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])

        # Truncation: pull w toward its running mean, optionally only for the first `cutoff` ws.
        if truncation_psi != 1:
            assert self.w_avg_beta is not None, 'truncation needs a tracked w_avg'
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                head = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
                x = torch.cat([head, x[:, truncation_cutoff:]], dim=1)
        return x

    def extra_repr(self):
        return f'z_dim={self.z_dim:d}, c_dim={self.c_dim:d}, w_dim={self.w_dim:d}, num_ws={self.num_ws}'

#----------------------------------------------------------------------------
# Modulated 3x3 convolution + noise + bias + activation: one layer of the synthesis network.

class SynthesisLayer(torch.nn.Module):
    def __init__(self,
        in_channels,                    # Number of input channels.
        out_channels,                   # Number of output channels.
        w_dim,                          # Intermediate latent (W) size.
        resolution,                     # Output resolution of this layer.
        kernel_size     = 3,            # Convolution kernel size.
        up              = 1,            # Integer upsampling factor.
        use_noise       = True,         # Add per-pixel noise?
        activation      = 'lrelu',      # Activation function.
        resample_filter = [1, 3, 3, 1], # Low-pass filter for upsampling.
        conv_clamp      = None,         # Clamp the output to +-X, None = no clamping.
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = _ACT_GAIN[activation]

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer('noise_const', torch.randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    # x [N, I, R/up, R/up], w [N, w_dim] -> [N, O, R, R]. noise_mode: 'random' | 'const' | 'none'.
    def forward(self, x, w, noise_mode='random', fused_modconv=True, gain=1):
        assert noise_mode in ('random', 'const', 'none')
        in_resolution = self.resolution // self.up
        misc.assert_shape(x, [None, self.in_channels, in_resolution, in_resolution])
        styles = self.affine(w)

        noise = None
        if self.use_noise and noise_mode == 'random':
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device) * self.noise_strength
        if self.use_noise and noise_mode == 'const':
            noise = self.noise_const * self.noise_strength

        x = modulated_conv2d(x=x, weight=self.weight, styles=styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=(self.up == 1), fused_modconv=fused_modconv)
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act.bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=act_gain, clamp=act_clamp)

    def extra_repr(self):
        return (f'in_channels={self.in_channels:d}, out_channels={self.out_channels:d}, w_dim={self.w_dim:d}, '
                f'resolution={self.resolution:d}, up={self.up}, activation={self.activation:s}')

#----------------------------------------------------------------------------
# Modulated 1x1 convolution to image channels, without demodulation.

class ToRGBLayer(torch.nn.Module):
    def __init__(self,
        in_channels,                # Number of input channels.
        out_channels,               # Number of image channels.
        w_dim,                      # Intermediate latent (W) size.
        kernel_size     = 1,        # Convolution kernel size.
        conv_clamp      = None,     # Clamp the output to +-X, None = no clamping.
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size ** 2))

    # x [N, I, H, W], w [N, w_dim] -> [N, out_channels, H, W].
    def forward(self, x, w, fused_modconv=True):
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x=x, weight=self.weight, styles=styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act.bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)

    def extra_repr(self):
        return f'in_channels={self.in_channels:d}, out_channels={self.out_channels:d}, w_dim={self.w_dim:d}'

#----------------------------------------------------------------------------
# One resolution of the skip-architecture synthesis network: (const or upsampling conv0), conv1, toRGB,
# and the running image upsampled and accumulated. `up=1` gives EG3D's SynthesisBlockNoUp (same layout).

class SynthesisBlock(torch.nn.Module):
    def __init__(self,
        in_channels,                            # Number of input channels, 0 = first block (learned const).
        out_channels,                           # Number of output channels.
        w_dim,                                  # Intermediate latent (W) size.
        resolution,                             # Output resolution of this block.
        img_channels,                           # Number of image channels of the toRGB output.
        up                      = 2,            # Upsampling factor of conv0 and of the skip image (1 or 2).
        resample_filter         = [1, 3, 3, 1], # Low-pass filter for upsampling.
        conv_clamp              = 256,          # Clamp conv outputs to +-X, None = no clamping.
        use_fp16                = False,        # Run this block in fp16 (CUDA only)?
        fused_modconv_default   = True,         # fused_modconv when not given; 'inference_only' = not self.training.
        **layer_kwargs,                         # Arguments for SynthesisLayer.
    ):
        super().__init__()
        assert up in (1, 2)
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.up = up
        self.use_fp16 = use_fp16
        self.fused_modconv_default = fused_modconv_default
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0

        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim=w_dim, resolution=resolution, up=up,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim=w_dim, resolution=resolution,
                                    conv_clamp=conv_clamp, **layer_kwargs)
        self.num_conv += 1
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
        self.num_torgb += 1

    # x [N, I, R/up, R/up] or None, img [N, C, R/up, R/up] or None, ws [N, num_conv + num_torgb, w_dim]
    # -> (x [N, O, R, R] in the block's dtype, img [N, C, R, R] float32).
    def forward(self, x, img, ws, force_fp32=False, fused_modconv=None, update_emas=False, **layer_kwargs):
        _ = update_emas # no running statistics in this block
        misc.assert_shape(ws, [None, self.num_conv + self.num_torgb, self.w_dim])
        w_iter = iter(ws.unbind(dim=1))
        dtype = _block_dtype(self.use_fp16, ws.device, force_fp32)
        if fused_modconv is None:
            fused_modconv = self.fused_modconv_default
        if fused_modconv == 'inference_only':
            fused_modconv = not self.training

        if self.in_channels == 0:
            x = self.const.to(dtype=dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
        else:
            in_res = self.resolution // self.up
            misc.assert_shape(x, [None, self.in_channels, in_res, in_res])
            x = x.to(dtype=dtype)
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)

        if img is not None and self.up == 2:
            misc.assert_shape(img, [None, self.img_channels, self.resolution // 2, self.resolution // 2])
            img = upfirdn2d.upsample2d(img, self.resample_filter)
        y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv).to(torch.float32)
        img = img + y if img is not None else y

        assert x.dtype == dtype
        return x, img

    def extra_repr(self):
        return f'resolution={self.resolution:d}, up={self.up}'

#----------------------------------------------------------------------------
# StyleGAN2 synthesis network (skip architecture): blocks 4x4 ... img_resolution, each emitting an
# image that is upsampled and summed. Channels per resolution: min(channel_base // res, channel_max).

class SynthesisNetwork(torch.nn.Module):
    def __init__(self,
        w_dim,                      # Intermediate latent (W) size.
        img_resolution,             # Output resolution (power of two).
        img_channels,               # Number of output channels.
        channel_base    = 32768,    # Overall multiplier for the number of channels.
        channel_max     = 512,      # Maximum number of channels in any layer.
        num_fp16_res    = 4,        # Use fp16 for the N highest resolutions (CUDA only).
        **block_kwargs,             # Arguments for SynthesisBlock.
    ):
        assert img_resolution >= 4 and img_resolution & (img_resolution - 1) == 0
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.num_fp16_res = num_fp16_res
        log2 = int(np.log2(img_resolution))
        self.block_resolutions = [2 ** i for i in range(2, log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)

        self.num_ws = 0
        for res in self.block_resolutions:
            is_last = (res == img_resolution)
            block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim=w_dim, resolution=res,
                                   img_channels=img_channels, use_fp16=(res >= fp16_resolution),
                                   **block_kwargs)
            self.num_ws += block.num_conv + (block.num_torgb if is_last else 0)
            setattr(self, f'b{res}', block)

    # ws [N, num_ws, w_dim] -> img [N, img_channels, R, R] float32. Consecutive blocks share one w
    # (the toRGB of a block uses the w of the next block's first conv).
    def forward(self, ws, **block_kwargs):
        misc.assert_shape(ws, [None, self.num_ws, self.w_dim])
        ws = ws.to(torch.float32)
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f'b{res}')
            x, img = block(x, img, ws.narrow(1, w_idx, block.num_conv + block.num_torgb), **block_kwargs)
            w_idx += block.num_conv
        return img

    def extra_repr(self):
        return (f'w_dim={self.w_dim:d}, num_ws={self.num_ws:d}, img_resolution={self.img_resolution:d}, '
                f'img_channels={self.img_channels:d}, num_fp16_res={self.num_fp16_res:d}')

#----------------------------------------------------------------------------
# StyleGAN2 generator = mapping + synthesis (the tri-plane backbone of EG3D).

class Generator(torch.nn.Module):
    def __init__(self,
        z_dim,                      # Latent (Z) size.
        c_dim,                      # Conditioning label (C) size.
        w_dim,                      # Intermediate latent (W) size.
        img_resolution,             # Output resolution.
        img_channels,               # Number of output channels.
        mapping_kwargs  = {},       # Arguments for MappingNetwork.
        **synthesis_kwargs,         # Arguments for SynthesisNetwork.
    ):
        kwargs = capture_init_kwargs(locals())
        super().__init__()
        self.init_kwargs = kwargs
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                          **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    # z [N, z_dim], c [N, c_dim] -> img [N, img_channels, R, R].
    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False, **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, update_emas=update_emas)
        return self.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)

#----------------------------------------------------------------------------
# One resolution of the resnet discriminator: (fromRGB on the first block), conv0, strided conv1,
# and a 1x1 downsampling skip, summed with gain sqrt(1/2).

class DiscriminatorBlock(torch.nn.Module):
    def __init__(self,
        in_channels,                        # Number of input channels, 0 = first block (reads the image).
        tmp_channels,                       # Number of intermediate channels.
        out_channels,                       # Number of output channels.
        resolution,                         # Input resolution of this block.
        img_channels,                       # Number of image channels.
        first_layer_idx,                    # Index of this block's first layer (for Freeze-D).
        activation          = 'lrelu',      # Activation function.
        resample_filter     = [1, 3, 3, 1], # Low-pass filter for downsampling.
        conv_clamp          = None,         # Clamp conv outputs to +-X, None = no clamping.
        use_fp16            = False,        # Run this block in fp16 (CUDA only)?
        freeze_layers       = 0,            # Freeze-D: number of leading layers whose weights are buffers.
    ):
        assert in_channels in (0, tmp_channels)
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.use_fp16 = use_fp16
        self.register_buffer('resample_filter', upfirdn2d.setup_filter(resample_filter))

        # Layer indices count fromrgb, conv0, conv1, skip in that order (EG3D's numbering).
        self.num_layers = 0
        def trainable():
            self.num_layers += 1
            return first_layer_idx + self.num_layers - 1 >= freeze_layers

        if in_channels == 0:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, activation=activation,
                                       trainable=trainable(), conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, activation=activation,
                                 trainable=trainable(), conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, activation=activation, down=2,
                                 trainable=trainable(), resample_filter=resample_filter, conv_clamp=conv_clamp)
        self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                                trainable=trainable(), resample_filter=resample_filter)

    # x [N, I, R, R] or None, img [N, C, R, R] (first block) -> (x [N, O, R/2, R/2], None).
    def forward(self, x, img, force_fp32=False):
        device = (x if x is not None else img).device
        dtype = _block_dtype(self.use_fp16, device, force_fp32)
        if x is not None:
            misc.assert_shape(x, [None, self.in_channels, self.resolution, self.resolution])
            x = x.to(dtype=dtype)
        if self.in_channels == 0:
            misc.assert_shape(img, [None, self.img_channels, self.resolution, self.resolution])
            y = self.fromrgb(img.to(dtype=dtype))
            x = x + y if x is not None else y
            img = None

        y = self.skip(x, gain=np.sqrt(0.5))
        x = self.conv0(x)
        x = self.conv1(x, gain=np.sqrt(0.5))
        x = y + x
        assert x.dtype == dtype
        return x, img

    def extra_repr(self):
        return f'resolution={self.resolution:d}'

#----------------------------------------------------------------------------
# Minibatch standard deviation (ProGAN): appends the mean per-group stddev as extra feature maps.

class MinibatchStdLayer(torch.nn.Module):
    def __init__(self, group_size, num_channels=1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    # x [N, C, H, W] -> [N, C + num_channels, H, W]; N must be divisible by the group size.
    def forward(self, x):
        N, C, H, W = x.shape
        G = min(self.group_size, N) if self.group_size is not None else N
        F = self.num_channels
        y = x.reshape(G, -1, F, C // F, H, W)          # [G, n, F, c, H, W]
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()     # [n, F, c, H, W] stddev over the group
        y = y.mean(dim=[2, 3, 4]).reshape(-1, F, 1, 1) # [n, F, 1, 1]
        y = y.repeat(G, 1, H, W)                       # [N, F, H, W]
        return torch.cat([x, y], dim=1)

    def extra_repr(self):
        return f'group_size={self.group_size}, num_channels={self.num_channels:d}'

#----------------------------------------------------------------------------
# Discriminator epilogue at 4x4: mbstd, conv, fc, out; with a camera, projection conditioning
# (Miyato & Koyama 2018): logit = <out, cmap> / sqrt(cmap_dim).

class DiscriminatorEpilogue(torch.nn.Module):
    def __init__(self,
        in_channels,                    # Number of input channels.
        cmap_dim,                       # Size of the mapped label, 0 = unconditional.
        resolution,                     # Resolution of this block (4).
        mbstd_group_size    = 4,        # Group size of the minibatch stddev, None = whole batch.
        mbstd_num_channels  = 1,        # Number of mbstd features, 0 = disable.
        activation          = 'lrelu',  # Activation function.
        conv_clamp          = None,     # Clamp conv outputs to +-X, None = no clamping.
    ):
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.mbstd = MinibatchStdLayer(group_size=mbstd_group_size, num_channels=mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation=activation,
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * (resolution ** 2), in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    # x [N, C, 4, 4], cmap [N, cmap_dim] or None -> logits [N, 1] float32.
    def forward(self, x, cmap):
        misc.assert_shape(x, [None, self.in_channels, self.resolution, self.resolution])
        x = x.to(torch.float32)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x)
        if self.cmap_dim > 0:
            misc.assert_shape(cmap, [None, self.cmap_dim])
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / np.sqrt(self.cmap_dim))
        return x

    def extra_repr(self):
        return f'resolution={self.resolution:d}'

#----------------------------------------------------------------------------
# StyleGAN2 resnet discriminator with projection conditioning on a mapped label.

class Discriminator(torch.nn.Module):
    def __init__(self,
        c_dim,                          # Conditioning label (C) size, 0 = unconditional.
        img_resolution,                 # Input resolution.
        img_channels,                   # Number of input channels.
        channel_base        = 32768,    # Overall multiplier for the number of channels.
        channel_max         = 512,      # Maximum number of channels in any layer.
        num_fp16_res        = 4,        # Use fp16 for the N highest resolutions (CUDA only).
        conv_clamp          = 256,      # Clamp conv outputs to +-X, None = no clamping.
        cmap_dim            = None,     # Size of the mapped label, None = channels at 4x4.
        block_kwargs        = {},       # Arguments for DiscriminatorBlock.
        mapping_kwargs      = {},       # Arguments for MappingNetwork (the label mapping).
        epilogue_kwargs     = {},       # Arguments for DiscriminatorEpilogue.
    ):
        kwargs = capture_init_kwargs(locals())
        super().__init__()
        self.init_kwargs = kwargs
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        log2 = int(np.log2(img_resolution))
        self.block_resolutions = [2 ** i for i in range(log2, 2, -1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions + [4]}
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
        if cmap_dim is None:
            cmap_dim = channels[4]
        if c_dim == 0:
            cmap_dim = 0

        layer_idx = 0
        for res in self.block_resolutions:
            block = DiscriminatorBlock(channels[res] if res < img_resolution else 0, channels[res], channels[res // 2],
                                       resolution=res, img_channels=img_channels, first_layer_idx=layer_idx,
                                       use_fp16=(res >= fp16_resolution), conv_clamp=conv_clamp, **block_kwargs)
            setattr(self, f'b{res}', block)
            layer_idx += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None, **mapping_kwargs)
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim=cmap_dim, resolution=4, conv_clamp=conv_clamp, **epilogue_kwargs)

    # Blocks and epilogue on an already assembled input: img [N, img_channels, R, R], c [N, c_dim] -> [N, 1].
    def run(self, img, c, **block_kwargs):
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f'b{res}')(x, img, **block_kwargs)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, cmap)

    # img [N, img_channels, R, R], c [N, c_dim] -> logits [N, 1].
    def forward(self, img, c, update_emas=False, **block_kwargs):
        _ = update_emas # no running statistics in D
        return self.run(img, c, **block_kwargs)

    def extra_repr(self):
        return f'c_dim={self.c_dim:d}, img_resolution={self.img_resolution:d}, img_channels={self.img_channels:d}'

#----------------------------------------------------------------------------
