"""The training engine: determinism, loop equivalence, learning, the NaN guard."""

import os

import jax
import numpy as np
import pytest

from conftest import tiny_config
from vae_jax.core import config as config_lib, experiment, train
from vae_jax.infra import checkpointing, workdir as workdir_lib


def leaves(params):
  return [np.asarray(x) for x in jax.tree_util.tree_leaves(params)]


def assert_bit_equal(a, b):
  for x, y in zip(leaves(a), leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)


def test_same_seed_gives_bit_identical_parameters_and_metrics(tmp_path, data_dir):
  c = tiny_config(data_dir, **{'model.dropout_rate': 0.2, 'data.binarize': 'dynamic'})
  a = train.train_and_evaluate(c, str(tmp_path / 'a'))
  b = train.train_and_evaluate(c, str(tmp_path / 'b'))
  assert_bit_equal(a['state'].params, b['state'].params)
  assert_bit_equal(a['state'].opt_state, b['state'].opt_state)
  assert a['test'] == b['test']
  with open(tmp_path / 'a' / 'metrics.jsonl') as fa, open(tmp_path / 'b' / 'metrics.jsonl') as fb:
    assert fa.read() == fb.read()


def test_a_different_seed_gives_different_parameters(data_dir):
  # Guards the test above against a seed that is ignored.
  a = train.build_experiment(tiny_config(data_dir, seed=0)).init_state()
  b = train.build_experiment(tiny_config(data_dir, seed=1)).init_state()
  kernels = [(x, y) for x, y in zip(leaves(a.params), leaves(b.params)) if x.ndim == 2]
  assert kernels and not any(np.array_equal(x, y) for x, y in kernels)


def test_training_reduces_the_loss_and_logs_every_interval(tmp_path, data_dir):
  train.train_and_evaluate(tiny_config(data_dir, num_epochs=3), str(tmp_path))
  rows = workdir_lib.read_metrics(str(tmp_path))
  assert [r['step'] for r in rows if r['split'] == 'train'] == [4, 8, 12, 16, 20, 24]
  test = [r for r in rows if r['split'] == 'test']
  assert [r['epoch'] for r in test] == [1, 2, 3]
  assert test[-1]['loss'] < test[0]['loss'] - 5
  for r in test:  # elbo = -(recon + kl), with kl_weight 1 loss = -elbo
    assert r['elbo'] == pytest.approx(-(r['recon'] + r['kl']), rel=1e-5)
    assert r['loss'] == pytest.approx(-r['elbo'], rel=1e-5)


def test_nan_guard_names_the_step_and_metric(tmp_path, data_dir):
  c = tiny_config(data_dir, learning_rate=1e12, num_epochs=2)
  with pytest.raises(train.NonFiniteError,
                     match=r'^(loss|grad_norm) became (nan|inf|-inf) at step \d+; '
                           r'.*Lower learning_rate'):
    train.train_and_evaluate(c, str(tmp_path))


def _restore_all(workdir):
  """{step: (state, meta)} of every checkpoint, restored with the digest check."""
  config = config_lib.from_workdir(workdir)
  abstract = experiment.abstract_state(config, experiment.build_model(config))
  manager = checkpointing.manager(os.path.join(workdir, 'checkpoints'))
  try:
    return {s: checkpointing.restore(manager, s, abstract) for s in manager.all_steps()}
  finally:
    manager.close()


def test_nan_guard_keeps_and_names_the_last_good_checkpoint(tmp_path, data_dir):
  w = str(tmp_path)
  train.train_and_evaluate(tiny_config(data_dir), w)  # checkpoint 8
  # Continue with an overflowing learning rate: step 9's update makes every
  # parameter infinite, step 10's loss is NaN.
  bad = tiny_config(data_dir, num_epochs=2, learning_rate=1e39)
  with pytest.raises(train.NonFiniteError) as e:
    train.train_and_evaluate(bad, w, allow_config_change=True)
  msg = str(e.value)
  assert 'at step' in msg and f'last good checkpoint is step 8 in {w}/checkpoints' in msg
  ckpts = _restore_all(w)
  assert sorted(ckpts) == [8]
  state, meta = ckpts[8]
  assert all(np.all(np.isfinite(x)) for x in leaves(state.params))
  assert meta[checkpointing.DIGEST_KEY] == checkpointing.state_digest(state)


def test_an_overflowing_update_is_never_checkpointed(tmp_path, data_dir):
  # Step 1's loss and gradients are finite, but its update is not: the state
  # after it must not be saved (and later named "the last good checkpoint").
  c = tiny_config(data_dir, learning_rate=1e39, checkpoint_every_steps=1, log_every_steps=1)
  with pytest.raises(train.NonFiniteError,
                     match='parameters became non-finite at step 1; no checkpoint'):
    train.train_and_evaluate(c, str(tmp_path))
  assert os.listdir(tmp_path / 'checkpoints') == []
