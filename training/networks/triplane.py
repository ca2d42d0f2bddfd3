"""TriPlaneGenerator: EG3D's generator ("Efficient Geometry-aware 3D GANs", Chan et al. 2022, section 4),
the teacher and student of Head3D.

    z, c_cond --mapping--> ws --StyleGAN2 synthesis--> planes [N, 3, 32, H, W]
    c_render --rays--> volume rendering of the planes through OSGDecoder --> feature image [N, 32, h, h]
    feature image, ws[:, -1] --SuperResolution--> image; image_raw = feature image[:, :3]

Numerics and parameter names follow EG3D (backbone.mapping, backbone.synthesis, decoder.net,
superresolution) so that official weights load one to one. Unlike EG3D, nothing is mutated in forward:
the neural rendering resolution and render overrides are explicit arguments."""

import dataclasses
import math
import torch
from training import cameras
from training.rendering import RenderOptions, generate_plane_axes, render_field, sample_from_planes, sample_rays
from .stylegan2 import FullyConnectedLayer, Generator as StyleGAN2Backbone, capture_init_kwargs
from .superresolution import SuperResolution

#----------------------------------------------------------------------------
# EG3D's OSGDecoder: mean of the three plane features -> FC 32->64, softplus -> FC 64->1+32.
# rgb (the 32 feature channels) goes through MipNeRF's widened sigmoid; sigma stays raw (the renderer
# applies the density shift and activation).

class OSGDecoder(torch.nn.Module):
    def __init__(self,
        in_features     = 32,       # Channels of a plane feature.
        hidden_features = 64,       # Width of the hidden layer.
        out_features    = 32,       # Feature channels of the output (the first 3 are RGB).
        lr_multiplier   = 1,        # Learning-rate multiplier (EG3D's decoder_lr_mul).
    ):
        super().__init__()
        self.net = torch.nn.Sequential(
            FullyConnectedLayer(in_features, hidden_features, lr_multiplier=lr_multiplier),
            torch.nn.Softplus(),
            FullyConnectedLayer(hidden_features, 1 + out_features, lr_multiplier=lr_multiplier),
        )

    # features [N, 3, M, C] -> dict(rgb [N, M, out_features] in (-0.001, 1.001), sigma [N, M, 1] raw).
    def forward(self, features):
        x = features.mean(1)
        N, M, C = x.shape
        x = self.net(x.reshape(N * M, C)).reshape(N, M, -1)
        rgb = torch.sigmoid(x[..., 1:]) * (1 + 2 * 0.001) - 0.001
        return dict(rgb=rgb, sigma=x[..., 0:1])

#----------------------------------------------------------------------------
# XYDepthGate (not in EG3D or Head3D): a tri-plane decoder sees the mean of the three plane features, so the XY
# plane's features at (x, y) reach the front (z > 0) and the back (z < 0) of the head alike; a face in the XY plane
# can only be hidden behind the head by the other two planes adding to it. The gate multiplies the XY features by
# g(z) = 1 + MLP(z, sin/cos(k pi z)) per channel, with the last layer zero so that g = 1 at init (the network is then
# EG3D's exactly): a rank-one depth profile for the XY plane, the cheapest step toward PanoHead's tri-grid.

class XYDepthGate(torch.nn.Module):
    def __init__(self, channels, frequencies=4, hidden=32):
        super().__init__()
        self.register_buffer('freqs', torch.pi * torch.arange(1, frequencies + 1, dtype=torch.float32), persistent=False)
        self.fc1 = torch.nn.Linear(1 + 2 * frequencies, hidden)
        self.fc2 = torch.nn.Linear(hidden, channels)
        torch.nn.init.zeros_(self.fc2.weight)
        torch.nn.init.zeros_(self.fc2.bias)

    # features [N, 3, M, C] (plane 0 = XY), coords [N, M, 3] -> features with plane 0 scaled by g(z).
    def forward(self, features, coords, box_warp):
        z = (2 / box_warp) * coords[..., 2:3].float()                                  # [N, M, 1] in [-1, 1]
        pe = torch.cat([z, torch.sin(z * self.freqs), torch.cos(z * self.freqs)], dim=-1)
        gate = 1 + self.fc2(torch.nn.functional.softplus(self.fc1(pe))).to(features.dtype)
        return torch.cat([features[:, :1] * gate[:, None], features[:, 1:]], dim=1)

#----------------------------------------------------------------------------
# XY depth layers (not in EG3D or Head3D; PanoHead's tri-grid, for the XY plane only): the XY plane is stored as
# `layers` planes at depths q_i = 1 - (2i + 1) / layers (normalised z in [-1, 1], front first), and the XY feature
# at a point is the linear interpolation over z between the two layers around it (clamped beyond the outermost
# ones), so the front and the back of the head read different XY features. Layer 0 (the front) is the tri-plane's
# plane 0: L_kd distils it alone. A tri-plane snapshot (e.g. the face teacher) loads with its XY plane as layer 0 and
# the deeper layers either zero (xy_layers_init 'zero': the teacher's face reaches no deeper than the front layer's
# reach) or copies of it ('copy': renders as that tri-plane, to float rounding, 3e-6 on a 64^2 image).

XY_LAYERS_INITS = ('zero', 'copy')

# sharpness s >= 1 narrows each hand-over from one layer to the next to the middle 1/s of the gap between their
# depths (1 = linear over the whole gap). With two layers at the default box the head's front and back surfaces
# (normalised z about +0.3 and -0.4 on the synthetic world) lie inside the linear hand-over: each surface then
# reads 10-20% of the other layer, and training has to cancel the face behind in the back layer itself.
def xy_layer_weights(z, layers, sharpness=1.0):
    # z [..., 1] normalised depth -> weights [..., layers], non-negative, summing to 1.
    t = ((1 - z) * (layers / 2) - 0.5).clamp(0, layers - 1)                # position in layer units, 0 = front
    if sharpness != 1 and layers > 1:
        base = t.detach().floor().clamp(max=layers - 2)
        t = base + ((t - base - 0.5) * sharpness + 0.5).clamp(0, 1)
    return torch.relu(1 - (t - torch.arange(layers, device=z.device, dtype=z.dtype)).abs())

# A tri-plane backbone state (ToRGB rows = 3 planes x C) -> the same with `layers` XY layers: the extra layers
# (rows 3C.. of every ToRGB weight and bias) start as copies of the XY plane's rows (init 'copy') or zero ('zero').
def expand_xy_layers(state, plane_channels, layers, init):
    if init not in XY_LAYERS_INITS:
        raise ValueError(f'xy_layers_init must be one of {", ".join(XY_LAYERS_INITS)}, got {init!r}')
    C, out = plane_channels, dict(state)
    for key, value in state.items():
        if key.startswith('backbone.synthesis.') and '.torgb.' in key and '.affine.' not in key and value.shape[0] == 3 * C:
            extra = value[:C] if init == 'copy' else torch.zeros_like(value[:C])
            out[key] = torch.cat([value] + [extra] * (layers - 1), dim=0)
    return out

#----------------------------------------------------------------------------
# synthesis() and forward() of a tri-plane generator, written on its mapping(), synthesis_planes() and
# render_planes(); shared by TriPlaneGenerator and wrappers that change how planes are made (XYSwapGenerator).

class PlaneGeneratorMixin:
    # ws, c_render -> dict(image, image_raw, image_depth, weights_sum, planes, ws). noise_mode drives the
    # backbone's noise; the SR uses sr_noise_mode as in EG3D.
    def synthesis(self, ws, c_render, neural_rendering_resolution=None, noise_mode='const', update_emas=False,
                  generator=None, render_overrides=None, **block_kwargs):
        planes = self.synthesis_planes(ws, noise_mode=noise_mode, update_emas=update_emas, **block_kwargs)
        out = self.render_planes(planes, ws, c_render, neural_rendering_resolution=neural_rendering_resolution,
                                 generator=generator, render_overrides=render_overrides, **block_kwargs)
        return dict(out, planes=planes, ws=ws)

    # z, c (conditioning) and c_render (rendering camera, default c) -> the synthesis dict.
    def forward(self, z, c, c_render=None, truncation_psi=1, truncation_cutoff=None, neural_rendering_resolution=None,
                noise_mode='const', update_emas=False, generator=None, render_overrides=None, **block_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, update_emas=update_emas)
        return self.synthesis(ws, c if c_render is None else c_render, neural_rendering_resolution=neural_rendering_resolution,
                              noise_mode=noise_mode, update_emas=update_emas, generator=generator,
                              render_overrides=render_overrides, **block_kwargs)

#----------------------------------------------------------------------------

class TriPlaneGenerator(PlaneGeneratorMixin, torch.nn.Module):
    def __init__(self,
        z_dim                       = 512,          # Latent (Z) size.
        c_dim                       = 25,           # Conditioning camera label size.
        w_dim                       = 512,          # Intermediate latent (W) size.
        img_resolution              = 512,          # Output (super-resolved) image resolution.
        img_channels                = 3,            # Output image channels.
        plane_resolution            = 256,          # Tri-plane resolution (the backbone's output resolution).
        plane_channels              = 32,           # Channels per plane (= decoder input).
        channel_base                = 32768,        # Backbone: overall multiplier for the number of channels.
        channel_max                 = 512,          # Backbone: maximum number of channels.
        num_fp16_res                = 0,            # Backbone: fp16 for the N highest resolutions (CUDA only).
        conv_clamp                  = None,         # Backbone: clamp conv outputs to +-X, None = no clamping.
        fused_modconv_default       = 'inference_only', # Backbone and SR: fused modconv at inference only.
        mapping_kwargs              = {'num_layers': 2}, # Arguments for MappingNetwork (EG3D --map-depth 2).
        sr_input_resolution         = 128,          # SR: the feature image is resized to this first.
        sr_channels                 = (256, 128),   # SR: channels of its two blocks (EG3D 8XDC: 256, 128).
        sr_num_fp16_res             = 4,            # SR: > 0 = fp16 with conv_clamp 256 (CUDA only).
        sr_antialias                = True,         # SR: antialiased resize of its input.
        sr_noise_mode               = 'none',       # SR: noise mode when the caller does not give one.
        decoder_lr_mul              = 1,            # Decoder learning-rate multiplier.
        c_gen_conditioning_zero     = False,        # Condition the mapping on zeros instead of the camera.
        c_scale                     = 1,            # Scale of the conditioning camera label.
        rendering_kwargs            = {},           # RenderOptions fields (ray range, samples, box_warp, ...).
        plane_axes                  = 'eg3d',       # 'eg3d' (XY, XZ, ZX; official weights) or 'xyz' (XY, XZ, YZ).
        neural_rendering_resolution = 64,           # Default rendering resolution (overridable per call).
        avg_camera_radius           = 2.7,          # Orbit radius of the data's cameras (EG3D rendering_kwargs key);
        avg_camera_pivot            = (0, 0, 0.2),  # and the point they look at: viewers and metrics use these.
        xy_depth_gate               = False,        # Not in EG3D or the paper: scale the XY plane's features by a
                                                    # learned per-channel function of depth z (XYDepthGate).
        xy_depth_layers             = 1,            # Not in EG3D or the paper: the XY plane as this many depth layers
                                                    # (1 = EG3D's tri-plane; 2+ = PanoHead's tri-grid for XY only).
        xy_layers_init              = 'zero',       # How --init from a tri-plane fills the deeper XY layers: 'zero'
                                                    # or 'copy' (of its XY plane); see expand_xy_layers.
        xy_layer_sharpness          = 1.0,          # The XY layers' hand-over over depth: 1 = linear over the whole
                                                    # gap between layers, s > 1 = over its middle 1/s only.
    ):
        kwargs = capture_init_kwargs(locals())
        super().__init__()
        self.init_kwargs = kwargs
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.plane_channels = plane_channels
        self.sr_noise_mode = sr_noise_mode
        self.c_gen_conditioning_zero = c_gen_conditioning_zero
        self.c_scale = c_scale
        self.neural_rendering_resolution = neural_rendering_resolution
        if not (float(avg_camera_radius) > 0 and len(avg_camera_pivot) == 3):
            raise ValueError(f'avg_camera_radius must be > 0 and avg_camera_pivot 3 numbers, got '
                             f'{avg_camera_radius!r}, {avg_camera_pivot!r}')
        self.avg_camera_radius = float(avg_camera_radius)
        self.avg_camera_pivot = tuple(float(v) for v in avg_camera_pivot)
        kwargs['avg_camera_pivot'] = list(self.avg_camera_pivot)
        self.rendering = RenderOptions(**rendering_kwargs)
        kwargs['rendering_kwargs'] = dataclasses.asdict(self.rendering)    # stored resolved, so snapshots stay exact
        self.plane_axes_kind = plane_axes
        if isinstance(xy_depth_layers, bool) or not isinstance(xy_depth_layers, int) or xy_depth_layers < 1:
            raise ValueError(f'xy_depth_layers must be an integer >= 1, got {xy_depth_layers!r}')
        self.xy_depth_layers = xy_depth_layers
        if xy_layers_init not in XY_LAYERS_INITS:
            raise ValueError(f'xy_layers_init must be one of {", ".join(XY_LAYERS_INITS)}, got {xy_layers_init!r}')
        self.xy_layers_init = xy_layers_init
        if isinstance(xy_layer_sharpness, bool) or not isinstance(xy_layer_sharpness, (int, float)) \
                or not math.isfinite(xy_layer_sharpness) or xy_layer_sharpness < 1:
            raise ValueError(f'xy_layer_sharpness must be a number >= 1, got {xy_layer_sharpness!r}')
        self.xy_layer_sharpness = float(xy_layer_sharpness)

        self.backbone = StyleGAN2Backbone(z_dim, c_dim, w_dim, img_resolution=plane_resolution,
            img_channels=(2 + xy_depth_layers) * plane_channels, mapping_kwargs=mapping_kwargs, channel_base=channel_base,
            channel_max=channel_max, num_fp16_res=num_fp16_res, conv_clamp=conv_clamp,
            fused_modconv_default=fused_modconv_default)
        self.superresolution = SuperResolution(plane_channels, w_dim=w_dim, img_resolution=img_resolution,
            input_resolution=sr_input_resolution, block_channels=tuple(sr_channels), img_channels=img_channels,
            num_fp16_res=sr_num_fp16_res, antialias=sr_antialias, fused_modconv_default=fused_modconv_default)
        self.decoder = OSGDecoder(plane_channels, out_features=plane_channels, lr_multiplier=decoder_lr_mul)
        self.xy_gate = XYDepthGate(plane_channels) if xy_depth_gate else None
        self.register_buffer('plane_axes', generate_plane_axes(plane_axes), persistent=False)
        self.num_ws = self.backbone.num_ws

    # z [N, z_dim], c_cond [N, 25] -> ws [N, num_ws, w_dim].
    def mapping(self, z, c_cond, truncation_psi=1, truncation_cutoff=None, update_emas=False):
        c = torch.zeros_like(c_cond) if self.c_gen_conditioning_zero else c_cond
        return self.backbone.mapping(z, c * self.c_scale, truncation_psi=truncation_psi,
                                     truncation_cutoff=truncation_cutoff, update_emas=update_emas)

    # ws -> planes [N, 2 + xy_depth_layers, plane_channels, H, W] (the backbone image viewed as planes: XY, XZ, ZX,
    # then the XY plane's deeper layers, if any; plane 0 = XY, its front layer).
    def synthesis_planes(self, ws, noise_mode='const', update_emas=False, **block_kwargs):
        planes = self.backbone.synthesis(ws, noise_mode=noise_mode, update_emas=update_emas, **block_kwargs)
        return planes.view(len(planes), 2 + self.xy_depth_layers, self.plane_channels, planes.shape[-2], planes.shape[-1])

    # Field of the planes at points: coords [N, M, 3] -> dict(rgb [N, M, 32], sigma [N, M, 1]).
    def query_field(self, planes, coords, box_warp=None):
        box_warp = self.rendering.box_warp if box_warp is None else box_warp
        features = sample_from_planes(self.plane_axes, planes[:, :3], coords, box_warp)
        if self.xy_depth_layers > 1:
            deeper = sample_from_planes(self.plane_axes[:1].expand(planes.shape[1] - 3, 3, 3), planes[:, 3:], coords, box_warp)
            layers = torch.cat([features[:, :1], deeper], dim=1)                       # [N, L, M, C], front first
            w = xy_layer_weights((2 / box_warp) * coords[..., 2:3].float(), self.xy_depth_layers,
                                 self.xy_layer_sharpness)  # [N, M, L]
            xy = (layers * w.permute(0, 2, 1)[..., None].to(layers.dtype)).sum(1, keepdim=True)
            features = torch.cat([xy, features[:, 1:]], dim=1)
        return self.decoder(features if self.xy_gate is None else self.xy_gate(features, coords, box_warp))

    # Volume-render the planes from cameras c_render and super-resolve. noise_mode is the SR's noise
    # (None = sr_noise_mode); render_overrides replaces RenderOptions fields for this call only.
    def render_planes(self, planes, ws, c_render, neural_rendering_resolution=None, noise_mode=None,
                      generator=None, render_overrides=None, **block_kwargs):
        res = self.neural_rendering_resolution if neural_rendering_resolution is None else int(neural_rendering_resolution)
        opts = self.rendering.replace(**render_overrides) if render_overrides else self.rendering
        cam2world, intrinsics = cameras.unpack_label(c_render)
        origins, dirs = sample_rays(cam2world, intrinsics, res)                         # [N, R, 3] each
        out = render_field(lambda coords, _dirs: self.query_field(planes, coords, opts.box_warp), origins, dirs, opts,
                           generator=generator)

        N = planes.shape[0]
        feature_image = out['features'].permute(0, 2, 1).reshape(N, -1, res, res).contiguous()
        depth_image = out['depth'].permute(0, 2, 1).reshape(N, 1, res, res)
        weights_sum = out['weights_sum'].permute(0, 2, 1).reshape(N, 1, res, res)
        rgb_image = feature_image[:, :3]
        sr_noise = self.sr_noise_mode if noise_mode is None else noise_mode
        image = self.superresolution(rgb_image, feature_image, ws, noise_mode=sr_noise, **block_kwargs)
        return dict(image=image, image_raw=rgb_image, image_depth=depth_image, weights_sum=weights_sum)

    def extra_repr(self):
        return (f'z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, img_resolution={self.img_resolution}, '
                f'plane_axes={self.plane_axes_kind!r}, neural_rendering_resolution={self.neural_rendering_resolution}')

#----------------------------------------------------------------------------
