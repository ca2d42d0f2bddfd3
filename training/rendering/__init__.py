"""Stateless volume rendering on explicit tensors: rays, tri-plane sampling, depth sampling, compositing."""

from .compositing import activate_density, composite
from .options import RenderOptions
from .planes import generate_plane_axes, project_onto_planes, sample_from_planes
from .rays import sample_rays
from .renderer import merge_samples, render_field, render_planes
from .sampling import importance_depths, sample_pdf, stratified_depths

__all__ = [
    'RenderOptions', 'activate_density', 'composite', 'generate_plane_axes', 'importance_depths', 'merge_samples',
    'project_onto_planes', 'render_field', 'render_planes', 'sample_from_planes', 'sample_pdf', 'sample_rays',
    'stratified_depths',
]
