"""RenderOptions: the volume renderer's settings (EG3D's rendering_kwargs that concern rendering only)."""

import dataclasses

#----------------------------------------------------------------------------
# Settings of one volume render. Defaults are EG3D's FFHQ configuration.

@dataclasses.dataclass(frozen=True)
class RenderOptions:
    ray_start: float = 2.25                 # near depth along each ray (world units)
    ray_end: float = 3.3                    # far depth along each ray
    box_warp: float = 1.0                   # side of the cube [-box_warp/2, box_warp/2]^3 the tri-plane spans
    depth_resolution: int = 48              # stratified (coarse) samples per ray
    depth_resolution_importance: int = 48   # importance (fine) samples per ray; 0 = coarse pass only
    white_back: bool = False                # composite over a white background instead of black
    clamp_mode: str = 'softplus'            # density activation: 'softplus' (EG3D) or 'relu'
    density_shift: float = -1.0             # added to the raw density before the activation (EG3D: -1)
    disparity_space_sampling: bool = False  # stratified samples uniform in 1/depth instead of depth
    deterministic: bool = False             # no stratified jitter, inverse-CDF on a fixed grid (eval, tests)

    # Reject values that cannot render, naming the field.
    def __post_init__(self):
        if not 0 <= self.ray_start < self.ray_end:
            raise ValueError(f'need 0 <= ray_start < ray_end, got ray_start={self.ray_start}, ray_end={self.ray_end}')
        if self.disparity_space_sampling and self.ray_start <= 0:
            raise ValueError('disparity_space_sampling needs ray_start > 0')
        if not self.box_warp > 0:
            raise ValueError(f'box_warp must be > 0, got {self.box_warp}')
        if int(self.depth_resolution) != self.depth_resolution or self.depth_resolution < 2:
            raise ValueError(f'depth_resolution must be an integer >= 2, got {self.depth_resolution}')
        if int(self.depth_resolution_importance) != self.depth_resolution_importance or self.depth_resolution_importance < 0:
            raise ValueError(f'depth_resolution_importance must be an integer >= 0, got {self.depth_resolution_importance}')
        if self.clamp_mode not in ('softplus', 'relu'):
            raise ValueError(f"clamp_mode must be 'softplus' or 'relu', got {self.clamp_mode!r}")

    # A copy with some fields changed (validated again).
    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

#----------------------------------------------------------------------------
