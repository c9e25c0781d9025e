"""experiments/seeds_vmapped.py: the vmapped program trains what one seed trains; docs agree."""

import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'experiments'))
import seeds_vmapped  # noqa: E402  pylint: disable=wrong-import-position


def test_vmapped_seeds_train_what_each_seed_trains_alone(data_dir):
  row = seeds_vmapped.measure_workload('mnist_vae_2d', data_dir, num_seeds=2, steps=3, reps=1,
                                       **{'data.num_train': 512, 'data.num_test': 128})
  # Only the float rounding of batched dots may differ, not the computation.
  assert 0 <= row['max_rel_loss_difference'] < 1e-5
  assert row['seeds'] == 2 and row['one_seed']['median'] > 0 and row['vmapped']['median'] > 0


def test_table_states_the_ratio_of_the_two_rates():
  rate = lambda median, cpu: {'median': median, 'per_cpu_second': cpu, 'reps': 5}
  results = {'machine': {'cpu': 'Some CPU', 'cpu_count': 2}, 'jax': '0.0', 'seeds': 3,
             'quick': False,
             'workloads': [{'label': 'train X', 'one_seed': rate(1000.0, 600.0),
                            'vmapped': rate(800.0, 450.0), 'max_rel_loss_difference': 2e-7}]}
  text = seeds_vmapped.markdown(results)
  assert '| train X | 1,000 | 800 | 0.80x (0.75x) | 2.0e-07 |' in text
  assert 'Some CPU (2 CPUs)' in text and 'mean nothing' not in text
  assert 'slower for every workload' in text


def test_docs_block_equals_what_the_result_file_says():
  with open(os.path.join(ROOT, 'results', 'seeds_vmapped.json')) as f:
    results = json.load(f)
  with open(os.path.join(ROOT, 'docs', 'performance.md')) as f:
    text = f.read()
  start = text.index(seeds_vmapped.BEGIN) + len(seeds_vmapped.BEGIN) + 1
  published = text[start:text.index(seeds_vmapped.END) - 1]
  assert not results['quick']
  assert published == seeds_vmapped.markdown(results), (
      'docs/performance.md is stale: run python experiments/seeds_vmapped.py '
      '--publish=results/seeds_vmapped.json')


def test_publish_refuses_a_missing_file_or_a_quick_run(tmp_path):
  with pytest.raises(SystemExit, match='does not exist: write it first'):
    seeds_vmapped.main([f'--publish={tmp_path / "none.json"}'])
  quick = tmp_path / 'quick.json'
  quick.write_text(json.dumps({'quick': True}))
  with pytest.raises(SystemExit, match='smoke run'):
    seeds_vmapped.main([f'--publish={quick}', f'--docs={tmp_path / "docs.md"}'])
