r"""Does the study say the same when it trains in bfloat16? Its two runs from empty, compared.

  vae-jax study --outdir=runs/study_bf16 --compute_dtype=bfloat16 --train_only
  vae-jax study --outdir=runs/study_bf16 --compute_dtype=bfloat16
  python -m vae_jax.study.precision_seeds --outdir=runs/precision_seeds   # the conv VAE's seeds
  python -m vae_jax.study.precision_study --bfloat16=runs/study_bf16/summary.json \
      --more_seeds=results/precision_seeds.json --json=results/precision_study.json
  vae-jax publish precision-study          # its block in docs/performance.md

The float32 side is the published study (docs/study_summary.json), the
bfloat16 side a run of the same study from an empty outdir with
``--compute_dtype=bfloat16``, split into process runs the same way, on the
same kind of machine. Everything judged here was declared in this file
before any output of the bfloat16 run was read (it was first committed while
that run trained its first models; the per-model time table and the README
line were added later and judge nothing):

1. **Time.** The busy wall time from empty of each (run_clock.busy_seconds),
   split into training, metrics and figures; the ratio bfloat16 / float32 is
   set against issue 28's target :data:`TARGET_RATIO`.
2. **Verdicts.** Every claim's verdict under both dtypes, matched by claim id:
   the claims that differ are listed with both verdicts and adjusted p-values.
3. **Quality at the full schedule.** For each model with a test ELBO, over the
   seeds both runs trained (the same seed gives both dtypes the same initial
   parameters and data order), the paired difference d = ELBO(bfloat16) −
   ELBO(float32) is tested for equivalence inside ± margin with the study's
   own ``'near'`` test (TOST, vae_jax/analysis/verdicts.py), Holm-corrected over
   the models (one family). The margin is the one precision_quality.py
   declares where it declares one (MARGIN_NATS, copied here because study/
   may not import bench/), else the float32 study's own seed-to-seed standard
   deviation of that model's test ELBO: a precision change inside it moves the
   ELBO less than the choice of seed does. Where the studies' seeds left a row
   inconclusive, ``--more_seeds`` adds the pairs precision_seeds.py trained for
   it, as many as that file declared before they trained, and only once all are
   in. Gates: the same gate passes or
   fails for every (model, seed) under both.
4. **The decision.** The study may train in bfloat16 on this kind of machine
   only if every verdict and every gate is the same, no model's ELBO is
   contradicted (outside its margin), and bfloat16 is faster: in the study's
   wall time, and in the quiet benchmark (results/benchmark.json, both dtypes
   timed in one run) for both training workloads the study is made of, the MLP
   and the conv VAE, when that benchmark ran on the same CPU. (Two runs from
   empty hours apart need not share the machine equally; the benchmark's
   paired timing does.) Otherwise it stays float32 and :func:`markdown` lists
   each reason that holds.
"""

import json
import math
import os

import numpy as np

from vae_jax.analysis import verdicts
from vae_jax.infra import blocks, errors, flags, paths

FLOAT32_SUMMARY = 'docs/study_summary.json'
BENCHMARK = 'results/benchmark.json'
STUDY_WORKLOADS = ('train_mlp', 'train_conv')   # the benchmark rows the study's models are
TARGET_RATIO = 0.7   # issue 28: the study from empty in bfloat16 ≤ 0.7× its float32 wall time
# precision_quality.MARGIN_NATS, the declared margins, nats per test image
# (vae_jax/bench/precision_quality.py gives their source; a test keeps the two equal).
DECLARED_MARGINS = {'mnist_vae_2d': 0.50, 'fashion_mnist_conv_vae_2d': 1.33}
DTYPES = ('float32', 'bfloat16')
_WORKLOAD_NAMES = {'train_mlp': 'MLP VAE', 'train_conv': 'conv VAE'}


def _dtype(summary):
  return summary.get('compute_dtype', 'float32')   # summaries from before the field: float32


def _elbo(summary, model):
  """``{seed: test ELBO}`` of ``model`` (seeds whose row has one)."""
  return {s: r['elbo'] for s, r in summary['per_seed'].get(model, {}).items()
          if r.get('elbo') is not None}


def margin_for(model, float32_summary):
  """The declared margin of ``model``, else its float32 seed-to-seed std of test ELBO."""
  if model in DECLARED_MARGINS:
    return DECLARED_MARGINS[model], 'declared in precision_quality.py'
  values = list(_elbo(float32_summary, model).values())
  if len(values) < 2:
    return math.nan, 'fewer than 2 float32 seeds'
  return float(np.std(values, ddof=1)), f'float32 std over {len(values)} seeds'


def more_seed_pairs(more):
  """``{'bfloat16': {seed: ELBO}, 'float32': {...}}`` of precision_seeds' paired seeds."""
  pairs = {d: {} for d in DTYPES}
  for r in more['rows']:
    if r['seed'] in more['paired_seeds']:
      pairs[r['dtype']][str(r['seed'])] = r['elbo']
  return pairs


def quality_rows(f32, bf16, more=None):
  """One 'near' row per model with a test ELBO in both: d = bfloat16 − float32 per seed, Holm.

  ``more``: a finished precision_seeds JSON; its model's row also takes its pairs.
  """
  rows = []
  for model in sorted(set(f32['per_seed']) & set(bf16['per_seed'])):
    by_bf16, by_f32 = _elbo(bf16, model), _elbo(f32, model)   # {seed: test ELBO}
    study_pairs = len(set(by_bf16) & set(by_f32))
    if more and more['model'] == model:
      extra = more_seed_pairs(more)
      if (set(extra['float32']) | set(extra['bfloat16'])) & (set(by_bf16) | set(by_f32)):
        raise ValueError(f'precision_seeds retrained a seed of the study for {model}: '
                         'its seeds must be new ones')
      by_bf16 = dict(by_bf16, **extra['bfloat16'])
      by_f32 = dict(by_f32, **extra['float32'])
    seeds = sorted(set(by_bf16) & set(by_f32), key=int)
    if not seeds:
      continue
    margin, source = margin_for(model, f32)
    if not margin > 0:
      continue   # one float32 seed and no declared margin: nothing to test against
    values_bf16, values_f32 = [by_bf16[s] for s in seeds], [by_f32[s] for s in seeds]
    test = verdicts.paired_test(values_bf16, values_f32, 'near', margin=margin)
    rows.append(dict(test, model=model, seeds=seeds, margin=margin, margin_source=source,
                     float32=values_f32, bfloat16=values_bf16, study_pairs=study_pairs))
  return verdicts.decide(rows)


def verdict_rows(f32, bf16):
  """Every claim id in either run, with its verdict (None where absent) and adjusted p."""
  by = [{c['id']: c for c in s['claims']} for s in (f32, bf16)]
  rows = []
  for cid in sorted(set(by[0]) | set(by[1])):
    c = [b.get(cid) for b in by]
    rows.append({'id': cid, 'family': (c[0] or c[1]).get('family'),
                 'float32': c[0] and c[0]['verdict'], 'bfloat16': c[1] and c[1]['verdict'],
                 'p_adjusted': [x and x.get('p_adjusted') for x in c]})
  return rows


def gate_differences(f32, bf16, more=None):
  """(model, seed, gate) whose pass/fail differs, or which only one run checked
  (with ``more``, precision_seeds' paired seeds too)."""
  by = [{(g['model'], str(g['seed']), g['gate']): bool(g['passed']) for g in s['gates']}
        for s in (f32, bf16)]
  for r in (more or {}).get('rows', ()):
    if r['seed'] in more['paired_seeds']:
      by[DTYPES.index(r['dtype'])].update(
          {(g['model'], str(g['seed']), g['gate']): bool(g['passed']) for g in r['gates']})
  return [{'model': k[0], 'seed': k[1], 'gate': k[2], 'float32': by[0].get(k),
           'bfloat16': by[1].get(k)}
          for k in sorted(set(by[0]) | set(by[1])) if by[0].get(k) != by[1].get(k)]


def train_seconds_by_model(f32, bf16):
  """Per model, its training seconds summed over the seeds both runs trained, at each dtype
  (descriptive: where the wall time goes, not a verdict)."""
  rows = []
  for model in sorted(set(f32['per_seed']) & set(bf16['per_seed'])):
    seeds = sorted(set(f32['per_seed'][model]) & set(bf16['per_seed'][model]), key=int)
    sums = [sum(s['per_seed'][model][k].get('train_seconds', math.nan) for k in seeds)
            for s in (f32, bf16)]
    rows.append({'model': model, 'seeds': len(seeds), 'float32': sums[0], 'bfloat16': sums[1]})
  return rows


def _timing(summary):
  t = summary.get('timing') or {}
  keys = ('wall_seconds_busy', 'train_phase_seconds', 'metrics_seconds', 'figures_seconds',
          'passes', 'from_empty', 'machines')
  return {k: t.get(k) for k in keys}


def benchmark_ratios(benchmark, machines):
  """``{workload: bfloat16 / float32 images/s}`` of the study's workloads in ``benchmark``,
  or None when it has no bfloat16 rows or ran on another CPU than ``machines`` name."""
  if not benchmark or 'bfloat16' not in benchmark:
    return None
  cpu = benchmark['machine']['cpu']
  if not machines or not all(m.startswith(cpu + ',') for m in machines):
    return None
  return {k: benchmark['bfloat16'][k]['images_per_s']['median']
          / benchmark[k]['images_per_s']['median'] for k in STUDY_WORKLOADS}


def check_more_seeds(more):
  """A ValueError naming the fix unless ``more`` is a finished, full-schedule precision_seeds
  JSON: its row is judged once, on the number of seeds declared before it ran."""
  if more.get('quick'):
    raise ValueError('the --more_seeds file is from a --quick run: pass a full one')
  from vae_jax.study import precision_seeds
  if more.get('total_seeds') != precision_seeds.TOTAL_SEEDS:
    raise ValueError(f'the --more_seeds file has {more.get("total_seeds")} pairs in all, not '
                     f'the {precision_seeds.TOTAL_SEEDS} precision_seeds declared: pass its run')
  if not more.get('complete'):
    raise ValueError(f'--more_seeds has {len(more["paired_seeds"])} of the '
                     f'{len(more["seeds"])} declared seed pairs: finish them first '
                     '(rerun python -m vae_jax.study.precision_seeds with the same --outdir)')


def compare(f32, bf16, benchmark=None, more=None):
  """The whole comparison (a JSON-ready dict) of a float32 and a bfloat16 study summary,
  with the paired speed of the quiet ``benchmark`` (its JSON) where it ran on the same CPU
  and the extra paired seeds of a finished precision_seeds JSON ``more``."""
  if more is not None:
    check_more_seeds(more)
  for s, want in ((f32, 'float32'), (bf16, 'bfloat16')):
    if _dtype(s) != want:
      raise ValueError(f'the {want} side is a study trained in {_dtype(s)}: pass the summary '
                       f'of a run with --compute_dtype={want}')
    if s.get('quick'):
      raise ValueError(f'the {want} summary is from a --quick run: compare full runs only')
    if not (s.get('timing') or {}).get('wall_seconds_busy'):
      raise ValueError(f'the {want} summary records no wall time (a study from before its '
                       'timing was kept): run that study again from an empty outdir')
  timing = {'float32': _timing(f32), 'bfloat16': _timing(bf16)}
  busy = [timing[d]['wall_seconds_busy'] for d in ('float32', 'bfloat16')]
  ratio = busy[1] / busy[0] if all(busy) else math.nan
  claims = verdict_rows(f32, bf16)
  quality = quality_rows(f32, bf16, more)
  gates = gate_differences(f32, bf16, more)
  changed = [c for c in claims if c['float32'] != c['bfloat16']]
  reasons = []
  if changed:
    reasons.append(f'{len(changed)} of {len(claims)} verdicts differ')
  if gates:
    reasons.append(f'{len(gates)} gate results differ')
  contradicted = [q['model'] for q in quality if q['verdict'] == verdicts.CONTRADICTED]
  if contradicted:
    reasons.append('test ELBO outside its margin for ' + ', '.join(contradicted))
  if not ratio < 1:
    reasons.append(f'bfloat16 is not faster here ({ratio:.2f}x the float32 wall time)')
  paired = benchmark_ratios(benchmark, timing['bfloat16']['machines'])
  if paired and not all(v >= 1 for v in paired.values()):
    reasons.append('in the quiet benchmark, both dtypes timed in one run on this CPU, '
                   'bfloat16 trains ' + ' and '.join(
                       f'the {_WORKLOAD_NAMES[k]} at {v:.2f}x' for k, v in paired.items())
                   + ' its float32 rate')
  same_machine = timing['float32']['machines'] == timing['bfloat16']['machines']
  if not same_machine:
    reasons.append('the two runs are from different machines, so their times do not compare')
  both_from_empty = bool(timing['float32']['from_empty'] and timing['bfloat16']['from_empty'])
  if not both_from_empty:
    reasons.append('a run did not start from an empty outdir, so its time is not the cost')
  return {'timing': timing, 'ratio': ratio, 'target_ratio': TARGET_RATIO,
          'benchmark_ratios': paired, 'train_seconds_by_model': train_seconds_by_model(f32, bf16),
          'target_met': bool(ratio <= TARGET_RATIO and same_machine and both_from_empty),
          'claims': claims, 'changed_claims': [c['id'] for c in changed],
          'more_seeds': more and {k: more[k] for k in ('model', 'seeds', 'xla_flags', 'machine')},
          'quality': quality, 'gate_differences': gates,
          'study_trains_in': 'float32' if reasons else 'bfloat16', 'reasons': reasons}


# ----------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------
def _minutes(t, key):
  return f'{t[key] / 60:.1f}' if t.get(key) is not None else '–'


def _split_rows(r):
  lines = ['| dtype | wall time from empty, min | training | metrics | figures | '
           'process runs | machine |', '|---|---:|---:|---:|---:|---:|---|']
  for d in ('float32', 'bfloat16'):
    t = r['timing'][d]
    lines.append(f'| {d} | {_minutes(t, "wall_seconds_busy")} | '
                 f'{_minutes(t, "train_phase_seconds")} | {_minutes(t, "metrics_seconds")} | '
                 f'{_minutes(t, "figures_seconds")} | {t["passes"]} | '
                 f'{"; ".join(t["machines"] or ["?"])} |')
  return lines


def _quality_table(r):
  lines = ['| model | seeds | test ELBO float32 | bfloat16 | bfloat16 − float32 [95% interval] '
           '| margin ± (source) | Holm p | verdict |', '|---|---:|---:|---:|---:|---|---:|---|']
  for q in r['quality']:
    settle = (f' (needs {q["seeds_to_settle"]} seeds)' if q.get('seeds_to_settle') else
              ' (needs > 100 seeds)' if q['verdict'] == verdicts.INCONCLUSIVE else '')
    lines.append(f'| {q["model"]} | {q["n"]} | {np.mean(q["float32"]):.2f} | '
                 f'{np.mean(q["bfloat16"]):.2f} | {q["difference"]:+.2f} '
                 f'[{q["low"]:+.2f}, {q["high"]:+.2f}] | {q["margin"]:.2f} '
                 f'({q["margin_source"]}) | {q["p_adjusted"]:.3g} | **{q["verdict"]}**{settle} |')
  return lines


def headline(r):
  """README: the bfloat16 study's time beside the float32 one, and which dtype the study uses."""
  t = r['timing']['bfloat16']
  why = '; '.join(r['reasons']) if r['reasons'] else 'it is faster and says the same'
  n, changed = len(r['claims']), len(r['changed_claims'])
  return (f"The same study trained in bfloat16 (`--compute_dtype=bfloat16`) took "
          f"{t['wall_seconds_busy'] / 60:.0f} minutes from empty on {'; '.join(t['machines'])} "
          f"({r['ratio']:.2f}× the float32 run; issue 28's target ≤ {r['target_ratio']}×), with "
          f"{n - changed} of {n} verdicts the same. The study trains in "
          f"**{r['study_trains_in']}** here: {why} ([comparison](docs/performance.md"
          "#the-study-at-both-dtypes)).")


def markdown(r):
  lines = ['<!-- generated by vae_jax/study/precision_study.py from '
           'results/precision_study.json; edit the script, not this text -->', '']
  lines += _split_rows(r)
  met = 'met' if r['target_met'] else 'not met'
  t = r['timing']['float32']
  rest = (t['metrics_seconds'] + t['figures_seconds']) / t['wall_seconds_busy']
  lines += ['', f'bfloat16 / float32 wall time: **{r["ratio"]:.2f}×** (target ≤ '
            f'{r["target_ratio"]}×: {met}). Metrics and figures are {rest:.1%} of the float32 '
            f'wall time: making them free would cut it to {1 - rest:.2f}×.', '']
  lines += ['Training time per model (seconds summed over its seeds):', '',
            '| model | seeds | float32 s | bfloat16 s | bfloat16 / float32 |',
            '|---|---:|---:|---:|---:|']
  lines += [f'| {m["model"]} | {m["seeds"]} | {m["float32"]:.0f} | {m["bfloat16"]:.0f} | '
            f'{m["bfloat16"] / m["float32"]:.2f}× |' for m in r['train_seconds_by_model']]
  lines.append('')
  n, changed = len(r['claims']), r['changed_claims']
  lines.append(f'**Verdicts:** {n - len(changed)} of {n} claims reach the same verdict under '
               'both dtypes' + ('.' if not changed else '; these differ:'))
  if changed:
    lines += ['', '| claim | family | float32 | bfloat16 | Holm p float32 / bfloat16 |',
              '|---|---|---|---|---:|']
    fmt = lambda p: '–' if p is None else f'{p:.3g}'  # noqa: E731
    for c in r['claims']:
      if c['id'] in changed:
        lines.append(f'| {c["id"]} | {c["family"]} | {c["float32"]} | {c["bfloat16"]} | '
                     f'{fmt(c["p_adjusted"][0])} / {fmt(c["p_adjusted"][1])} |')
  g = r['gate_differences']
  lines += ['', f'**Gates:** {len(g)} (model, seed, gate) result'
            f'{"s" if len(g) != 1 else ""} differ between the dtypes'
            + (': ' + '; '.join(f'{x["model"]} seed {x["seed"]} `{x["gate"]}` '
                                f'{x["float32"]} → {x["bfloat16"]}' for x in g) if g else '')
            + '.', '', '**Test ELBO at the full schedule** (paired by seed; TOST against the '
            'margin, Holm over the models):', '']
  lines += _quality_table(r)
  more = r.get('more_seeds')
  if more:
    q = next(q for q in r['quality'] if q['model'] == more['model'])
    lines += ['', f'{more["model"]}: {q["study_pairs"]} pairs from the two studies and '
              f'{len(more["seeds"])} more (seeds {more["seeds"][0]}–{more["seeds"][-1]}), the '
              'number its power calculation asked for, trained by '
              '`python -m vae_jax.study.precision_seeds` on '
              f'{more["machine"]} with one XLA thread per process (`{more["xla_flags"]}`).']
  lines += ['', f'**The study trains in {r["study_trains_in"]}** on this kind of machine'
            + (': ' + '; '.join(r['reasons']) + '.' if r['reasons'] else
               ': every verdict and gate is the same, no ELBO leaves its margin, and '
               'bfloat16 is faster.')]
  return '\n'.join(lines)


def _read(path, fix):
  """The JSON at ``path``, or one line that says it is missing and ``fix``."""
  if not os.path.exists(path):
    errors.exit_with(f'{path} does not exist: {fix}')
  with open(path) as f:
    return json.load(f)


def main(argv=None, prog='python -m vae_jax.study.precision_study'):
  parser = flags.Parser(prog, __doc__.split('\n\n')[0],
                        f'{prog} --bfloat16=runs/study_bf16/summary.json '
                        '--json=results/precision_study.json')
  parser.add_argument('--float32', default=os.path.join(paths.REPO_ROOT, FLOAT32_SUMMARY),
                      help='summary.json of the float32 study (default: the published one)')
  parser.add_argument('--bfloat16', required=True,
                      help='summary.json of a full study run with --compute_dtype=bfloat16')
  parser.add_argument('--benchmark', default=os.path.join(paths.REPO_ROOT, BENCHMARK),
                      help='benchmark JSON with both dtypes (its paired speed); "" for none')
  parser.add_argument('--more_seeds', default=None,
                      help='a finished precision_seeds JSON: its model\'s quality row also '
                           'takes those paired seeds (python -m vae_jax.study.precision_seeds)')
  parser.add_argument('--json', default=None, help='write the comparison to this file')
  args = parser.parse_args(argv)
  summaries = [_read(path, f'finish that study run first (see {prog} --help)')
               for path in (args.float32, args.bfloat16)]
  benchmark = args.benchmark and _read(
      args.benchmark, 'pass --benchmark= a benchmark JSON (vae-jax bench --json=FILE) or '
      '--benchmark= with nothing for none')
  more = args.more_seeds and _read(
      args.more_seeds, 'run python -m vae_jax.study.precision_seeds --outdir=DIR to the end first')
  try:
    result = compare(*summaries, benchmark=benchmark or None, more=more or None)
  except ValueError as e:
    errors.exit_with(str(e))
  if args.json:
    blocks.write_source(args.json, result)
  print(markdown(result))
  return result


if __name__ == '__main__':
  main()
