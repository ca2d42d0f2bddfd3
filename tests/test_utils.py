# Tests of dnnlib and the small torch_utils helpers (misc, training_stats, distributed without a group).
import os
import sys

import numpy as np
import pytest
import torch

import dnnlib
from dnnlib import util
from torch_utils import misc, training_stats, distributed


def test_easydict_attributes():
    d = dnnlib.EasyDict(a=1)
    d.b = 2
    assert d['b'] == 2 and d.a == 1
    del d.a
    with pytest.raises(AttributeError):
        _ = d.a


def test_construct_class_by_name():
    od = dnnlib.construct_class_by_name(class_name='collections.OrderedDict', x=1)
    assert dict(od) == {'x': 1}
    with pytest.raises(ValueError, match='not a dotted object name'):
        dnnlib.construct_class_by_name(class_name='os.system; rm')
    with pytest.raises(ValueError, match='has no attribute'):
        dnnlib.construct_class_by_name(class_name='collections.NoSuchThing')


def test_open_url_local_and_offline(tmp_path):
    p = tmp_path / 'f.bin'
    p.write_bytes(b'abc')
    with dnnlib.open_url(str(p)) as f:
        assert f.read() == b'abc'
    with pytest.raises(FileNotFoundError, match='file not found'):
        dnnlib.open_url(str(tmp_path / 'missing.bin'))
    url = 'https://example.invalid/models/inception-2015-12-05.pkl'
    cache = tmp_path / 'cache'
    with pytest.raises(dnnlib.OfflineError) as e:
        dnnlib.open_url(url, cache_dir=str(cache))
    expected = util.url_cache_path(url, str(cache))
    assert url in str(e.value) and expected in str(e.value)
    # a file placed by hand at the named cache path is then used
    os.makedirs(os.path.dirname(expected))
    with open(expected, 'wb') as f:
        f.write(b'weights')
    with dnnlib.open_url(url, cache_dir=str(cache)) as f:
        assert f.read() == b'weights'


def test_logger_tees(tmp_path, capsys):
    log = tmp_path / 'log.txt'
    with dnnlib.Logger(str(log)):
        print('hello log')
    assert 'hello log' in log.read_text()
    assert 'hello log' in capsys.readouterr().out
    assert not isinstance(sys.stdout, dnnlib.Logger)


def test_infinite_sampler_shards_and_resume():
    s0 = misc.InfiniteSampler(10, rank=0, num_replicas=2, seed=3)
    s1 = misc.InfiniteSampler(10, rank=1, num_replicas=2, seed=3)
    a = [next(it) for it in [iter(s0)] for _ in range(10)]
    b = [next(it) for it in [iter(s1)] for _ in range(10)]
    single = iter(misc.InfiniteSampler(10, seed=3))
    stream = [next(single) for _ in range(20)]
    assert a == stream[0::2] and b == stream[1::2]     # ranks take alternate items of one stream
    assert set(stream) <= set(range(10)) and len(set(stream[:10])) >= 5
    # resuming from a saved position continues the same stream
    full = misc.InfiniteSampler(7, seed=1)
    it = iter(full)
    seq = [next(it) for _ in range(20)]
    part = misc.InfiniteSampler(7, seed=1)
    it = iter(part)
    _ = [next(it) for _ in range(8)]
    resumed = misc.InfiniteSampler(7, seed=1)
    resumed.load_state_dict(part.state_dict())
    it = iter(resumed)
    assert [next(it) for _ in range(12)] == seq[8:]
    with pytest.raises(ValueError, match='empty'):
        misc.InfiniteSampler(0)


def test_assert_shape_names_tensor():
    misc.assert_shape(torch.zeros(2, 3), [None, 3])
    with pytest.raises(ValueError, match='planes: wrong size for dimension 1'):
        misc.assert_shape(torch.zeros(2, 4), [2, 3], name='planes')
    with pytest.raises(ValueError, match='wrong number of dimensions'):
        misc.assert_shape(torch.zeros(2), [2, 3])


def test_copy_params_and_buffers():
    a = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    b = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    a[1].running_mean.fill_(0.5)
    misc.copy_params_and_buffers(a, b, require_all=True)
    for (n, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), n
    c = torch.nn.Sequential(torch.nn.Linear(3, 5))
    with pytest.raises(ValueError, match='shape mismatch for 0.weight'):
        misc.copy_params_and_buffers(c, b)


def test_module_summary_prints(capsys):
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU())
    misc.print_module_summary(net, torch.zeros(2, 3))
    out = capsys.readouterr().out
    assert 'Total' in out and '16' in out and '[2, 4]' in out


def test_training_stats_collector():
    coll = training_stats.Collector(regex='Loss/.*')
    training_stats.report('Loss/a', torch.tensor([1.0, 3.0]))
    training_stats.report('Loss/a', 5.0)
    training_stats.report('Other/b', 1.0)
    coll.update()
    assert coll.num('Loss/a') == 3
    assert coll.mean('Loss/a') == pytest.approx(3.0)
    assert coll.std('Loss/a') == pytest.approx(np.std([1, 3, 5]))
    assert 'Other/b' not in coll.names()
    coll.update()   # nothing new: previous values are kept
    assert coll.mean('Loss/a') == pytest.approx(3.0)


def test_distributed_single_process(capsys):
    assert distributed.get_rank() == 0 and distributed.get_world_size() == 1
    assert not distributed.is_distributed()
    distributed.print0('only rank zero')
    assert 'only rank zero' in capsys.readouterr().out
    distributed.barrier()


def test_training_stats_reset_drops_pending_values():
    training_stats.report('Loss/left_over', float('nan'))
    training_stats.reset()
    training_stats.report('Loss/fresh', 2.0)
    coll = training_stats.Collector(regex='Loss/.*', keep_previous=False)
    coll.update()
    assert coll.names() == ['Loss/fresh']
