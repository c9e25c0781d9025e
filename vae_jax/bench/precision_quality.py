r"""Does bfloat16 compute keep the models' quality? Test ELBO at both dtypes, over seeds.

  python -m vae_jax.bench.precision_quality --json=results/precision_quality.json
  vae-jax publish precision-quality   # its block in docs/performance.md

Trains the article's MLP VAE, the Fashion-MNIST conv VAE and the IWAE-5
one-layer model for each seed, once with ``compute_dtype='float32'`` and once
with ``'bfloat16'`` (same seed: same initial parameters, data order and
noise), through ``train.train_and_evaluate`` in a temporary workdir, so its
NaN guard runs as in any training. The schedule is **shortened**
(:data:`SCHEDULE`: a few epochs on part of the training set, the full test
set), so the ELBOs are not the study's.

The judgement is declared here, before any run: per seed, the paired
difference d = ELBO(bfloat16) − ELBO(float32) on the test set; its mean gets
a 95 % Student-t interval, and the verdict is, as the study's ``near`` claims
(vae_jax/analysis/verdicts.py) but with an absolute margin: **equivalent** when
the interval lies inside ± :data:`MARGIN_NATS`, **different** when it lies
wholly outside, else **inconclusive**. Each run also checks its experiment
file's ``QUALITY_GATES`` (the form of vae_jax/analysis/gates.py), which a shortened
schedule need not reach: what is judged is that both dtypes pass the same
gates. ``vae-jax publish precision-quality`` writes :func:`markdown` into
docs/performance.md between :data:`BEGIN` and :data:`END`.
"""

import math
import os
import tempfile
import time

import numpy as np

from vae_jax.analysis import gates, verdicts
from vae_jax.bench import benchmark
from vae_jax.bench import publish as publish_benchmark
from vae_jax.core import config as config_lib
from vae_jax.infra import blocks, flags

ROOT = benchmark.ROOT
BEGIN, END = '<!-- precision-quality:begin -->', '<!-- precision-quality:end -->'
DTYPES = ('float32', 'bfloat16')
LEVEL = 0.95
# The models and their shortened schedules: epochs over the first num_train images.
# Sized so that 3 seeds x 2 dtypes x 3 models take ~15 minutes on 2 shared cores.
SCHEDULE = {
    'mnist_vae_2d': {'num_epochs': 2, 'num_train': 12800},
    'fashion_mnist_conv_vae_2d': {'num_epochs': 2, 'num_train': 6400},
    'mnist_iwae5_50d_dynamic': {'num_epochs': 2, 'num_train': 6400},
}
QUICK_SCHEDULE = {'num_epochs': 1, 'num_train': 512, 'num_test': 500}
# Equivalence margin, nats per test image: the float32 seed-to-seed standard
# deviation of each model's test ELBO over its full schedule, measured before
# this script existed (docs/study_summary.json at commit 739aefb: 5 seeds of
# mnist_vae_2d, 3 of fashion_mnist_conv_vae_2d; results/mnist_iwae5_50d_dynamic_seed{0,1,2}).
# A precision change inside it moves the ELBO less than the choice of seed does.
MARGIN_NATS = {'mnist_vae_2d': 0.50, 'fashion_mnist_conv_vae_2d': 1.33,
               'mnist_iwae5_50d_dynamic': 0.21}
MARGIN_SOURCE = ('float32 seed-to-seed standard deviation of the full-schedule test ELBO '
                 '(docs/study_summary.json; results/mnist_iwae5_50d_dynamic_seed*)')
EQUIVALENT, DIFFERENT, INCONCLUSIVE = 'equivalent', 'different', 'inconclusive'


def gate_results(gate_texts, values):
  """``[{gate, value, passed}]`` of ``gate_texts`` against ``values`` (analysis.gates.check)."""
  return [{'gate': text, 'value': value, 'passed': passed}
          for text, (_, value, passed) in zip(gate_texts, gates.check(gate_texts, values))]


def paired_verdict(f32, bf16, margin, level=LEVEL):
  """Mean of d = bf16 − f32 per seed, its Student-t interval and the verdict against ``margin``."""
  d = np.asarray(bf16, np.float64) - np.asarray(f32, np.float64)
  mean, low, high = verdicts.t_interval(d, level)
  if -margin <= low and high <= margin:
    verdict = EQUIVALENT
  elif high < -margin or low > margin:
    verdict = DIFFERENT
  else:
    verdict = INCONCLUSIVE
  return {'differences': d.tolist(), 'mean': mean, 'low': low, 'high': high,
          'margin': margin, 'level': level, 'verdict': verdict}


def train_once(name, seed, dtype, data_dir, schedule):
  """One training run in a temporary workdir: its test metrics, gates and wall time."""
  from vae_jax.core import train
  from vae_jax.infra import workdir as workdir_lib
  from vae_jax.infra.errors import NonFiniteError

  overrides = {'seed': seed, 'compute_dtype': dtype, 'num_epochs': schedule['num_epochs'],
               'data.num_train': schedule['num_train'],
               'data.num_test': schedule.get('num_test', 0)}
  config = benchmark.load_config(name, data_dir, **overrides)
  row = {'seed': seed, 'dtype': dtype, 'nan_guard': None}
  started = time.perf_counter()
  with tempfile.TemporaryDirectory() as workdir:
    try:
      out = train.train_and_evaluate(config, workdir)
    except NonFiniteError as e:
      row.update(nan_guard=str(e), seconds=time.perf_counter() - started)
      return row
    latent = [r for r in workdir_lib.read_metrics(workdir) if r['split'] == 'latent'][-1]
  row['seconds'] = time.perf_counter() - started
  row['test'] = {k: float(v) for k, v in out['test'].items()}
  values = dict(row['test'], active_units=latent['active_units'])
  declared = getattr(config_lib.load_module(name), 'QUALITY_GATES', ())
  if isinstance(declared, dict):
    declared = declared.get(config.data.name, ())
  row['gates'] = gate_results(declared, values)
  return row


def measure(names, seeds, data_dir, quick):
  models = []
  for name in names:
    schedule = dict(SCHEDULE[name], **(QUICK_SCHEDULE if quick else {}))
    runs = []
    for seed in seeds:
      for dtype in DTYPES:
        row = train_once(name, seed, dtype, data_dir, schedule)
        runs.append(row)
        print(f'{name} seed {seed} {dtype}: '
              + (f'NaN guard fired: {row["nan_guard"]}' if row['nan_guard'] else
                 f'test ELBO {row["test"]["elbo"]:.3f} in {row["seconds"]:.0f} s'), flush=True)
    models.append(judge(name, schedule, runs))
  return models


def judge(name, schedule, runs):
  """The model's verdict from its runs (both dtypes of every seed)."""
  by = {d: [r for r in runs if r['dtype'] == d] for d in DTYPES}
  fired = [r for r in runs if r['nan_guard']]
  model = {'config': name, 'schedule': schedule, 'runs': runs,
           'nan_guard_fired': len(fired)}
  if fired:
    model['verdict'] = {'verdict': DIFFERENT, 'reason': 'NaN guard fired'}
    model['same_gates'] = False
    return model
  elbo = {d: [r['test']['elbo'] for r in by[d]] for d in DTYPES}
  model['verdict'] = paired_verdict(elbo['float32'], elbo['bfloat16'], MARGIN_NATS[name])
  passed = {d: [[g['passed'] for g in r['gates']] for r in by[d]] for d in DTYPES}
  model['same_gates'] = passed['float32'] == passed['bfloat16']
  return model


# ----------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------
def _schedule_text(s):
  test = f'{s["num_test"]} test images' if s.get('num_test') else 'the full test set'
  return f'{s["num_epochs"]} epochs on the first {s["num_train"]:,} training images, {test}'


def markdown(results):
  lines = ['<!-- generated by vae_jax/bench/precision_quality.py from '
           'results/precision_quality.json; edit the script, not this text -->', '',
           publish_benchmark.machine_line(
               results, f'seeds {", ".join(map(str, results["seeds"]))}; **shortened '
               'schedules** (below), so these ELBOs are not the study\'s; both dtypes of a '
               'seed share its initial parameters and data order.'), '',
           '| model | schedule | test ELBO float32 (mean over seeds) | bfloat16 | '
           'bfloat16 − float32, mean [95% interval] | margin ± | verdict | gates passed '
           'float32 / bfloat16 | same gates | NaN guard fired | train s float32 / bfloat16 |',
           '|---|---|---:|---:|---:|---:|---|---:|---|---:|---:|']
  for m in results['models']:
    runs = {d: [r for r in m['runs'] if r['dtype'] == d] for d in DTYPES}
    v = m['verdict']
    if m['nan_guard_fired']:
      cells = ['–', '–', '–', f'{MARGIN_NATS.get(m["config"], math.nan):.2f}',
               f'**{v["verdict"]}** ({v["reason"]})', '–']
    else:
      mean = {d: np.mean([r['test']['elbo'] for r in runs[d]]) for d in DTYPES}
      passed = {d: f'{sum(g["passed"] for r in runs[d] for g in r["gates"])}/'
                  f'{sum(len(r["gates"]) for r in runs[d])}' for d in DTYPES}
      cells = [f'{mean["float32"]:.2f}', f'{mean["bfloat16"]:.2f}',
               f'{v["mean"]:+.2f} [{v["low"]:+.2f}, {v["high"]:+.2f}]', f'{v["margin"]:.2f}',
               f'**{v["verdict"]}**', f'{passed["float32"]} / {passed["bfloat16"]}']
    seconds = {d: sum(r['seconds'] for r in runs[d]) for d in DTYPES}
    lines.append(f'| {m["config"]} | {_schedule_text(m["schedule"])} | ' + ' | '.join(cells)
                 + f' | {"yes" if m["same_gates"] else "**no**"} | {m["nan_guard_fired"]} | '
                 f'{seconds["float32"]:.0f} / {seconds["bfloat16"]:.0f} |')
  lines += ['', f'Margin: the {results["margin_source"]}. Verdict: **equivalent** when the '
            'interval lies inside ± margin, **different** when wholly outside, else '
            '**inconclusive** (too few seeds to tell).']
  return '\n'.join(lines)


def main(argv=None, prog='python -m vae_jax.bench.precision_quality'):
  parser = flags.Parser(prog, __doc__.split('\n\n')[0],
                        f'{prog} --json=results/precision_quality.json')
  parser.add_argument('--json', default=None, help='write the results to this file')
  parser.add_argument('--seeds', default='0,1,2', help='comma-separated seeds (>= 3 to judge)')
  parser.add_argument('--models', default=','.join(SCHEDULE))
  parser.add_bool('quick', False, 'smoke run: 1 epoch on 512 images; numbers mean nothing')
  parser.add_argument('--data_dir', default=os.environ.get('VAE_JAX_DATA_DIR') or
                      os.path.join(ROOT, '..', 'shared', 'datasets'))
  args = parser.parse_args(argv)
  import jax
  # The seeds of a model compile the same programs: compile them once. The
  # cache holds XLA's executables, so the numbers are unchanged.
  cache = tempfile.TemporaryDirectory()
  jax.config.update('jax_compilation_cache_dir', cache.name)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
  seeds = [int(s) for s in args.seeds.split(',')]
  started = time.time()
  results = {'machine': benchmark._machine(), 'jax': jax.__version__,  # pylint: disable=protected-access
             'quick': args.quick, 'seeds': seeds, 'level': LEVEL,
             'margin_source': MARGIN_SOURCE,
             'models': measure(args.models.split(','), seeds, os.path.abspath(args.data_dir),
                               args.quick)}
  results['seconds'] = time.time() - started
  if args.json:
    blocks.write_source(args.json, results)
  print(markdown(results))
  return results


if __name__ == '__main__':
  main()
