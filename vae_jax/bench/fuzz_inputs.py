r"""Fuzzed IDX files, config values and damaged workdir files: each must end in one clear line.

  python -m vae_jax.bench.fuzz_inputs --seed=0 --cases=300 --json=results/fuzz_inputs.json
  python -m vae_jax.bench.fuzz_inputs --publish=results/fuzz_inputs.json   # then vae-jax publish

Three groups of seeded cases, each a random damage of one kind:

* ``idx``: a small valid directory of MNIST IDX files (real images) with one
  file truncated, its gzip stream cut or a byte flipped, a wrong magic
  number, a count that disagrees with the bytes or with the other file,
  labels outside the class range, not gzip, empty, no images, the wrong
  shape, missing, or train and test swapped; read by ``data.load``;
* ``config``: one field of a tiny config set to a value of a wrong type, out of
  its range, not finite, or removed, or the model family set to a module or
  builder that does not exist; judged by ``config.validate``. A value the
  field's domain (:data:`DOMAINS`, from the comments of ``base_config``)
  allows must be accepted, so the fuzzer also catches a refusal too many;
* ``workdir``: a finished tiny run with one of its own files damaged
  (``config.json``, ``metrics.jsonl``, ``timing.json``, ``vae_jax.lock``, a
  checkpoint), then trained again (``train.train_and_evaluate``) or read
  (``experiment.restore_state``, ``run_clock.read``).

A case passes when it ends in a user error (:class:`errors.UserError`, exit 2
on the command line) whose message is one line naming the file or the
``config.<field>`` and what to do, with every file of the run unchanged
(SHA-256 before and after); or, for the damage the library is built to
recover from (:data:`RECOVERS`: a damaged newest checkpoint, a stale lock's
content, leftover temporary files), when the run ends exactly like the
undamaged run. Anything else (a traceback, a second line, silence, a changed
good file) is a failure, listed with the seed and case number that replay it.
Cases run in-process (fast); ``--cli`` of them per group again through the
real command line (``python -m vae_jax.main``), which must exit 2 with one
``error:`` line and no traceback.
"""

import contextlib
import copy
import gzip
import hashlib
import io
import json
import logging
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

from vae_jax.infra import flags, paths

ROOT = paths.REPO_ROOT
BEGIN, END = '<!-- fuzz_inputs:begin -->', '<!-- fuzz_inputs:end -->'
CONFIG = os.path.join(ROOT, 'experiments', 'configs', 'mnist_vae_2d.py')
# Words of a message's fix: a line must say what to do, not only what is wrong.
FIX_WORDS = ('re-download', 'use ', 'pass ', 'fix ', 'point ', 'set ', 'delete', 'move',
             'rerun', 'remove', 'must ', 'put ', 'restore', 'lower it', 'wait ', 'pick ',
             'train it first', 'check ')
SPLIT_SIZES = {'train': 60, 'test': 20}
TINY = {'data.num_train': 64, 'data.num_test': 20, 'batch_size': 16, 'eval_batch_size': 20,
        'num_epochs': 1, 'log_every_steps': 2, 'checkpoint_every_steps': 2,
        'model.mlp.hidden_sizes': (16,), 'progress': False}


# ----------------------------------------------------------------------------
# Judging one case
# ----------------------------------------------------------------------------
def _sha_tree(directory):
  """{relative path: sha256} of every file under ``directory`` (TensorBoard's left out)."""
  out = {}
  for root, _, names in os.walk(directory):
    if 'tensorboard' in os.path.relpath(root, directory).split(os.sep):
      continue
    for name in names:
      path = os.path.join(root, name)
      with open(path, 'rb') as f:
        out[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
  return out


def judge_refusal(error, names):
  """None when ``error`` is one user-error line naming one of ``names`` and a fix, else why not."""
  from vae_jax.infra import errors
  if error is None:
    return 'accepted without a word'
  if not isinstance(error, errors.UserError):
    return f'a traceback: {type(error).__name__}: {str(error)[:200]}'
  text = str(error)
  if '\n' in text:
    return f'more than one line: {text[:200]!r}'
  if not any(n in text for n in names):
    return f'names none of {names}: {text[:200]}'
  if not any(w in text for w in FIX_WORDS):
    return f'says nothing to do: {text[:200]}'
  return None


def attempt(fn):
  """The exception ``fn()`` raised, or None."""
  try:
    fn()
  except Exception as e:  # pylint: disable=broad-except
    return e
  return None


# ----------------------------------------------------------------------------
# IDX files
# ----------------------------------------------------------------------------
IDX_KINDS = ('cut_gzip', 'flipped_gzip_byte', 'truncated_payload', 'padded_payload',
             'wrong_magic', 'count_vs_bytes', 'count_vs_other_file', 'labels_out_of_range',
             'not_gzip', 'plain_idx', 'empty_file', 'no_images', 'wrong_shape', 'missing',
             'swapped')


def write_idx(path, array):
  import numpy as np
  array = np.asarray(array, np.uint8)
  header = struct.pack('>I', 0x803 if array.ndim == 3 else 0x801)
  header += struct.pack(f'>{array.ndim}I', *array.shape)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with gzip.open(path, 'wb', compresslevel=1) as f:
    f.write(header + array.tobytes())


def make_idx_dir(directory, data_dir):
  """A valid IDX directory: the first SPLIT_SIZES images of each split of real MNIST."""
  import numpy as np
  from vae_jax.core import data
  for split, n in SPLIT_SIZES.items():
    x, y = data.load('mnist', split, data_dir=data_dir)
    images, labels = data.idx_paths(directory, 'mnist', split)
    write_idx(images, np.round(x[:n, ..., 0] * 255))
    write_idx(labels, y[:n])
  return directory


def _raw(path):
  with gzip.open(path, 'rb') as f:
    return f.read()


def _put(path, raw, compress=True):
  if compress:
    with gzip.open(path, 'wb', compresslevel=1) as f:
      f.write(raw)
  else:
    with open(path, 'wb') as f:
      f.write(raw)


def damage_idx(rng, directory, kind):
  """Damages the IDX directory by ``kind``; returns the file names a good message may name,
  or None when the damage left the data intact (then they must load)."""
  from vae_jax.core import data
  split = rng.choice(('train', 'test'))
  images, labels = data.idx_paths(directory, 'mnist', split)
  path = rng.choice((images, labels))
  ndim = 3 if path == images else 1
  header = 4 + 4 * ndim
  names = [os.path.basename(path)]
  if kind in ('cut_gzip', 'flipped_gzip_byte'):
    with open(path, 'rb') as f:
      packed = bytearray(f.read())
    original = _raw(path)
    if kind == 'cut_gzip':
      packed = packed[:rng.randrange(len(packed))]
    else:
      packed[rng.randrange(len(packed))] ^= 1 << rng.randrange(8)
    _put(path, bytes(packed), compress=False)
    with contextlib.suppress(Exception):
      if gzip.decompress(bytes(packed)) == original:
        return None  # a header byte gzip ignores (time, OS): the data are intact
  elif kind == 'truncated_payload':
    raw = _raw(path)
    _put(path, raw[:rng.randrange(len(raw))])
  elif kind == 'padded_payload':
    _put(path, _raw(path) + bytes(rng.randrange(256) for _ in range(rng.randint(1, 900))))
  elif kind == 'wrong_magic':
    raw = _raw(path)
    magic = struct.unpack('>I', raw[:4])[0]
    other = rng.choice((0x801, 0x803, 0x804, 0x08030000, rng.getrandbits(32)))
    other = other if other != magic else magic + 1
    _put(path, struct.pack('>I', other) + raw[4:])
  elif kind == 'count_vs_bytes':
    raw = _raw(path)
    count = struct.unpack('>I', raw[4:8])[0]
    new = rng.choice((0, count - 1, count + 1, 2 * count, rng.getrandbits(32)))
    new = new if new != count else count + 1
    _put(path, raw[:4] + struct.pack('>I', new) + raw[8:])
  elif kind == 'count_vs_other_file':
    raw = _raw(path)
    count = struct.unpack('>I', raw[4:8])[0]
    keep = rng.randrange(1, count)
    record = (len(raw) - header) // count
    _put(path, raw[:4] + struct.pack('>I', keep) + raw[8:header + keep * record])
    names.append(os.path.basename(images if path == labels else labels))
  elif kind == 'labels_out_of_range':
    raw = bytearray(_raw(labels))
    for _ in range(rng.randint(1, 5)):
      raw[8 + rng.randrange(len(raw) - 8)] = rng.randint(10, 255)
    _put(labels, bytes(raw))
    names = [os.path.basename(labels)]
  elif kind == 'not_gzip':
    _put(path, rng.choice((b'<html>404 Not Found</html>', b'\x00' * 100,
                           bytes(rng.randrange(256) for _ in range(300)))), compress=False)
  elif kind == 'plain_idx':  # the uncompressed file under the .gz name
    _put(path, _raw(path), compress=False)
  elif kind == 'empty_file':
    _put(path, b'', compress=False)
  elif kind == 'no_images':  # a valid pair of files holding zero examples
    raw_i, raw_l = _raw(images), _raw(labels)
    _put(images, raw_i[:4] + struct.pack('>I', 0) + raw_i[8:16])
    _put(labels, raw_l[:4] + struct.pack('>I', 0))
    names = [os.path.basename(images), os.path.basename(labels)]
  elif kind == 'wrong_shape':
    raw = _raw(images)
    n = struct.unpack('>I', raw[4:8])[0]
    h, w = rng.choice(((14, 56), (784, 1), (7, 112), (56, 14)))
    _put(images, raw[:4] + struct.pack('>3I', n, h, w) + raw[16:])
    names = [os.path.basename(images)]
  elif kind == 'missing':
    os.remove(path)
  elif kind == 'swapped':  # both files of train and test exchanged
    for a, b in zip(data.idx_paths(directory, 'mnist', 'train'),
                    data.idx_paths(directory, 'mnist', 'test')):
      os.rename(a, a + '.x')
      os.rename(b, a)
      os.rename(a + '.x', b)
    names = [os.path.basename(p) for s in ('train', 'test')
             for p in data.idx_paths(directory, 'mnist', s)]
  else:
    raise ValueError(kind)
  return names


def idx_case(rng, kind, base_dir, scratch):
  from vae_jax.core import data
  directory = os.path.join(scratch, 'idx')
  shutil.rmtree(directory, ignore_errors=True)
  shutil.copytree(base_dir, directory)
  names = damage_idx(rng, directory, kind)
  before = _sha_tree(directory)

  def load_both():
    for split in ('train', 'test'):
      data.load('mnist', split, data_dir=directory)
  error = attempt(load_both)
  if names is None:
    return None if error is None else f'intact data refused: {error}'
  problem = judge_refusal(error, names)
  if problem is None and _sha_tree(directory) != before:
    problem = 'the data directory was changed'
  return problem


# ----------------------------------------------------------------------------
# Config values
# ----------------------------------------------------------------------------
def _int(lo):
  return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= lo


def _num(lo, hi=math.inf, lo_open=False, hi_open=True):
  def ok(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
      return False
    return (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
  return ok


def _one_of(*allowed):
  return lambda v: isinstance(v, str) and v in allowed


def _sizes(v):
  return (isinstance(v, (list, tuple)) and len(v) > 0
          and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in v))


_BOOL = lambda v: isinstance(v, bool)  # noqa: E731
# What each field allows, from the comments of config.base_config(), for a tiny
# MLP VAE on the ELBO (where the cross-field rules of validate() all hold).
DOMAINS = {
    'seed': _int(0), 'num_epochs': _int(1), 'batch_size': _int(1),
    'learning_rate': _num(0, lo_open=True), 'lr_schedule': _one_of('constant', 'cosine'),
    'latent_dim': _int(1), 'kl_weight': _num(0), 'kl_schedule': _one_of('warmup', 'cyclical'),
    'kl_warmup_steps': _int(0), 'kl_cycles': _int(1),
    'kl_cycle_ratio': _num(0, 1, lo_open=True, hi_open=False), 'free_bits': _num(0),
    'iwae_samples': _int(1), 'eval_batch_size': _int(1), 'log_every_steps': _int(1),
    'checkpoint_every_steps': _int(0), 'max_checkpoints': _int(1), 'progress': _BOOL,
    'distributed': _BOOL,
    'model.kind': _one_of('vae', 'autoencoder'), 'model.family': _one_of('mlp', 'conv', 'rnn'),
    'model.dropout_rate': _num(0, 1), 'model.max_norm': _num(0), 'model.l1_activity': _num(0),
    'model.noise': _one_of('none', 'gaussian', 'masking'), 'model.noise_level': _num(0),
    'model.likelihood': _one_of('bernoulli', 'gaussian'),
    'model.gaussian_variance': _num(0, lo_open=True),
    'model.mlp.hidden_sizes': _sizes, 'model.mlp.stochastic_layers': lambda v: (
        v in (1, 2) and not isinstance(v, bool) and isinstance(v, int)),
    'model.mlp.bottom_latent_dim': _int(1), 'model.mlp.top_hidden_sizes': _sizes,
    'model.conv.features': _sizes, 'model.conv.dense_size': _int(1),
    'model.rnn.cell': _one_of('lstm', 'gru'), 'model.rnn.size': _int(1),
    'data.name': _one_of('mnist', 'fashion_mnist'), 'data.dir': lambda v: isinstance(v, str),
    'data.binarize': _one_of('none', 'static', 'dynamic'),
    'data.num_train': _int(0), 'data.num_test': _int(0),
}
# Values tried: each field gets ones of every type, in range and out of it.
VALUES = (-7, -1, 0, 1, 2, 3, 64, 10**6, -0.5, 0.0, 0.25, 0.5, 1.0, 1.5, math.nan, math.inf,
          -math.inf, '', 'abc', '3', 'mnist', 'lstm', 'vae', 'none', None, True, False, [],
          [0], [16], [16, 8], [-1, 8], [1.5], ['a'], {}, {'a': 1})
MISSING = object()
FAMILY_VALUES = ('no_such_package.models:build', 'vae_jax.core.models:no_such_builder',
                 '.relative:build', ':build', 'a:b:c', 'mlp:', 'vae_jax.core.models:KINDS')


def tiny_config(data_dir):
  from vae_jax.core import config as config_lib
  c = config_lib.base_config()
  c.data.dir = data_dir
  for field, value in TINY.items():
    _set(c, field, value)
  return c


def _set(c, dotted, value):
  *path, last = dotted.split('.')
  for p in path:
    c = c[p]
  c[last] = value


def with_value(config, dotted, value):
  """A ConfigDict like ``config`` with ``dotted`` set to ``value`` (any type) or removed.

  Built from a plain dict, as from a config.json or a ``get_config()``: the
  ConfigDict's own type checks on assignment are not what is tested.
  """
  import ml_collections
  d = copy.deepcopy(config.to_dict())
  *path, last = dotted.split('.')
  node = d
  for p in path:
    node = node.setdefault(p, {})
  if value is MISSING:
    del node[last]
  else:
    node[last] = value
  return ml_collections.ConfigDict(d)


def config_case(rng, kind, data_dir):
  """``kind``: 'value' (any field, any value), 'missing', 'unknown' or 'family'."""
  from vae_jax.core import config as config_lib
  base = tiny_config(data_dir)
  field = rng.choice(sorted(DOMAINS))
  if kind == 'unknown':  # a misspelt or invented field beside the real ones
    node = rng.choice(('', 'model.', 'model.mlp.', 'data.'))
    name = rng.choice(('learning_rat', 'hidden_size', 'colour', 'epochs', 'x'))
    config = with_value(base, f'{node}{name}', rng.choice(VALUES))
    return judge_refusal(attempt(lambda: config_lib.validate(config)), [f'config.{node}{name}'])
  if kind == 'family':
    field, value = 'model.family', rng.choice(FAMILY_VALUES)
  elif kind == 'missing':
    value = MISSING
  else:
    value = rng.choice(VALUES)
  if field.startswith(('model.conv.', 'model.rnn.')):  # checked when the family is chosen
    base.model.family = field.split('.')[1]
  valid = value is not MISSING and DOMAINS[field](value)
  config = with_value(base, field, value)
  error = attempt(lambda: config_lib.validate(config))
  if valid:
    return None if error is None else f'{field}={value!r} refused: {error}'
  return judge_refusal(error, [f'config.{field}'])


# ----------------------------------------------------------------------------
# A workdir's own files
# ----------------------------------------------------------------------------
WORKDIR_KINDS = ('config_truncated', 'config_not_json', 'config_empty', 'config_a_list',
                 'config_wrong_type', 'config_field_missing', 'config_unknown_field',
                 'metrics_half_line', 'metrics_garbage_line', 'metrics_row_without_step',
                 'metrics_step_not_a_number', 'metrics_binary',
                 'timing_truncated', 'timing_not_json', 'timing_a_list',
                 'lock_garbage', 'lock_empty', 'lock_a_directory',
                 'checkpoint_file_truncated', 'checkpoint_file_removed',
                 'checkpoint_byte_flipped', 'checkpoint_meta_garbage', 'checkpoint_manifest_garbage',
                 'checkpoint_tmp_leftover', 'checkpoints_all_damaged', 'checkpoints_a_file',
                 'checkpoint_step_a_file')
# Damage the library is built to recover from: the rerun ends exactly like
# the undamaged run (docs/reliability.md).
RECOVERS = frozenset({'lock_garbage', 'lock_empty', 'checkpoint_file_truncated',
                      'checkpoint_file_removed', 'checkpoint_byte_flipped',
                      'checkpoint_meta_garbage', 'checkpoint_manifest_garbage',
                      'checkpoint_tmp_leftover', 'checkpoint_step_a_file'})


def _newest_checkpoint(workdir):
  d = os.path.join(workdir, 'checkpoints')
  return os.path.join(d, str(max(int(n) for n in os.listdir(d) if n.isdigit())))


def _files_under(directory):
  return sorted(os.path.join(r, f) for r, _, names in os.walk(directory) for f in names)


def _rewrite(path, fn):
  with open(path, 'rb') as f:
    data = f.read()
  with open(path, 'wb') as f:
    f.write(fn(data))


def damage_workdir(rng, workdir, kind, entry=None):
  """Damages ``workdir`` by ``kind``; returns the names a good message may name, and
  the entry point: 'train', 'restore' or 'timing' (for config.json: ``entry`` if given)."""
  config_path = os.path.join(workdir, 'config.json')
  metrics_path = os.path.join(workdir, 'metrics.jsonl')
  timing_path = os.path.join(workdir, 'timing.json')
  lock_path = os.path.join(workdir, 'vae_jax.lock')
  newest = _newest_checkpoint(workdir)
  from vae_jax.infra import workdir as workdir_lib
  if kind.startswith('config_'):
    entry = entry or rng.choice(('train', 'restore'))
    with open(config_path) as f:
      d = json.load(f)
    names = ['config.json']
    if kind == 'config_truncated':
      _rewrite(config_path, lambda b: b[:rng.randrange(len(b))])
    elif kind == 'config_not_json':
      _rewrite(config_path, lambda b: b.replace(b'"', b"'", rng.randint(1, 5)))
    elif kind == 'config_empty':
      _rewrite(config_path, lambda b: b'')
    elif kind == 'config_a_list':
      _rewrite(config_path, lambda b: b'[' + b + b']')
    else:
      flat = [k for k in DOMAINS if not k.startswith(('model.conv.', 'model.rnn.'))]
      if entry == 'train':  # a rerun may change these, and reads older runs without those
        flat = [k for k in flat if k not in config_lib.RESUMABLE_FIELDS
                and k not in config_lib.ADDED_FIELDS]
      field = rng.choice(flat)
      *path, last = field.split('.')
      node = d
      for p in path:
        node = node[p]
      if kind == 'config_wrong_type':
        node[last] = rng.choice([v for v in VALUES if not DOMAINS[field](v)])
      elif kind == 'config_field_missing':
        del node[last]
      else:
        field = rng.choice(('no_such_field', 'model.no_such_field', 'data.colour'))
        node = d
        *path, last = field.split('.')
        for p in path:
          node = node[p]
        node[last] = rng.choice((1, 'x', [2]))
      names += [field, f'config.{field}']
      _rewrite(config_path, lambda b: json.dumps(d, indent=2, sort_keys=True).encode())
    return names, entry
  if kind.startswith('metrics_'):
    with open(metrics_path) as f:
      lines = f.read().splitlines(keepends=True)
    i = rng.randrange(len(lines))
    if kind == 'metrics_half_line':
      lines[-1] = lines[-1][:rng.randrange(1, len(lines[-1]) - 1)]
    elif kind == 'metrics_garbage_line':
      lines.insert(i, rng.choice(('garbage\n', '{"step": \n', '<<<<<<< HEAD\n')))
    elif kind == 'metrics_row_without_step':
      row = json.loads(lines[i])
      del row['step']
      lines[i] = json.dumps(row) + '\n'
    elif kind == 'metrics_step_not_a_number':
      row = json.loads(lines[i])
      row['step'] = rng.choice(('3', None, [3]))
      lines[i] = json.dumps(row) + '\n'
    else:
      lines[i] = bytes(rng.randrange(256) for _ in range(40)).decode('latin-1') + '\n'
    with open(metrics_path, 'w', encoding='latin-1') as f:
      f.write(''.join(lines))
    return ['metrics.jsonl'], 'train'
  if kind.startswith('timing_'):
    if kind == 'timing_truncated':
      _rewrite(timing_path, lambda b: b[:rng.randrange(len(b))])
    elif kind == 'timing_not_json':
      _rewrite(timing_path, lambda b: b'segments: 3\n')
    else:
      _rewrite(timing_path, lambda b: b'[1, 2]\n')
    return ['timing.json'], 'timing'
  if kind.startswith('lock_'):
    if kind == 'lock_a_directory':
      os.makedirs(lock_path)
    else:
      with open(lock_path, 'wb') as f:
        f.write(b'' if kind == 'lock_empty' else bytes(rng.randrange(256) for _ in range(50)))
    return ['vae_jax.lock'], 'train'
  names = ['checkpoints']
  if kind in ('checkpoint_file_truncated', 'checkpoint_file_removed', 'checkpoint_byte_flipped'):
    path = rng.choice(_files_under(newest))
    if kind == 'checkpoint_file_removed':
      os.remove(path)
    elif kind == 'checkpoint_file_truncated':
      _rewrite(path, lambda b: b[:rng.randrange(len(b))] if b else b'')
    else:
      _rewrite(path, lambda b: bytes(x ^ (1 << rng.randrange(8)) if j == rng.randrange(len(b))
                                     else x for j, x in enumerate(b)) if b else b'x')
  elif kind == 'checkpoint_meta_garbage':
    _rewrite(os.path.join(newest, 'meta', 'metadata'), lambda b: b'{"step": ')
  elif kind == 'checkpoint_manifest_garbage':
    _rewrite(os.path.join(newest, 'vae_jax_files.sha256.json'), lambda b: b'not json')
  elif kind == 'checkpoint_tmp_leftover':
    tmp = f'{newest}.orbax-checkpoint-tmp-{rng.randrange(10**6)}'
    shutil.copytree(newest, tmp)
    path = rng.choice(_files_under(tmp))
    _rewrite(path, lambda b: b[:len(b) // 2])
  elif kind == 'checkpoints_all_damaged':
    for step_dir in os.listdir(os.path.join(workdir, 'checkpoints')):
      files = [f for f in _files_under(os.path.join(workdir, 'checkpoints', step_dir))
               if os.path.basename(f) != 'vae_jax_files.sha256.json' and os.path.getsize(f)]
      _rewrite(rng.choice(files), lambda b: b[:len(b) // 2])
  elif kind == 'checkpoints_a_file':
    shutil.rmtree(os.path.join(workdir, 'checkpoints'))
    with open(os.path.join(workdir, 'checkpoints'), 'w') as f:
      f.write('moved elsewhere\n')
  elif kind == 'checkpoint_step_a_file':
    with open(os.path.join(workdir, 'checkpoints', '99'), 'w') as f:
      f.write('not a checkpoint\n')
    names.append('99')
  else:
    raise ValueError(kind)
  return names, 'train'


def train_in_process(config, workdir):
  from vae_jax.core import train
  return train.train_and_evaluate(config, workdir)


def workdir_case(rng, kind, finished, reference, scratch, data_dir):
  from vae_jax.core import experiment
  from vae_jax.infra import run_clock
  workdir = os.path.join(scratch, 'run')
  shutil.rmtree(workdir, ignore_errors=True)
  shutil.copytree(finished, workdir)
  names, entry = damage_workdir(rng, workdir, kind)
  before = _sha_tree(workdir)
  calls = {'train': lambda: train_in_process(tiny_config(data_dir), workdir),
           'restore': lambda: experiment.restore_state(workdir, warn=lambda _: None),
           'timing': lambda: run_clock.read(workdir)}
  warnings = []
  handler = _ListHandler(warnings)
  logging.getLogger().addHandler(handler)
  try:
    error = attempt(calls[entry])
  finally:
    logging.getLogger().removeHandler(handler)
  if kind in RECOVERS:
    if error is not None:
      return f'did not recover: {type(error).__name__}: {str(error)[:200]}'
    got = _sha_tree(workdir)
    same = {k: got.get(k) == v for k, v in reference.items()
            if k in ('metrics.jsonl', 'config.json')}
    if not all(same.values()):
      return f'recovered to a different run: {sorted(k for k, s in same.items() if not s)}'
    if kind.startswith('checkpoint_') and kind not in ('checkpoint_tmp_leftover',
                                                     'checkpoint_step_a_file'):
      if _final_digest(workdir) != _final_digest(finished):
        return 'recovered to a different final state'
    return None
  problem = judge_refusal(error, names)
  if problem is None and _sha_tree(workdir) != before:
    changed = sorted(k for k in set(before) | set(_sha_tree(workdir))
                     if before.get(k) != _sha_tree(workdir).get(k))
    problem = f'refused, but changed {changed[:5]}'
  return problem


class _ListHandler(logging.Handler):
  def __init__(self, out):
    super().__init__(logging.WARNING)
    self.out = out

  def emit(self, record):
    self.out.append(record.getMessage())


def _final_digest(workdir):
  from vae_jax.core import experiment
  from vae_jax.infra import checkpointing
  _, _, step, state, _ = experiment.restore_state(workdir, warn=lambda _: None)
  return step, checkpointing.state_digest(state)


# ----------------------------------------------------------------------------
# The same cases through the command line
# ----------------------------------------------------------------------------
def cli_check(args, data_dir, watched):
  """None when ``python -m vae_jax.main args`` exits 2 with one error line, no
  traceback, and ``watched`` unchanged; else why not."""
  before = _sha_tree(watched)
  env = dict(os.environ, VAE_JAX_DATA_DIR=data_dir, TF_CPP_MIN_LOG_LEVEL='3')
  proc = subprocess.run([sys.executable, '-m', 'vae_jax.main', f'--config={CONFIG}', *args],
                        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
  lines = [l for l in proc.stderr.splitlines() if l.startswith('error:')]
  if proc.returncode != 2:
    return f'exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}'
  if 'Traceback' in proc.stderr or len(lines) != 1:
    return f'not one error line: {proc.stderr[-300:]!r}'
  if _sha_tree(watched) != before:
    return 'the workdir was changed'
  return None


CLI_FLAGS = {  # a flag a user may type, per config field the fuzzer damages
    'latent_dim': ('0', '-3', 'two', '1.5'), 'learning_rate': ('0', 'nan', 'inf', 'abc'),
    'model.dropout_rate': ('1.0', '-0.1', 'nan'), 'data.binarize': ('sometimes',),
    'model.family': FAMILY_VALUES, 'no_such_field': ('1',), 'model.no_such_field': ('x',),
    'kl_cycle_ratio': ('0', '2'), 'seed': ('-1',), 'num_epochs': ('0',)}


def tiny_flags(workdir, data_dir, *extra):
  fields = {e.split('=')[0] for e in extra}
  flags = [f'--config.{k}={v}' for k, v in TINY.items() if k != 'progress']
  flags = [f for f in flags if f.split('=')[0] not in fields]
  return [f'--workdir={workdir}', f'--config.data.dir={data_dir}', *flags, '--quiet', *extra]


# ----------------------------------------------------------------------------
# The campaign
# ----------------------------------------------------------------------------
def run_group(name, kinds, cases, case_fn, rng, log):
  """Runs ``cases`` cases of ``name`` (kinds drawn in turn, shuffled); returns the record."""
  record = {'cases': 0, 'failures': [], 'by_kind': {}}
  order = [kinds[i % len(kinds)] for i in range(cases)]
  rng.shuffle(order)
  started = time.perf_counter()
  for i, kind in enumerate(order):
    case_rng = random.Random(rng.getrandbits(64))
    problem = case_fn(case_rng, kind)
    record['cases'] += 1
    record['by_kind'][kind] = record['by_kind'].get(kind, 0) + 1
    if problem:
      record['failures'].append({'case': i, 'kind': kind, 'problem': problem})
      log(f'{name} case {i} ({kind}): FAILED: {problem}')
  record['seconds'] = round(time.perf_counter() - started, 1)
  log(f'{name}: {record["cases"]} cases, {len(record["failures"])} failures, '
      f'{record["seconds"]:.0f} s')
  return record


def finished_run(directory, data_dir):
  """A finished tiny run in ``directory`` (2 checkpoints of 4 steps, metrics, timing)."""
  from vae_jax.infra import interrupts  # noqa: F401  (train installs its handlers itself)
  train_in_process(tiny_config(data_dir), directory)
  return directory


def fuzz(seed, cases, cli_cases, data_dir, scratch, groups=('idx', 'config', 'workdir'), log=print,
         workdir_cases=None):
  rng = random.Random(seed)
  results = {'seed': seed, 'groups': {}}
  idx_dir = make_idx_dir(os.path.join(scratch, 'idx_base'), data_dir)
  finished = finished_run(os.path.join(scratch, 'finished'), idx_dir)
  reference = _sha_tree(finished)
  case_fns = {
      'idx': (IDX_KINDS, lambda r, k: idx_case(r, k, idx_dir, scratch)),
      'config': (('value',) * 7 + ('missing', 'unknown', 'family'), lambda r, k: config_case(r, k, idx_dir)),
      'workdir': (WORKDIR_KINDS, lambda r, k: workdir_case(r, k, finished, reference, scratch,
                                                           idx_dir)),
  }
  with contextlib.redirect_stderr(io.StringIO()):  # absl's warnings of the recovered cases
    for name in groups:
      kinds, fn = case_fns[name]
      n = workdir_cases if name == 'workdir' and workdir_cases else cases
      results['groups'][name] = run_group(name, kinds, n, fn, rng, log)
  if cli_cases:
    results['groups']['cli'] = cli_group(rng, cli_cases, data_dir, idx_dir, finished, scratch,
                                         log)
  return results


def cli_group(rng, cases, data_dir, idx_dir, finished, scratch, log):
  """A sample of each group through ``python -m vae_jax.main``, on a copy of a finished run."""
  def case(r, kind):
    workdir = os.path.join(scratch, 'cli_run')
    shutil.rmtree(workdir, ignore_errors=True)
    shutil.copytree(finished, workdir)
    if kind == 'idx':
      directory = os.path.join(scratch, 'cli_idx')
      shutil.rmtree(directory, ignore_errors=True)
      shutil.copytree(idx_dir, directory)
      if damage_idx(r, directory, r.choice([k for k in IDX_KINDS if k != 'missing'])) is None:
        return None  # the damage left the data intact
      return cli_check(tiny_flags(workdir, directory), data_dir, workdir)
    if kind == 'config':
      field = r.choice(sorted(CLI_FLAGS))
      return cli_check(tiny_flags(workdir, idx_dir, f'--config.{field}={r.choice(CLI_FLAGS[field])}'),
                       data_dir, workdir)
    damaged = r.choice(sorted(set(WORKDIR_KINDS) - RECOVERS - {
        'timing_truncated', 'timing_not_json', 'timing_a_list'}))
    damage_workdir(r, workdir, damaged, entry='train')
    return cli_check(tiny_flags(workdir, idx_dir), data_dir, workdir)
  return run_group('cli', ('idx', 'config', 'workdir'), cases, case, rng, log)


def markdown(results):
  lines = ['<!-- generated by vae_jax/bench/fuzz_inputs.py from results/fuzz_inputs.json; '
           'edit the script, not this text -->', '',
           f'Seed {results["seed"]}, {results["machine"]}; {results["seconds"] / 60:.0f} min.'
           + (' A --quick smoke run: these counts are not the fuzzers.' if results['quick']
              else ''), '',
           '| group | cases | kinds of damage | failures | failures before the fixes |',
           '|---|---:|---:|---:|---:|']
  labels = {'idx': 'IDX files (`data.load`)', 'config': 'config values (`config.validate`)',
            'workdir': "a workdir's own files (training rerun, restore, timing)",
            'cli': 'a sample of the three through `python -m vae_jax.main`'}
  for name in ('idx', 'config', 'workdir', 'cli'):
    if name not in results['groups']:
      continue
    g = results['groups'][name]
    before = results.get('failures_before_fixes', {}).get(name)
    found = ('–' if before is None else f'{before["failures"]} of {before["cases"]}'
             + (f' ({", ".join(f"{n} {k}" for k, n in before["by_kind"].items())})'
                if before['by_kind'] else ''))
    lines.append(f'| {labels[name]} | {g["cases"]} | {len(g["by_kind"])} | '
                 f'{len(g["failures"])} | {found} |')
  return '\n'.join(lines)


def main(argv=None, prog='python -m vae_jax.bench.fuzz_inputs'):
  from vae_jax.bench import publish as publish_benchmark
  parser = flags.Parser(prog, __doc__.split('\n\n')[0],
                        f'{prog} --seed=0 --json=results/fuzz_inputs.json')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--cases', type=int, default=300, help='cases per group')
  parser.add_argument('--workdir_cases', type=int, default=None,
                      help='cases of the workdir group (default --cases): each trains or '
                           'restores a run, seconds apiece')
  parser.add_argument('--cli', type=int, default=12, help='cases through the command line')
  parser.add_argument('--groups', default='idx,config,workdir')
  parser.add_argument('--quick', action='store_true', help='20 cases a group, 3 on the CLI')
  parser.add_argument('--json', default=None)
  parser.add_argument('--before', default=None, metavar='JSON',
                      help='the JSON of a run on the code before its fixes: its failures '
                           'are kept in the results, by group and kind')
  parser.add_argument('--add_before', default=None, metavar='JSON',
                      help='add --before to this existing results file and stop')
  parser.add_argument('--data_dir', default=os.environ.get('VAE_JAX_DATA_DIR', ''))
  publish_benchmark.add_publish_flag(parser, 'fuzz_inputs.json')
  args = parser.parse_args(argv)
  if args.add_before:  # an existing results file gains what --before found, and nothing else
    with open(args.add_before) as f:
      results = json.load(f)
    add_before(results, args.before)
    with open(args.add_before, 'w') as f:
      json.dump(results, f, indent=1, sort_keys=True)
      f.write('\n')
    print(markdown(results))
    return results
  if publish_benchmark.publish_if_asked(args.publish, 'fuzz_inputs.json', 'fuzz_inputs'):
    return None
  if not args.data_dir:
    parser.error('--data_dir (or $VAE_JAX_DATA_DIR) must name the directory of IDX files')
  cases, cli_cases = (20, 3) if args.quick else (args.cases, args.cli)
  from vae_jax.infra import run_clock
  started = time.perf_counter()
  with tempfile.TemporaryDirectory(prefix='vae_jax_fuzz_') as scratch:
    results = fuzz(args.seed, cases, cli_cases, os.path.abspath(args.data_dir), scratch,
                   tuple(g for g in args.groups.split(',') if g), log=lambda m: print(m, flush=True),
                   workdir_cases=None if args.quick else args.workdir_cases)
  results.update(quick=args.quick, machine=run_clock.machine_description(),
                 seconds=round(time.perf_counter() - started, 1))
  if args.before:
    add_before(results, args.before)
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(results, f, indent=1, sort_keys=True)
      f.write('\n')
  print(markdown(results))
  failures = sum(len(g['failures']) for g in results['groups'].values())
  print(f'{failures} failures')
  return results


def add_before(results, path):
  """Adds what a run of the same seed on the code before the fixes found, by group and kind."""
  with open(path) as f:
    before = json.load(f)
  if before['seed'] != results['seed']:
    raise SystemExit(f'error: {path} is of seed {before["seed"]}, not {results["seed"]}')
  results['failures_before_fixes'] = {
      name: {'cases': g['cases'], 'failures': len(g['failures']),
             'by_kind': {kind: sum(f['kind'] == kind for f in g['failures'])
                         for kind in sorted({f['kind'] for f in g['failures']})}}
      for name, g in before['groups'].items()}


if __name__ == '__main__':
  main()
