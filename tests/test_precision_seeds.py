"""precision_seeds: its declared plan, the order of its jobs, and one pair trained end to end."""

import json
import subprocess
import sys

import pytest

from vae_jax.study import catalog, power
from vae_jax.study import precision_seeds as seeds


def test_declared_plan_extends_the_study_s_own_seeds():
  assert seeds.STUDY_SEEDS == power.STUDY_SEEDS[seeds.MODEL] == catalog.CONV_SEEDS
  jobs = seeds.jobs()
  assert len(jobs) == 2 * (seeds.TOTAL_SEEDS - seeds.STUDY_SEEDS)
  # Seed by seed, both dtypes in a row: an interrupted run leaves at most one unpaired model.
  assert jobs[:4] == [(4, 'float32'), (4, 'bfloat16'), (5, 'float32'), (5, 'bfloat16')]
  assert {s for s, _ in jobs}.isdisjoint(range(seeds.STUDY_SEEDS))


def test_collect_pairs_only_seeds_finished_at_both_dtypes(tmp_path):
  for seed, dtype in [(4, 'float32'), (4, 'bfloat16'), (5, 'float32')]:
    d = tmp_path / dtype / 'models' / f'{seeds.MODEL}_seed{seed}'
    d.mkdir(parents=True)
    (d / seeds.ROW_FILE).write_text(json.dumps({'seed': seed, 'dtype': dtype, 'elbo': -1.0}))
  rows, paired = seeds.collect(str(tmp_path), total=6)
  assert [(r['seed'], r['dtype']) for r in rows] == [(4, 'float32'), (4, 'bfloat16'),
                                                    (5, 'float32')]
  assert paired == [4]


def test_changing_the_declared_number_of_seeds_is_refused(tmp_path):
  out = subprocess.run([sys.executable, '-m', 'vae_jax.study.precision_seeds',
                        f'--outdir={tmp_path}', '--total_seeds=8'],
                       capture_output=True, text=True)
  assert out.returncode == 2
  assert 'differs from the declared 22: only a --quick smoke test' in out.stderr


@pytest.mark.slow
def test_one_quick_pair_trains_in_one_thread_workers_and_resumes(tmp_path, data_dir):
  command = [sys.executable, '-m', 'vae_jax.study.precision_seeds', f'--outdir={tmp_path}',
             f'--data_dir={data_dir}', '--quick', '--total_seeds=5',
             f'--json={tmp_path}/out.json']
  first = subprocess.run(command, capture_output=True, text=True)
  assert first.returncode == 0, first.stderr
  result = json.loads((tmp_path / 'out.json').read_text())
  assert result['paired_seeds'] == [4] and result['complete'] and result['quick']
  assert {r['xla_flags'] for r in result['rows']} == {seeds.ONE_THREAD_XLA_FLAGS}
  # Each row names the machine its model trained on, read off the training loop's clock.
  from vae_jax.infra import run_clock
  assert all(r['machines'] == [run_clock.machine_description()] for r in result['rows'])
  assert result['machine'] == run_clock.machine_description()
  # Rerun: both models are read from their rows, not retrained.
  again = subprocess.run(command, capture_output=True, text=True)
  assert again.returncode == 0 and 'seed 4' not in again.stderr
  assert json.loads((tmp_path / 'out.json').read_text())['rows'] == result['rows']

