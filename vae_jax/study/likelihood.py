r"""The likelihood headline, kept as files: collect a finished run, publish the table.

A headline run keeps, under ``results/<experiment>_seed<seed>/`` (committed;
no checkpoints): its ``config.json``, the ``test`` lines of its
``metrics.jsonl``, its ``eval_iwae5000.json`` (the IWAE-5000 estimate of the
test NLL, with the machine and seconds of the evaluation) and its
``timing.json`` (the training's wall time per process segment, with the
machine of each; vae_jax/infra/run_clock.py).

  # after training and `vae-jax evaluate --workdir=W --iwae_samples=5000`:
  vae-jax likelihood collect --workdir=W --experiment=mnist_vae_50d_dynamic
  # docs/results/likelihood.md and the README's headline, from results/:
  vae-jax publish likelihood likelihood-headline

Collecting a seed that results/ already holds is a repeat of that run: it is
taken only if its evaluation and its test lines are bit-identical to the ones
on file (same NLL, -ELBO, step and test curve; anything else needs --replace).
The newer run's files replace the older's, and the older's training and
evaluation times and machines are kept in ``repeats.json``, so the table says
the seed was trained more than once, and where.

Nothing in the table is typed by hand except the published anchors below,
which are citations.
"""

import json
import os
import re
import shutil
import statistics
import sys
from vae_jax.infra import errors, flags, paths

ROOT = paths.REPO_ROOT
RESULTS = 'results'
CONFIGS = os.path.join('experiments', 'configs')
EVAL_FILE = 'eval_iwae5000.json'
TESTS_FILE = 'metrics_test.jsonl'   # the test lines of the run's metrics.jsonl
FILES = ('config.json', TESTS_FILE, EVAL_FILE, 'timing.json')
REPEATS_FILE = 'repeats.json'   # earlier, bit-identical runs of the same seed (optional)
# What a repeat must reproduce exactly, bit for bit (JSON floats round-trip exactly).
SAME = ('nll', 'neg_elbo', 'step', 'num_samples', 'num_examples')

# Test NLL in nats, dynamically binarised MNIST, IWAE-5000 on the 10,000 test
# images: (model, stochastic layers or None, k it was trained at or None, NLL,
# source). Burda et al.'s rows are Table 1 of arXiv:1509.00519 (checked against
# the table as quoted in the README of github.com/nbip/IWAE, a reproduction;
# the paper itself was not reachable from here). k is None where the model is
# not Burda et al.'s, so it is never the like-for-like anchor.
BURDA = 'Burda et al. 2015, Table 1'
ANCHORS = (
    ('VAE (k = 1)', 1, 1, 86.76, BURDA),
    ('IWAE (k = 5)', 1, 5, 85.54, BURDA),
    ('IWAE (k = 50)', 1, 50, 84.78, BURDA),
    ('VampPrior VAE', 1, None, 85.57, 'Tomczak & Welling 2018'),
    ('VAE (k = 1)', 2, 1, 85.33, BURDA),
    ('IWAE (k = 5)', 2, 5, 83.89, BURDA),
    ('IWAE (k = 50)', 2, 50, 82.90, BURDA),
    ('Ladder VAE', None, None, 81.74, 'Sønderby et al. 2016 (several stochastic layers)'),
)


class ResultsError(errors.UserError, ValueError):
  """A run that cannot be collected, or results that cannot be published."""


def _read_json(path):
  with open(path) as f:
    return json.load(f)


def _test_lines(metrics):
  tests = [r for r in metrics if r['split'] == 'test']
  if not tests:
    raise ResultsError('the run has no test line in metrics.jsonl: it has not finished an epoch')
  return tests


def _earlier_runs(out, evaluation, tests, workdir, seed, replace):
  """The repeats.json list for a run collected into ``out``, which may hold an earlier one."""
  from vae_jax.core import config as config_lib
  from vae_jax.infra import workdir as workdir_lib
  if not os.path.exists(os.path.join(out, EVAL_FILE)) or replace:
    return []
  old_eval = _read_json(os.path.join(out, EVAL_FILE))
  differs = [k for k in SAME if old_eval.get(k) != evaluation.get(k)]
  if workdir_lib.read_jsonl(os.path.join(out, TESTS_FILE)) != tests:
    differs.append('test lines')
  configs = [config_lib.upgrade(_read_json(os.path.join(d, 'config.json')))
             for d in (out, workdir)]
  if configs[0] != configs[1]:
    differs.append('config')
  if differs:
    raise ResultsError(
        f'{out} already holds seed {seed} and this run differs from it in '
        f'{", ".join(differs)} (NLL {old_eval["nll"]!r} on file, {evaluation["nll"]!r} here): '
        'it is not a repeat of that run; pass --replace to replace it')
  earlier = (_read_json(os.path.join(out, REPEATS_FILE))
             if os.path.exists(os.path.join(out, REPEATS_FILE)) else [])
  return earlier + [{'timing': _read_json(os.path.join(out, 'timing.json')),
                     'eval_seconds': old_eval['seconds'],
                     'eval_machine': old_eval.get('machine')}]


def collect(workdir, experiment, root=ROOT, replace=False):
  """Copies the headline files of a finished, evaluated run into results/; returns the dir.

  A seed already in results/ is replaced only by a bit-identical repeat (the
  earlier run's times go to repeats.json), or by anything with ``replace``.
  """
  from vae_jax.core import config as config_lib
  from vae_jax.infra import run_clock, workdir as workdir_lib
  config = config_lib.from_workdir(workdir)
  tests = _test_lines(workdir_lib.read_metrics(workdir))
  eval_path = os.path.join(workdir, EVAL_FILE)
  timing = run_clock.read(workdir)
  if not os.path.exists(eval_path):
    raise ResultsError(f'{eval_path} is missing: run `vae-jax evaluate --workdir={workdir} '
                       '--iwae_samples=5000` first')
  if timing is None:
    raise ResultsError(f'{workdir} has no timing.json (trained before runs recorded their '
                       'time): retrain it to collect it')
  evaluation = _read_json(eval_path)
  last = tests[-1]
  if last['epoch'] != config.num_epochs or evaluation['step'] != last['step']:
    raise ResultsError(
        f'{workdir} is not finished and evaluated: last test line at epoch {last["epoch"]} '
        f'of {config.num_epochs}, {EVAL_FILE} at step {evaluation["step"]}: finish the '
        'training, then evaluate again')
  out = os.path.join(root, RESULTS, f'{experiment}_seed{config.seed}')
  repeats = _earlier_runs(out, evaluation, tests, workdir, config.seed, replace)
  os.makedirs(out, exist_ok=True)
  shutil.copy(os.path.join(workdir, 'config.json'), out)
  shutil.copy(eval_path, out)
  shutil.copy(os.path.join(workdir, run_clock.TIMING_FILE), out)
  with open(os.path.join(out, TESTS_FILE), 'w') as f:
    f.writelines(json.dumps(r, sort_keys=True) + '\n' for r in tests)
  repeats_path = os.path.join(out, REPEATS_FILE)
  if repeats:
    with open(repeats_path, 'w') as f:
      json.dump(repeats, f, indent=2, sort_keys=True)
  elif os.path.exists(repeats_path):
    os.remove(repeats_path)
  return out


def load_results(root=ROOT):
  """``{experiment: [run, ...]}`` from results/, each run a dict of its files, by seed."""
  from vae_jax.core import config as config_lib
  from vae_jax.infra import workdir as workdir_lib
  base = os.path.join(root, RESULTS)
  runs = {}
  for name in sorted(os.listdir(base)) if os.path.isdir(base) else ():
    m = re.fullmatch(r'(.+)_seed(\d+)', name)
    if not m or not os.path.isdir(os.path.join(base, name)):
      continue
    missing = [f for f in FILES if not os.path.exists(os.path.join(base, name, f))]
    if missing:
      raise ResultsError(f'{RESULTS}/{name} lacks {", ".join(missing)}: collect it again')
    path = os.path.join(base, name)
    tests = workdir_lib.read_jsonl(os.path.join(path, TESTS_FILE))
    repeats = os.path.join(path, REPEATS_FILE)
    runs.setdefault(m.group(1), []).append({
        'seed': int(m.group(2)),
        # A run collected before a config change reads as today's config writes it.
        'config': config_lib.upgrade(_read_json(os.path.join(path, 'config.json'))),
        'eval': _read_json(os.path.join(path, EVAL_FILE)),
        'timing': _read_json(os.path.join(path, 'timing.json')), 'tests': tests,
        'repeats': _read_json(repeats) if os.path.exists(repeats) else []})
  for v in runs.values():
    v.sort(key=lambda r: r['seed'])
  return runs


def _mean_std(values, digits=2):
  if len(values) == 1:
    return f'{values[0]:.{digits}f}'
  return f'{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}'


def _describe(config):
  """One stochastic layer of D units over two deterministic ReLU layers, as Burda's table puts it."""
  m = config['model']
  k = config.get('iwae_samples', 1)
  trained = 'ELBO (k = 1)' if k == 1 else f'IWAE bound (k = {k})'
  mlp = m['mlp']
  hidden = '-'.join(str(h) for h in mlp['hidden_sizes'])
  if mlp['stochastic_layers'] == 2:
    top = '-'.join(str(h) for h in mlp['top_hidden_sizes'])
    units = (f"{mlp['bottom_latent_dim']} + {config['latent_dim']} latent units, deterministic "
             f"{hidden} (tanh) and {top}")
  else:
    units = f"{config['latent_dim']} latent units, deterministic {hidden}"
  return f"{m['kind'].upper()} trained on the {trained}, {units}, {config['num_epochs']} epochs"


def summarise(runs):
  """One row per experiment: NLL and -ELBO mean ± std over seeds, times, machines."""
  rows = []
  for experiment, group in runs.items():
    nll = [r['eval']['nll'] for r in group]
    neg_elbo = [r['eval']['neg_elbo'] for r in group]
    hours = [r['timing']['train_seconds'] / 3600 for r in group]
    rows.append({
        'experiment': experiment, 'description': _describe(group[0]['config']),
        'layers': group[0]['config']['model']['mlp']['stochastic_layers'],
        'k': group[0]['config'].get('iwae_samples', 1),
        'seeds': [r['seed'] for r in group], 'nll': _mean_std(nll),
        'neg_elbo': _mean_std(neg_elbo),
        # About 0.155 bits/dim: two decimals would hide every difference between seeds.
        'bits_per_dim': _mean_std([r['eval']['nll_bits_per_dim'] for r in group], digits=4),
        'train_hours': _mean_std(hours),
        # Each seed's own: the budget is per run, and a mean can hide one over it.
        'train_hours_by_seed': ', '.join(f"seed {r['seed']}: {h:.2f}"
                                         for r, h in zip(group, hours)),
        'segments': sum(r['timing']['num_segments'] for r in group),
        'eval_minutes': _mean_std([r['eval']['seconds'] / 60 for r in group]),
        'machines': _machines(group),
        'nll_values': nll, 'nll_stderr': group[0]['eval']['nll_stderr'],
        'repeats': [_repeat_sentence(r) for r in group if r['repeats']]})
  return rows


def _run_machines(timing, eval_machine):
  """The machines a run trained and was evaluated on (an older evaluation may not say)."""
  return {s['machine'] for s in timing['segments']} | ({eval_machine} if eval_machine else set())


def _machines(group):
  """Each machine, with the seeds it ran when the runs of a row did not all run on one."""
  seeds = {}
  for r in group:
    for m in _run_machines(r['timing'], r['eval'].get('machine')):
      seeds.setdefault(m, []).append(r['seed'])
  if len(seeds) == 1:
    return sorted(seeds)
  return [m if len(s) == len(group) else
          f"{m} ({'seed' if len(s) == 1 else 'seeds'} {', '.join(map(str, sorted(s)))})"
          for m, s in sorted(seeds.items())]


def _repeat_sentence(run):
  """Says that a seed was trained more than once, with every run's times and machines."""
  times = [(t['timing'], t['eval_seconds'], t.get('eval_machine')) for t in run['repeats']]
  times.append((run['timing'], run['eval']['seconds'], run['eval'].get('machine')))
  each = '; '.join(f"{t['train_seconds'] / 3600:.2f} h of training in {t['num_segments']} "
                   f"segment{'s' if t['num_segments'] > 1 else ''} and {e / 60:.1f} min of "
                   f"evaluation on {' and '.join(sorted(_run_machines(t, m)))}"
                   for t, e, m in times)
  return (f"Seed {run['seed']} was trained and evaluated {len(times)} times from scratch "
          f"({each}; the table gives the last): the test lines of all "
          f"{run['config']['num_epochs']} epochs and the evaluations are bit-identical, NLL "
          f"{run['eval']['nll']!r} nats, −ELBO {run['eval']['neg_elbo']!r} nats.")


def _gap(mean, name, nll, src):
  return (f"{abs(mean - nll):.2f} nats {'below' if mean < nll else 'above'} the {name} of "
          f"{src.split(',')[0]} at {nll:.2f}")


def _anchors_of(row):
  """``(same, others)``: the anchors trained like the row (its k and layers), the rest of its layers."""
  same = [a for a in ANCHORS if a[1] == row['layers'] and a[2] == row['k']]
  return same, [a for a in ANCHORS if a[1] == row['layers'] and a not in same]


def _against_anchors(row):
  """The row's mean NLL against the anchor trained like it (same k, same stochastic
  layers) first, then beside every other published number for as many layers."""
  mean = statistics.mean(row['nll_values'])
  same, others = _anchors_of(row)
  where = f"k = {row['k']}, {row['layers']} stochastic layer{'s' if row['layers'] > 1 else ''}"
  head = f"{'NLL' if len(row['seeds']) == 1 else 'mean NLL'} {mean:.2f}; "
  if same:
    head += (f'against the anchor trained like it ({where}): '
             + ', '.join(_gap(mean, m, nll, src) for m, _, _, nll, src in same))
  else:
    head += f'no published anchor was trained like it ({where})'
  return head + '; beside the others: ' + ', '.join(
      _gap(mean, m, nll, src) for m, _, _, nll, src in others)


def table_markdown(rows):
  """docs/results/likelihood.md: the published anchors beside every collected run."""
  lines = ['Generated by `vae-jax publish` from the files under `results/` (written by '
           '`vae-jax likelihood collect`); the published anchors are citations.', '',
           '| model | stochastic layers | trained at k | test NLL (IWAE-5000), nats | source |',
           '|---|---:|---:|---:|---|']
  lines += [f"| {m} | {layers or '—'} | {k or '—'} | {nll:.2f} | {src} |"
            for m, layers, k, nll, src in ANCHORS]
  for r in rows:
    lines.append(f"| **vae_jax `{r['experiment']}`**: {r['description']} | {r['layers']} | "
                 f"{r['k']} | **{r['nll']}** | `results/{r['experiment']}_seed*` "
                 f"(seeds {r['seeds']}) |")
  lines.append('')
  if not rows:
    lines.append('No vae_jax run has been collected into `results/` yet: train and '
                 'evaluate, then `vae-jax likelihood collect --workdir=W --experiment=NAME` '
                 'and `vae-jax publish`.')
  for r in rows:
    one = len(r['seeds']) == 1
    lines.append(
        f"`{r['experiment']}` "
        + (f"(seed {r['seeds'][0]}, one run; NLL ± {r['nll_stderr']:.2f} nats standard error "
           "over the test images)" if one else f"(seeds {r['seeds']}, mean ± std over seeds)")
        + f": {_against_anchors(r)}; test −ELBO "
        f"{r['neg_elbo']} nats, NLL {r['bits_per_dim']} bits/dim; training "
        f"{r['train_hours']} hours per seed"
        + (f" ({r['train_hours_by_seed']})" if len(r['seeds']) > 1 else '')
        + f" in {r['segments']} process segments in all, "
        f"IWAE-5000 evaluation {r['eval_minutes']} minutes per seed; on "
        f"{'; '.join(r['machines'])}."
        + ''.join(' ' + sentence for sentence in r['repeats']))
  return '\n'.join(lines)


def headline(rows):
  """README: each collected experiment's test NLL, linking to the full table."""
  if not rows:
    return ('- **Likelihood on binarised MNIST**: no run collected into `results/` yet '
            '([table](docs/results/likelihood.md)).')
  return '\n'.join(
      f"- **Test NLL on dynamically binarised MNIST**, `{r['experiment']}` "
      f"({r['layers']} stochastic layer{'s' if r['layers'] > 1 else ''}, seeds {r['seeds']}): "
      f"**{r['nll']}** nats (IWAE-5000), trained at k = {r['k']}: "
      + (', '.join(_gap(statistics.mean(r['nll_values']), m, nll, src)
                   for m, _, _, nll, src in _anchors_of(r)[0])
         or 'no published anchor was trained like it')
      + ' ([table](docs/results/likelihood.md)).' for r in rows)


def render(results_dir):
  """The rows of the runs under ``results_dir`` (the checkout's results/)."""
  return summarise(load_results(os.path.dirname(os.path.abspath(results_dir))))


BLOCKS = ('likelihood', 'likelihood-headline')   # this table's blocks in vae_jax/publish.py


def main(argv=None, publish_step=None, prog='python -m vae_jax.study.likelihood'):
  """``collect``, or ``publish``: the one publish step's likelihood blocks.

  ``publish_step`` is ``vae_jax.publish.main``, passed in by the ``vae-jax``
  command (this layer does not import the one above it); without it
  ``publish`` names the command to run.
  """
  parser = flags.Parser(prog, __doc__.split('\n')[0], [
      f'{prog} collect --workdir=runs/mnist_iwae5_50d_dynamic_seed0 '
      '--experiment=mnist_iwae5_50d_dynamic', f'{prog} publish', f'{prog} publish --check'])
  sub = parser.add_subparsers(dest='command', required=True, metavar='{collect,publish}')
  c = sub.add_parser('collect', help='copy a finished, evaluated run into results/')
  c.add_argument('--workdir', required=True)
  c.add_argument('--experiment', required=True,
                 help='the config file name under experiments/configs, without .py')
  c.add_argument('--replace', action='store_true',
                 help='replace the seed on file even if this run is not a bit-identical repeat')
  p = sub.add_parser('publish', help='regenerate the likelihood table and the README headline')
  p.add_argument('--check', action='store_true', help='change nothing; exit 1 if out of date')
  for q in (c, p):
    q.add_argument('--root', default=ROOT, help='the checkout to write into')
  args = parser.parse_args(argv)
  if args.command == 'publish':
    step = [*BLOCKS, f'--root={args.root}'] + (['--check'] if args.check else [])
    if publish_step is None:
      print(f'error: publishing is one step: run `vae-jax publish {" ".join(BLOCKS)}`',
            file=sys.stderr)
      return 2
    return publish_step(step)
  try:
    if args.command == 'collect':
      if not os.path.exists(os.path.join(args.root, CONFIGS, args.experiment + '.py')):
        raise ResultsError(f'no {CONFIGS}/{args.experiment}.py: --experiment names the '
                           'config the run was trained from')
      print(f'collected {collect(args.workdir, args.experiment, args.root, args.replace)}; '
            '`vae-jax publish` regenerates the likelihood table from results/')
      return 0
  except (ResultsError, OSError, ValueError) as e:  # ValueError: workdir.WorkdirError
    print(f'error: {e}', file=sys.stderr)
    return 2


if __name__ == '__main__':
  sys.exit(main(prog='python -m vae_jax.study.likelihood'))
