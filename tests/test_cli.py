"""The command line end to end: a run, resume, crashes, and every bad input."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, 'experiments', 'configs', 'mnist_vae_2d.py')
TINY = ['--config.data.num_train=512', '--config.data.num_test=200', '--config.batch_size=64',
        '--config.eval_batch_size=100', '--config.num_epochs=1', '--config.log_every_steps=4',
        '--config.model.hidden_sizes=(32,)', '--quiet']


def run(args, data_dir, module='vae_jax.main', timeout=300, **kwargs):
  env = dict(os.environ, VAE_JAX_DATA_DIR=data_dir, TF_CPP_MIN_LOG_LEVEL='3')
  return subprocess.run([sys.executable, '-m', module, *args], capture_output=True, text=True,
                        env=env, cwd=ROOT, timeout=timeout, **kwargs)


def train_args(workdir, *extra):
  return [f'--config={CONFIG}', f'--workdir={workdir}', *TINY, *extra]


def error_lines(proc):
  return [l for l in proc.stderr.splitlines() if l.startswith('error:')]


def snapshot(path):
  """Every file under ``path`` with its bytes, to show nothing was touched."""
  out = {}
  for f in sorted(glob.glob(os.path.join(path, '**'), recursive=True)):
    if os.path.isfile(f):
      with open(f, 'rb') as fh:
        out[f] = fh.read()
  return out


def test_run_writes_metrics_config_checkpoint_and_resumes(tmp_path, data_dir):
  w = str(tmp_path / 'run')
  proc = run(train_args(w), data_dir)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.startswith('test: elbo')
  rows = [json.loads(l) for l in open(os.path.join(w, 'metrics.jsonl'))]
  assert {r['split'] for r in rows} == {'train', 'test', 'latent'}
  for r in rows:
    assert {'step', 'epoch', 'split'} <= set(r)
  assert {'loss', 'recon', 'kl', 'elbo', 'grad_norm'} <= set(rows[0])
  assert json.load(open(os.path.join(w, 'config.json')))['latent_dim'] == 2
  assert os.listdir(os.path.join(w, 'checkpoints')) == ['8']
  assert glob.glob(os.path.join(w, 'tensorboard', 'events.out.tfevents.*'))
  # Second run with more epochs continues from step 8 instead of starting over.
  proc = run(train_args(w, '--config.num_epochs=2'), data_dir)
  assert proc.returncode == 0, proc.stderr[-2000:]
  rows = [json.loads(l) for l in open(os.path.join(w, 'metrics.jsonl'))]
  assert [r['step'] for r in rows if r['split'] == 'test'] == [8, 16]
  assert sorted(os.listdir(os.path.join(w, 'checkpoints'))) == ['16', '8']


def _final_params(workdir):
  from vae_jax import evaluate
  _, params = evaluate.restore_params(workdir)
  import jax
  return [np.asarray(x) for x in jax.tree_util.tree_leaves(params)]


@pytest.mark.slow
def test_sigkill_after_a_checkpoint_then_rerun_is_bit_identical(tmp_path, data_dir):
  args = ['--config.data.num_train=4096', '--config.num_epochs=3',
          '--config.checkpoint_every_steps=10']
  straight = str(tmp_path / 'straight')
  assert run(train_args(straight, *args), data_dir).returncode == 0
  killed = str(tmp_path / 'killed')
  env = dict(os.environ, VAE_JAX_DATA_DIR=data_dir, TF_CPP_MIN_LOG_LEVEL='3')
  proc = subprocess.Popen([sys.executable, '-m', 'vae_jax.main', *train_args(killed, *args)],
                          env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 240
  while time.time() < deadline:  # wait for the second committed checkpoint
    done = [d for d in glob.glob(os.path.join(killed, 'checkpoints', '*')) if d.split('/')[-1].isdigit()]
    if len(done) >= 2:
      break
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  steps = sorted(int(d.split('/')[-1]) for d in glob.glob(os.path.join(killed, 'checkpoints', '*'))
                 if d.split('/')[-1].isdigit())
  assert steps and steps[-1] < 192, f'the run finished before it was killed: {steps}'
  rerun = run(train_args(killed, *args), data_dir)
  assert rerun.returncode == 0, rerun.stderr[-2000:]
  assert open(os.path.join(straight, 'metrics.jsonl')).read() == \
      open(os.path.join(killed, 'metrics.jsonl')).read()
  for a, b in zip(_final_params(straight), _final_params(killed), strict=True):
    np.testing.assert_array_equal(a, b)


def test_kill_during_a_save_leaves_a_tmp_dir_that_is_ignored(tmp_path, data_dir):
  w = str(tmp_path / 'run')
  assert run(train_args(w), data_dir).returncode == 0
  # What a SIGKILL in the middle of orbax's save leaves: an uncommitted tmp dir.
  partial = os.path.join(w, 'checkpoints', '16.orbax-checkpoint-tmp')
  os.makedirs(os.path.join(partial, 'state'))
  with open(os.path.join(partial, 'state', 'half_written'), 'wb') as f:
    f.write(b'\x00' * 10)
  proc = run(train_args(w, '--config.num_epochs=2'), data_dir)
  assert proc.returncode == 0, proc.stderr[-2000:]
  rows = [json.loads(l) for l in open(os.path.join(w, 'metrics.jsonl'))]
  assert [r['step'] for r in rows if r['split'] == 'test'] == [8, 16]  # resumed from 8


def _truncate_largest_file(checkpoint_dir):
  files = [f for f in glob.glob(os.path.join(checkpoint_dir, '**'), recursive=True)
           if os.path.isfile(f)]
  biggest = max(files, key=os.path.getsize)
  with open(biggest, 'r+b') as f:
    f.truncate(os.path.getsize(biggest) // 2)
  return biggest


def test_corrupt_latest_checkpoint_falls_back_to_the_previous(tmp_path, data_dir):
  w = str(tmp_path / 'run')
  assert run(train_args(w, '--config.num_epochs=2'), data_dir).returncode == 0
  _truncate_largest_file(os.path.join(w, 'checkpoints', '16'))
  proc = run(train_args(w, '--config.num_epochs=3'), data_dir)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert 'checkpoint 16' in proc.stderr and 'unreadable' in proc.stderr
  rows = [json.loads(l) for l in open(os.path.join(w, 'metrics.jsonl'))]
  assert [r['step'] for r in rows if r['split'] == 'test'] == [8, 16, 24]


def test_every_checkpoint_corrupt_stops_with_the_fix(tmp_path, data_dir):
  w = str(tmp_path / 'run')
  assert run(train_args(w), data_dir).returncode == 0
  _truncate_largest_file(os.path.join(w, 'checkpoints', '8'))
  before = snapshot(w)
  proc = run(train_args(w, '--config.num_epochs=2'), data_dir)
  assert proc.returncode == 2
  (line,) = error_lines(proc)
  assert 'could be restored' in line and 'move that directory away' in line
  assert snapshot(w) == before


def test_nan_stops_with_step_metric_and_checkpoint(tmp_path, data_dir):
  w = str(tmp_path / 'run')
  proc = run(train_args(w, '--config.learning_rate=1e12', '--config.num_epochs=3'), data_dir)
  assert proc.returncode == 3
  (line,) = error_lines(proc)
  assert 'became' in line and 'at step' in line and 'learning_rate' in line


def _write_bad_idx(root, kind):
  import gzip, shutil, struct
  src = os.path.join(os.environ.get('VAE_JAX_DATA_DIR') or os.path.join(ROOT, '..', 'shared', 'datasets'), 'mnist')
  dst = os.path.join(root, 'mnist')
  shutil.copytree(src, dst)
  path = os.path.join(dst, 'train-images-idx3-ubyte.gz')
  if kind == 'missing':
    os.remove(path)
    return
  with gzip.open(path, 'rb') as f:
    raw = f.read()
  if kind == 'magic':
    raw = struct.pack('>I', 0x801) + raw[4:]
  elif kind == 'truncated':
    raw = raw[:len(raw) // 2]
  elif kind == 'count':
    raw = raw[:4] + struct.pack('>I', 59999) + raw[8:16 + 59999 * 784]
  with gzip.open(path, 'wb', compresslevel=1) as f:
    f.write(raw)


BAD_CONFIGS = [
    ('--config.data.name=cifar10', 'data.name'),
    ('--config.model.kind=gan', 'model.kind'),
    ('--config.model.family=transformer', 'model.family'),
    ('--config.latent_dim=0', 'latent_dim'),
    ('--config.latent_dim=-3', 'latent_dim'),
    ('--config.batch_size=0', 'batch_size'),
    ('--config.batch_size=100000', 'batch_size'),
    ('--config.learning_rate=0', 'learning_rate'),
    ('--config.learning_rate=-1e-3', 'learning_rate'),
    ('--config.learning_rate=abc', 'learning_rate'),
    ('--config.model.dropout_rate=1.0', 'dropout_rate'),
    ('--config.model.dropout_rate=-0.1', 'dropout_rate'),
    ('--config.kl_weight=-1', 'kl_weight'),
    ('--config.no_such_field=1', 'no_such_field'),
    ('--config.data.binarize=sometimes', 'data.binarize'),
    ('--config.model.noise=salt', 'model.noise'),
    ('--config.num_epochs=0', 'num_epochs'),
    ('--config.model.conv_features=(0,)', 'conv_features'),
]


@pytest.mark.parametrize('flag,field', BAD_CONFIGS, ids=[b[0].split('--config.')[1] for b in BAD_CONFIGS])
def test_bad_config_value_is_one_line_and_touches_nothing(tmp_path, data_dir, flag, field):
  w = str(tmp_path / 'run')
  os.makedirs(w)
  with open(os.path.join(w, 'keep.txt'), 'w') as f:
    f.write('precious')
  proc = run(train_args(w, flag), data_dir)
  assert proc.returncode == 2, proc.stderr[-2000:]
  (line,) = error_lines(proc)
  assert field in line
  assert 'Traceback' not in proc.stderr
  assert os.listdir(w) == ['keep.txt']


@pytest.mark.parametrize('kind,match', [('missing', 'missing data file'), ('magic', 'magic number'),
                                        ('truncated', 'truncated'), ('count', '59999 images')])
def test_bad_data_file_is_one_line(tmp_path, data_dir, kind, match):
  _write_bad_idx(str(tmp_path / 'data'), kind)
  proc = run(train_args(str(tmp_path / 'run'), f'--config.data.dir={tmp_path / "data"}'), data_dir)
  assert proc.returncode == 2
  (line,) = error_lines(proc)
  assert match in line and 'train-images' in line


def test_missing_data_directory(tmp_path, data_dir):
  proc = run(train_args(str(tmp_path / 'run'), f'--config.data.dir={tmp_path / "nowhere"}'),
             data_dir)
  assert proc.returncode == 2
  (line,) = error_lines(proc)
  assert 'does not exist' in line


def test_workdir_that_is_a_file(tmp_path, data_dir):
  path = tmp_path / 'afile'
  path.write_text('x')
  proc = run(train_args(str(path)), data_dir)
  assert proc.returncode == 2
  (line,) = error_lines(proc)
  assert 'is a file' in line and path.read_text() == 'x'


def test_workdir_that_cannot_be_created(tmp_path, data_dir):
  path = tmp_path / 'afile'
  path.write_text('x')
  proc = run(train_args(str(path / 'sub')), data_dir)
  assert proc.returncode == 2
  (line,) = error_lines(proc)
  assert 'cannot create' in line


def test_different_config_in_existing_workdir_is_refused(tmp_path, data_dir):
  w = str(tmp_path / 'run')
  assert run(train_args(w), data_dir).returncode == 0
  before = snapshot(w)
  proc = run(train_args(w, '--config.latent_dim=3'), data_dir)
  assert proc.returncode == 2
  (line,) = error_lines(proc)
  assert 'latent_dim: 2 -> 3' in line and '--allow_config_change' in line
  assert snapshot(w) == before
  proc = run(train_args(w, '--config.latent_dim=3', '--allow_config_change',
                        '--config.num_epochs=1'), data_dir)
  assert proc.returncode == 2  # allowed, but the old checkpoint no longer fits
  assert len(error_lines(proc)) == 1


def test_evaluate_without_checkpoint(tmp_path, data_dir):
  w = tmp_path / 'empty'
  w.mkdir()
  proc = run([f'--workdir={w}', '--iwae_samples=10'], data_dir, module='vae_jax.evaluate')
  assert proc.returncode == 2
  assert len(error_lines(proc)) == 1


def test_missing_flags(data_dir):
  proc = run([], data_dir)
  assert proc.returncode == 2
  (line,) = error_lines(proc)
  assert '--config and --workdir are required' in line
