"""The training engine: determinism, loop equivalence, resume, NaN guard."""

import json
import os

import jax
import numpy as np
import pytest

from conftest import tiny_config
from vae_jax import train, workdir as workdir_lib


def _leaves(params):
  return [np.asarray(x) for x in jax.tree_util.tree_leaves(params)]


def _assert_bit_equal(a, b):
  for x, y in zip(_leaves(a), _leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)


def test_same_seed_gives_bit_identical_parameters(tmp_path, data_dir):
  c = tiny_config(data_dir)
  a = train.train_and_evaluate(c, str(tmp_path / 'a'))
  b = train.train_and_evaluate(c, str(tmp_path / 'b'))
  _assert_bit_equal(a['state'].params, b['state'].params)
  assert workdir_lib.read_metrics(str(tmp_path / 'a')) == workdir_lib.read_metrics(str(tmp_path / 'b'))


def test_different_seed_gives_different_parameters(tmp_path, data_dir):
  a = train.train_and_evaluate(tiny_config(data_dir, seed=0), str(tmp_path / 'a'))
  b = train.train_and_evaluate(tiny_config(data_dir, seed=1), str(tmp_path / 'b'))
  assert not np.array_equal(_leaves(a['state'].params)[0], _leaves(b['state'].params)[0])


@pytest.mark.parametrize('overrides', [{}, {'model.dropout_rate': 0.3, 'data.binarize': 'dynamic'},
                                       {'model.kind': 'autoencoder', 'model.noise': 'gaussian',
                                        'model.noise_level': 0.3}])
def test_scan_and_python_loops_are_identical(tmp_path, data_dir, overrides):
  a = train.train_and_evaluate(tiny_config(data_dir, train_loop='scan', **overrides),
                               str(tmp_path / 'a'))
  b = train.train_and_evaluate(tiny_config(data_dir, train_loop='python', **overrides),
                               str(tmp_path / 'b'))
  for x, y in zip(_leaves(a['state'].params), _leaves(b['state'].params), strict=True):
    np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


def test_training_reduces_the_loss(tmp_path, data_dir):
  c = tiny_config(data_dir, num_epochs=3)
  train.train_and_evaluate(c, str(tmp_path))
  rows = [r for r in workdir_lib.read_metrics(str(tmp_path)) if r['split'] == 'test']
  assert len(rows) == 3 and rows[-1]['loss'] < rows[0]['loss']
  assert all(abs(r['elbo'] + r['recon'] + r['kl']) < 1e-3 * abs(r['elbo']) for r in rows)


def test_resume_continues_and_matches_an_uninterrupted_run(tmp_path, data_dir):
  straight = train.train_and_evaluate(tiny_config(data_dir, num_epochs=2), str(tmp_path / 's'))
  train.train_and_evaluate(tiny_config(data_dir, num_epochs=1), str(tmp_path / 'r'))
  resumed = train.train_and_evaluate(tiny_config(data_dir, num_epochs=2), str(tmp_path / 'r'))
  _assert_bit_equal(straight['state'].params, resumed['state'].params)
  assert (workdir_lib.read_metrics(str(tmp_path / 's'))
          == workdir_lib.read_metrics(str(tmp_path / 'r')))


def test_mid_epoch_checkpoints_resume_bit_exactly(tmp_path, data_dir):
  c = tiny_config(data_dir, checkpoint_every_steps=3, num_epochs=2)
  straight = train.train_and_evaluate(c, str(tmp_path / 's'))
  train.train_and_evaluate(c, str(tmp_path / 'r'))
  ckpts = os.path.join(tmp_path, 'r', 'checkpoints')
  # Keep only a mid-epoch checkpoint (step 3 or 6) and rerun from it.
  steps = sorted(int(s) for s in os.listdir(ckpts) if s.isdigit())
  import shutil
  for s in steps:
    if s > 9:
      shutil.rmtree(os.path.join(ckpts, str(s)))
  resumed = train.train_and_evaluate(c, str(tmp_path / 'r'))
  _assert_bit_equal(straight['state'].params, resumed['state'].params)


def test_different_config_is_refused_then_allowed(tmp_path, data_dir):
  train.train_and_evaluate(tiny_config(data_dir), str(tmp_path))
  with pytest.raises(workdir_lib.WorkdirError, match=r'latent_dim: 2 -> 3'):
    train.train_and_evaluate(tiny_config(data_dir, latent_dim=3), str(tmp_path))
  with open(os.path.join(tmp_path, 'config.json')) as f:
    assert json.load(f)['latent_dim'] == 2  # nothing overwritten


def test_nan_guard_names_step_and_metric(tmp_path, data_dir):
  c = tiny_config(data_dir, learning_rate=1e12, num_epochs=3)
  with pytest.raises(train.NonFiniteError, match=r'(loss|grad_norm) became .* at step \d+'):
    train.train_and_evaluate(c, str(tmp_path))
