"""vae_jax/bench/seeds_vmapped.py: the vmapped program trains what one seed trains; docs agree."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from vae_jax.bench import seeds_vmapped
from conftest import assert_docs_block_current, assert_publish_refuses_missing_or_quick  # noqa: E402


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
  assert_docs_block_current(seeds_vmapped, 'seeds_vmapped.json')


def test_publish_refuses_a_missing_file_or_a_quick_run(tmp_path):
  assert_publish_refuses_missing_or_quick(seeds_vmapped.main, tmp_path)
