"""The float32 vs bfloat16 study comparison on small summaries whose answer is known."""

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from vae_jax.bench import precision_quality
from vae_jax.study import precision_study as ps

MACHINE = ['AMD EPYC, 2 cores, x86_64']


def summary(dtype, elbo, verdicts=None, gates=None, busy=100.0, machines=MACHINE):
  """A study summary with only what the comparison reads."""
  verdicts = verdicts or {'a': 'supported', 'b': 'equivalent'}
  gates = gates or {}
  return {'compute_dtype': dtype, 'quick': False,
          'per_seed': {m: {str(s): {'elbo': e, 'train_seconds': busy / 10}
                           for s, e in enumerate(v)} for m, v in elbo.items()},
          'claims': [{'id': k, 'family': 'primary', 'verdict': v, 'p_adjusted': 0.01}
                     for k, v in verdicts.items()],
          'gates': [{'model': m, 'seed': s, 'gate': 'elbo >= -300', 'passed': p}
                    for (m, s), p in gates.items()],
          'timing': {'wall_seconds_busy': busy, 'train_phase_seconds': busy * 0.9,
                     'metrics_seconds': busy * 0.1, 'figures_seconds': 0.0, 'passes': 2,
                     'from_empty': True, 'machines': machines}}


def test_declared_margins_are_precision_quality_s():
  for model, margin in ps.DECLARED_MARGINS.items():
    assert precision_quality.MARGIN_NATS[model] == margin


def test_elbo_row_is_the_paired_tost_with_holm_over_models():
  f32 = {'mnist_vae_2d': [-150.0, -151.0, -152.0, -150.5, -151.5],
         'other_vae': [-200.0, -201.0, -199.0, -200.5]}
  shift = np.array([0.05, -0.02, 0.03, 0.0, 0.01])
  bf16 = {'mnist_vae_2d': list(np.array(f32['mnist_vae_2d']) + shift),
          'other_vae': [-210.0, -211.2, -209.1, -210.4]}
  rows = {q['model']: q for q in ps.quality_rows(summary('float32', f32),
                                                 summary('bfloat16', bf16))}
  q = rows['mnist_vae_2d']
  assert q['margin'] == 0.50 and q['n'] == 5
  assert q['difference'] == pytest.approx(shift.mean())
  # TOST p by hand: the larger one-sided p against ±margin.
  se = shift.std(ddof=1) / np.sqrt(5)
  p_tost = max(stats.t.cdf((shift.mean() - 0.5) / se, 4), stats.t.sf((shift.mean() + 0.5) / se, 4))
  assert q['p'] == pytest.approx(p_tost)
  assert q['verdict'] == 'equivalent' and q['family_size'] == 2
  # The undeclared model's margin is its float32 std: a 10-nat drop is outside it.
  o = rows['other_vae']
  assert o['margin'] == pytest.approx(np.std(f32['other_vae'], ddof=1))
  assert o['margin_source'] == 'float32 std over 4 seeds'
  assert o['verdict'] == 'contradicted'


def test_only_seeds_both_runs_trained_are_paired():
  f32 = summary('float32', {'m': [-1.0, -2.0, -3.0, -4.0]})
  bf16 = summary('bfloat16', {'m': [-1.0, -2.0]})   # an unfinished run: 2 seeds
  (q,) = ps.quality_rows(f32, bf16)
  assert q['seeds'] == ['0', '1'] and q['n'] == 2


def test_same_verdicts_but_slower_keeps_float32_and_says_why():
  elbo = {'mnist_vae_2d': [-150.0, -151.0, -152.0]}
  r = ps.compare(summary('float32', elbo, busy=100.0), summary('bfloat16', elbo, busy=120.0))
  assert r['changed_claims'] == [] and r['gate_differences'] == []
  assert r['ratio'] == pytest.approx(1.2) and not r['target_met']
  assert r['study_trains_in'] == 'float32'
  assert r['reasons'] == ['bfloat16 is not faster here (1.20x the float32 wall time)']
  text = ps.markdown(r)
  assert '**1.20×**' in text and 'not met' in text and '2 of 2 claims' in text
  (m,) = r['train_seconds_by_model']
  assert (m['seeds'], m['float32'], m['bfloat16']) == (3, 30.0, 36.0)
  assert '| mnist_vae_2d | 3 | 30 | 36 | 1.20× |' in text
  line = ps.headline(r)
  assert 'took 2 minutes from empty' in line and '(1.20× the float32 run' in line
  assert '2 of 2 verdicts the same' in line and '**float32** here: bfloat16 is not faster' in line


def test_faster_with_everything_the_same_trains_in_bfloat16():
  elbo = {'mnist_vae_2d': [-150.0, -151.0, -152.0]}
  r = ps.compare(summary('float32', elbo, busy=100.0), summary('bfloat16', elbo, busy=60.0))
  assert r['target_met'] and r['reasons'] == [] and r['study_trains_in'] == 'bfloat16'


def test_a_changed_verdict_or_gate_is_listed_and_keeps_float32():
  elbo = {'m': [-150.0, -151.0, -152.0]}
  f32 = summary('float32', elbo, gates={('m', 0): True})
  bf16 = summary('bfloat16', elbo, verdicts={'a': 'inconclusive', 'b': 'equivalent'},
                 gates={('m', 0): False}, busy=50.0)
  r = ps.compare(f32, bf16)
  assert r['changed_claims'] == ['a']
  assert r['gate_differences'] == [{'model': 'm', 'seed': '0', 'gate': 'elbo >= -300',
                                    'float32': True, 'bfloat16': False}]
  assert r['study_trains_in'] == 'float32' and len(r['reasons']) == 2
  assert '| a | primary | supported | inconclusive |' in ps.markdown(r)


def test_different_machines_are_no_time_comparison():
  elbo = {'m': [-1.0, -2.0]}
  r = ps.compare(summary('float32', elbo), summary('bfloat16', elbo, busy=10.0,
                                                   machines=['Intel Xeon, 2 cores, x86_64']))
  assert not r['target_met'] and r['study_trains_in'] == 'float32'


def test_wrong_dtype_or_quick_summary_is_refused():
  elbo = {'m': [-1.0, -2.0]}
  with pytest.raises(ValueError, match='--compute_dtype=bfloat16'):
    ps.compare(summary('float32', elbo), summary('float32', elbo))
  quick = dict(summary('bfloat16', elbo), quick=True)
  with pytest.raises(ValueError, match='--quick'):
    ps.compare(summary('float32', elbo), quick)
  untimed = dict(summary('float32', elbo), timing=None)
  with pytest.raises(ValueError, match='records no wall time'):
    ps.compare(untimed, summary('bfloat16', elbo))


def test_cli_names_the_missing_run_in_one_line(tmp_path):
  out = subprocess.run([sys.executable, '-m', 'vae_jax.study.precision_study',
                        f'--bfloat16={tmp_path}/none/summary.json'],
                       capture_output=True, text=True, check=False)
  assert out.returncode == 2
  assert out.stderr.strip().splitlines()[-1].startswith('error: ')
  assert 'finish that study run first' in out.stderr
  f32 = tmp_path / 'f32.json'
  f32.write_text(json.dumps(summary('float32', {'m': [-1.0, -2.0]})))
  out = subprocess.run([sys.executable, '-m', 'vae_jax.study.precision_study',
                        f'--float32={f32}', f'--bfloat16={f32}',
                        f'--benchmark={tmp_path}/none.json'],
                       capture_output=True, text=True, check=False)
  assert out.returncode == 2 and 'none.json does not exist: pass --benchmark=' in out.stderr


def test_cli_writes_the_json(tmp_path):
  elbo = {'mnist_vae_2d': [-150.0, -151.0, -152.0]}
  paths = []
  for dtype, busy in (('float32', 100.0), ('bfloat16', 90.0)):
    paths.append(tmp_path / f'{dtype}.json')
    paths[-1].write_text(json.dumps(summary(dtype, elbo, busy=busy)))
  ps.main([f'--float32={paths[0]}', f'--bfloat16={paths[1]}', '--benchmark=',
           f'--json={tmp_path}/r.json'])
  r = json.loads((tmp_path / 'r.json').read_text())
  assert r['ratio'] == pytest.approx(0.9) and r['study_trains_in'] == 'bfloat16'


def test_a_model_without_a_margin_is_left_out():
  f32 = summary('float32', {'one_seed_vae': [-1.0], 'mnist_vae_2d': [-1.0, -2.0]})
  bf16 = summary('bfloat16', {'one_seed_vae': [-1.5], 'mnist_vae_2d': [-1.0, -2.0]})
  assert [q['model'] for q in ps.quality_rows(f32, bf16)] == ['mnist_vae_2d']


def _benchmark(cpu, mlp, conv):
  rows = {k: {'images_per_s': {'median': 100.0}} for k in ps.STUDY_WORKLOADS}
  bf16 = {k: {'images_per_s': {'median': 100.0 * v}}
          for k, v in (('train_mlp', mlp), ('train_conv', conv))}
  return dict(rows, machine={'cpu': cpu}, bfloat16=bf16)


def test_the_quiet_benchmark_on_the_same_cpu_can_keep_float32():
  elbo = {'mnist_vae_2d': [-150.0, -151.0, -152.0]}
  f32, bf16 = summary('float32', elbo, busy=100.0), summary('bfloat16', elbo, busy=60.0)
  slow = ps.compare(f32, bf16, benchmark=_benchmark('AMD EPYC', 1.01, 0.75))
  assert slow['benchmark_ratios'] == pytest.approx({'train_mlp': 1.01, 'train_conv': 0.75})
  assert slow['study_trains_in'] == 'float32'
  assert slow['reasons'] == ['in the quiet benchmark, both dtypes timed in one run on this CPU, '
                             'bfloat16 trains the MLP VAE at 1.01x and the conv VAE at 0.75x '
                             'its float32 rate']
  fast = ps.compare(f32, bf16, benchmark=_benchmark('AMD EPYC', 1.4, 1.7))
  assert fast['study_trains_in'] == 'bfloat16'
  # A benchmark of another CPU, or one without bfloat16 rows, says nothing about this one.
  other = ps.compare(f32, bf16, benchmark=_benchmark('Intel Xeon', 0.5, 0.5))
  assert other['benchmark_ratios'] is None and other['study_trains_in'] == 'bfloat16'
  assert ps.benchmark_ratios({'machine': {'cpu': 'AMD EPYC'}}, MACHINE) is None


def more_seeds(model, f32, bf16, first=2, complete=True, gates=None):
  """A precision_seeds JSON: paired seeds from ``first`` with these ELBOs."""
  rows = []
  for i, (a, b) in enumerate(zip(f32, bf16)):
    for dtype, e in (('float32', a), ('bfloat16', b)):
      g = (gates or {}).get((first + i, dtype), True)
      rows.append({'seed': first + i, 'dtype': dtype, 'elbo': e, 'gates': [
          {'model': model, 'seed': first + i, 'gate': 'elbo >= -300', 'passed': g}]})
  seeds = list(range(first, first + len(f32)))
  from vae_jax.study import precision_seeds
  return {'model': model, 'seeds': seeds, 'paired_seeds': seeds if complete else seeds[:-1],
          'total_seeds': precision_seeds.TOTAL_SEEDS,
          'complete': complete, 'quick': False, 'xla_flags': 'one thread',
          'machine': MACHINE[0], 'rows': rows}


def test_more_seeds_join_their_model_s_row_and_settle_it():
  f32 = [-264.0, -265.5]
  bf16 = [-264.2, -265.2]
  studies = (summary('float32', {'fashion_mnist_conv_vae_2d': f32}),
             summary('bfloat16', {'fashion_mnist_conv_vae_2d': bf16}))
  (alone,) = ps.quality_rows(*studies)
  assert alone['verdict'] == 'inconclusive'   # 2 pairs cannot show ±1.33
  extra_f32 = [-264.0 - 0.1 * i for i in range(10)]
  shift = np.tile([0.2, -0.1], 5)
  more = more_seeds('fashion_mnist_conv_vae_2d', extra_f32, list(extra_f32 + shift))
  (q,) = ps.quality_rows(*studies, more)
  assert q['n'] == 12 and q['study_pairs'] == 2
  assert q['seeds'] == [str(s) for s in range(12)]
  d = np.concatenate([np.subtract(bf16, f32), shift])
  assert q['difference'] == pytest.approx(d.mean())
  assert q['verdict'] == 'equivalent'
  r = ps.compare(*studies, more=more)
  assert r['more_seeds']['seeds'] == list(range(2, 12))
  assert '2 pairs from the two studies and 10 more (seeds 2–11)' in ps.markdown(r)


def test_more_seeds_are_judged_only_when_all_declared_pairs_are_in():
  studies = (summary('float32', {'m': [-1.0, -2.0]}), summary('bfloat16', {'m': [-1.0, -2.0]}))
  partial = more_seeds('m', [-1.0, -2.0], [-1.0, -2.0], complete=False)
  with pytest.raises(ValueError, match='1 of the 2 declared seed pairs: finish them'):
    ps.compare(*studies, more=partial)
  with pytest.raises(ValueError, match='has 8 pairs in all, not the 22'):
    ps.compare(*studies, more=dict(more_seeds('m', [-1.0], [-1.0]), total_seeds=8))
  with pytest.raises(ValueError, match='--quick'):
    ps.compare(*studies, more=dict(more_seeds('m', [-1.0], [-1.0]), quick=True))
  # A seed the studies already trained is not a new one.
  with pytest.raises(ValueError, match='must be new ones'):
    ps.quality_rows(*studies, more_seeds('m', [-1.0], [-1.0], first=1))


def test_more_seeds_gates_are_compared_too():
  studies = (summary('float32', {'m': [-1.0, -2.0]}), summary('bfloat16', {'m': [-1.0, -2.0]}))
  more = more_seeds('m', [-1.0, -2.0], [-1.0, -2.0], gates={(3, 'bfloat16'): False})
  (g,) = ps.gate_differences(*studies, more)
  assert (g['model'], g['seed'], g['float32'], g['bfloat16']) == ('m', '3', True, False)
