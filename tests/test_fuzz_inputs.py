"""A short run of the input fuzzers, the failures they found (each a regression test), and
proof that the harness reports a broken case."""

import gzip
import json
import os
import random
import re
import shutil
import struct

import numpy as np
import pytest

from conftest import assert_docs_block_current, write_idx
from vae_jax.bench import fuzz_inputs
from vae_jax.core import config as config_lib
from vae_jax.core import data
from vae_jax.infra import run_clock, workdir as workdir_lib


@pytest.fixture(scope='module')
def idx_dir(tmp_path_factory, data_dir):
  return fuzz_inputs.make_idx_dir(str(tmp_path_factory.mktemp('idx')), data_dir)


def test_short_fuzz_of_idx_files_and_config_values_finds_nothing(idx_dir, tmp_path):
  rng = random.Random(0)
  for name, kinds, fn in (
      ('idx', fuzz_inputs.IDX_KINDS,
       lambda r, k: fuzz_inputs.idx_case(r, k, idx_dir, str(tmp_path))),
      ('config', ('value', 'value', 'missing', 'unknown', 'family'),
       lambda r, k: fuzz_inputs.config_case(r, k, idx_dir))):
    record = fuzz_inputs.run_group(name, kinds, 60, fn, rng, log=lambda _: None)
    assert record['cases'] == 60 and len(record['by_kind']) == len(set(kinds))
    assert record['failures'] == [], record['failures']


def test_short_fuzz_of_a_workdir_finds_nothing(idx_dir, tmp_path):
  finished = fuzz_inputs.finished_run(str(tmp_path / 'finished'), idx_dir)
  reference = fuzz_inputs._sha_tree(finished)  # pylint: disable=protected-access
  kinds = ('config_not_json', 'metrics_half_line', 'timing_truncated', 'lock_garbage',
           'checkpoint_file_truncated', 'checkpoints_all_damaged')
  record = fuzz_inputs.run_group(
      'workdir', kinds, len(kinds),
      lambda r, k: fuzz_inputs.workdir_case(r, k, finished, reference, str(tmp_path), idx_dir),
      random.Random(1), log=lambda _: None)
  assert record['failures'] == [], record['failures']


# ---------------------------------------------------------------------------
# The harness can fail
# ---------------------------------------------------------------------------
def test_a_validate_that_accepts_everything_is_reported(idx_dir, monkeypatch):
  monkeypatch.setattr(config_lib, 'validate', lambda c: None)
  record = fuzz_inputs.run_group(
      'config', ('value', 'missing'), 20,
      lambda r, k: fuzz_inputs.config_case(r, k, idx_dir), random.Random(0), log=lambda _: None)
  assert record['failures'] and all('accepted without a word' in f['problem']
                                    for f in record['failures'])


def test_a_loader_that_crashes_or_writes_is_reported(idx_dir, tmp_path, monkeypatch):
  def crash(*args, **kwargs):
    raise KeyError('boom')
  monkeypatch.setattr(data, 'load', crash)
  problem = fuzz_inputs.idx_case(random.Random(0), 'wrong_magic', idx_dir, str(tmp_path))
  assert problem.startswith('a traceback: KeyError')

  def refuse_but_write(name, split, data_dir):
    with open(os.path.join(data_dir, 'mnist', 'note'), 'w') as f:
      f.write('x')
    every = [p for s in ('train', 'test') for p in data.idx_paths(data_dir, name, s)]
    raise data.DataError(f'{" ".join(every)} are bad: re-download them')
  monkeypatch.setattr(data, 'load', refuse_but_write)
  problem = fuzz_inputs.idx_case(random.Random(0), 'wrong_shape', idx_dir, str(tmp_path))
  assert problem == 'the data directory was changed'


@pytest.mark.parametrize('error,expected', [
    (None, 'accepted without a word'),
    (ValueError('x'), 'a traceback'),
    (data.DataError('two\nlines in file.gz: re-download'), 'more than one line'),
    (data.DataError('something is wrong: re-download'), 'names none of'),
    (data.DataError('file.gz is wrong'), 'says nothing to do'),
])
def test_judge_refusal_fails_each_way(error, expected):
  assert fuzz_inputs.judge_refusal(error, ['file.gz']).startswith(expected)
  assert fuzz_inputs.judge_refusal(data.DataError('file.gz is bad: re-download it'),
                                   ['file.gz']) is None


# ---------------------------------------------------------------------------
# What the fuzzers found: one regression test each
# ---------------------------------------------------------------------------
@pytest.fixture
def small(idx_dir, tmp_path):
  return str(shutil.copytree(idx_dir, tmp_path / 'idx'))


def _rewrite_raw(path, fn):
  with gzip.open(path, 'rb') as f:
    raw = f.read()
  with gzip.open(path, 'wb') as f:
    f.write(fn(raw))


def test_labels_outside_the_class_range_are_refused(small):
  labels = data.idx_paths(small, 'mnist', 'train')[1]
  _rewrite_raw(labels, lambda raw: raw[:8 + 5] + bytes([42]) + raw[8 + 6:])
  with pytest.raises(data.DataError, match=r'holds label 42 at example 5, but mnist has 10 '
                                           r'classes \(0 to 9\): re-download'):
    data.load('mnist', 'train', data_dir=small)


def test_files_of_no_examples_are_refused(small):
  images, labels = data.idx_paths(small, 'mnist', 'test')
  write_idx(images, np.zeros((0, 28, 28)))
  write_idx(labels, np.zeros((0,)))
  with pytest.raises(data.DataError, match='holds no examples'):
    data.load('mnist', 'test', data_dir=small)


def test_train_and_test_swapped_are_refused(small):
  for a, b in zip(data.idx_paths(small, 'mnist', 'train'), data.idx_paths(small, 'mnist', 'test')):
    os.rename(a, a + '.x')
    os.rename(b, a)
    os.rename(a + '.x', b)
  for split in ('train', 'test'):
    with pytest.raises(data.DataError, match='holds 60 images but .* only 20: the train and '
                                             'test files look swapped'):
      data.load('mnist', split, data_dir=small)


def test_a_damaged_deflate_stream_is_one_data_error(small):
  images = data.idx_paths(small, 'mnist', 'train')[0]
  with open(images, 'rb') as f:
    packed = bytearray(f.read())
  packed[40] ^= 0xff  # inside the deflate stream: zlib.error, not an OSError
  with open(images, 'wb') as f:
    f.write(bytes(packed))
  with pytest.raises(data.DataError, match='cannot decompress'):
    data.load('mnist', 'train', data_dir=small)


def test_a_huge_count_in_a_header_does_not_overflow(small):
  images = data.idx_paths(small, 'mnist', 'train')[0]
  _rewrite_raw(images, lambda raw: raw[:4] + struct.pack('>3I', 2**32 - 1, 2**32 - 1,
                                                          2**32 - 1) + raw[16:])
  with pytest.raises(data.DataError, match=f'promises {(2**32 - 1) ** 3} values'):
    data.load('mnist', 'train', data_dir=small)


def _config(**changes):
  c = fuzz_inputs.tiny_config('/data')
  for field, value in changes.items():
    c = fuzz_inputs.with_value(c, field, value)
  return c


@pytest.mark.parametrize('field,value,expected', [
    ('learning_rate', float('nan'), 'config.learning_rate=nan must be a positive number'),
    ('kl_weight', float('inf'), 'config.kl_weight=inf must be ≥ 0'),
    ('model.max_norm', [1], 'config.model.max_norm=[1] must be ≥ 0'),
    ('model.max_norm', {'a': 1}, 'config.model.max_norm.a is not a config field'),
    ('model.mlp.top_hidden_sizes', {}, 'config.model.mlp.top_hidden_sizes={} must be a non-empty'),
    ('new_node', {}, 'config.new_node is not a config field'),
    ('model.mlp.hidden_sizes', 3, 'config.model.mlp.hidden_sizes=3 must be a non-empty'),
    ('model.kind', ['vae'], "config.model.kind=['vae'] is not valid: use one of"),
    ('data.name', ['mnist'], "config.data.name=['mnist'] is not valid"),
    ('progress', 'no', "config.progress='no' must be True or False"),
    ('distributed', 1, 'config.distributed=1 must be True or False'),
    ('data.dir', 5, 'config.data.dir=5 must be a directory path'),
    ('model.family', '.relative:build', "config.model.family='.relative:build' is not valid"),
    ('model.family', 7, 'config.model.family=7 is not valid: use one of'),
    ('model.likelihood', fuzz_inputs.MISSING, 'config.model.likelihood is missing: set it'),
    ('learning_rat', 0.1, 'config.learning_rat is not a config field: remove it'),
    ('model.mlp.hidden_size', 3, 'config.model.mlp.hidden_size is not a config field'),
])
def test_validate_refuses_in_one_line(field, value, expected):
  with pytest.raises(config_lib.ConfigError) as e:
    config_lib.validate(_config(**{field: value}))
  assert expected in str(e.value) and '\n' not in str(e.value), str(e.value)


def test_a_config_error_is_one_line():
  assert str(config_lib.ConfigError('config.x=ConfigDict(\n  a: 1\n) is bad')) == (
      'config.x=ConfigDict( a: 1 ) is bad')


def test_an_outside_familys_own_node_is_not_an_unknown_field():
  c = _config(**{'model.family': 'vae_jax.core.models:_mlp', 'model.wide.width': 8})
  config_lib.validate(c)


@pytest.mark.parametrize('text,expected', [
    ('{"seed": ', 'config.json is damaged (JSONDecodeError'),
    ('[1, 2]', 'config.json is damaged (it holds a JSON list, not a config)'),
])
def test_a_damaged_config_json_is_one_workdir_error(tmp_path, text, expected):
  (tmp_path / 'config.json').write_text(text)
  for call in (lambda: config_lib.from_workdir(str(tmp_path)),
               lambda: config_lib.check_workdir(str(tmp_path), _config())):
    with pytest.raises(workdir_lib.WorkdirError, match=re.escape(expected)):
      call()


def test_a_damaged_metrics_line_names_the_file_and_line(tmp_path):
  (tmp_path / 'metrics.jsonl').write_text('{"step": 1, "split": "train"}\n{"step": 2, "spl')
  with pytest.raises(workdir_lib.WorkdirError, match=r'metrics.jsonl line 2 is damaged'):
    workdir_lib.truncate_metrics(str(tmp_path), 1)
  (tmp_path / 'metrics.jsonl').write_text('{"step": "1"}\n')
  with pytest.raises(workdir_lib.WorkdirError, match=r"row 1 has step '1', not a step number"):
    workdir_lib.truncate_metrics(str(tmp_path), 1)


def test_a_damaged_timing_json_is_one_workdir_error(tmp_path):
  (tmp_path / 'timing.json').write_text('segments: 3')
  with pytest.raises(workdir_lib.WorkdirError, match='timing.json is damaged'):
    run_clock.read(str(tmp_path))


def test_the_docs_table_is_current():
  assert_docs_block_current(fuzz_inputs, 'fuzz_inputs.json', docs='docs/reliability.md')
  with open(os.path.join(fuzz_inputs.ROOT, 'results', 'fuzz_inputs.json')) as f:
    results = json.load(f)
  assert all(len(g['failures']) == 0 for g in results['groups'].values())
  assert min(g['cases'] for g in results['groups'].values() if g is not results['groups'].get('cli')) >= 100
