"""Every bad input a user can give, through the command line as a user gives it.

Each case must end with a non-zero exit status (2 for a user error), exactly
one line on stderr starting with ``error:`` that names the problem and the
fix, no traceback, and nothing created, changed or deleted in the workdir:
every command runs in a copy of a finished run, compared byte for byte before
and after.
"""

import gzip
import os
import shutil
import struct

import numpy as np
import pytest

from conftest import cli, one_error_line, snapshot, straight_run, train_args, write_idx
from vae_jax.core import data


@pytest.fixture(scope='module')
def finished_run(tmp_path_factory, data_dir):
  """A finished tiny run (config.json, metrics.jsonl, checkpoint 8, TensorBoard)."""
  return straight_run(tmp_path_factory, data_dir)


@pytest.fixture
def workdir(finished_run, tmp_path):
  return str(shutil.copytree(finished_run, tmp_path / 'run'))


def assert_refused(proc, workdir, before, *must_contain, code=2):
  assert proc.returncode == code, proc.stderr[-3000:]
  line = one_error_line(proc)
  for text in must_contain:
    assert text in line, line
  assert snapshot(workdir) == before, 'the workdir was changed'
  return line


BAD_FLAGS = [
    # flags (space-separated), what the error line must say
    ('--config.data.name=cifar10', ["config.data.name='cifar10'", 'use one of']),
    ('--config.model.kind=gan', ["config.model.kind='gan'", 'use one of']),
    ('--config.model.family=transformer', ["config.model.family='transformer'", 'use one of']),
    ('--config.latent_dim=0', ['config.latent_dim=0', 'positive integer']),
    ('--config.latent_dim=-3', ['config.latent_dim=-3', 'positive integer']),
    ('--config.batch_size=0', ['config.batch_size=0', 'positive integer']),
    ('--config.batch_size=-64', ['config.batch_size=-64', 'positive integer']),
    ('--config.batch_size=100000', ['batch_size=100000 exceeds the 512 training images',
                                    'lower it']),
    ('--config.eval_batch_size=0', ['config.eval_batch_size=0']),
    ('--config.learning_rate=0', ['config.learning_rate=0', 'positive number']),
    ('--config.learning_rate=-0.001', ['config.learning_rate=-0.001', 'positive number']),
    ('--config.learning_rate=abc', ['--config.learning_rate=abc', 'could not convert']),
    ('--config.latent_dim=two', ['--config.latent_dim=two', 'invalid literal']),
    ('--config.model.dropout_rate=1.0', ['config.model.dropout_rate=1.0', 'in [0, 1)']),
    ('--config.model.dropout_rate=-0.1', ['config.model.dropout_rate=-0.1', 'in [0, 1)']),
    ('--config.kl_weight=-1', ['config.kl_weight=-1', '≥ 0']),
    ('--config.num_epochs=0', ['config.num_epochs=0', 'positive integer']),
    ('--config.seed=-1', ['config.seed=-1', '≥ 0']),
    ('--config.data.binarize=sometimes', ["config.data.binarize='sometimes'", 'use one of']),
    ('--config.model.noise=salt', ["config.model.noise='salt'", 'use one of']),
    ('--config.model.mlp.hidden_sizes=()', ['config.model.mlp.hidden_sizes=()', 'e.g. "(512,)"']),
    ('--config.model.family=conv --config.model.conv.features=(0,)',
     ['config.model.conv.features=(0,)', 'positive integers']),
    ('--config.model.family=rnn --config.model.rnn.cell=tanh',
     ["config.model.rnn.cell='tanh'", 'use one of']),
    ('--config.no_such_field=1', ["unknown config field 'no_such_field'", 'vae_jax/core/config.py']),
    ('--no_such_flag', ['unrecognized arguments: --no_such_flag', '--help']),
    ('--config.batch_size=1.5', ['--config.batch_size=1.5', 'invalid literal for int()']),
    ('--config.progress=maybe', ["'maybe' is not a bool", 'true or false']),
    ('--config.model=mlp', ['config.model is a group of fields', '--config.model.']),
    ('stray_argument', ["unexpected arguments ['stray_argument']", '--flag=value']),
]


@pytest.mark.parametrize('flag,expected', BAD_FLAGS, ids=[b[0].lstrip('-') for b in BAD_FLAGS])
def test_bad_flag(workdir, data_dir, flag, expected):
  before = snapshot(workdir)
  assert_refused(cli(train_args(workdir, *flag.split()), data_dir), workdir, before, *expected)


def test_missing_config_and_workdir_flags(workdir, data_dir):
  before = snapshot(workdir)
  assert_refused(cli([], data_dir), workdir, before, '--config and --workdir are required')
  assert_refused(cli([f'--workdir={workdir}'], data_dir), workdir, before,
                 '--config and --workdir are required')


@pytest.mark.parametrize('content,expected', [
    (None, ["cannot load --config=", 'No such file', 'pass an existing config file']),
    ('def get_config(:\n', ['cannot load config file', 'invalid syntax at line 1', 'fix the file']),
    ('def get_config():\n  raise ValueError("no such model")\n',
     ['cannot load config file', 'get_config() raised ValueError: no such model',
      'fix the file']),
], ids=['missing', 'syntax-error', 'get_config-raises'])
def test_unusable_config_file(workdir, data_dir, tmp_path, content, expected):
  path = tmp_path / 'my_config.py'
  if content is not None:
    path.write_text(content)
  before = snapshot(workdir)
  args = [f'--config={path}', f'--workdir={workdir}']
  assert_refused(cli(args, data_dir), workdir, before, *expected)


# --- data ------------------------------------------------------------------
@pytest.fixture(scope='module')
def small_data(tmp_path_factory, data_dir):
  """A valid IDX directory: the first 600 training and 200 test images of MNIST."""
  root = tmp_path_factory.mktemp('idx')
  for split, n in (('train', 600), ('test', 200)):
    x, y = data.load('mnist', split, data_dir=data_dir)
    image_path, label_path = data.idx_paths(str(root), 'mnist', split)
    write_idx(image_path, np.round(x[:n, ..., 0] * 255))
    write_idx(label_path, y[:n])
  return str(root)


def _damage(path, kind):
  if kind == 'missing':
    os.remove(path)
    return
  with gzip.open(path, 'rb') as f:
    raw = f.read()
  if kind == 'magic':
    raw = struct.pack('>I', 0x801) + raw[4:]
  elif kind == 'truncated':
    raw = raw[:len(raw) // 2]
  elif kind == 'count':  # a valid file of 599 images beside 600 labels
    raw = raw[:4] + struct.pack('>I', 599) + raw[8:16 + 599 * 784]
  elif kind == 'not-gzip':
    with open(path, 'wb') as f:
      f.write(b'<html>404 Not Found</html>')
    return
  with gzip.open(path, 'wb', compresslevel=1) as f:
    f.write(raw)


@pytest.mark.parametrize('kind,expected', [
    ('missing', ['missing data file', 'train-images-idx3-ubyte.gz', 'point data_dir']),
    ('magic', ['magic number 0x00000801, expected 0x00000803', 're-download']),
    ('truncated', ['is truncated', 're-download']),
    ('count', ['has 599 images but', 'has 600 labels', 're-download']),
    ('not-gzip', ['cannot decompress', 're-download']),
])
def test_bad_data_file(workdir, data_dir, small_data, tmp_path, kind, expected):
  root = str(shutil.copytree(small_data, tmp_path / 'idx'))
  _damage(data.idx_paths(root, 'mnist', 'train')[0], kind)
  before = snapshot(workdir)
  proc = cli(train_args(workdir, f'--config.data.dir={root}'), data_dir)
  assert_refused(proc, workdir, before, *expected)


def test_small_data_directory_is_valid(workdir, data_dir, small_data, tmp_path):
  # Guards the test above: undamaged, the same directory trains.
  w = str(tmp_path / 'fresh')
  proc = cli(train_args(w, f'--config.data.dir={small_data}'), data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]


def test_missing_data_directory(workdir, data_dir, tmp_path):
  before = snapshot(workdir)
  proc = cli(train_args(workdir, f'--config.data.dir={tmp_path / "nowhere"}'), data_dir)
  assert_refused(proc, workdir, before, 'data directory', 'does not exist',
                 'pass an existing directory')


@pytest.mark.parametrize('name,split,expected', [
    ('cifar10', 'train', "unknown data set 'cifar10': use one of"),
    ('mnist', 'validation', "unknown split 'validation': use one of"),
])
def test_unknown_data_set_or_split_in_the_library(data_dir, name, split, expected):
  # The CLI has no split option: data.load is where a split is named.
  with pytest.raises(data.DataError, match=expected.replace('(', r'\(')):
    data.load(name, split, data_dir=data_dir)


# --- workdir ---------------------------------------------------------------
def test_workdir_that_is_a_file(tmp_path, data_dir):
  path = tmp_path / 'notes.txt'
  path.write_text('precious')
  before = snapshot(str(tmp_path))
  assert_refused(cli(train_args(str(path)), data_dir), str(tmp_path), before,
                 'is a file', 'pass a directory path')


def test_workdir_under_a_file(tmp_path, data_dir):
  path = tmp_path / 'notes.txt'
  path.write_text('precious')
  before = snapshot(str(tmp_path))
  assert_refused(cli(train_args(str(path / 'run')), data_dir), str(tmp_path), before,
                 'cannot create --workdir', 'pick a path you can write to')


def test_workdir_not_writable(workdir, data_dir):
  os.chmod(workdir, 0o555)
  try:
    if os.access(workdir, os.W_OK):
      pytest.skip('running as root: permissions do not stop writes '
                  '(test_workdir_under_a_file covers an unusable path)')
    before = snapshot(workdir)
    assert_refused(cli(train_args(workdir), data_dir), workdir, before,
                   'is not writable', 'fix its permissions')
  finally:
    os.chmod(workdir, 0o755)


# --- evaluation ------------------------------------------------------------
@pytest.mark.parametrize('layout,expected', [
    ('empty', 'has no config.json'),
    ('no-checkpoints-dir', 'has no checkpoints/ directory'),
    ('empty-checkpoints-dir', 'holds no checkpoint'),
])
def test_evaluate_a_workdir_without_checkpoint(workdir, data_dir, layout, expected):
  if layout == 'empty':
    shutil.rmtree(workdir)
    os.makedirs(workdir)
  else:
    shutil.rmtree(os.path.join(workdir, 'checkpoints'))
    if layout == 'empty-checkpoints-dir':
      os.makedirs(os.path.join(workdir, 'checkpoints'))
  before = snapshot(workdir)
  proc = cli(['--workdir', workdir], data_dir, module='vae_jax.core.evaluate')
  line = assert_refused(proc, workdir, before, expected)
  if layout != 'empty':
    assert 'train it first' in line
