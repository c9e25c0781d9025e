"""MNIST and Fashion-MNIST as NumPy arrays, from local IDX files or TFDS.

``load(name, split)`` returns float32 images ``[N, H, W, C]`` in [0, 1] and
int32 labels ``[N]``; ``info(name)`` gives a data set's image shape and class
names without reading it, and ``load_split(data_config, split)`` a run's slice
of a split, binarised as it trains. The source is a local directory of the standard gzipped
IDX files when ``data_dir`` is given or ``$VAE_JAX_DATA_DIR`` is set, and
tensorflow-datasets otherwise. Nothing is ever substituted silently: a missing
or damaged file raises :class:`DataError` naming the file and the fix.
"""

import dataclasses
import functools
import gzip
import math
import os
import struct
import zlib

import jax
import numpy as np
from vae_jax.infra import errors


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What code that never reads the data needs to know about a data set."""
  image_shape: tuple   # (H, W, C) of one image
  class_names: tuple   # label i is class_names[i]
  title: str = ''      # how figures and reports name it ('' -> the registry key)
  # Whether the seed study and the sweep train their per-data-set models on it
  # (vae_jax/study/catalog.py): a registered set with study=True enters both.
  study: bool = False

  @property
  def num_classes(self):
    return len(self.class_names)


DATASETS = {
    'mnist': DatasetInfo((28, 28, 1), tuple(str(i) for i in range(10)), 'MNIST', True),
    'fashion_mnist': DatasetInfo((28, 28, 1), (
        'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
        'Sneaker', 'Bag', 'Ankle boot'), 'Fashion-MNIST', True),
}
SPLITS = {'train': 'train', 'test': 't10k'}
BINARIZE_MODES = ('none', 'static', 'dynamic')
ENV_VAR = 'VAE_JAX_DATA_DIR'

_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension


class DataError(errors.UserError, ValueError):
  """A data set could not be read; the message names the file and the fix."""


def title(name):
  """How figures and reports name data set ``name`` ('MNIST', 'Fashion-MNIST', ...)."""
  return info(name).title or name


def study_datasets():
  """The registered data sets the study and the sweep train on, in registry order."""
  return tuple(name for name, i in DATASETS.items() if i.study)


def info(name):
  """The :class:`DatasetInfo` of ``name``; raises :class:`DataError` for an unknown name."""
  if name not in DATASETS:
    raise DataError(f'unknown data set {name!r}: use one of {list(DATASETS)}')
  return DATASETS[name]


def idx_paths(data_dir, name, split):
  """The two IDX files of ``name``/``split`` under ``data_dir``."""
  prefix = SPLITS[split]
  base = os.path.join(data_dir, name)
  return (os.path.join(base, f'{prefix}-images-idx3-ubyte.gz'),
          os.path.join(base, f'{prefix}-labels-idx1-ubyte.gz'))


def _read_idx(path, magic, ndim):
  """Reads one gzipped IDX file, checking magic number and length."""
  if not os.path.isfile(path):
    raise DataError(
        f'missing data file {path}: put the standard IDX .gz files there or '
        f'point data_dir / ${ENV_VAR} at a directory that has them')
  try:
    with gzip.open(path, 'rb') as f:
      raw = f.read()
  except (OSError, EOFError, zlib.error) as e:  # zlib.error: a damaged deflate stream
    raise DataError(f'cannot decompress {path} ({e}): re-download the file') from e
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise DataError(f'{path} is truncated ({len(raw)} bytes, header needs '
                    f'{header}): re-download the file')
  (found,) = struct.unpack('>I', raw[:4])
  if found != magic:
    raise DataError(f'{path} has magic number 0x{found:08x}, expected '
                    f'0x{magic:08x}: it is not an IDX file of this kind; '
                    're-download it or check the file name')
  dims = struct.unpack(f'>{ndim}I', raw[4:header])
  expected = math.prod(dims)  # Python ints: a damaged header must not overflow
  if len(raw) - header != expected:
    raise DataError(f'{path} is truncated or padded: header promises '
                    f'{expected} values of shape {dims}, file holds '
                    f'{len(raw) - header}; re-download the file')
  if dims[0] == 0:
    raise DataError(f'{path} holds no examples (its header says 0): re-download the file')
  return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def _count(path, magic):
  """The example count in an IDX file's header, or None when it cannot be read."""
  try:
    with gzip.open(path, 'rb') as f:
      head = f.read(8)
  except (OSError, EOFError, zlib.error):
    return None
  if len(head) < 8 or struct.unpack('>I', head[:4])[0] != magic:
    return None
  return struct.unpack('>I', head[4:])[0]


def _check_not_swapped(data_dir, name, image_magic):
  """Refuses a directory whose test split holds more images than its training split.

  Every data set here has the larger split for training: more test images
  mean the train and t10k files were exchanged (e.g. renamed by hand).
  """
  train, test = (idx_paths(data_dir, name, split)[0] for split in ('train', 'test'))
  counts = _count(train, image_magic), _count(test, image_magic)
  if None not in counts and counts[0] < counts[1]:
    raise DataError(f'{test} holds {counts[1]} images but {train} only {counts[0]}: the '
                    'train and test files look swapped; re-download them or fix the names')


def load_idx(data_dir, name, split):
  """``(images uint8 [N, H, W] or [N, H, W, C], labels uint8 [N])`` from local IDX files.

  Grey images (C = 1) are stored ``[N, H, W]`` (magic 0x803, as MNIST's);
  colour images ``[N, H, W, C]`` (magic 0x804).
  """
  if not os.path.isdir(data_dir):
    raise DataError(f'data directory {data_dir} does not exist: pass an '
                    f'existing directory (it must contain {name}/)')
  image_path, label_path = idx_paths(data_dir, name, split)
  shape = info(name).image_shape
  stored = shape[:2] if shape[-1] == 1 else shape
  image_magic = _IMAGES_MAGIC + len(stored) - 2
  images = _read_idx(image_path, image_magic, len(stored) + 1)
  _check_not_swapped(data_dir, name, image_magic)
  if images.shape[1:] != tuple(stored):
    raise DataError(f'{image_path} holds images of shape {images.shape[1:]}, but '
                    f'{name} is registered as {shape} in vae_jax.core.data.DATASETS: '
                    'fix the file or the entry')
  labels = _read_idx(label_path, _LABELS_MAGIC, 1)
  num_classes = info(name).num_classes
  if labels.max() >= num_classes:
    raise DataError(f'{label_path} holds label {labels.max()} at example '
                    f'{int(np.argmax(labels >= num_classes))}, but {name} has '
                    f'{num_classes} classes (0 to {num_classes - 1}): re-download the file')
  if images.shape[0] != labels.shape[0]:
    raise DataError(f'{image_path} has {images.shape[0]} images but '
                    f'{label_path} has {labels.shape[0]} labels: the two files '
                    'belong to different splits; re-download them')
  return images, labels


def load_tfds(name, split, tfds_data_dir=None):
  """``(images uint8 [N, H, W, 1], labels [N])`` through tensorflow-datasets."""
  import tensorflow_datasets as tfds  # imported lazily: heavy, and optional offline
  try:
    ds = tfds.load(name, split=split, as_supervised=True, data_dir=tfds_data_dir)
    # Fixed-size batches, not batch_size=-1: the latter aborted inside
    # TensorFlow 2.21 (std::length_error) with TFDS 4.9.10.
    parts = list(tfds.as_numpy(ds.batch(10_000)))
  except Exception as e:  # TFDS raises many types; re-raise with the fix.
    raise DataError(
        f'tensorflow-datasets could not load {name}/{split} ({type(e).__name__}: '
        f'{str(e).splitlines()[0] if str(e) else ""}): with no internet, set '
        f'data_dir or ${ENV_VAR} to a directory of IDX files') from e
  if not parts:
    raise DataError(f'tensorflow-datasets returned no examples for {name}/{split}')
  return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


def load(name, split, *, data_dir=None):
  """Loads a data set split as float32 images in [0, 1] and int32 labels.

  Args:
    name: ``'mnist'`` or ``'fashion_mnist'``.
    split: ``'train'`` or ``'test'``.
    data_dir: directory holding ``<name>/{train,t10k}-*-ubyte.gz``; defaults
      to ``$VAE_JAX_DATA_DIR``; when neither is set, TFDS is used.

  Returns:
    ``(images [N, *info(name).image_shape] float32, labels [N] int32)``.
  """
  info(name)  # an unknown name fails here, before any file is looked for
  if split not in SPLITS:
    raise DataError(f'unknown split {split!r}: use one of {list(SPLITS)}')
  data_dir = data_dir or os.environ.get(ENV_VAR) or None
  return _load_cached(name, split, data_dir, _files_signature(data_dir, name, split))


def _files_signature(data_dir, name, split):
  """(mtime, size) of the IDX files, so an edited file is never served from cache."""
  if not data_dir:
    return None
  stats = []
  for path in idx_paths(data_dir, name, split):
    try:
      st = os.stat(path)
      stats.append((st.st_mtime_ns, st.st_size))
    except OSError:
      stats.append(None)
  return tuple(stats)


@functools.lru_cache(maxsize=8)
def _load_cached(name, split, data_dir, signature):
  # Cached because a study builds dozens of models on the same four arrays;
  # read-only so that no caller can change another's data.
  if data_dir:
    images, labels = load_idx(data_dir, name, split)
  else:
    images, labels = load_tfds(name, split)
  images = np.asarray(images).reshape(images.shape[0], *info(name).image_shape)
  images = images.astype(np.float32) / 255.0
  labels = np.asarray(labels).astype(np.int32)
  images.setflags(write=False)
  labels.setflags(write=False)
  return images, labels


# Fixed seed for static binarisation: every seed of a study sees the same binary
# data set, as in the literature's "statically binarised MNIST".
STATIC_BINARIZATION_SEED = 1234


def load_split(data_config, split):
  """``(images, labels)`` of a run's ``split`` as it trains and evaluates on it.

  ``data_config`` is a run config's ``data`` node: its first ``num_train`` /
  ``num_test`` examples (0: all), binarised once with a fixed seed when
  ``binarize`` is 'static', and the test set of a 'dynamic' run too (so that
  its evaluation is deterministic and comparable across epochs).
  """
  images, labels = load(data_config.name, split, data_dir=data_config.dir or None)
  limit = data_config.num_train if split == 'train' else data_config.num_test
  if limit:
    images, labels = images[:limit], labels[:limit]
  if data_config.binarize == 'static' or (split == 'test' and data_config.binarize == 'dynamic'):
    images = binarize_static(images, STATIC_BINARIZATION_SEED + (split == 'test'))
  return images, labels


def binarize_static(images, seed):
  """A fixed Bernoulli draw of grey images: the same binary set on every run."""
  rng = np.random.default_rng(seed)
  return (rng.random(images.shape, dtype=np.float32) < images).astype(np.float32)


def binarize_dynamic(key, images):
  """A fresh Bernoulli draw on the device (call with a new key every step)."""
  return jax.random.bernoulli(key, images).astype(images.dtype)
