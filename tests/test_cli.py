"""The training command end to end: what a run writes, and that a rerun resumes.

Faults and resume bit-exactness are in test_resume.py, bad input in
test_bad_input.py.
"""

import glob
import json
import os

from conftest import cli, snapshot, split_steps, train_args

METRICS = {'loss', 'recon', 'kl', 'elbo'}


def test_run_writes_metrics_config_checkpoint_then_a_rerun_resumes(tmp_path, data_dir):
  w = str(tmp_path / 'run')
  proc = cli(train_args(w), data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.startswith('test: elbo ') and 'error' not in proc.stderr

  # metrics.jsonl: one JSON object a line, each with step, epoch, split and metrics.
  with open(os.path.join(w, 'metrics.jsonl')) as f:
    rows = [json.loads(line) for line in f]
  assert {r['split'] for r in rows} == {'train', 'test', 'latent'}
  for r in rows:
    assert isinstance(r['step'], int) and isinstance(r['epoch'], int) and len(r) > 3
  train_rows = [r for r in rows if r['split'] == 'train']
  test_rows = [r for r in rows if r['split'] == 'test']
  assert [r['step'] for r in train_rows] == [4, 8]  # log_every_steps=4, 8 steps an epoch
  assert METRICS | {'grad_norm'} <= set(train_rows[0])
  assert [(r['step'], r['epoch']) for r in test_rows] == [(8, 1)]
  assert METRICS <= set(test_rows[0])

  with open(os.path.join(w, 'config.json')) as f:
    config = json.load(f)
  assert config['latent_dim'] == 2 and config['model']['mlp']['hidden_sizes'] == [32]
  assert config['num_epochs'] == 1 and config['data']['num_train'] == 512
  assert os.listdir(os.path.join(w, 'checkpoints')) == ['8']
  assert os.path.isdir(os.path.join(w, 'checkpoints', '8', 'state'))
  assert glob.glob(os.path.join(w, 'tensorboard', 'events.out.tfevents.*'))

  # The same command again has nothing left to do: no new lines, no new checkpoint.
  proc = cli(train_args(w), data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert split_steps(w) == [8] and os.listdir(os.path.join(w, 'checkpoints')) == ['8']

  # With num_epochs raised to 2 it continues from step 8 instead of starting over
  # (a deterministic retrain from 0 would write the same lines: the log says which).
  first = snapshot(os.path.join(w, 'checkpoints', '8'))
  proc = cli(train_args(w, '--config.num_epochs=2', '--verbosity=0'), data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f'resuming {w} from step 8' in proc.stderr
  assert snapshot(os.path.join(w, 'checkpoints', '8')) == first
  assert split_steps(w) == [8, 16]
  assert split_steps(w, 'train') == [4, 8, 12, 16]
  assert sorted(os.listdir(os.path.join(w, 'checkpoints')), key=int) == ['8', '16']
  with open(os.path.join(w, 'config.json')) as f:
    assert json.load(f)['num_epochs'] == 2
