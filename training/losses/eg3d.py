"""EG3D-stage loss (Chan et al. 2022, built on StyleGAN2-ADA): non-saturating GAN loss, lazy R1 on image and
image_raw, density regularisation, generator pose-conditioning swap, blur fade of D inputs and the neural
rendering resolution schedule. Used by the `face` and `head_ft` stages; every term is logged by name."""

import math

import numpy as np
import torch
import torch.nn.functional as F

from torch_utils.ops import upfirdn2d
from training import cameras
from training.losses import Phase, nonsaturating_d_fake, nonsaturating_d_real, nonsaturating_g, r1_penalty, sample_labels

#----------------------------------------------------------------------------
# Neural rendering resolution at cur_nimg: linear blend initial -> final over fade_kimg, rounded (EG3D int(rint)).

def neural_rendering_resolution(cur_nimg, initial, final=None, fade_kimg=1000):
    if final is None or fade_kimg <= 0:
        return int(initial if final is None else final)
    alpha = min(cur_nimg / (fade_kimg * 1e3), 1)
    return int(np.rint((1 - alpha) * initial + alpha * final))

#----------------------------------------------------------------------------
# Blur sigma of D's inputs: init_sigma fading linearly to 0 over fade_kimg.

def blur_sigma(cur_nimg, init_sigma, fade_kimg):
    if fade_kimg <= 0:
        return 0.0
    return max(1 - cur_nimg / (fade_kimg * 1e3), 0) * init_sigma

#----------------------------------------------------------------------------
# Keep only the labels of one side: front |yaw| <= pi/2, back |yaw| > pi/2 (DESIGN.md section 4). [N] bool.

def side_mask(c, side):
    yaw, _ = cameras.yaw_pitch_from_label(c)
    return yaw.abs() <= math.pi / 2 if side == 'front' else yaw.abs() > math.pi / 2

#----------------------------------------------------------------------------
# Probability that the conditioning camera is swapped for another sample's: 1 fading to final_prob.

def gpc_swap_prob(cur_nimg, final_prob, fade_kimg):
    if fade_kimg <= 0:
        return final_prob
    alpha = min(cur_nimg / (fade_kimg * 1e3), 1)
    return (1 - alpha) * 1 + alpha * final_prob

#----------------------------------------------------------------------------
# Generator pose conditioning: per sample, with probability p, condition on the next sample's camera (roll by 1).

def swap_conditioning(c, p, generator=None):
    swapped = torch.roll(c, 1, 0)
    coin = torch.rand((c.shape[0], 1), device=c.device, generator=generator) < p
    return torch.where(coin, swapped, c)

#----------------------------------------------------------------------------
# Gaussian blur with sigma in pixels (3-sigma support, EG3D's exp2 kernel); identity for sigma < 1/3.

def blur_images(img, sigma):
    size = int(np.floor(sigma * 3))
    if size <= 0:
        return img
    f = torch.arange(-size, size + 1, device=img.device).div(sigma).square().neg().exp2()
    return upfirdn2d.filter2d(img, f / f.sum())

#----------------------------------------------------------------------------
# Real raw image: antialiased bilinear downsampling of the real image to the current neural rendering resolution.

def real_raw(images, nr):
    if images.shape[-1] == nr:
        return images
    return F.interpolate(images, size=(nr, nr), mode='bilinear', align_corners=False, antialias=True)

#----------------------------------------------------------------------------
# D on a dict(image, image_raw): the same blur for both, then the augment pipe (one transform for both).

def run_D(D, img, c, sigma, augment_pipe=None, update_emas=False):
    img = {k: blur_images(v, sigma) for k, v in img.items()}
    if augment_pipe is not None:
        img = augment_pipe(img)
    return D(img, c, update_emas=update_emas)

#----------------------------------------------------------------------------
# ws with optional style mixing: from a random layer on, the ws of a second z (same conditioning camera).

def map_with_mixing(G, z, c_cond, mixing_prob, update_emas=False):
    ws = G.mapping(z, c_cond, update_emas=update_emas)
    if mixing_prob > 0:
        n = ws.shape[1]
        cutoff = torch.empty([], dtype=torch.int64, device=ws.device).random_(1, n)
        cutoff = torch.where(torch.rand([], device=ws.device) < mixing_prob, cutoff, torch.full_like(cutoff, n))
        ws2 = G.mapping(torch.randn_like(z), c_cond, update_emas=False)
        layer = torch.arange(n, device=ws.device)[None, :, None]
        ws = torch.where(layer < cutoff, ws, ws2)
    return ws

#----------------------------------------------------------------------------
# Density regularisation: L1 between sigma at random points in [-1,1]^3 and at points jittered by p_dist.
# Training draws fresh backbone noise (noise_mode='random') as EG3D's loss does; sampling and metrics use 'const'.

def density_reg_loss(G, ws, num_points, p_dist):
    coords = torch.rand((ws.shape[0], num_points, 3), device=ws.device) * 2 - 1
    jittered = coords + torch.randn_like(coords) * p_dist
    planes = G.synthesis_planes(ws, noise_mode='random', update_emas=False)
    sigma = G.query_field(planes, torch.cat([coords, jittered], dim=1))['sigma']
    return F.l1_loss(sigma[:, :num_points], sigma[:, num_points:])

#----------------------------------------------------------------------------

class EG3DLoss:
    def __init__(self, nets, frozen, label_pools, augment_pipe=None,
        data_set                = 'main',   # Which data set gives real images and fake cameras.
        r1_gamma                = 1.0,      # R1 weight (gamma); 0 = no R1.
        r1_interval             = 16,       # Lazy R1: every N steps.
        blur_init_sigma         = 10.0,     # Blur of D's inputs at the start, in pixels.
        blur_fade_kimg          = 200.0,    # ... fading to 0 over this many kimg; 0 = no blur.
        density_reg             = 0.25,     # Density regularisation weight; 0 = off.
        density_reg_interval    = 4,        # Lazy density regularisation: every N steps.
        density_reg_p_dist      = 0.004,    # Jitter of the second point.
        density_reg_points      = 1000,     # Random points per sample.
        gpc_reg_prob            = 0.5,      # Final probability of swapping the conditioning camera; None = condition on zeros.
        gpc_reg_fade_kimg       = 1000.0,   # Fade of the swap probability from 1 to gpc_reg_prob.
        cond_pose               = 'render', # Conditioning camera: 'render' (EG3D: the render camera, GPC swap) or
                                            # 'front' (NOT EG3D: a front view |yaw| <= 90 drawn from the data set's
                                            # labels, as generation and Head3D's stage 2 condition; gpc_* unused).
        nr_initial              = 64,       # Neural rendering resolution at the start.
        nr_final                = None,     # ... at the end of the fade; None = constant.
        nr_fade_kimg            = 1000.0,   # Fade length.
        style_mixing_prob       = 0.0,      # Style mixing probability (off in EG3D's configs).
    ):
        if data_set not in label_pools:
            raise ValueError(f'EG3DLoss: data set {data_set!r} not among the configured sets {sorted(label_pools)}')
        self.G, self.D = nets['G'], nets['D']
        self.pool = label_pools[data_set]
        self.augment_pipe = augment_pipe
        self.data_set = data_set
        self.r1_gamma, self.r1_interval = r1_gamma, r1_interval
        self.blur_init_sigma, self.blur_fade_kimg = blur_init_sigma, blur_fade_kimg
        self.density_reg, self.density_reg_interval = density_reg, density_reg_interval
        self.density_reg_p_dist, self.density_reg_points = density_reg_p_dist, density_reg_points
        self.gpc_reg_prob, self.gpc_reg_fade_kimg = gpc_reg_prob, gpc_reg_fade_kimg
        if cond_pose not in ('render', 'front'):
            raise ValueError(f"loss.cond_pose must be 'render' or 'front', got {cond_pose!r}")
        self.front_pool = None
        if cond_pose == 'front':
            self.front_pool = self.pool[side_mask(self.pool, 'front')]
            if len(self.front_pool) == 0:
                raise ValueError(f'loss.cond_pose front: data set {data_set!r} has no front-view labels (|yaw| <= 90 degrees)')
        self.nr_initial, self.nr_final, self.nr_fade_kimg = nr_initial, nr_final, nr_fade_kimg
        self.style_mixing_prob = style_mixing_prob
        self.trainable = ['G', 'D']

    # Gmain, Greg (density, lazy), Dmain, Dreg (R1, lazy); a term switched off drops its phase.
    def phases(self):
        out = [Phase('Gmain', 'G', 1)]
        if self.density_reg > 0:
            out.append(Phase('Greg', 'G', self.density_reg_interval))
        out.append(Phase('Dmain', 'D', 1))
        if self.r1_gamma > 0:
            out.append(Phase('Dreg', 'D', self.r1_interval))
        return out

    # Fake cameras from the pool and their conditioning cameras.
    def _cameras(self, n, cur_nimg):
        c = sample_labels(self.pool, n)
        return c, self._conditioning(c, cur_nimg)

    # Conditioning for render cameras c: a front view (cond_pose 'front'), zeros (gpc_reg_prob None) or c with the
    # GPC swap.
    def _conditioning(self, c, cur_nimg):
        if self.front_pool is not None:
            return sample_labels(self.front_pool, len(c))
        if self.gpc_reg_prob is None:
            return torch.zeros_like(c)
        return swap_conditioning(c, gpc_swap_prob(cur_nimg, self.gpc_reg_prob, self.gpc_reg_fade_kimg))

    def _generate(self, n, cur_nimg, update_emas):
        c, c_cond = self._cameras(n, cur_nimg)
        z = torch.randn([n, self.G.z_dim], device=self.pool.device)
        ws = map_with_mixing(self.G, z, c_cond, self.style_mixing_prob, update_emas=update_emas)
        nr = neural_rendering_resolution(cur_nimg, self.nr_initial, self.nr_final, self.nr_fade_kimg)
        out = self.G.synthesis(ws, c, neural_rendering_resolution=nr, noise_mode='random', update_emas=update_emas)
        return dict(image=out['image'], image_raw=out['image_raw']), c, ws

    # One phase on this rank's batch; calls backward() with the loss scaled by `gain`; returns named terms.
    def accumulate_gradients(self, phase, batch, gain, cur_nimg):
        real_img, real_c = batch[self.data_set]
        n = real_img.shape[0]
        sigma = blur_sigma(cur_nimg, self.blur_init_sigma, self.blur_fade_kimg)
        nr = neural_rendering_resolution(cur_nimg, self.nr_initial, self.nr_final, self.nr_fade_kimg)
        terms = {}

        if phase.name == 'Gmain':
            fake, c, _ = self._generate(n, cur_nimg, update_emas=False)
            logits = run_D(self.D, fake, c, sigma, self.augment_pipe)
            loss = nonsaturating_g(logits)
            loss.mean().mul(gain).backward()
            terms.update({'Loss/scores/fake': logits, 'Loss/signs/fake': logits.sign(), 'Loss/G/gan': loss,
                          'Progress/nr': torch.tensor(float(nr)), 'Progress/blur_sigma': torch.tensor(float(sigma))})

        elif phase.name == 'Greg':
            _, c_cond = self._cameras(n, cur_nimg)
            z = torch.randn([n, self.G.z_dim], device=self.pool.device)
            ws = map_with_mixing(self.G, z, c_cond, self.style_mixing_prob)
            loss = density_reg_loss(self.G, ws, self.density_reg_points, self.density_reg_p_dist) * self.density_reg
            loss.mul(gain).backward()
            terms['Loss/G/density_reg'] = loss

        elif phase.name == 'Dmain':
            with torch.no_grad():
                fake, c, _ = self._generate(n, cur_nimg, update_emas=True)
            fake_logits = run_D(self.D, fake, c, sigma, self.augment_pipe, update_emas=True)
            loss_fake = nonsaturating_d_fake(fake_logits)
            real = dict(image=real_img, image_raw=real_raw(real_img, nr))
            real_logits = run_D(self.D, real, real_c, sigma, self.augment_pipe)
            loss_real = nonsaturating_d_real(real_logits)
            (loss_fake.mean() + loss_real.mean()).mul(gain).backward()
            terms.update({'Loss/D/fake': loss_fake, 'Loss/D/real': loss_real, 'Loss/scores/real': real_logits,
                          'Loss/signs/real': real_logits.sign(), 'Loss/D/loss': loss_fake + loss_real})

        elif phase.name == 'Dreg':
            real = {'image': real_img.detach().requires_grad_(True),
                    'image_raw': real_raw(real_img, nr).detach().requires_grad_(True)}
            real_logits = run_D(self.D, real, real_c, sigma, self.augment_pipe)
            penalty = r1_penalty(real_logits, [real['image'], real['image_raw']])
            loss = penalty * (self.r1_gamma / 2)
            loss.mean().mul(gain).backward()
            terms.update({'Loss/r1_penalty': penalty, 'Loss/D/reg': loss})

        else:
            raise ValueError(f'EG3DLoss: unknown phase {phase.name!r}')
        return {k: v.detach() for k, v in terms.items()}
