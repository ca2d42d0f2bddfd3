"""Triangle meshes: marching cubes on a sampled scalar volume and the mesh files (.ply, .obj).

One home for the mesh code of the synthetic world (training/synthetic.py: a head's signed distance) and of
generation (training/generate.py: a generator's density). Callers map the grid index units returned here to
their own world box. skimage and plyfile are imported where used: importing this module stays cheap, and a
machine without them can still do everything else.
"""

import numpy as np

#----------------------------------------------------------------------------
# Marching cubes (Lewiner, skimage) of `volume` at iso level `level` -> (verts float32 [V,3], faces int32 [F,3]).
# verts are in grid index units in (x, y, z) order, whatever the volume's axis order: order='xyz' for
# volume[x, y, z], 'zyx' for volume[z, y, x] (MRC's order). inside: which side of the level is solid, 'above'
# (density) or 'below' (signed distance). Faces are wound counter-clockwise seen from outside (outward normals).
# close=True pads the volume with one layer of outside values, so a solid cut by the grid's boundary gets caps
# there (vertices then reach -1 .. res in index units, snapped back by the caller if it wants).
# what: the volume's name in the error raised when the level is not strictly inside its range.

def marching_cubes(volume, level, order='xyz', inside='above', close=False, what='value'):
    from skimage import measure
    if order not in ('xyz', 'zyx') or inside not in ('above', 'below'):
        raise ValueError(f'order must be xyz or zyx and inside above or below, got {order!r}, {inside!r}')
    lo, hi = float(volume.min()), float(volume.max())
    if not lo < level < hi:
        raise ValueError(f'iso level {level:g} is outside the {what} range [{lo:.4g}, {hi:.4g}] of this shape, '
                         f'so there is no surface: pick a level inside that range')
    if close:
        outside = min(lo, level) - 1.0 if inside == 'above' else max(hi, level) + 1.0
        volume = np.pad(volume, 1, mode='constant', constant_values=outside)
    # skimage's 'descent' (solid above the level) winds faces clockwise seen from outside in index space. A
    # solid below the level and the mirror of reversing the axes ('zyx' -> (x, y, z)) each turn that around.
    outward_with_descent = (order == 'zyx') != (inside == 'below')
    verts, faces, _, _ = measure.marching_cubes(volume, level=level,
                                                gradient_direction='descent' if outward_with_descent else 'ascent')
    if close:
        verts = verts - 1.0                                                 # padded -> volume index
    if order == 'zyx':
        verts = verts[:, ::-1]
    return np.ascontiguousarray(verts, dtype=np.float32), np.ascontiguousarray(faces, dtype=np.int32)

#----------------------------------------------------------------------------
# Mesh files. colors: optional uint8 [V,3] vertex colours.

# Binary little-endian .ply: float x, y, z (+ uchar red, green, blue) per vertex; int vertex_indices per face.
def write_ply(path, verts, faces, colors=None):
    from plyfile import PlyData, PlyElement
    fields = [('x', 'f4'), ('y', 'f4'), ('z', 'f4')]
    if colors is not None:
        fields += [('red', 'u1'), ('green', 'u1'), ('blue', 'u1')]
    vertex = np.empty(len(verts), dtype=fields)
    vertex['x'], vertex['y'], vertex['z'] = verts[:, 0], verts[:, 1], verts[:, 2]
    if colors is not None:
        vertex['red'], vertex['green'], vertex['blue'] = colors[:, 0], colors[:, 1], colors[:, 2]
    face = np.empty(len(faces), dtype=[('vertex_indices', 'i4', (3,))])
    face['vertex_indices'] = faces
    PlyData([PlyElement.describe(vertex, 'vertex'), PlyElement.describe(face, 'face')],
            byte_order='<').write(path)

# Wavefront .obj with per-vertex colours ('v x y z r g b', colours in [0,1]; read by MeshLab, Blender).
def write_obj(path, verts, faces, colors):
    rgb = colors.astype(np.float32) / 255.0
    with open(path, 'w') as f:
        for v, c in zip(verts, rgb):
            f.write(f'v {v[0]:.6f} {v[1]:.6f} {v[2]:.6f} {c[0]:.4f} {c[1]:.4f} {c[2]:.4f}\n')
        for t in faces + 1:
            f.write(f'f {t[0]} {t[1]} {t[2]}\n')

#----------------------------------------------------------------------------
