# Head3D stage 2: tri-plane feature distillation with dual discriminators (Head3D paper, sections 3.3-3.4,
# eq. 5-10), plus the two-set EG3D loss of the paper's baselines DFT and FH (section 4.2).
#
# Every generator step draws one batch of z with render cameras split in halves: the first half are front cameras
# drawn from the faces labels, the second half back cameras drawn from the heads labels (the heads set is loaded
# with back views only). The frozen teacher (the face EG3D) and the student (the fine-tuned head generator) run with
# the same z and the same conditioning camera. The discriminators alternate inside each training step: D_front
# (front reals from the faces set vs. front fakes) takes its step, then D_back (back reals vs. back fakes), each
# with its own R1 gamma and lazy interval. With a single discriminator `D` instead of the pair (ablation, fig. 12(c))
# that one D sees both halves.

import inspect
import math

import torch

from training import cameras
from training.losses import Phase, nonsaturating_d_fake, nonsaturating_d_real, nonsaturating_g, r1_penalty, sample_labels
from training.losses.eg3d import EG3DLoss, density_reg_loss, real_raw, run_D, side_mask
from training.losses.perceptual import build_perceptual

SIDES = ('front', 'back')
SIDE_SET = dict(front='faces', back='heads')      # which data set gives each side's reals and cameras

#----------------------------------------------------------------------------
# Eq. 5, L_kd: mean squared difference of the XY planes (plane 0) of teacher and student tri-planes
# [N, 3, C, H, W]; all_planes distils the whole tri-plane (ablation, fig. 12(b)). Per sample [N].

def kd_loss(planes_t, planes_s, all_planes=False):
    return plane_mse(planes_t, planes_s, slice(0, 3) if all_planes else slice(0, 1))   # tri-plane part, plane 0 = XY (front)

# Mean squared difference of the planes `which` (a slice of the plane axis) of two tri-planes. Per sample [N].
def plane_mse(planes_a, planes_b, which):
    return (planes_a[:, which] - planes_b[:, which]).square().flatten(1).mean(1)

#----------------------------------------------------------------------------
# Head-template anchor (NOT in the paper; lambda_tpl, off by default): mean squared difference between the
# student's xz and yz planes (planes 1 and 2) and those of the frozen head generator that stage 2 starts from, for
# the same z. Eq. 5 pulls the xy plane to the teacher's, and since one synthesis network makes all three planes,
# the other two follow it toward the face generator's, whose back of the head is a mirror face; measured on the
# synthetic world (README), restoring the head generator's xz/yz planes turns those backs into hair while the
# identity stays. This term keeps them there during training. Per sample [N].

def tpl_loss(planes_h, planes_s):
    return plane_mse(planes_h, planes_s, slice(1, 3))

#----------------------------------------------------------------------------
# Eq. 7, L_map (StyleKD): mean absolute difference of the mapping outputs ws [N, num_ws, w_dim]. Per sample [N].

def map_loss(ws_t, ws_s):
    return (ws_t - ws_s).abs().flatten(1).mean(1)

#----------------------------------------------------------------------------
# Eq. 8 without its indicator: L1 on the super-resolved image plus L1 on the raw neural rendering. Per sample [N].

def rgb_loss(out_t, out_s):
    l1 = lambda a, b: (a - b).abs().flatten(1).mean(1)
    return l1(out_t['image'], out_s['image']) + l1(out_t['image_raw'], out_s['image_raw'])

#----------------------------------------------------------------------------
# The indicator of eq. 8-9: cameras whose horizontal angle from the front, |yaw|, is at most tau. [N] bool.

def yaw_window(c, tau):
    yaw, _ = cameras.yaw_pitch_from_label(c)
    return yaw.abs() <= tau

#----------------------------------------------------------------------------
# Tri-planes with random backbone noise (training, as EG3D's loss) drawn from `seed`: teacher and student get the
# same noise images, so that L_kd compares their features, not two noise draws. The global RNG is left as it was.

def _planes(G, ws, seed):
    with torch.random.fork_rng(devices=[ws.device.index or 0] if ws.device.type == 'cuda' else []):
        torch.manual_seed(seed)
        return G.synthesis_planes(ws, noise_mode='random')

#----------------------------------------------------------------------------
# Render planes for the samples idx with a torch.Generator seeded by `seed`, so that teacher and student draw the
# same depth samples for the same rays.

def _render(G, planes, ws, c, idx, nr, seed):
    gen = torch.Generator(device=planes.device).manual_seed(seed)
    return G.render_planes(planes[idx], ws[idx], c[idx], neural_rendering_resolution=nr, generator=gen)

#----------------------------------------------------------------------------
# Head3D distillation loss (eq. 10): lambda_gan_front L_gan^front + lambda_kd L_kd + lambda_rgb L_rgb
# + lambda_lpips L_lpips + lambda_map L_map + lambda_gan_back L_gan^back, with D_front / D_back trained by eq. 6.
# A lambda of 0 skips that term's computation. nets: G (student) and D_front + D_back (or one D).

class Head3DLoss:
    def __init__(self, nets, frozen, label_pools, augment_pipe=None,
        lambda_kd           = 0.5,          # eq. 5 tri-plane feature distillation.
        lambda_map          = 1.0,          # eq. 7 mapping (w) distillation.
        lambda_rgb          = 1.0,          # eq. 8 image L1 inside the yaw window.
        lambda_lpips        = 1.0,          # eq. 9 perceptual distance inside the yaw window.
        lambda_gan_front    = 1.0,          # eq. 6 adversarial term of D_front on front cameras.
        lambda_gan_back     = 10.0,         # eq. 6 adversarial term of D_back on back cameras.
        lambda_tpl          = 0.0,          # NOT in the paper (0 = off): keep the xz/yz planes at the frozen head
                                            # template's (the --init head generator, same z): see tpl_loss.
        kd_planes           = 'xy',         # 'xy' (paper) or 'all' (distil the whole tri-plane, fig. 12(b)).
        tau_deg             = 60.0,         # Yaw window of L_rgb/L_lpips in degrees (tau = pi/3).
        cond_pose           = 'front',      # Conditioning camera: 'front' (drawn from the faces labels) or 'render'.
        perceptual          = 'lpips_vgg',  # 'lpips_vgg' | 'lpips_vgg_randtrunk' (offline stand-in) | 'none'.
        vgg16_path          = None,         # Local torchvision VGG16 weights (default: torch hub checkpoints dir).
        r1_gamma_front      = 1.0,          # R1 weight of D_front.
        r1_gamma_back       = 20.0,         # R1 weight of D_back.
        r1_interval_front   = 16,           # Lazy R1 interval of D_front (a single D uses this one).
        r1_interval_back    = 16,           # Lazy R1 interval of D_back.
        density_reg         = 0.25,         # EG3D's density regularisation of the student (not in eq. 10); 0 = off.
        density_reg_interval= 4,            # Lazy density regularisation: every N steps.
        density_reg_p_dist  = 0.004,        # Jitter of the second point.
        density_reg_points  = 1000,         # Random points per sample.
        d_batch             = 'half',       # Samples per D_front / D_back step: 'half' of the batch each (the two
                                            # alternating Ds together cost one EG3D D step, as the G step splits its
                                            # batch into front and back halves) or the 'full' batch each.
    ):
        self.G = nets['G']
        if 'teacher' not in frozen:
            raise ValueError('Head3DLoss needs a frozen teacher: pass --teacher (config teacher_path) a face generator snapshot')
        self.teacher = frozen['teacher'].eval().requires_grad_(False)
        self.single_d = 'D' in nets
        if self.single_d == ('D_front' in nets or 'D_back' in nets):
            raise ValueError(f'Head3DLoss needs nets D_front and D_back, or one D (single-discriminator ablation); got {sorted(nets)}')
        self.D = {side: nets['D'] if self.single_d else nets[f'D_{side}'] for side in SIDES}
        self.augment_pipe = augment_pipe

        if kd_planes not in ('xy', 'all'):
            raise ValueError(f"loss.kd_planes must be 'xy' or 'all', got {kd_planes!r}")
        if cond_pose not in ('front', 'render'):
            raise ValueError(f"loss.cond_pose must be 'front' or 'render', got {cond_pose!r}")
        if not 0 <= tau_deg <= 180:
            raise ValueError(f'loss.tau_deg must be in [0, 180], got {tau_deg}')
        self.lambdas = dict(kd=lambda_kd, map=lambda_map, rgb=lambda_rgb, lpips=lambda_lpips,
                            gan_front=lambda_gan_front, gan_back=lambda_gan_back, tpl=lambda_tpl)
        for name, value in self.lambdas.items():
            if value < 0:
                raise ValueError(f'loss.lambda_{name} must be >= 0, got {value}')
        if not any(self.lambdas.values()):
            raise ValueError('Head3DLoss: every lambda is 0, the generator would get no loss')
        if d_batch not in ('half', 'full'):
            raise ValueError(f"loss.d_batch must be 'half' or 'full', got {d_batch!r}")
        self.d_half = d_batch == 'half'
        self.all_planes = kd_planes == 'all'
        self.tau = math.radians(tau_deg)
        self.cond_pose = cond_pose
        self.r1_gamma = dict(front=float(r1_gamma_front), back=float(r1_gamma_back))
        self.r1_interval = dict(front=int(r1_interval_front), back=int(r1_interval_back))
        if min(self.r1_gamma.values()) < 0 or min(self.r1_interval.values()) < 1:
            raise ValueError('Head3DLoss: r1_gamma_* must be >= 0 and r1_interval_* >= 1')
        if self.single_d and r1_interval_front != r1_interval_back:
            raise ValueError('single discriminator: r1_interval_front and r1_interval_back must be equal (one lazy schedule)')
        if density_reg < 0 or density_reg_interval < 1:
            raise ValueError('Head3DLoss: density_reg must be >= 0 and density_reg_interval >= 1')
        self.density_reg, self.density_reg_interval = density_reg, int(density_reg_interval)
        self.density_reg_p_dist, self.density_reg_points = density_reg_p_dist, int(density_reg_points)
        self.template = None
        if lambda_tpl > 0:
            if 'template' not in frozen:
                raise ValueError('loss.lambda_tpl > 0 needs the frozen head template: pass --init a head generator snapshot')
            self.template = frozen['template'].eval().requires_grad_(False)
        self._check_teacher()

        # The frozen perceptual network: eval, no grad, owned by the loss (never in an optimiser or a snapshot).
        self.perceptual = None
        if lambda_lpips > 0:
            self.perceptual = build_perceptual(perceptual, vgg16_path=vgg16_path, device=self._device)
            if self.perceptual is None:
                raise ValueError('loss.lambda_lpips > 0 needs a perceptual network; set loss.perceptual or lambda_lpips: 0')
        self.lpips_name = 'Loss/G/' + (self.perceptual.log_name if self.perceptual is not None else 'lpips')

        # Camera pools: front cameras from the faces labels, back cameras from the heads labels.
        self.pools = {}
        for side in SIDES:
            pool = label_pools.get(SIDE_SET[side])
            if pool is None:
                raise ValueError(f'Head3DLoss needs the data set "{SIDE_SET[side]}" (its labels give the {side} cameras)')
            pool = torch.as_tensor(pool, dtype=torch.float32, device=self._device)
            pool = pool[side_mask(pool, side)]
            if len(pool) == 0:
                raise ValueError(f'data set "{SIDE_SET[side]}" has no {side}-view labels '
                                 f'({"|yaw| <= 90" if side == "front" else "|yaw| > 90"} degrees)')
            self.pools[side] = pool

    @property
    def _device(self):
        return next(self.G.parameters()).device

    # Trainable nets, in optimiser order; a single D ablation trains G and D.
    @property
    def trainable(self):
        return ['G', 'D'] if self.single_d else ['G', 'D_front', 'D_back']

    # Teacher and student must share the layout that the distillation terms compare.
    def _check_teacher(self):
        for role, t in (('teacher', self.teacher), ('template', self.template)):
            if t is None:
                continue
            for attr in ('z_dim', 'c_dim', 'w_dim', 'num_ws', 'plane_channels', 'img_resolution'):
                if getattr(t, attr) != getattr(self.G, attr):
                    raise ValueError(f'{role} and student generators differ in {attr} ({getattr(t, attr)} vs '
                                     f'{getattr(self.G, attr)}); Head3D distils between equal architectures')

    # G step, then D_front (main, lazy R1), then D_back (main, lazy R1): the paper's front/back alternation.
    def phases(self):
        phases = [Phase('Gmain', 'G', 1)]
        if self.density_reg > 0:
            phases += [Phase('Greg', 'G', self.density_reg_interval)]
        if self.single_d:
            phases += [Phase('Dmain', 'D', 1)]
            if max(self.r1_gamma.values()) > 0:
                phases += [Phase('Dreg', 'D', self.r1_interval['front'])]
            return phases
        for side in SIDES:
            if self.lambdas[f'gan_{side}'] == 0:
                continue        # that D would never reach G (ablation "w/o L_gan_front"): leave it untrained
            phases += [Phase(f'D_{side}_main', f'D_{side}', 1)]
            if self.r1_gamma[side] > 0:
                phases += [Phase(f'D_{side}_reg', f'D_{side}', self.r1_interval[side])]
        return phases

    # Draw n render cameras: the first ceil(n/2) front, the rest back; or all of one side.
    def sample_cameras(self, n, side=None):
        if side is not None:
            return sample_labels(self.pools[side], n)
        n_front = (n + 1) // 2
        return torch.cat([sample_labels(self.pools['front'], n_front), sample_labels(self.pools['back'], n - n_front)])

    # Conditioning cameras for render cameras c_render (cond_pose: a fresh front pose, or the render camera).
    def conditioning(self, c_render):
        return sample_labels(self.pools['front'], len(c_render)) if self.cond_pose == 'front' else c_render

    # Route one phase; returns the named terms for logging.
    def accumulate_gradients(self, phase, batch, gain, cur_nimg):
        n = len(next(iter(batch.values()))[0])
        if phase.name == 'Gmain':
            return self.generator_step(n, gain)
        if phase.name == 'Greg':
            return self.density_step(n, gain)
        if self.single_d:
            return self.d_main_single(batch, gain) if phase.name == 'Dmain' else self.d_reg_single(batch, gain)
        side, kind = phase.name[2:].rsplit('_', 1)
        if side not in SIDES or kind not in ('main', 'reg'):
            raise ValueError(f'Head3DLoss: unknown phase {phase.name!r}')
        if kind == 'main':
            return self.d_main(side, batch, gain)
        return self.d_reg(side, batch, gain)

    #------------------------------------------------------------------------
    # Generator step: eq. 10 on one batch of n samples (front half, back half).

    def generator_step(self, n, gain):
        if n < 2:
            raise ValueError('Head3DLoss needs at least 2 samples per GPU (one front and one back camera)')
        lam = self.lambdas
        G, T = self.G, self.teacher
        nr = G.neural_rendering_resolution
        c_render = self.sample_cameras(n)
        c_cond = self.conditioning(c_render)
        z = torch.randn(n, G.z_dim, device=c_render.device)
        seeds = torch.randint(0, 2**62, (3,)).tolist()      # render seeds (window, rest) and the noise seed
        win = yaw_window(c_render, self.tau) if lam['rgb'] > 0 or lam['lpips'] > 0 else torch.zeros_like(c_render[:, 0], dtype=torch.bool)
        idx_in, idx_out = win.nonzero()[:, 0], (~win).nonzero()[:, 0]
        need_teacher_planes = lam['kd'] > 0 or len(idx_in) > 0

        # Teacher: frozen, no graph.
        with torch.no_grad():
            ws_t = T.mapping(z, c_cond)
            planes_t = _planes(T, ws_t, seeds[2]) if need_teacher_planes else None
            out_t = _render(T, planes_t, ws_t, c_render, idx_in, nr, seeds[0]) if len(idx_in) else None

        # Student: same z and conditioning; window samples and the rest are rendered apart so that the window
        # chunk draws exactly the teacher's depth samples.
        ws_s = G.mapping(z, c_cond)
        planes_s = _planes(G, ws_s, seeds[2])
        chunks = [(idx, _render(G, planes_s, ws_s, c_render, idx, nr, seed))
                  for idx, seed in ((idx_in, seeds[0]), (idx_out, seeds[1])) if len(idx)]
        out_in = chunks[0][1] if len(idx_in) else None
        order = torch.cat([idx for idx, _ in chunks]).argsort()
        img = {k: torch.cat([out[k] for _, out in chunks])[order] for k in ('image', 'image_raw')}

        # (log name, lambda key, value) of every active term.
        terms = []
        zero = torch.zeros([], device=z.device)
        if lam['kd'] > 0:
            terms.append(('Loss/G/kd', 'kd', kd_loss(planes_t, planes_s, self.all_planes).mean()))
        if lam['map'] > 0:
            terms.append(('Loss/G/map', 'map', map_loss(ws_t, ws_s).mean()))
        if lam['tpl'] > 0:
            with torch.no_grad():
                planes_h = _planes(self.template, self.template.mapping(z, c_cond), seeds[2])
            terms.append(('Loss/G/tpl', 'tpl', tpl_loss(planes_h, planes_s).mean()))
        # Eq. 8-9 indicator: samples outside the window never enter the graph; the sum is over the whole batch.
        if lam['rgb'] > 0:
            terms.append(('Loss/G/rgb', 'rgb', rgb_loss(out_t, out_in).sum() / n if out_in is not None else zero))
        if lam['lpips'] > 0:
            value = self.perceptual(out_t['image'], out_in['image']).sum() / n if out_in is not None else zero
            terms.append((self.lpips_name, 'lpips', value))
        for side, idx in zip(SIDES, self._halves(n)):
            if lam[f'gan_{side}'] > 0 and len(idx):
                logits = run_D(self.D[side], {k: v[idx] for k, v in img.items()}, c_render[idx], 0, self.augment_pipe)
                terms.append((f'Loss/G/gan_{side}', f'gan_{side}', nonsaturating_g(logits).mean()))
        total = sum((lam[key] * value for _, key, value in terms), zero)
        if total.requires_grad:        # every active term can be an exact zero (all cameras outside the window)
            total.mul(gain).backward()
        logs = {name: value.detach() for name, _, value in terms}
        logs['Loss/G/total'] = total.detach()
        return logs

    # EG3D's density regularisation of the student (L1 between sigma at random points and jittered points).
    def density_step(self, n, gain):
        c_cond = self.conditioning(self.sample_cameras(n))
        ws = self.G.mapping(torch.randn(n, self.G.z_dim, device=c_cond.device), c_cond)
        loss = density_reg_loss(self.G, ws, self.density_reg_points, self.density_reg_p_dist) * self.density_reg
        loss.mul(gain).backward()
        return {'Loss/G/density_reg': loss.detach()}

    # Index ranges of the front half and the back half of a batch of n.
    @staticmethod
    def _halves(n):
        n_front = (n + 1) // 2
        return torch.arange(n_front), torch.arange(n_front, n)

    #------------------------------------------------------------------------
    # Fakes for a D step: no graph into G; update_emas as EG3D's Dgen.

    @torch.no_grad()
    def _fakes(self, c_render):
        G = self.G
        z = torch.randn(len(c_render), G.z_dim, device=c_render.device)
        out = G(z, self.conditioning(c_render), c_render=c_render, noise_mode='random', update_emas=True)
        return {k: out[k] for k in ('image', 'image_raw')}

    # Reals of one side, with their labels checked to be of that side (a D never sees the other side's views).
    def _reals(self, side, batch):
        name = SIDE_SET[side]
        if name not in batch:
            raise ValueError(f'Head3DLoss: the batch has no "{name}" set (needed for {side} reals)')
        images, labels = batch[name]
        if not bool(side_mask(labels, side).all()):
            raise ValueError(f'data set "{name}" yielded a label outside the {side} views; for "heads" set '
                             f'data.heads.yaw_range_deg to back views only (|yaw| > 90)')
        raw = real_raw(images, self.G.neural_rendering_resolution)
        return {'image': images, 'image_raw': raw}, labels

    # Reals of one side for its D step: the first half of the set's batch with d_batch='half', else all of it.
    def _d_reals(self, side, batch):
        real, c_real = self._reals(side, batch)
        if self.d_half:
            k = (len(c_real) + 1) // 2
            real, c_real = {key: v[:k] for key, v in real.items()}, c_real[:k]
        return real, c_real

    # Eq. 6, D part: softplus(D(fake)) + softplus(-D(real)) for one side's D.
    def d_main(self, side, batch, gain):
        real, c_real = self._d_reals(side, batch)
        c_fake = self.sample_cameras(len(c_real), side)
        return self._d_main_terms(f'D_{side}', self.D[side], self._fakes(c_fake), c_fake, real, c_real, gain)

    # Eq. 6, R1 part: gamma/2 |grad D(real)|^2 over image and image_raw, lazily every r1_interval steps.
    def d_reg(self, side, batch, gain):
        real, c_real = self._d_reals(side, batch)
        penalty = self._r1(self.D[side], real, c_real)
        loss = penalty * (self.r1_gamma[side] / 2)
        loss.mean().mul(gain).backward()
        return {f'Loss/r1_{side}': penalty.mean().detach(), f'Loss/D_{side}/reg': loss.mean().detach()}

    # Single discriminator (ablation): reals are the first half of the faces batch and the first half of the heads
    # batch, fakes have the usual front/back halves; R1 keeps each side's gamma per sample.
    def _single_reals(self, batch):
        n = len(batch[SIDE_SET['front']][0])
        parts = [self._reals(side, batch) for side in SIDES]
        idx = self._halves(n)
        real = {k: torch.cat([p[0][k][i] for p, i in zip(parts, idx)]) for k in ('image', 'image_raw')}
        c_real = torch.cat([p[1][i] for p, i in zip(parts, idx)])
        return real, c_real, idx

    def d_main_single(self, batch, gain):
        real, c_real, _ = self._single_reals(batch)
        c_fake = self.sample_cameras(len(c_real))
        return self._d_main_terms('D', self.D['front'], self._fakes(c_fake), c_fake, real, c_real, gain)

    def d_reg_single(self, batch, gain):
        real, c_real, idx = self._single_reals(batch)
        penalty = self._r1(self.D['front'], real, c_real)
        gamma = torch.cat([torch.full([len(i)], self.r1_gamma[side], device=penalty.device) for side, i in zip(SIDES, idx)])
        loss = penalty * (gamma / 2)
        loss.mean().mul(gain).backward()
        logs = {f'Loss/r1_{side}': penalty[i.to(penalty.device)].mean().detach() for side, i in zip(SIDES, idx) if len(i)}
        logs['Loss/D/reg'] = loss.mean().detach()
        return logs

    # Shared D main step: logistic loss on fakes and reals, backward, logged terms.
    def _d_main_terms(self, name, D, fake, c_fake, real, c_real, gain):
        logits_fake = run_D(D, fake, c_fake, 0, self.augment_pipe, update_emas=True)
        loss_fake = nonsaturating_d_fake(logits_fake).mean()
        logits_real = run_D(D, {k: v.detach() for k, v in real.items()}, c_real, 0, self.augment_pipe)
        loss_real = nonsaturating_d_real(logits_real).mean()
        (loss_fake + loss_real).mul(gain).backward()
        terms = {f'Loss/{name}/fake': loss_fake.detach(), f'Loss/{name}/real': loss_real.detach(),
                 f'Loss/{name}/score_fake': logits_fake.mean().detach(),
                 f'Loss/{name}/score_real': logits_real.mean().detach()}
        if name != 'D_front':   # ADA's overfitting heuristic follows the discriminator of the scarce back views
            terms['Loss/signs/real'] = logits_real.sign().detach()
        return terms

    # R1 penalty per sample [n] of D at the reals (image and image_raw).
    def _r1(self, D, real, c_real):
        real = {k: v.detach().requires_grad_(True) for k, v in real.items()}
        logits = run_D(D, real, c_real, 0, self.augment_pipe)
        return r1_penalty(logits, [real['image'], real['image_raw']])

#----------------------------------------------------------------------------
# The paper's baselines DFT and FH (section 4.2): the plain EG3D loss with one D on the faces and heads sets
# naively combined. Each real sample comes from the heads batch with probability heads_fraction, else from the
# faces batch; fake cameras are drawn from the two label pools with the same odds. By default heads_fraction is
# the heads set's share of all labels, as if the two sets were concatenated into one.

class EG3DTwoSetLoss(EG3DLoss):
    def __init__(self, nets, frozen, label_pools, augment_pipe=None,
        heads_fraction  = None,     # Probability that a sample (real or fake camera) comes from heads; None = by set size.
        **eg3d_kwargs,              # EG3DLoss keyword arguments (r1_gamma, blur, density_reg, ...), not data_set.
    ):
        known = set(inspect.signature(EG3DLoss.__init__).parameters) - {'self', 'nets', 'frozen', 'label_pools',
                                                                       'augment_pipe', 'data_set'}
        unknown = sorted(set(eg3d_kwargs) - known)
        if unknown:
            raise ValueError(f'EG3DTwoSetLoss: unknown loss keys {", ".join(unknown)} (known: heads_fraction, {", ".join(sorted(known))})')
        for name in SIDE_SET.values():
            if name not in label_pools:
                raise ValueError(f'EG3DTwoSetLoss needs the data sets "faces" and "heads"; configured: {sorted(label_pools)}')
        faces, heads = label_pools['faces'], label_pools['heads']
        if heads_fraction is None:
            heads_fraction = len(heads) / (len(faces) + len(heads))
        if not 0 <= heads_fraction <= 1:
            raise ValueError(f'loss.heads_fraction must be in [0, 1], got {heads_fraction}')
        self.heads_fraction = float(heads_fraction)
        super().__init__(nets, frozen, dict(label_pools, mixed=torch.cat([faces, heads])), augment_pipe,
                         data_set='mixed', **eg3d_kwargs)
        self.faces_pool, self.heads_pool = faces, heads

    # Per sample: True = take it from the heads set.
    def _coins(self, n, device):
        return torch.rand([n], device=device) < self.heads_fraction

    # Fake cameras from the two pools with the mixing odds; conditioning as in EG3DLoss.
    def _cameras(self, n, cur_nimg):
        coin = self._coins(n, self.faces_pool.device)[:, None]
        c = torch.where(coin, sample_labels(self.heads_pool, n), sample_labels(self.faces_pool, n))
        return c, self._conditioning(c, cur_nimg)

    # Mix the two real batches sample by sample and run the EG3D phase on the result.
    def accumulate_gradients(self, phase, batch, gain, cur_nimg):
        (img_f, c_f), (img_h, c_h) = batch['faces'], batch['heads']
        n = min(len(img_f), len(img_h))
        coin = self._coins(n, img_f.device)
        img = torch.where(coin[:, None, None, None], img_h[:n], img_f[:n])
        c = torch.where(coin[:, None], c_h[:n], c_f[:n])
        return super().accumulate_gradients(phase, dict(batch, mixed=(img, c)), gain, cur_nimg)

# Expose the full keyword list (EG3DLoss's minus data_set, plus heads_fraction) so that config validation checks
# every loss key and its type by name.
def _two_set_signature():
    own = inspect.signature(EG3DTwoSetLoss.__init__).parameters
    base = inspect.signature(EG3DLoss.__init__).parameters
    params = [p for p in own.values() if p.kind != p.VAR_KEYWORD]
    params += [p for name, p in base.items() if name not in own and name != 'data_set']
    return inspect.Signature(params)

EG3DTwoSetLoss.__init__.__signature__ = _two_set_signature()
