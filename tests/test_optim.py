"""The learning-rate schedule: its values, Adam under it, resume, and old runs."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_config
from vae_jax.core import config as config_lib, experiment, optim, train
from vae_jax.infra import workdir as workdir_lib


def test_cosine_decays_from_the_learning_rate_to_zero(data_dir):
  c = tiny_config(data_dir, learning_rate=0.01, lr_schedule='cosine')
  lr = optim.learning_rate(c, total_steps=100)
  np.testing.assert_allclose([lr(0), lr(50), lr(100)], [0.01, 0.005, 0.0], atol=1e-9)
  assert optim.learning_rate(tiny_config(data_dir, learning_rate=0.01), 100) == 0.01


def test_cosine_without_a_step_count_is_refused(data_dir):
  with pytest.raises(ValueError, match='total_steps'):
    optim.make_optimizer(tiny_config(data_dir, lr_schedule='cosine'))


def test_an_unknown_schedule_is_one_line_naming_the_choices(data_dir):
  with pytest.raises(config_lib.ConfigError, match=r"lr_schedule='linear'.*cosine"):
    config_lib.validate(tiny_config(data_dir, lr_schedule='linear'))


def test_adam_steps_scale_with_the_schedule(data_dir):
  # Adam's step is -lr_t * m̂/(√v̂ + ε): with the same gradients, the cosine
  # run's step t is the constant run's times cos-schedule(t) / lr.
  total = 10
  const = optim.make_optimizer(tiny_config(data_dir))
  cosine = optim.make_optimizer(tiny_config(data_dir, lr_schedule='cosine'), total)
  params = {'w': jnp.ones((3, 2))}
  s_const, s_cos = const.init(params), cosine.init(params)
  lr = optim.learning_rate(tiny_config(data_dir, lr_schedule='cosine'), total)
  for t in range(total):
    g = {'w': jnp.full((3, 2), float(t + 1)) * jnp.array([1.0, -2.0])}
    u_const, s_const = const.update(g, s_const, params)
    u_cos, s_cos = cosine.update(g, s_cos, params)
    np.testing.assert_allclose(u_cos['w'], u_const['w'] * float(lr(t)) / 1e-3,
                               rtol=1e-5, atol=1e-12)


def test_a_cosine_run_resumed_from_an_earlier_checkpoint_is_bit_identical(tmp_path, data_dir):
  c = tiny_config(data_dir, num_epochs=2, lr_schedule='cosine')
  a = train.train_and_evaluate(c, str(tmp_path / 'a'))
  b_dir = tmp_path / 'b'
  train.train_and_evaluate(c, str(b_dir))
  # Forget the last epoch's checkpoint, as if the run had died before saving it.
  assert sorted(os.listdir(b_dir / 'checkpoints')) == ['16', '8']
  shutil.rmtree(b_dir / 'checkpoints' / '16')
  b = train.train_and_evaluate(c, str(b_dir))
  for x, y in zip(jax.tree_util.tree_leaves(a['state']), jax.tree_util.tree_leaves(b['state']),
                  strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  assert a['test'] == b['test']
  # The evaluation CLI restores a scheduled run too (its optimizer state has a count).
  config, _, params, _ = experiment.restore(str(b_dir))
  assert config.lr_schedule == 'cosine'
  for x, y in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(a['state'].params),
                  strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_runs_made_before_the_schedule_existed_read_as_constant(tmp_path, data_dir):
  c = tiny_config(data_dir)
  workdir_lib.write_config(str(tmp_path), c)
  path = tmp_path / workdir_lib.CONFIG_FILE
  old = json.loads(path.read_text())
  del old['lr_schedule']
  path.write_text(json.dumps(old))
  config_lib.check_workdir(str(tmp_path), c)  # no difference reported
  assert config_lib.from_workdir(str(tmp_path)).lr_schedule == 'constant'
  with pytest.raises(workdir_lib.WorkdirError, match="lr_schedule: 'constant' -> 'cosine'"):
    config_lib.check_workdir(str(tmp_path), tiny_config(data_dir, lr_schedule='cosine'))


def test_changing_num_epochs_of_a_cosine_run_is_refused(tmp_path, data_dir):
  # num_epochs is resumable for a constant rate, but it sets a cosine decay's length.
  workdir_lib.write_config(str(tmp_path), tiny_config(data_dir, lr_schedule='cosine'))
  with pytest.raises(workdir_lib.WorkdirError, match='num_epochs: 1 -> 3'):
    config_lib.check_workdir(str(tmp_path), tiny_config(data_dir, lr_schedule='cosine',
                                                        num_epochs=3))
  workdir_lib.write_config(str(tmp_path), tiny_config(data_dir))
  config_lib.check_workdir(str(tmp_path), tiny_config(data_dir, num_epochs=3))
