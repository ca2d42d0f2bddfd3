# "Apply the teacher's xy plane without training" (Head3D paper, section 3.2 fig. 5 and ablation fig. 12(a)):
# a head generator rendered with the XY plane (plane 0) of a face generator swapped in. Both generators get the
# same z and conditioning camera; the head generator's XZ/ZX planes, decoder and super-resolution (driven by the
# head generator's ws) render the result. No weights are trained or changed.

import torch

from training.networks.triplane import PlaneGeneratorMixin, TriPlaneGenerator

#----------------------------------------------------------------------------
# Build a TriPlaneGenerator from its init kwargs, or pass an existing generator through.

def _as_generator(G, name):
    if isinstance(G, torch.nn.Module):
        return G
    if isinstance(G, dict):
        return TriPlaneGenerator(**G)
    raise TypeError(f'XYSwapGenerator: {name} must be a TriPlaneGenerator or its init_kwargs dict, got {type(G).__name__}')

#----------------------------------------------------------------------------
# Head generator with the face generator's XY plane. Same call API as TriPlaneGenerator (mapping, synthesis_planes,
# render_planes, synthesis, forward, query_field; synthesis and forward come from PlaneGeneratorMixin); its ws are the head's and the face's ws concatenated along the
# ws axis ([N, head.num_ws + face.num_ws, w_dim]) so that ws-level tools (truncation, interpolation) still apply.

class XYSwapGenerator(PlaneGeneratorMixin, torch.nn.Module):
    def __init__(self,
        head_G,     # Head generator (TriPlaneGenerator, or its init_kwargs when rebuilt from a snapshot).
        face_G,     # Face generator whose XY plane is swapped in (same form).
    ):
        super().__init__()
        self.head_G = _as_generator(head_G, 'head_G')
        self.face_G = _as_generator(face_G, 'face_G')
        self.init_kwargs = dict(head_G=dict(self.head_G.init_kwargs), face_G=dict(self.face_G.init_kwargs))
        for attr in ('z_dim', 'c_dim', 'w_dim', 'plane_channels'):
            a, b = getattr(self.head_G, attr), getattr(self.face_G, attr)
            if a != b:
                raise ValueError(f'XYSwapGenerator: head and face generators differ in {attr} ({a} vs {b})')
        a, b = self.head_G.init_kwargs['plane_resolution'], self.face_G.init_kwargs['plane_resolution']
        if a != b:
            raise ValueError(f'XYSwapGenerator: head and face tri-planes differ in resolution ({a} vs {b})')
        self.z_dim, self.c_dim, self.w_dim = self.head_G.z_dim, self.head_G.c_dim, self.head_G.w_dim
        self.img_resolution = self.head_G.img_resolution
        self.img_channels = self.head_G.img_channels
        self.plane_channels = self.head_G.plane_channels
        self.num_ws = self.head_G.num_ws + self.face_G.num_ws

    # Rendering settings and default neural rendering resolution are the head generator's.
    @property
    def rendering(self):
        return self.head_G.rendering

    @property
    def neural_rendering_resolution(self):
        return self.head_G.neural_rendering_resolution

    # Split concatenated ws into (head ws, face ws).
    def split_ws(self, ws):
        return ws[:, :self.head_G.num_ws], ws[:, self.head_G.num_ws:]

    # z [N, z_dim], c_cond [N, 25] -> ws [N, num_ws, w_dim]: both mappings with the same z and camera.
    def mapping(self, z, c_cond, truncation_psi=1, truncation_cutoff=None, update_emas=False):
        kw = dict(truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, update_emas=update_emas)
        return torch.cat([self.head_G.mapping(z, c_cond, **kw), self.face_G.mapping(z, c_cond, **kw)], dim=1)

    # ws -> the head's planes [N, 3, C, H, W] with plane 0 (XY) taken from the face generator.
    def synthesis_planes(self, ws, noise_mode='const', update_emas=False, **block_kwargs):
        ws_head, ws_face = self.split_ws(ws)
        kw = dict(noise_mode=noise_mode, update_emas=update_emas, **block_kwargs)
        head = self.head_G.synthesis_planes(ws_head, **kw)
        face = self.face_G.synthesis_planes(ws_face, **kw)
        return torch.cat([face[:, :1], head[:, 1:]], dim=1)

    # Render swapped planes with the head generator's decoder and super-resolution (head ws).
    def render_planes(self, planes, ws, c_render, **render_kwargs):
        return self.head_G.render_planes(planes, self.split_ws(ws)[0], c_render, **render_kwargs)

    # Field of the swapped planes through the head generator's decoder.
    def query_field(self, planes, coords, box_warp=None):
        return self.head_G.query_field(planes, coords, box_warp=box_warp)

#----------------------------------------------------------------------------
# XYSwapGenerator from a head snapshot (e.g. head_ft) and a face snapshot (the teacher), frozen, in eval mode.

def build_xy_swap(head_snapshot_path, face_snapshot_path, device='cpu'):
    from training.generate import load_generator
    head_G = load_generator(head_snapshot_path, device=device)
    face_G = load_generator(face_snapshot_path, device=device)
    return XYSwapGenerator(head_G, face_G).eval().requires_grad_(False).to(device)
