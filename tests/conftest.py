"""Shared fixtures: the local data directory and a tiny config."""

import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def find_data_dir():
  """$VAE_JAX_DATA_DIR, else ../shared/datasets beside the repository."""
  path = os.environ.get('VAE_JAX_DATA_DIR') or os.path.join(ROOT, '..', 'shared', 'datasets')
  return os.path.abspath(path)


@pytest.fixture(scope='session')
def data_dir():
  path = find_data_dir()
  if not os.path.isdir(os.path.join(path, 'mnist')):
    pytest.fail(f'no MNIST IDX files under {path}: set VAE_JAX_DATA_DIR')
  return path


def tiny_config(data_dir, **overrides):
  """A seconds-long MLP VAE config on a slice of real MNIST."""
  from vae_jax.config import base_config
  c = base_config()
  c.data.dir = data_dir
  c.data.num_train = 512
  c.data.num_test = 200
  c.batch_size = 64
  c.eval_batch_size = 100
  c.num_epochs = 1
  c.log_every_steps = 4
  c.model.hidden_sizes = (32,)
  c.progress = False
  for key, value in overrides.items():
    target = c
    *path, last = key.split('.')
    for p in path:
      target = target[p]
    target[last] = value
  return c
