"""The seed study's numbers: latent metrics per model and seed, the claims judged, REPORT.md."""

import os

import numpy as np

from vae_jax.study import claims as study_claims
from vae_jax.analysis import verdicts
from vae_jax.study import figures as study_figures
from vae_jax.study import catalog as study_models
from vae_jax.analysis import metric_registry as registry
from vae_jax.analysis import samplers
from vae_jax.infra import run_clock


HOLE_QUANTILE = 0.99   # metrics.latent_space_metrics' default: holes below q's own 1 % density level


class TableMetrics:
  """``(trained) -> {metric: float}`` for a table model; trains classifiers once per data set."""

  def __init__(self, outdir, data_dir, quick):
    self.outdir, self.data_dir, self.quick = outdir, data_dir, quick
    self.classifiers = {}   # dataset -> the classifier's meta (test accuracy, time)
    self._fns = {}

  def classifier_fns(self, dataset):
    """``(logits_fn, features_fn)`` of ``dataset``'s independent classifier (trained once, cached)."""
    if dataset not in self._fns:
      from vae_jax.analysis import classifier, metrics
      from vae_jax.core import data
      path = os.path.join(self.outdir, 'classifiers',
                          f'{dataset}{"_quick" if self.quick else ""}.npz')
      os.makedirs(os.path.dirname(path), exist_ok=True)
      cfg = classifier.ClassifierConfig(epochs=1) if self.quick else classifier.ClassifierConfig()
      params, meta = classifier.train_or_load(path, dataset, data_dir=self.data_dir or None,
                                              cfg=cfg)
      logits_fn = classifier.make_logits_fn(params, meta)
      test_images, test_labels = data.load(dataset, 'test', data_dir=self.data_dir or None)
      # The ceiling for decoded images: the classifier's scores on real test images.
      real = metrics.classifier_scores(
          logits_fn, test_images, proportions=metrics.class_proportions(
              test_labels, meta.get('config', {}).get('num_classes', 10)))
      meta = dict(meta, real_confident_share=real['confident_share'],
                  real_balanced_confident_share=real['balanced_confident_share'])
      self.classifiers[dataset] = meta
      self._fns[dataset] = (logits_fn, classifier.make_features_fn(params, meta))
    return self._fns[dataset]

  def confident_share(self, dataset, images):
    from vae_jax.analysis import metrics
    return metrics.classifier_scores(self.classifier_fns(dataset)[0], images)['confident_share']

  def __call__(self, m):
    import jax
    from vae_jax.analysis import metrics

    logits_fn, features_fn = self.classifier_fns(m.dataset)
    train_images, train_labels = m.train_split()
    row = metrics.latent_space_metrics(
        m.model, m.params, train_images, train_labels,
        m.test_images, m.test_labels, jax.random.key(10_000 + m.seed),
        classifier_fn=logits_fn, features_fn=features_fn, hole_quantile=HOLE_QUANTILE,
        num_samples=1000 if self.quick else 5000)
    # Completeness against the ceiling real images set for this classifier.
    real = self.classifiers[m.dataset]['real_confident_share']
    for sampler in samplers.SAMPLERS:
      if f'{sampler}/confident_share' in row:
        row[f'{sampler}/confident_share_ratio_to_real'] = (
            row[f'{sampler}/confident_share'] / max(real, 1e-30))
    return dict(row, **study_figures.code_facts(m))


def mean_std(values):
  v = np.asarray(values, np.float64)
  return {'mean': float(v.mean()), 'std': float(v.std(ddof=1)) if v.size > 1 else 0.0,
          'n': int(v.size), 'values': [float(x) for x in v]}


# Columns of the metrics table (per-seed keys; headers and decimals: the registry).
TABLE_KEYS = ('recon', 'elbo', 'knn_accuracy', 'path_jump_ratio', 'path_confident_share',
              'path_class_changes', 'prior/balanced_confident_share', 'prior/hole_share',
              'prior/frechet_distance', 'prior/coverage', 'prior/density')
SAMPLER_KEYS = ('balanced_confident_share', 'confident_share', 'class_distance', 'hole_share',
                'frechet_distance', 'coverage', 'density', 'precision', 'recall')
FRECHET_NOTE = ('Fréchet distances are computed in the 512-d penultimate layer of the '
                'project\'s MLP classifier, not Inception\'s: they are not FID and compare only '
                'with each other (same features, same 5000-sample sets).')


def table_rows(per_seed):
  """``{dataset: {model: {label, key: mean_std}}}`` over the seeds of every table model."""
  table = {}
  for spec in study_models.specs():
    if not spec.table or spec.name not in per_seed:
      continue
    rows = list(per_seed[spec.name].values())
    keys = sorted(set.intersection(*(set(r) for r in rows)))
    table.setdefault(spec.dataset, {})[spec.name] = {
        'label': spec.label, **{k: mean_std([r[k] for r in rows]) for k in keys
                                if isinstance(rows[0][k], (int, float))}}
  return table


def judge(per_seed, classifiers):
  """Every claim's verdict from the per-seed values, with its metric's reference value beside it."""
  claims = study_claims.judge_all(per_seed)
  for c in claims:
    dataset = study_models.spec_named(c['a']).dataset
    base = registry.split(c['metric'])[1]
    if (base in ('confident_share', 'balanced_confident_share') and dataset in classifiers
        and f'real_{base}' in classifiers[dataset]):
      c['reference'] = f"real test images: {classifiers[dataset][f'real_{base}']:.3f}"
    elif c['metric'].endswith('/hole_share'):
      c['reference'] = (f'a sampler that draws from the aggregate posterior: about '
                        f'{1 - HOLE_QUANTILE:.2f}')
  return claims


def captions(summary):
  """Every figure's caption from the summary's facts, verdicts, classifiers and gates."""
  return study_figures.captions(
      summary['figures_facts'], {c['id']: c for c in summary['claims']},
      study_claims.PRIOR_SHARE_IN_UNIT_BOX,
      {d: m['real_confident_share'] for d, m in summary['classifiers'].items()},
      {(g['model'], g['seed']): f"`{g['gate']}` measured {g['value']:.4g}"
       for g in summary['gates'] if not g['passed']})


def summarise(trained, seeds, facts, gates, classifiers, quick, wall_seconds):
  per_seed = {}
  for (name, seed), m in trained.items():
    row = dict(m.test, recon_per_pixel=m.test['recon'] / study_figures.num_pixels(m),
               **m.table, **m.facts)
    per_seed.setdefault(name, {})[str(seed)] = row
  models = {name: {k: mean_std([r[k] for r in rows.values()])
                   for k in ('recon', 'kl', 'elbo', 'recon_per_pixel', 'train_seconds')
                   if k in next(iter(rows.values()))}
            for name, rows in per_seed.items()}
  claims = judge(per_seed, classifiers)
  summary = {
      'quick': quick, 'seeds': seeds, 'wall_seconds': wall_seconds,
      'machine': run_clock.machine_description(),
      'figures': sorted(study_figures.FIGURES), 'figures_facts': facts,
      'models': models, 'per_seed': per_seed, 'table': table_rows(per_seed),
      'gates': gates, 'classifiers': classifiers, 'claims': claims,
      'prior_share_in_unit_box': study_claims.PRIOR_SHARE_IN_UNIT_BOX,
      'train_seconds_total': float(sum(r.get('train_seconds', 0.0) for rows in per_seed.values()
                                       for r in rows.values()))}
  summary['captions'] = captions(summary)
  return summary


# ----------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------
def _fmt(ms, digits=3):
  return f"{ms['mean']:.{digits}f} ± {ms['std']:.{digits}f}"


def _num(x, digits=3):
  return f'{x:.{digits}g}' if abs(x) < 1e-2 and x != 0 else f'{x:.{digits}f}'


def _side(c):
  if isinstance(c['b'], str):
    return f"{c['a']} vs {c['b']}"
  return f"{c['a']} vs {c['b']:g}"


def _p(p):
  return '–' if not np.isfinite(p) else f'{p:.2g}' if p < 0.001 else f'{p:.3f}'


def _interval(c):
  if not c.get('measured', True):
    return 'not measured yet'
  if not np.isfinite(c['low']):
    return f"{_num(c['difference'])} [no interval]"
  text = f"{_num(c['difference'])} [{_num(c['low'])}, {_num(c['high'])}]"
  if c['direction'] == 'near':
    text += f"; 90 % [{_num(c['tost_low'])}, {_num(c['tost_high'])}] vs ±{_num(c['margin'])}"
  return text


def _verdict_cell(c):
  if c['verdict'] != 'inconclusive':
    return c['verdict'] if c['verdict'] in ('supported', 'equivalent') else f"**{c['verdict']}**"
  if not c.get('measured', True):
    return f"**inconclusive**: needs metric `{c['metric']}`"
  why = []
  if np.isfinite(c.get('detectable_effect', np.nan)):
    why.append(f"detects a mean difference of ±{_num(c['detectable_effect'])} or more at "
               '80 % power')
  settle = c.get('seeds_to_settle')
  why.append(f'{settle} seeds would settle the observed effect' if settle
             else 'over 100 seeds would be needed for the observed effect')
  return '**inconclusive**: ' + '; '.join(why)


def claims_markdown(claims, group=study_claims.PRIMARY):
  """One table row per claim of ``group``: interval, raw and Holm-adjusted p, verdict."""
  primary = group == study_claims.PRIMARY
  lines = ['| claim | metric | A vs B | mean A | mean B | A − B [95 % CI] | p | Holm p | seeds '
           '| verdict |' + (' source |' if primary else ''),
           '|---|---|---|---:|---:|---|---:|---:|---:|---|' + ('---|' if primary else '')]
  for c in claims:
    if c['group'] != group:
      continue
    b = np.mean(c['values_b']) if c['values_b'] is not None else c['b']
    mean_a = _num(np.mean(c['values_a'])) if c['values_a'] else '–'
    mean_b = _num(b) if c['values_a'] else '–'
    text = c['text'] + (f" ({c['reference']})" if c.get('reference') else '')
    lines.append(f"| {text} | `{c['metric']}` | {_side(c)} | {mean_a} | {mean_b} | "
                 f"{_interval(c)} | {_p(c['p'])} | {_p(c['p_adjusted'])} | {c['n']} | "
                 f"{_verdict_cell(c)} |" + (f" {c['source']} |" if primary else ''))
  return lines


def verdict_changes(before, after):
  """``[{id, group, before, after, why}]`` for each claim whose verdict differs between two
  lists of judged claims (a published summary's and a new run's), and for each claim only
  one of them has; ``why`` is read off the two rows: a new or withdrawn claim, a metric
  measured for the first time or replaced, another number of seeds, or re-measured values.
  """
  old = {c['id']: c for c in before}
  new = {c['id']: c for c in after}
  rows = []
  for cid in list(new) + [i for i in old if i not in new]:
    a, b = old.get(cid), new.get(cid)
    if a is not None and b is not None and a.get('verdict') == b.get('verdict'):
      continue
    if a is None:
      why = f"a claim new since then (metric `{b['metric']}`)"
    elif b is None:
      why = 'no longer declared (vae_jax/study/claims.py)'
    elif not a.get('measured', True):
      why = f"measured for the first time (the previous run did not compute `{b['metric']}`)"
    elif a['metric'] != b['metric']:
      why = f"metric `{a['metric']}` replaced by `{b['metric']}`"
    elif a['n'] != b['n']:
      why = f"{a['n']} → {b['n']} seeds (the power plan), values re-measured"
    else:
      why = 'values re-measured by the new run (same metric, same seeds)'
    rows.append({'id': cid, 'group': (b or a)['group'], 'before': a and a.get('verdict'),
                 'after': b and b.get('verdict'), 'why': why})
  return rows


def changes_markdown(changes, unchanged):
  """The verdicts that changed since the previous publication, with why."""
  if not changes:
    return [f'No verdict changed ({unchanged} claims kept theirs).']
  lines = [f'{len(changes)} verdicts changed, {unchanged} kept theirs.', '',
           '| claim | family | before | now | why |', '|---|---|---|---|---|']
  lines += [f"| `{c['id']}` | {c['group']} | {c['before'] or '–'} | {c['after'] or '–'} | "
            f"{c['why']} |" for c in changes]
  return lines


def table_markdown(table):
  cols = TABLE_KEYS
  lines = ['| data | model | ' + ' | '.join(registry.header(k) for k in cols) + ' |',
           '|---|---|' + '---|' * len(cols)]
  for dataset, rows in table.items():
    for row in rows.values():
      n = next(v['n'] for v in row.values() if isinstance(v, dict))
      cells = [_fmt(row[k], registry.decimals(k)) if k in row else '–' for k in cols]
      lines.append(f"| {dataset} | {row['label']} ({n} seeds) | " + ' | '.join(cells) + ' |')
  return lines


def sampler_markdown(table):
  lines = ['| data | model | sampler | ' + ' | '.join(registry.header(k) for k in SAMPLER_KEYS)
           + ' |', '|---|---|---|' + '---|' * len(SAMPLER_KEYS)]
  for dataset, rows in table.items():
    for row in rows.values():
      for sampler in samplers.SAMPLERS:
        cells = [_fmt(row[f'{sampler}/{k}'], registry.decimals(k)) if f'{sampler}/{k}' in row
                 else '–' for k in SAMPLER_KEYS]
        lines.append(f"| {dataset} | {row['label']} | {study_claims.SAMPLER_TEXT[sampler]} | "
                     + ' | '.join(cells) + ' |')
  return lines


def gates_markdown(gates):
  lines = ['| model | gate | worst value over seeds | seeds | passed |', '|---|---|---:|---:|---|']
  by = {}
  for g in gates:
    by.setdefault((g['model'], g['gate']), []).append(g)
  for (model, gate), rows in by.items():
    worst = (min if '>=' in gate else max)(r['value'] for r in rows)
    ok = all(r['passed'] for r in rows)
    lines.append(f"| {model} | `{gate}` | {_num(worst)} | {len(rows)} | "
                 f"{'yes' if ok else '**no**'} |")
  return lines


def verdict_counts(claims, group=study_claims.PRIMARY):
  rows = [c['verdict'] for c in claims if c['group'] == group]
  return {v: rows.count(v) for v in verdicts.VERDICTS}


def counts_sentence(counts):
  """``'3 supported, 1 contradicted, 2 equivalent, 5 inconclusive'``."""
  return ', '.join(f'{counts[v]} {v}' for v in verdicts.VERDICTS)


# How a verdict is reached (docs/statistics.md says it at length).
VERDICT_RULE = (
    'Each row tests the per-seed paired differences A − B with Student\'s t (two-sided; '
    'for "≈" rows TOST against the declared margin), and Holm\'s correction keeps the '
    'family-wise error of each family at 5 %: *supported* / *contradicted* when the '
    'Holm-adjusted p is below 0.05 on the claimed / the other side, *equivalent* when '
    'the 90 % interval lies inside the margin at that level, *inconclusive* otherwise, '
    'with the effect the row could detect and the seeds that would settle it '
    '(vae_jax/analysis/verdicts.py, docs/statistics.md).')
FAMILY_TITLES = {
    'wording': 'The article\'s one-off numbers and wording (exploratory)',
    'other_metrics': 'The primary claims under other metrics (exploratory)',
    'replication': 'The MNIST claims repeated on the other data sets (exploratory)',
    'mlp_dropout': 'Dropout + max-norm on the MLP, a claim the article did not make '
                   '(exploratory)',
    'samplers': 'Where the completeness claims hold: the same claims under fitted samplers '
                '(exploratory)',
}


def seeds_phrase(s):
  """'4–10 seeds per model' (the power plan gives models different counts), or 'n seeds'."""
  counts = sorted({len(rows) for rows in s['per_seed'].values()})
  if len(counts) == 1:
    return f'{counts[0]} seeds'
  return f'{counts[0]}–{counts[-1]} seeds per model'


def cost_sentence(t):
  """The study's wall time from an empty outdir, split by phase (run.timing's dict)."""
  return (f"{t['wall_seconds_busy'] / 60:.0f} minutes from an empty outdir, summed over the "
          f"{t['passes']} process run{'s' if t['passes'] != 1 else ''} it was split into: "
          f"training {t['train_phase_seconds'] / 60:.0f} min, metrics "
          f"{t['metrics_seconds'] / 60:.0f} min, figures {t['figures_seconds'] / 60:.1f} min")


def _cost(s):
  t = s.get('timing')
  dtype = s.get('compute_dtype', 'float32')   # summaries from before the field: float32
  if t and t['from_empty']:
    return f"Cost: {cost_sentence(t)}, on {'; '.join(t['machines'])}; models trained in {dtype}."
  return (f"Wall time of the run's last pass {s['wall_seconds'] / 60:.1f} min on "
          f"{s['machine']}; training time summed over every model and seed "
          f"{s['train_seconds_total'] / 60:.1f} min (a model trained in an earlier, resumed "
          'pass counts in the sum but not in the wall time).')


def report_markdown(s):
  counts = verdict_counts(s['claims'])
  acc = ', '.join(f"{d} {m['test_accuracy'] * 100:.2f} % (confident on "
                  f"{m['real_confident_share'] * 100:.1f} % of real test images)"
                  for d, m in s['classifiers'].items())
  lines = ['# Seed study report', '',
           f"{'QUICK smoke run: numbers are not meaningful. ' if s['quick'] else ''}"
           f"Seeds {s['seeds']}. {_cost(s)}", '',
           '## The article\'s claims, measured (the primary family)', '',
           f"{counts_sentence(counts)}, of {sum(counts.values())} claims declared before "
           f"the run. {VERDICT_RULE}", '']
  lines += claims_markdown(s['claims'], study_claims.PRIMARY)
  for family in study_claims.SECONDARY:
    if any(c['group'] == family for c in s['claims']):
      lines += ['', f'## {FAMILY_TITLES[family]}', '',
                f"{counts_sentence(verdict_counts(s['claims'], family))}; Holm within this "
                'family.', '']
      lines += claims_markdown(s['claims'], family)
  lines += ['', '## Metrics table (mean ± std over seeds)', '',
            f'Nats per test image; the independent classifier scores {acc}. {FRECHET_NOTE}',
            '']
  lines += table_markdown(s['table'])
  lines += ['', '## Every sampler, every table model (mean ± std over seeds)', '']
  lines += sampler_markdown(s['table'])
  lines += ['', '## Quality gates', '',
            'Every model must reach the gates its experiment file declares before any figure '
            'or number is drawn from it.', '']
  lines += gates_markdown(s['gates'])
  lines += ['', '## Figures', '']
  for name in study_figures.FIGURES:
    lines += [f'### {name}', '', s['captions'][name], '', f'![{name}](figures/{name}.png)', '']
  lines += ['## Test metrics of every model (nats per image, mean over seeds)', '',
            '| model | seeds | recon | recon / pixel | KL | ELBO | train s |',
            '|---|---:|---|---|---|---|---|']
  for name, r in sorted(s['models'].items()):
    def g(k, d=2):
      return f"{r[k]['mean']:.{d}f}" if k in r else '–'
    lines.append(f"| {name} | {r['recon']['n']} | {g('recon')} | {g('recon_per_pixel', 4)} | "
                 f"{g('kl')} | {g('elbo')} | {g('train_seconds', 0)} |")
  return '\n'.join(lines) + '\n'
