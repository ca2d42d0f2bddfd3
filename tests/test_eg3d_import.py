"""EG3D pickle import: pickles are built here in EG3D's persistence layout (a fake torch_utils.persistence
exists only inside these tests) from our own tiny networks, then converted without executing anything."""

import collections
import io
import os
import pickle
import subprocess
import sys
import types
import pytest
import torch
from training import cameras
from training.eg3d_import import EG3DImportError, import_eg3d, read_eg3d_pickle
from training.networks import PRESETS, DualDiscriminator, TriPlaneGenerator
from training.snapshot import load_snapshot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#----------------------------------------------------------------------------
# EG3D-style kwargs of a small model whose SR is EG3D's SuperresolutionHybrid2X (64 -> 128).

G_EG3D_KWARGS = dict(z_dim=64, w_dim=64, mapping_kwargs={'num_layers': 2}, channel_base=2048, channel_max=64,
    fused_modconv_default='inference_only', num_fp16_res=0, conv_clamp=None, sr_num_fp16_res=4,
    sr_kwargs={'channel_base': 2048, 'channel_max': 64, 'fused_modconv_default': 'inference_only'},
    rendering_kwargs={'image_resolution': 128, 'disparity_space_sampling': False, 'clamp_mode': 'softplus',
        'superresolution_module': 'training.superresolution.SuperresolutionHybrid2X', 'c_gen_conditioning_zero': False,
        'gpc_reg_prob': 0.5, 'c_scale': 1.0, 'superresolution_noise_mode': 'none', 'density_reg': 0.25,
        'density_reg_p_dist': 0.004, 'reg_type': 'l1', 'decoder_lr_mul': 1.0, 'sr_antialias': True,
        'depth_resolution': 12, 'depth_resolution_importance': 12, 'ray_start': 2.25, 'ray_end': 3.3,
        'box_warp': 1, 'avg_camera_radius': 2.7, 'avg_camera_pivot': [0, 0, 0.2]},
    c_dim=25, img_resolution=128, img_channels=3)
D_EG3D_KWARGS = dict(c_dim=25, img_resolution=64, img_channels=3, architecture='resnet', channel_base=2048,
    channel_max=64, num_fp16_res=4, conv_clamp=256, disc_c_noise=0, block_kwargs={'freeze_layers': 0},
    mapping_kwargs={}, epilogue_kwargs={'mbstd_group_size': 4})

def our_g():
    return TriPlaneGenerator(**{**PRESETS['tiny']['G'], 'img_resolution': 128, 'sr_input_resolution': 64,
                                'sr_channels': [128, 64]}).eval()

#----------------------------------------------------------------------------
# Writing pickles in EG3D's layout.

class _Persistent:
    def __init__(self, hook, meta):
        self.hook, self.meta = hook, meta
    def __reduce__(self):
        return (self.hook, (self.meta,))

@pytest.fixture
def eg3d_env(monkeypatch):
    persistence = types.ModuleType('torch_utils.persistence')
    def _reconstruct_persistent_obj(meta):
        raise AssertionError('the real hook must never run')
    _reconstruct_persistent_obj.__module__ = 'torch_utils.persistence'
    _reconstruct_persistent_obj.__qualname__ = '_reconstruct_persistent_obj'
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    monkeypatch.setitem(sys.modules, 'torch_utils.persistence', persistence)
    triplane = types.ModuleType('training.triplane')          # EG3D's OSGDecoder is not a persistent class
    triplane.OSGDecoder = type('OSGDecoder', (), {'__module__': 'training.triplane'})
    monkeypatch.setitem(sys.modules, 'training.triplane', triplane)
    return persistence, triplane

def _state(module, env, init_kwargs=None, extra=None, module_src='# EG3D source\n'):
    children = collections.OrderedDict()
    for name, child in module._modules.items():
        if isinstance(child, torch.nn.Softplus):
            children[name] = torch.nn.Softplus()               # a plain torch module, pickled by reference
        else:
            children[name] = _node(child, env, module_src=module_src)
    state = dict(training=False,
        _parameters=collections.OrderedDict((k, torch.nn.Parameter(v.detach().clone(), requires_grad=False))
                                            for k, v in module._parameters.items()),
        _buffers=collections.OrderedDict((k, v.clone()) for k, v in module._buffers.items()),
        _non_persistent_buffers_set=set(module._non_persistent_buffers_set), _modules=children,
        _init_args=(), _init_kwargs=init_kwargs or {})
    state.update(extra or {})
    return state

def _node(module, env, module_src='# EG3D source\n', init_kwargs=None, extra=None, class_name=None):
    persistence, triplane = env
    state = _state(module, env, init_kwargs, extra, module_src)
    if type(module).__name__ == 'OSGDecoder':
        obj = triplane.OSGDecoder()
        obj.__dict__.update(state)
        return obj
    meta = dict(type='class', version=6, module_src=module_src, class_name=class_name or type(module).__name__, state=state)
    return _Persistent(persistence._reconstruct_persistent_obj, meta)

# EG3D's training loop adds a buffer to G (G_ema is its deepcopy) before saving: the std of the dataset's labels.
LABEL_STD = torch.linspace(0.1, 2.5, 25)

def write_eg3d_pickle(path, G, D, env, module_src='# EG3D source\n'):
    g_extra = dict(neural_rendering_resolution=32, rendering_kwargs=G_EG3D_KWARGS['rendering_kwargs'])
    g_node = _node(G, env, module_src, G_EG3D_KWARGS, g_extra)
    g_node.meta['state']['_buffers']['dataset_label_std'] = LABEL_STD.clone()
    # EG3D's 2X SR and its D keep an unused [1,3,3,1] filter buffer at top level.
    g_node.meta['state']['_modules']['superresolution'].meta['state']['_buffers']['resample_filter'] = G.superresolution.block0.resample_filter.clone()
    d_node = _node(D, env, module_src, D_EG3D_KWARGS)
    d_node.meta['state']['_buffers']['resample_filter'] = D.b4.conv.resample_filter.clone()
    ema_node = _node(G, env, module_src, G_EG3D_KWARGS, g_extra)
    ema_node.meta['state']['_buffers']['dataset_label_std'] = LABEL_STD.clone()
    with open(path, 'wb') as f:
        pickle.dump(dict(G=g_node, D=d_node, G_ema=ema_node, augment_pipe=None,
                         training_set_kwargs={'path': 'ffhq.zip', 'resolution': 128}), f, protocol=4)

#----------------------------------------------------------------------------

def test_import_is_exact(tmp_path, eg3d_env):
    torch.manual_seed(0)
    G, D = our_g(), DualDiscriminator(**PRESETS['tiny']['D']).eval()
    with torch.no_grad():
        G.backbone.mapping.w_avg.normal_()
    write_eg3d_pickle(tmp_path / 'net.pkl', G, D, eg3d_env)
    nets, report, ts = import_eg3d(tmp_path / 'net.pkl')
    assert set(nets) == {'G', 'D', 'G_ema'} and ts == {'path': 'ffhq.zip', 'resolution': 128}
    for name, src in (('G', G), ('D', D), ('G_ema', G)):
        rep = report[name]
        assert not rep['unmapped_src'] and not rep['missing_dst'] and not rep['shape_mismatch'] and not rep['unused_kwargs']
        dst = nets[name].state_dict()
        assert dst.keys() == src.state_dict().keys()
        for k, v in src.state_dict().items():
            assert torch.equal(dst[k], v), k
    for name in ('G', 'G_ema'):         # recorded, not mapped, and strict mode accepts it
        assert report[name]['dataset_label_std'] == pytest.approx(LABEL_STD.tolist())
    assert 'dataset_label_std' not in report['D']
    assert 'superresolution.resample_filter' in report['G']['ignored_constants']
    assert 'resample_filter' in report['D']['ignored_constants']
    G2 = nets['G']
    assert G2.neural_rendering_resolution == 32 and G2.init_kwargs['plane_axes'] == 'eg3d'
    z, c = torch.randn(1, 64), cameras.make_label(torch.zeros(1), torch.zeros(1))
    with torch.no_grad():
        det = dict(deterministic=True)
        a, b = G(z, c, render_overrides=det), G2(z, c, render_overrides=det)
        assert torch.equal(a['image'], b['image'])
        img = dict(image=torch.randn(4, 3, 64, 64), image_raw=torch.randn(4, 3, 32, 32))
        assert torch.equal(D(img, c.repeat(4, 1)), nets['D'](img, c.repeat(4, 1)))

def test_embedded_source_is_never_executed(tmp_path, eg3d_env):
    marker = tmp_path / 'pwned.txt'
    src = f'open({str(marker)!r}, "w").write("executed")\n'
    torch.manual_seed(0)
    write_eg3d_pickle(tmp_path / 'net.pkl', our_g(), DualDiscriminator(**PRESETS['tiny']['D']), eg3d_env, module_src=src)
    data = read_eg3d_pickle(tmp_path / 'net.pkl')
    assert data['G']['module_src'] == src and data['G']['class_name'] == 'TriPlaneGenerator'
    import_eg3d(tmp_path / 'net.pkl')
    assert not marker.exists()

def test_foreign_and_corrupt_pickles_are_refused(tmp_path):
    marker = tmp_path / 'pwned'
    class Evil:
        def __reduce__(self):
            return (os.system, (f'touch {marker}',))
    with pytest.raises(EG3DImportError, match=r'refusing to load (posix|os|nt)\.system'):
        read_eg3d_pickle(io.BytesIO(pickle.dumps({'G': Evil()})))
    assert not marker.exists()
    (tmp_path / 'bad.pkl').write_bytes(b'\x80\x04\x95garbage')
    with pytest.raises(EG3DImportError, match='not a readable EG3D network pickle'):
        import_eg3d(tmp_path / 'bad.pkl')
    (tmp_path / 'plain.pkl').write_bytes(pickle.dumps({'weights': [1, 2]}))
    with pytest.raises(EG3DImportError, match='no G, D or G_ema'):
        import_eg3d(tmp_path / 'plain.pkl')

def test_cli_writes_a_loadable_snapshot(tmp_path, eg3d_env):
    torch.manual_seed(0)
    write_eg3d_pickle(tmp_path / 'net.pkl', our_g(), DualDiscriminator(**PRESETS['tiny']['D']), eg3d_env)
    out = subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', 'import_eg3d.py'), '--src', str(tmp_path / 'net.pkl'),
                          '--dst', str(tmp_path / 'net.pt')], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    snap = load_snapshot(tmp_path / 'net.pt')
    assert set(snap['nets']) == {'G', 'D', 'G_ema'} and snap['import_report']['G']['mapped'] > 0

#----------------------------------------------------------------------------

def test_a_real_extra_weight_still_fails_strict_mode(tmp_path, eg3d_env):
    torch.manual_seed(0)
    G = our_g()
    G.register_buffer('extra_weight', torch.ones(3))        # not EG3D's label std: strict mode must refuse it
    write_eg3d_pickle(tmp_path / 'net.pkl', G, DualDiscriminator(**PRESETS['tiny']['D']), eg3d_env)
    with pytest.raises(EG3DImportError, match='unmapped_src: extra_weight'):
        import_eg3d(tmp_path / 'net.pkl')

def test_an_eg3d_pickle_given_as_a_snapshot_says_how_to_convert(tmp_path, eg3d_env):
    from click.testing import CliRunner
    from _scripts import load_program
    from _world import small_args, write_set
    main = load_program('train.py').main
    from training.snapshot import SnapshotError
    torch.manual_seed(0)
    write_eg3d_pickle(tmp_path / 'net.pkl', our_g(), DualDiscriminator(**PRESETS['tiny']['D']), eg3d_env)
    with pytest.raises(SnapshotError, match='convert it with scripts/import_eg3d.py') as err:
        load_snapshot(tmp_path / 'net.pkl')
    assert 'weights_only' not in str(err.value)
    faces = write_set(str(tmp_path / 'faces.zip'), num=4, resolution=32)
    res = CliRunner().invoke(main, ['--config', 'face_tiny', '--data', faces, '--init', str(tmp_path / 'net.pkl'),
                                    '--outdir', str(tmp_path / 'run')] + small_args())
    assert res.exit_code != 0 and 'scripts/import_eg3d.py' in res.output and 'Traceback' not in res.output
