"""The synthetic 3D head world: procedural heads as analytic density + colour fields, rendered with our renderer.

Each identity is a dict of plain numbers (sample_identity): skull, jaw and neck ellipsoids, eyes, brows, nose,
lips, ears, hair that covers the top and back of the head, colours, and rare glasses or a hat. HeadField turns
a list of identities into a field_fn for training.rendering.render_field (one identity per batch item). The
geometry is a signed-distance-like function (approximate ellipsoid distances joined by smooth unions) turned
into density by a sigmoid; colour is a soft blend of the parts' colours by their distances, with a fixed
baked light so all views of a head agree. World coordinates are EG3D's: y up, the face looks toward +z, the
head fills about 75 percent of the image height for the FFHQ camera (radius 2.7, focal 4.2647) and stays
inside [-0.5, 0.5]^3.

build_world() writes the FFHQ analogue (faces.zip: many identities, one near-frontal view each), the H3DH
analogue (heads.zip: 50 identities x 24 views over 360 degrees of yaw) and identities.json (ground truth).
"""

import functools
import io
import json
import math
import os
import zipfile

import numpy as np
import PIL.Image
import torch

from training import cameras
from training.generate import to_uint8
from training.mesh import marching_cubes, write_ply
from training.rendering import RenderOptions, render_field, sample_rays

# Density = DENSITY_SCALE * sigmoid(-sdf / SURFACE_SOFTNESS): a surface about a third of a 64^2 pixel thick.
DENSITY_SCALE = 600.0
SURFACE_SOFTNESS = 0.003
COLOR_SOFTNESS = 0.0015             # width of the blend between neighbouring parts' colours
BOUND_RADIUS = 0.5                  # everything lies within this distance of the origin
BOX_MARGIN = 0.03                   # padding of the culling boxes (density there is < 1e-3 of the peak)
LIGHT_DIR = (0.3, 0.8, 0.5)         # baked light, mostly from above and in front

# Palettes: (name, weight, rgb) for hair and irises; skin tones interpolate between two ends.
HAIR_COLORS = [('black', 0.3, (0.06, 0.05, 0.05)), ('dark_brown', 0.25, (0.22, 0.13, 0.08)),
               ('brown', 0.18, (0.42, 0.27, 0.15)), ('blonde', 0.12, (0.82, 0.67, 0.42)),
               ('red', 0.07, (0.6, 0.25, 0.1)), ('grey', 0.08, (0.68, 0.67, 0.66))]
IRIS_COLORS = [('brown', 0.5, (0.35, 0.2, 0.1)), ('blue', 0.2, (0.3, 0.5, 0.75)),
               ('green', 0.15, (0.3, 0.5, 0.3)), ('hazel', 0.15, (0.5, 0.4, 0.2))]
SKIN_LIGHT = (0.96, 0.80, 0.69)
SKIN_DARK = (0.36, 0.22, 0.15)
GLASSES_PROB = 0.05
HAT_PROB = 0.05
# The synthetic heads are centred at the origin and seen from all around, so the cameras orbit the origin and look
# at it (as full-head sets such as PanoHead's do); EG3D's (0, 0, 0.2) pivot suits cropped frontal faces only and
# would push side views of a whole head off-centre by ~30% of the frame. The tiny presets carry the same pivot.
WORLD_PIVOT = (0.0, 0.0, 0.0)

#----------------------------------------------------------------------------
# Procedural identities.

# A rounded float (JSON-friendly and stable under a round trip).
def _f(x):
    return round(float(x), 5)

# A colour jittered by +-amount per channel, clipped to [0, 1].
def _jitter(rng, rgb, amount):
    return [_f(np.clip(c + rng.uniform(-amount, amount), 0.0, 1.0)) for c in rgb]

# Pick (name, rgb) from a weighted palette.
def _pick(rng, palette):
    weights = np.array([w for _, w, _ in palette])
    name, _, rgb = palette[rng.choice(len(palette), p=weights / weights.sum())]
    return name, rgb

# One random identity: plain JSON-able parameters (lengths in world units, colours as RGB in [0, 1]).
def sample_identity(rng):
    u = rng.uniform
    skin_t = u(0, 1)
    skin = [SKIN_LIGHT[i] * (1 - skin_t) + SKIN_DARK[i] * skin_t for i in range(3)]
    hair_name, hair_rgb = _pick(rng, HAIR_COLORS)
    iris_name, iris_rgb = _pick(rng, IRIS_COLORS)
    hair = _jitter(rng, hair_rgb, 0.04)
    params = dict(
        skull=dict(radii=[_f(u(0.145, 0.165)), _f(u(0.175, 0.195)), _f(u(0.185, 0.205))]),
        jaw=dict(radii=[_f(u(0.11, 0.135)), _f(u(0.13, 0.15)), _f(u(0.13, 0.15))], y=_f(u(-0.1, -0.08))),
        neck=dict(radius=_f(u(0.065, 0.085))),
        skin=_jitter(rng, skin, 0.03),
        eyes=dict(spacing=_f(u(0.048, 0.06)), y=_f(u(-0.015, 0.01)), radius=_f(u(0.02, 0.025)),
                  iris=_jitter(rng, iris_rgb, 0.05), iris_name=iris_name),
        brows=dict(height=_f(u(0.032, 0.045)), thickness=_f(u(0.004, 0.009)), length=_f(u(0.022, 0.032))),
        nose=dict(length=_f(u(0.035, 0.05)), width=_f(u(0.014, 0.022)), depth=_f(u(0.022, 0.038))),
        mouth=dict(y=_f(u(-0.135, -0.115)), width=_f(u(0.028, 0.042)), fullness=_f(u(0.008, 0.014)),
                   lips=[_f(c) for c in np.clip(np.array(skin) * [0.85, 0.5, 0.5] + [0.12, 0.0, 0.02], 0, 1)]),
        ears=dict(size=_f(u(0.038, 0.055)), protrusion=_f(u(0.012, 0.022))),
        hair=dict(color=hair, color_name=hair_name,
                  thickness=_f(u(0.012, 0.04)),       # shell thickness over the skull
                  hairline=_f(u(0.06, 0.14)),          # height of the front hairline
                  sideburn=_f(u(-0.02, 0.06)),         # hair is cut away in front of this depth (below the hairline)
                  bottom=_f(u(-0.4, -0.06)),          # how far down the back and neck it reaches
                  strands=_f(u(30, 70))),              # strand texture frequency
        glasses=None,
        hat=None,
    )
    if u(0, 1) < GLASSES_PROB:
        params['glasses'] = dict(color=_jitter(rng, (0.08, 0.08, 0.1), 0.06), rim=_f(u(0.028, 0.036)))
    if u(0, 1) < HAT_PROB:
        params['hat'] = dict(color=[_f(c) for c in rng.uniform(0.1, 0.9, size=3)], line=_f(u(0.03, 0.08)),
                             brim=bool(u(0, 1) < 0.5))
    return params

# `num` new identities for benchmarks (scripts/bench_inversion.py), from their own random stream [seed, 2]: build_world
# draws its faces from [seed, 0] and its heads from [seed, 1], so these are never in faces.zip or heads.zip. Render
# them from any camera with render_heads([params] * V, labels, resolution).
def novel_identities(num, seed=0):
    rng = np.random.default_rng([seed, 2])
    return [sample_identity(rng) for _ in range(num)]

#----------------------------------------------------------------------------
# Distance primitives on points given as coordinate rows P [3,K] (x, y, z contiguous, which is much faster
# on CPU than reductions over a trailing dimension of 3); centres and radii are 3-tuples of floats.

# Approximate signed distance [K] to an ellipsoid (Quilez's k0 (k0 - 1) / k1 bound; exact on spheres).
def _ellipsoid(P, center, radii):
    (cx, cy, cz), (rx, ry, rz) = center, radii
    ax, ay, az = (P[0] - cx) / rx, (P[1] - cy) / ry, (P[2] - cz) / rz
    k0 = torch.sqrt(ax * ax + ay * ay + az * az)
    bx, by, bz = ax / rx, ay / ry, az / rz
    k1 = torch.sqrt(bx * bx + by * by + bz * bz).clamp_min(1e-8)
    return k0 * (k0 - 1) / k1

# Unit outward normal [K,3] of an ellipsoid's level sets at points p [K,3].
def _ellipsoid_normal(p, center, radii):
    inv_r2 = p.new_tensor([1.0 / (r * r) for r in radii])
    return torch.nn.functional.normalize((p - p.new_tensor(center)) * inv_r2, dim=-1)

# Signed distance to a torus around the z axis through center (ring radius R, tube radius t).
def _torus_z(P, center, ring, tube):
    radial = torch.hypot(P[0] - center[0], P[1] - center[1]) - ring
    return torch.hypot(radial, P[2] - center[2]) - tube

# Polynomial smooth minimum with blend width k.
def _smin(a, b, k):
    h = (0.5 + 0.5 * (b - a) / k).clamp(0, 1)
    return b * (1 - h) + a * h - k * h * (1 - h)

# Softmin weights (a list of [K]) of distances (a list of [K]) at temperature tau: exp(-d / tau), normalised.
def _soft_weights(distances, tau):
    lowest = functools.reduce(torch.minimum, distances)
    e = [torch.exp((lowest - d) / tau) for d in distances]
    total = functools.reduce(torch.add, e)
    return [x / total for x in e]

# Points [K,3] with x replaced by |x|: one evaluation serves both parts of a left/right pair.
def _mirror_x(p):
    return torch.cat([p[:, :1].abs(), p[:, 1:]], dim=1)

# Coordinate rows [3,K] of points [K,3].
def _rows(p):
    return p.T.contiguous()

#----------------------------------------------------------------------------
# One identity's geometry and colour. Layout is derived from the parameters once (feature positions are
# placed on the actual skin surface); evaluate() works on any set of points.

class _Head:
    def __init__(self, params):
        self.params = params
        sk = params['skull']['radii']
        self.skull = ((0.0, 0.02, -0.02), tuple(sk))
        jw = params['jaw']['radii']
        self.jaw = ((0.0, params['jaw']['y'], 0.03), tuple(jw))
        nr = params['neck']['radius']
        self.neck = ((0.0, -0.31, -0.03), (nr, 0.18, nr * 0.95 + 0.005))

        # Face features sit on the skull + jaw surface.
        eyes, brows, nose, mouth = params['eyes'], params['brows'], params['nose'], params['mouth']
        ex, ey, er = eyes['spacing'], eyes['y'], eyes['radius']
        by, ny, my = ey + brows['height'], ey - 0.6 * nose['length'], mouth['y']
        z_eye, z_brow, z_nose, z_mouth = self._surface_z([[ex, ey], [ex, by], [0.0, ny], [0.0, my]])
        self.eye = ((ex, ey, z_eye - 0.45 * er), (er, er, er))
        self.brow = ((ex + 0.004, by, z_brow - 0.002), (brows['length'], brows['thickness'], 0.008))
        self.nose = ((0.0, ny, z_nose - 0.004), (nose['width'], nose['length'], nose['depth']))
        self.lips = ((0.0, my, z_mouth - 0.006), (mouth['width'], mouth['fullness'], 0.012))
        self.mouth_y = my

        # Ears on the sides of the skull, at eye height, slightly behind the centre.
        ears = params['ears']
        ez = -0.02
        side = self._skull_side_x(ey - 0.015, ez)
        self.ear = ((side + ears['protrusion'] - 0.012, ey - 0.015, ez), (0.013, ears['size'], 0.026))

        # Hair: a shell over the skull plus a back curtain down to `bottom`, cut away over the face.
        hair = params['hair']
        th = hair['thickness']
        self.hair_shell = ((0.0, 0.025, -0.025), (sk[0] + th, sk[1] + th, sk[2] + th))
        top, bottom = 0.02, hair['bottom']
        self.hair_back = ((0.0, (top + bottom) / 2, -0.05),
                          (sk[0] + th - 0.012, (top - bottom) / 2 + 0.02, sk[2] * 0.72 + th))
        self.hairline, self.sideburn, self.hair_bottom = hair['hairline'], hair['sideburn'], bottom

        # Accessories.
        self.glasses = None
        if params['glasses'] is not None:
            rim = params['glasses']['rim']
            gz = self.eye[0][2] + er + 0.012
            temple_x = self._skull_side_x(ey, 0.0) + 0.008
            temple_len = (gz - ez) / 2
            self.glasses = dict(ring=((ex, ey, gz), rim, 0.0045),
                                bridge=((0.0, ey + 0.006, gz), (max(ex - rim, 0.006), 0.004, 0.004)),
                                temple=((temple_x, ey, gz - temple_len), (0.005, 0.005, temple_len)))
        self.hat = None
        if params['hat'] is not None:
            hat = params['hat']
            self.hat = dict(cap=((0.0, 0.03, -0.025), (sk[0] + th + 0.018, sk[1] + th + 0.02, sk[2] + th + 0.018)),
                            line=hat['line'],
                            brim=((0.0, hat['line'] + 0.004, sk[2] * 0.55), (0.14, 0.006, 0.14)) if hat['brim'] else None)

        # Culling boxes (min, max): the head and the neck with its hair; the density outside is negligible.
        self.boxes = [self._box([self.skull, self.jaw, self.hair_shell, self.eye, self.nose, self.lips,
                                 self.brow, self.ear] + ([self.hat['cap']] if self.hat else [])
                                + ([self.hat['brim']] if self.hat and self.hat['brim'] else [])
                                + ([self.glasses['temple']] if self.glasses else []), glasses=self.glasses),
                      self._box([self.neck, self.hair_back])]

    # z of the skull + jaw surface at each (x, y) of xy (front of the face), by bisection along z.
    def _surface_z(self, xy):
        xy = torch.tensor(xy, dtype=torch.float32)
        lo, hi = torch.zeros(len(xy)), torch.full((len(xy),), 0.45)
        for _ in range(30):
            mid = (lo + hi) / 2
            inside = self._skin_base(torch.cat([xy, mid[:, None]], dim=1)) < 0
            lo, hi = torch.where(inside, mid, lo), torch.where(inside, hi, mid)
        return lo.tolist()

    # x of the skull ellipsoid's side at (y, z).
    def _skull_side_x(self, y, z):
        (cx, cy, cz), (rx, ry, rz) = self.skull
        return cx + rx * math.sqrt(max(1.0 - ((y - cy) / ry) ** 2 - ((z - cz) / rz) ** 2, 0.0))

    # Axis-aligned bounds of a list of (centre, radii) ellipsoids (mirrored in x), plus the glasses rings.
    @staticmethod
    def _box(parts, glasses=None):
        lo = np.min([[-abs(c[0]) - r[0], c[1] - r[1], c[2] - r[2]] for c, r in parts], axis=0)
        hi = np.max([[abs(c[0]) + r[0], c[1] + r[1], c[2] + r[2]] for c, r in parts], axis=0)
        if glasses is not None:
            (gx, gy, gz), ring, tube = glasses['ring']
            lo = np.minimum(lo, [-gx - ring - tube, gy - ring - tube, gz - tube])
            hi = np.maximum(hi, [gx + ring + tube, gy + ring + tube, gz + tube])
        return lo - BOX_MARGIN, hi + BOX_MARGIN

    # Skull smoothly joined with the jaw: the base surface the face features are placed on.
    def _skin_base(self, p):
        P = _rows(p)
        return _smin(_ellipsoid(P, *self.skull), _ellipsoid(P, *self.jaw), 0.05)

    # Hair region: the hair exists except over the face (in front of the sideburn depth and below the
    # hairline) and below the bottom; returned as a signed distance to be max-ed with the hair volume.
    def _hair_cut(self, P):
        face = torch.maximum(self.sideburn - P[2], P[1] - self.hairline)
        below = P[1] - self.hair_bottom
        return -torch.minimum(face, below)

    # Per-part signed distances [K] of points p [K,3] (parts with their own colour) and the skin pieces.
    def parts(self, p):
        P = _rows(p)
        Pm = torch.stack([P[0].abs(), P[1], P[2]])
        skull, jaw, neck = _ellipsoid(P, *self.skull), _ellipsoid(P, *self.jaw), _ellipsoid(P, *self.neck)
        nose, ear = _ellipsoid(P, *self.nose), _ellipsoid(Pm, *self.ear)
        skin = _smin(_smin(skull, jaw, 0.05), neck, 0.06)
        skin = _smin(skin, nose, 0.015)
        skin = _smin(skin, ear, 0.01)
        hair = torch.maximum(_smin(_ellipsoid(P, *self.hair_shell), _ellipsoid(P, *self.hair_back), 0.04),
                             self._hair_cut(P))
        out = dict(skin=skin, lips=_ellipsoid(P, *self.lips), brows=_ellipsoid(Pm, *self.brow),
                   eyes=_ellipsoid(Pm, *self.eye), hair=hair)
        if self.glasses is not None:
            g = self.glasses
            out['glasses'] = torch.minimum(torch.minimum(_torus_z(Pm, *g['ring']), _ellipsoid(P, *g['bridge'])),
                                           _ellipsoid(Pm, *g['temple']))
        if self.hat is not None:
            cap = torch.maximum(_ellipsoid(P, *self.hat['cap']), self.hat['line'] - P[1])
            if self.hat['brim'] is not None:
                brim = torch.maximum(_ellipsoid(P, *self.hat['brim']), 0.02 - P[2])
                cap = torch.minimum(cap, brim)
            out['hat'] = cap
        skin_pieces = dict(skull=skull, jaw=jaw, neck=neck, nose=nose, ear=ear)
        return out, skin_pieces

    # Signed distance of the whole head [K].
    def sdf(self, p):
        parts, _ = self.parts(p)
        return torch.stack(list(parts.values()), dim=-1).amin(dim=-1)

    # Baked shading factor [K] from a normal [K,3].
    @staticmethod
    def _shade(normal):
        light = torch.nn.functional.normalize(normal.new_tensor(LIGHT_DIR), dim=0)
        return 0.62 + 0.38 * (0.5 + 0.5 * (normal * light).sum(-1))

    # Colours [K,3] in [0,1] of points p near the surface, from the part distances.
    def color(self, p, parts, skin_pieces):
        prm = self.params
        pm = _mirror_x(p)
        colors = {}

        # skin: baked light on the blended normal of its pieces, darker around the eye sockets
        pieces = [(skin_pieces['skull'], self.skull, p), (skin_pieces['jaw'], self.jaw, p),
                  (skin_pieces['neck'], self.neck, p), (skin_pieces['nose'], self.nose, p),
                  (skin_pieces['ear'], self.ear, pm)]
        w = _soft_weights([d for d, _, _ in pieces], 0.01)
        normals = [_ellipsoid_normal(q, *part) for _, part, q in pieces]
        normals[4] = torch.cat([normals[4][:, :1] * torch.sign(p[:, :1]), normals[4][:, 1:]], dim=1)  # unmirror
        normal = torch.nn.functional.normalize(sum(wi[:, None] * n for wi, n in zip(w, normals)), dim=-1)
        (ex, ey, _), (er, _, _) = self.eye
        socket = torch.exp(-((pm[:, 0] - ex) ** 2 + ((pm[:, 1] - ey) * 1.4) ** 2) / (1.6 * er) ** 2)
        skin = p.new_tensor(prm['skin']) * (self._shade(normal) * (1 - 0.22 * socket))[:, None]
        colors['skin'] = skin

        # lips with a dark mouth line
        line = torch.exp(-((p[:, 1] - self.mouth_y) / 0.0022) ** 2)
        lips = p.new_tensor(prm['mouth']['lips']) * (self._shade(_ellipsoid_normal(p, *self.lips)) * (1 - 0.7 * line))[:, None]
        colors['lips'] = lips

        # brows in a darker shade of the hair colour
        hair_rgb = p.new_tensor(prm['hair']['color'])
        colors['brows'] = (hair_rgb * 0.75).expand(p.shape[0], 3)

        # eyes: white sclera, iris and pupil facing +z
        d = torch.nn.functional.normalize(pm - pm.new_tensor(self.eye[0]), dim=-1)[:, 2]
        iris = torch.sigmoid((d - 0.82) / 0.015)[:, None]
        pupil = torch.sigmoid((d - 0.95) / 0.01)[:, None]
        sclera = p.new_tensor([0.94, 0.93, 0.9])
        eye = sclera * (1 - iris) + p.new_tensor(prm['eyes']['iris']) * iris
        colors['eyes'] = eye * (1 - pupil) + 0.04 * pupil

        # hair: strands running down from the crown, baked light on the shell normal
        azimuth = torch.atan2(p[:, 0], -p[:, 2])
        strands = 0.82 + 0.18 * torch.sin(prm['hair']['strands'] * azimuth + 12.0 * p[:, 1])
        hair_shade = self._shade(_ellipsoid_normal(p, *self.hair_shell))
        colors['hair'] = hair_rgb * (strands * hair_shade)[:, None]

        if 'glasses' in parts:
            colors['glasses'] = p.new_tensor(prm['glasses']['color']).expand(p.shape[0], 3)
        if 'hat' in parts:
            cap = self.hat['cap']
            colors['hat'] = p.new_tensor(prm['hat']['color']) * self._shade(_ellipsoid_normal(p, *cap))[:, None]

        names = list(parts)
        w = _soft_weights([parts[n] for n in names], COLOR_SOFTNESS)
        rgb = sum(wi[:, None] * colors[n] for wi, n in zip(w, names))
        return rgb.clamp(0, 1)

    # Mask [K] of points inside the culling boxes.
    def inside_boxes(self, p):
        mask = torch.zeros(p.shape[0], dtype=torch.bool, device=p.device)
        for lo, hi in self.boxes:
            lo, hi = p.new_tensor(lo), p.new_tensor(hi)
            mask |= ((p >= lo) & (p <= hi)).all(dim=-1)
        return mask

    # Flat colour [P,3] of each part, in the order of parts(): the colour of points deep inside a part.
    def base_colors(self, names):
        prm = self.params
        flat = dict(skin=prm['skin'], lips=prm['mouth']['lips'], brows=[0.75 * c for c in prm['hair']['color']],
                    eyes=[0.94, 0.93, 0.9], hair=prm['hair']['color'],
                    glasses=prm['glasses']['color'] if prm['glasses'] else None,
                    hat=prm['hat']['color'] if prm['hat'] else None)
        return torch.tensor([flat[n] for n in names], dtype=torch.float32)

    # (density [K], rgb [K,3]) at points p [K,3]. The shaded, textured colour is computed only within a
    # coarse sample spacing of the surface, where compositing can see it (an interval that contains the surface
    # takes the mean colour of its two ends, so colour just outside matters too); elsewhere in the boxes a point
    # takes the flat colour of its nearest part, outside them white (the density there is zero).
    def evaluate(self, p):
        density = p.new_zeros(p.shape[0])
        rgb = p.new_ones(p.shape[0], 3)
        inside = self.inside_boxes(p)
        if not inside.any():
            return density, rgb
        q = p[inside]
        parts, skin_pieces = self.parts(q)
        stacked = torch.stack(list(parts.values()), dim=-1)                           # [K,P]
        sdf, nearest = stacked.min(dim=-1)
        density[inside] = DENSITY_SCALE * torch.sigmoid(-sdf / SURFACE_SOFTNESS)
        colors = self.base_colors(list(parts))[nearest]
        band = (sdf > -0.04) & (sdf < 0.06)
        if band.any():
            sub = {k: v[band] for k, v in parts.items()}
            sub_pieces = {k: v[band] for k, v in skin_pieces.items()}
            colors[band] = self.color(q[band], sub, sub_pieces)
        rgb[inside] = colors
        return density, rgb

#----------------------------------------------------------------------------
# The field of a batch of identities for render_field: item n of coords [N,M,3] is evaluated on identity n.
# Density is returned as `sigma` for RenderOptions(clamp_mode='relu', density_shift=0) (see render_options).

class HeadField:
    def __init__(self, params_list):
        self.heads = [_Head(p) for p in params_list]

    def __len__(self):
        return len(self.heads)

    # field_fn(coords [N,M,3], dirs [N,M,3]) -> dict(rgb [N,M,3] in [0,1], sigma [N,M,1]).
    def __call__(self, coords, dirs=None):
        if coords.ndim != 3 or coords.shape[0] != len(self.heads) or coords.shape[2] != 3:
            raise ValueError(f'coords must have shape [{len(self.heads)}, M, 3], got {list(coords.shape)}')
        sigma, rgb = [], []
        for head, p in zip(self.heads, coords.float()):
            d, c = head.evaluate(p)
            sigma.append(d)
            rgb.append(c)
        return dict(rgb=torch.stack(rgb), sigma=torch.stack(sigma)[..., None])

    # Depth range (t_near [N,R], t_far [N,R]) where rays origins/dirs [N,R,3] cross their identity's culling
    # boxes (t_near clamped to >= 0); rays that miss get t_near = t_far = inf.
    def ray_box_range(self, origins, dirs):
        safe = torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
        inf = torch.tensor(float('inf'))
        nears, fars = [], []
        for head, o, d in zip(self.heads, origins, safe):
            near, far = torch.full(o.shape[:1], float('inf')), torch.full(o.shape[:1], -float('inf'))
            for lo, hi in head.boxes:
                t1, t2 = (o.new_tensor(lo) - o) / d, (o.new_tensor(hi) - o) / d
                t_in = torch.minimum(t1, t2).amax(-1).clamp_min(0)
                t_out = torch.maximum(t1, t2).amin(-1)
                crosses = t_out > t_in
                near = torch.where(crosses, torch.minimum(near, t_in), near)
                far = torch.where(crosses, torch.maximum(far, t_out), far)
            missed = far < near
            nears.append(torch.where(missed, inf, near))
            fars.append(torch.where(missed, inf, far))
        return torch.stack(nears), torch.stack(fars)

    # Signed distance [N,M] of coords [N,M,3] (negative inside).
    def sdf(self, coords):
        return torch.stack([head.sdf(p) for head, p in zip(self.heads, coords.float())])

#----------------------------------------------------------------------------
# Render options for the synthetic world: white background, deterministic samples, density as is (relu, no
# shift), samples over [0, span] from where each ray enters its identity's culling boxes.

def render_options(span, depth_resolution=16, depth_resolution_importance=16):
    return RenderOptions(ray_start=0.0, ray_end=float(span), depth_resolution=depth_resolution,
                         depth_resolution_importance=depth_resolution_importance, white_back=True,
                         clamp_mode='relu', density_shift=0.0, deterministic=True)

#----------------------------------------------------------------------------
# Render identities (one per label) at labels [N,25]: dict(image [N,3,H,W] in [-1,1], alpha [N,1,H,W]).
# Only rays that cross their identity's culling boxes are rendered (the field is exactly zero outside them);
# the others stay white with alpha 0. With opts=None each ray is sampled from its box entry over the longest
# box chord of the batch (16 + 16 deterministic samples); given opts are used as is, from the camera.

def render_heads_with_alpha(params_list, labels, resolution, opts=None):
    labels = torch.as_tensor(labels, dtype=torch.float32)
    if labels.ndim != 2 or len(params_list) != labels.shape[0]:
        raise ValueError(f'need one identity per label, got {len(params_list)} identities and labels of shape {list(labels.shape)}')
    cam2world, intrinsics = cameras.unpack_label(labels)
    origins, dirs = sample_rays(cam2world, intrinsics, resolution)
    field = HeadField(params_list)
    n, res = labels.shape[0], int(resolution)

    t_near, t_far = field.ray_box_range(origins, dirs)                            # [N,R], inf where missed
    hit = t_far > t_near
    count = max(int(hit.sum(1).max()), 1)
    order = torch.argsort((~hit).to(torch.uint8), dim=1, stable=True)[:, :count]  # hit rays first, [N,count]
    pick = lambda x: torch.gather(x, 1, order[..., None].expand(-1, -1, x.shape[-1]))
    valid = torch.gather(hit, 1, order)[..., None]                                # padding rays are dropped
    ray_o, ray_d = pick(origins), pick(dirs)
    if opts is None:
        near = torch.where(valid, pick(t_near[..., None]), 0.0)
        far = torch.where(valid, pick(t_far[..., None]), 1e-3)
        ray_o = ray_o + near * ray_d
        opts = render_options(float((far - near).max()) + 1e-3)
    with torch.no_grad():
        out = render_field(field, ray_o, ray_d, opts)
    features = torch.ones(n, res * res, 3)
    alpha = torch.zeros(n, res * res, 1)
    features.scatter_(1, order[..., None].expand(-1, -1, 3), torch.where(valid, out['features'], 1.0))
    alpha.scatter_(1, order[..., None], torch.where(valid, out['weights_sum'], 0.0))
    image = features.permute(0, 2, 1).reshape(n, 3, res, res)
    alpha = alpha.permute(0, 2, 1).reshape(n, 1, res, res)
    return dict(image=image, alpha=alpha)

# Render identities (one per label) at labels [N,25] -> images float [-1,1] [N,3,H,W].
def render_heads(params_list, labels, resolution, opts=None):
    return render_heads_with_alpha(params_list, labels, resolution, opts)['image']


#----------------------------------------------------------------------------
# Cameras of the two sets (radians).

# Near-frontal: yaw ~ N(0, 20 deg) clipped to +-45 deg, pitch ~ N(0, 5 deg).
def sample_face_angles(rng, n):
    yaw = np.clip(rng.normal(0.0, math.radians(20), n), -math.radians(45), math.radians(45))
    pitch = rng.normal(0.0, math.radians(5), n)
    return yaw, pitch

# K views over 360 degrees of yaw (even spacing plus a random offset per identity), pitch cycling through pitches.
def head_view_angles(rng, num_views, pitches_deg=(-15.0, 0.0, 15.0)):
    offset = rng.uniform(0.0, 2 * math.pi / num_views)
    yaw = offset + 2 * math.pi * np.arange(num_views) / num_views
    yaw = np.where(yaw > math.pi, yaw - 2 * math.pi, yaw)
    pitch = np.radians([pitches_deg[k % len(pitches_deg)] for k in range(num_views)])
    return yaw, pitch

#----------------------------------------------------------------------------
# Deterministic zip writing: fixed timestamps and attributes, entries in the order written, ZIP_STORED.

class _DeterministicZip:
    def __init__(self, path):
        self.zip = zipfile.ZipFile(path, 'w', compression=zipfile.ZIP_STORED)

    def write(self, name, data):
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        self.zip.writestr(info, data)

    def close(self):
        self.zip.close()

# PNG bytes of an uint8 [H,W,3] image (fixed compression, no metadata).
def _png_bytes(pixels):
    buf = io.BytesIO()
    PIL.Image.fromarray(pixels, 'RGB').save(buf, format='PNG', compress_level=6)
    return buf.getvalue()

# Render one set in batches into a zip with dataset.json. items: list of (name, params, yaw, pitch).
def _write_set(path, items, resolution, batch_size, progress):
    out = _DeterministicZip(path)
    labels = []
    try:
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            yaw = torch.tensor([it[2] for it in chunk], dtype=torch.float32)
            pitch = torch.tensor([it[3] for it in chunk], dtype=torch.float32)
            c = cameras.make_label(yaw, pitch, pivot=WORLD_PIVOT)
            pixels = to_uint8(render_heads([it[1] for it in chunk], c, resolution))
            for it, px, label in zip(chunk, pixels, c.tolist()):
                out.write(it[0], _png_bytes(px))
                labels.append([it[0], label])
            if progress is not None:
                progress(len(chunk))
        out.write('dataset.json', json.dumps({'labels': labels}, indent=0).encode('utf-8'))
    finally:
        out.close()

#----------------------------------------------------------------------------
# Triangle mesh (vertices [V,3], faces [F,3]) of one identity's surface by marching cubes on its sdf.

def head_mesh(params, grid_resolution=128):
    head = _Head(params)
    lin = torch.linspace(-BOUND_RADIUS, BOUND_RADIUS, grid_resolution)
    sdf = torch.empty(grid_resolution, grid_resolution, grid_resolution)
    for i, x in enumerate(lin):
        yz = torch.stack(torch.meshgrid(lin, lin, indexing='ij'), -1).reshape(-1, 2)
        pts = torch.cat([torch.full_like(yz[:, :1], float(x)), yz], dim=1)
        d = torch.full((pts.shape[0],), 1.0)
        inside = head.inside_boxes(pts)
        if inside.any():
            d[inside] = head.sdf(pts[inside])
        sdf[i] = d.reshape(grid_resolution, grid_resolution)
    verts, faces = marching_cubes(sdf.numpy(), 0.0, order='xyz', inside='below', what='signed distance')
    spacing = float(lin[1] - lin[0])
    return verts.astype(np.float64) * spacing - BOUND_RADIUS, faces     # index -> world

# _write_set in a worker process (build_world with jobs > 1), with the caller's thread count.
def _write_set_job(path, items, resolution, batch_size, num_threads):
    torch.set_num_threads(num_threads)
    _write_set(path, items, resolution, batch_size, None)

#----------------------------------------------------------------------------
# Build the synthetic world into outdir: faces.zip (num_faces identities, one near-frontal view each),
# heads.zip (num_head_ids identities x views_per_head views over 360 degrees) and identities.json; with
# mesh=True also meshes/head_XXXX.ply per head identity. Same arguments -> byte-identical files.
# progress: True (a tqdm bar), False/None (silent) or a callable(n) told about every n images rendered.
# num_threads: torch CPU threads while building (restored afterwards; None = leave as is). The field works on
# many small per-identity tensors, where one thread is fastest: on a busy 2-core machine two threads were 7x
# slower. The output does not depend on it. jobs=2 renders heads.zip in a second process while this one renders
# faces.zip (about half the time on 2 cores; identical files).

def build_world(outdir, num_faces=2000, num_head_ids=50, views_per_head=24, resolution=64, seed=0,
                progress=True, mesh=False, batch_size=16, num_threads=1, jobs=1):
    previous_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    try:
        return _build_world(outdir, num_faces, num_head_ids, views_per_head, resolution, seed, progress, mesh,
                            batch_size, jobs)
    finally:
        torch.set_num_threads(previous_threads)

# The body of build_world.
def _build_world(outdir, num_faces, num_head_ids, views_per_head, resolution, seed, progress, mesh, batch_size, jobs=1):
    for name, value, low in [('num_faces', num_faces, 1), ('num_head_ids', num_head_ids, 1),
                             ('views_per_head', views_per_head, 1), ('resolution', resolution, 8),
                             ('batch_size', batch_size, 1), ('jobs', jobs, 1)]:
        if int(value) != value or value < low:
            raise ValueError(f'{name} must be an integer >= {low}, got {value!r}')
    os.makedirs(outdir, exist_ok=True)
    face_rng = np.random.default_rng([seed, 0])
    head_rng = np.random.default_rng([seed, 1])

    faces = []
    face_params = [sample_identity(face_rng) for _ in range(num_faces)]
    yaws, pitches = sample_face_angles(face_rng, num_faces)
    for i, params in enumerate(face_params):
        faces.append(dict(id=i, image=f'faces/{i:06d}.png', yaw_deg=_f(math.degrees(yaws[i])),
                          pitch_deg=_f(math.degrees(pitches[i])), params=params))

    heads, head_items = [], []
    for i in range(num_head_ids):
        params = sample_identity(head_rng)
        yaw, pitch = head_view_angles(head_rng, views_per_head)
        views = [dict(image=f'heads/{i:04d}/view{k:02d}.png', yaw_deg=_f(math.degrees(yaw[k])),
                      pitch_deg=_f(math.degrees(pitch[k]))) for k in range(views_per_head)]
        heads.append(dict(id=i, views=views, params=params))
        head_items += [(v['image'], params, float(yaw[k]), float(pitch[k])) for k, v in enumerate(views)]

    face_items = [(f['image'], f['params'], float(yaws[f['id']]), float(pitches[f['id']])) for f in faces]
    bar = None
    if progress is True:
        import tqdm
        bar = tqdm.tqdm(total=len(face_items) + len(head_items), unit='img', desc='synthetic world')
        progress = bar.update
    try:
        heads_path = os.path.join(outdir, 'heads.zip')
        if jobs > 1:
            import concurrent.futures
            import multiprocessing
            with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('spawn')) as pool:
                job = pool.submit(_write_set_job, heads_path, head_items, resolution, batch_size, torch.get_num_threads())
                _write_set(os.path.join(outdir, 'faces.zip'), face_items, resolution, batch_size, progress or None)
                job.result()
            if progress:
                progress(len(head_items))
        else:
            _write_set(os.path.join(outdir, 'faces.zip'), face_items, resolution, batch_size, progress or None)
            _write_set(heads_path, head_items, resolution, batch_size, progress or None)
    finally:
        if bar is not None:
            bar.close()
    if mesh:
        os.makedirs(os.path.join(outdir, 'meshes'), exist_ok=True)
        for h in heads:
            verts, tris = head_mesh(h['params'])
            write_ply(os.path.join(outdir, 'meshes', f'head_{h["id"]:04d}.ply'), verts, tris)
    info = dict(seed=seed, resolution=resolution, focal=cameras.FFHQ_FOCAL, radius=cameras.DEFAULT_RADIUS,
                pivot=list(WORLD_PIVOT), faces=faces, heads=heads)
    with open(os.path.join(outdir, 'identities.json'), 'w') as f:
        json.dump(info, f, indent=1)
    return info

#----------------------------------------------------------------------------
