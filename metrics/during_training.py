"""Metrics during training (train.py --metrics): EG3D-style names -> metric_main.run_metrics on each snapshot.

train.py builds the hook with `snapshot_hook(names, cfg, run_dir)` and hands it to the training loop, which calls
it on rank 0 after every snapshot (training/ never imports metrics/). Each result is appended to
metric-<name>.jsonl in the run dir (with cur_nimg and the snapshot path) and logged to TensorBoard as Metrics/<name>.

Names: <metric>[<N>k|<N>][_<split>] where metric is fid, kid, fd_<net> or kd_<net> (metric_main's registry), N the
generated images (default 50k) and split full (= all), front or back (default full): fid50k_full, kid50k_full (EG3D's
names), fid50k_back, fd_randconv, fd_randconv200_back. The other metrics by their registry name: backview[_<split>],
backview_nr[_<split>], mirror, id, id_proxy, consistency3d.
"""

import json
import os
import re

import torch

from metrics import metric_main, splits
from metrics.detectors import load_detector
from metrics.identity import load_face_model
from training import generate
from training.dataset import ImageLabelDataset

SPLIT_NAMES = {'full': 'all', 'all': 'all', 'front': 'front', 'back': 'back'}
SIZED = re.compile(r'^(?P<metric>fid|kid|fd_[a-z]+|kd_[a-z]+)(?P<num>\d+k?)?(?:_(?P<split>full|all|front|back))?$')
PLAIN = re.compile(r'^(?P<metric>backview_nr|backview|mirror|id|id_proxy|consistency3d)(?:_(?P<split>full|all|front|back))?$')

#----------------------------------------------------------------------------
# 'fid50k_full' -> dict(name, metric 'fid', split 'all', num 50000); unknown names are a ValueError naming them.

def parse_name(name):
    m = SIZED.match(name) or PLAIN.match(name)
    if m is None or m.group('metric') not in metric_main.METRICS:
        raise ValueError(f'--metrics: unknown metric {name!r} (EG3D style: fid50k_full, kid50k_full, fid50k_back, '
                         f'fd_randconv; or one of {", ".join(metric_main.METRICS)})')
    num = m.groupdict().get('num')
    num = 50000 if not num else int(num[:-1]) * 1000 if num.endswith('k') else int(num)
    if num < 2:
        raise ValueError(f'--metrics: {name!r} asks for {num} images (at least 2)')
    return dict(name=name, metric=m.group('metric'), split=SPLIT_NAMES[m.group('split') or 'full'], num=num)

def parse_names(text):
    names = [n.strip() for n in (text or '').split(',') if n.strip() and n.strip() != 'none']
    return [parse_name(n) for n in dict.fromkeys(names)]

#----------------------------------------------------------------------------
# The real set the metrics compare with: heads for the head stages (the back views), else the stage's only set.

def metric_data(cfg_data):
    for name in ('heads', 'main', 'faces'):
        if (cfg_data.get(name) or {}).get('path'):
            return cfg_data[name]['path']
    return None

#----------------------------------------------------------------------------
# Build the snapshot hook. Everything a metric needs (detector files, face model, data set, teacher) is checked here,
# before any training, so a missing Inception file is an error at start, not after the first snap_kimg.

def snapshot_hook(names, cfg, run_dir, cache_dir=None, device=None):
    specs = parse_names(names) if isinstance(names, str) else names
    if not specs:
        return None
    device = torch.device(device) if device is not None else generate.resolve_device('auto')
    data, teacher_path = metric_data(cfg.data), cfg.get('teacher_path')
    metrics = {s['metric'] for s in specs}
    for spec in (metric_main.METRICS[m] for m in metrics):
        if spec.detector is not None:
            load_detector(spec.detector, cache_dir=cache_dir, device='cpu')
        if spec.kind == 'id':
            load_face_model(cache_dir=cache_dir, device='cpu')
        if spec.kind in ('fd', 'kd', 'backview', 'mirror') and data is None:
            raise ValueError(f'--metrics {spec.name}: the config has no data set to compare with')
        if spec.kind in ('id', 'id_proxy') and teacher_path is None:
            raise ValueError(f'--metrics {spec.name}: needs --teacher (the face generator)')
    if data is not None:                # a split without real views fails now, not at the first snapshot
        labels = ImageLabelDataset(data).labels
        for s in specs:
            if metric_main.METRICS[s['metric']].per_split:
                splits.split_indices(labels, s['split'], what=f'data set {data} (for --metrics {s["name"]})')
    teacher = {}

    def hook(snapshot_path, cur_nimg, writer=None):
        G = generate.load_generator(snapshot_path, device=device)
        if teacher_path is not None and 'G' not in teacher and metrics & {'id', 'id_proxy'}:
            teacher['G'] = generate.load_generator(teacher_path, device=device)
        # One run_metrics call per image count, so that fid and kid of one size share their features.
        for num in sorted({s['num'] for s in specs}):
            group = [s for s in specs if s['num'] == num]
            results = metric_main.run_metrics(
                [s['metric'] for s in group], G, data=data, split_list=sorted({s['split'] for s in group}),
                teacher=teacher.get('G'), cache_dir=cache_dir, device=device, num=num, id_num=num,
                workers=0)
            for s in group:
                for r in results:
                    if r['metric'] == s['metric'] and r['split'] in (s['split'], None):
                        write_result(run_dir, s['name'], dict(r, name=s['name'], cur_nimg=int(cur_nimg),
                                                              snapshot=os.path.abspath(snapshot_path)), writer)
        del G
    return hook

# Append one result to metric-<name>.jsonl and log its value (rank 0).
def write_result(run_dir, name, result, writer=None):
    with open(os.path.join(run_dir, f'metric-{name}.jsonl'), 'a', encoding='utf-8') as f:
        f.write(json.dumps(result) + '\n')
    print(f'Metric {name} at kimg {result["cur_nimg"] / 1000:.3f}: {result["value"]:.4g}', flush=True)
    if writer is not None:
        writer.add_scalar(f'Metrics/{name}', result['value'], global_step=result['cur_nimg'])
