"""A 2-process gloo run through torchrun finishes with identical weights on both ranks."""

import os
import subprocess
import sys

from _world import small_args, write_set

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# torchrun of train.py, or of tests/_rank_hash_train.py (train.py + each rank writes a hash of its nets).
def torchrun(args, tmp_path, script='train.py'):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
           os.path.join(ROOT, script)] + args
    return subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)

def test_two_rank_gloo_run_keeps_ranks_in_sync(tmp_path):
    faces = write_set(str(tmp_path / 'faces.zip'), resolution=32)
    out = tmp_path / 'run'
    res = torchrun(['--config', 'face_tiny', '--data', faces, '--outdir', str(out), '--kimg', '0.012']
                   + small_args(['loss.r1_interval=2', 'augment.enabled=true', 'augment.p=0.2', 'augment.target=0.6',
                                 'augment.interval=2', 'augment.adjust_kimg=1', 'snap_kimg=0.004']),
                   tmp_path, script='tests/_rank_hash_train.py')
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    h0, h1 = (out / 'rank0.sha256').read_text(), (out / 'rank1.sha256').read_text()
    assert h0 and h0 == h1
    assert (out / 'snapshot-0000000012.pt').is_file()
    # step 1's snapshot lies inside an ADA interval: its sign accumulator holds both ranks' real logits (2 + 2)
    from training.snapshot import load_snapshot
    assert load_snapshot(out / 'snapshot-0000000004.pt', build=False)['ada']['signs'][1] == 4

def test_batch_not_divisible_by_ranks_is_a_clear_error(tmp_path):
    faces = write_set(str(tmp_path / 'faces.zip'), num=4, resolution=32)
    res = torchrun(['--config', 'face_tiny', '--data', faces, '--outdir', str(tmp_path / 'run'), '--kimg', '0.004',
                    '--batch', '4', '--batch-gpu', '4'] + small_args(), tmp_path)
    assert res.returncode != 0
    assert 'does not divide' in res.stdout + res.stderr
