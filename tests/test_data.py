"""IDX loading and validation, the TFDS path, and the real files."""

import gzip
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import write_idx
from vae_jax.core import data


def make_set(root, n=6, labels=None, name='mnist', split='train'):
  images = (np.arange(n * 28 * 28) % 256).reshape(n, 28, 28)
  image_path, label_path = data.idx_paths(str(root), name, split)
  write_idx(image_path, images)
  write_idx(label_path, np.arange(n) % 10 if labels is None else labels)
  return images, image_path, label_path


def test_idx_round_trip(tmp_path):
  images, _, _ = make_set(tmp_path)
  x, y = data.load('mnist', 'train', data_dir=str(tmp_path))
  assert x.shape == (6, 28, 28, 1) and x.dtype == np.float32 and y.dtype == np.int32
  np.testing.assert_allclose(x[..., 0], images / 255.0)
  np.testing.assert_array_equal(y, np.arange(6))


def test_env_var_selects_the_directory(tmp_path, monkeypatch):
  make_set(tmp_path, n=3)
  monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
  assert data.load('mnist', 'train')[0].shape[0] == 3


def test_wrong_magic(tmp_path):
  _, image_path, _ = make_set(tmp_path)
  write_idx(image_path, np.zeros((6, 28, 28)), magic=0x801)
  with pytest.raises(data.DataError, match='magic number'):
    data.load('mnist', 'train', data_dir=str(tmp_path))


def test_truncated_file(tmp_path):
  _, image_path, _ = make_set(tmp_path)
  with gzip.open(image_path, 'rb') as f:
    raw = f.read()
  with gzip.open(image_path, 'wb') as f:
    f.write(raw[:-100])
  with pytest.raises(data.DataError, match='truncated'):
    data.load('mnist', 'train', data_dir=str(tmp_path))


def test_count_mismatch(tmp_path):
  make_set(tmp_path, n=6, labels=np.arange(5))
  with pytest.raises(data.DataError, match='6 images but .* 5 labels'):
    data.load('mnist', 'train', data_dir=str(tmp_path))


def test_missing_file(tmp_path):
  _, _, label_path = make_set(tmp_path)
  os.remove(label_path)
  with pytest.raises(data.DataError, match='missing data file .*labels'):
    data.load('mnist', 'train', data_dir=str(tmp_path))


def test_missing_directory(tmp_path):
  with pytest.raises(data.DataError, match='does not exist'):
    data.load('mnist', 'train', data_dir=str(tmp_path / 'nope'))


def test_not_gzip(tmp_path):
  _, image_path, _ = make_set(tmp_path)
  with open(image_path, 'wb') as f:
    f.write(b'not gzip at all')
  with pytest.raises(data.DataError, match='decompress'):
    data.load('mnist', 'train', data_dir=str(tmp_path))


@pytest.mark.parametrize('name,split,match', [('cifar10', 'train', 'unknown data set'),
                                              ('mnist', 'validation', 'unknown split')])
def test_unknown_name_or_split(tmp_path, name, split, match):
  with pytest.raises(data.DataError, match=match):
    data.load(name, split, data_dir=str(tmp_path))


def test_edited_file_is_not_served_from_cache(tmp_path):
  make_set(tmp_path, n=6)
  assert data.load('mnist', 'train', data_dir=str(tmp_path))[0].shape[0] == 6
  make_set(tmp_path, n=4)
  assert data.load('mnist', 'train', data_dir=str(tmp_path))[0].shape[0] == 4


TFDS_MOCK = """
import os, sys
os.environ.pop('VAE_JAX_DATA_DIR', None)
import numpy as np
import tensorflow_datasets as tfds
from vae_jax.core import data
for name, split in [('mnist', 'train'), ('fashion_mnist', 'test')]:
  with tfds.testing.mock_data(num_examples=7):
    x, y = data.load(name, split)
  assert x.shape == (7, 28, 28, 1) and x.dtype == np.float32, (x.shape, x.dtype)
  assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.0, (x.min(), x.max())
  assert y.dtype == np.int32 and y.shape == (7,) and 0 <= y.min() and y.max() <= 9
print('ok')
"""


def test_tfds_path_with_mock_data():
  # In a subprocess: TensorFlow is loaded only on the TFDS path, never beside
  # the test process's XLA state.
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  env.pop(data.ENV_VAR, None)
  proc = subprocess.run([sys.executable, '-c', TFDS_MOCK], capture_output=True, text=True,
                        env=env, timeout=300)
  assert proc.returncode == 0 and proc.stdout.strip().endswith('ok'), proc.stderr[-2000:]


def test_real_mnist(data_dir):
  x, y = data.load('mnist', 'train', data_dir=data_dir)
  assert x.shape == (60000, 28, 28, 1) and x.dtype == np.float32
  assert 0.0 == x.min() and x.max() == 1.0
  assert np.bincount(y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
  assert float(x.mean()) == pytest.approx(0.13066, abs=1e-4)
  xt, yt = data.load('mnist', 'test', data_dir=data_dir)
  assert xt.shape == (10000, 28, 28, 1) and yt.shape == (10000,)


def test_real_fashion_mnist_is_balanced(data_dir):
  x, y = data.load('fashion_mnist', 'train', data_dir=data_dir)
  assert x.shape == (60000, 28, 28, 1) and np.bincount(y).tolist() == [6000] * 10


def test_static_binarisation_is_fixed_and_binary():
  x = np.random.default_rng(0).random((4, 28, 28, 1)).astype(np.float32)
  a, b = data.binarize_static(x, 3), data.binarize_static(x, 3)
  np.testing.assert_array_equal(a, b)
  assert set(np.unique(a)) <= {0.0, 1.0}
