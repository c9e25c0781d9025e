"""The seed study's numbers: the metrics table, the article's claims checked, REPORT.md."""

import os
import platform

import numpy as np

import study_figures
import study_models

NUM_PIXELS = 28 * 28
ARTICLE_AE_2D_LOSS = 0.25   # "the loss value stalled at around 0.25"
ARTICLE_AE_WIDE_LOSS = 0.09  # "in a similar network a loss of 0.09 could be achieved"


class TableMetrics:
  """``(trained) -> {metric: float}`` for a table model; trains classifiers once per data set."""

  def __init__(self, outdir, data_dir, quick):
    self.outdir, self.data_dir, self.quick = outdir, data_dir, quick
    self.classifiers = {}   # dataset -> the classifier's meta (test accuracy, time)
    self._fns = {}

  def classifier_fn(self, dataset):
    """The independent classifier of ``dataset``, trained once and cached on disk."""
    if dataset not in self._fns:
      from vae_jax import classifier
      path = os.path.join(self.outdir, 'classifiers',
                          f'{dataset}{"_quick" if self.quick else ""}.npz')
      os.makedirs(os.path.dirname(path), exist_ok=True)
      cfg = classifier.ClassifierConfig(epochs=1) if self.quick else classifier.ClassifierConfig()
      params, meta = classifier.train_or_load(path, dataset, data_dir=self.data_dir or None,
                                              cfg=cfg)
      self.classifiers[dataset] = meta
      self._fns[dataset] = classifier.make_logits_fn(params, meta)
    return self._fns[dataset]

  def __call__(self, m):
    import jax
    from vae_jax import metrics

    exp = m.exp
    row = metrics.latent_space_metrics(
        exp.model, m.params, exp.config.model.kind, np.asarray(exp.train_images),
        exp.train_labels, exp.test_images, exp.test_labels,
        self.classifier_fn(m.dataset), jax.random.key(10_000 + m.seed))
    row['recon'] = m.test['recon']
    if 'elbo' in m.test:
      row['elbo'] = m.test['elbo']
    return row


def mean_std(values):
  v = np.asarray(values, np.float64)
  return {'mean': float(v.mean()), 'std': float(v.std(ddof=1)) if v.size > 1 else 0.0,
          'n': int(v.size), 'values': [float(x) for x in v]}


def table_rows(trained, seeds):
  """``{dataset: {kind: {metric: mean_std}}}`` over the seeds of the table models."""
  table = {}
  for dataset, short in (('mnist', 'mnist'), ('fashion_mnist', 'fmnist')):
    for kind in study_models.TABLE_KINDS:
      name = f'{short}_{kind}'
      per_seed = [trained[(name, s)] for s in seeds]
      keys = sorted(set.intersection(*(set(m.table) for m in per_seed)))
      table.setdefault(dataset, {})[kind] = {
          'label': per_seed[0].label,
          **{k: mean_std([m.table[k] for m in per_seed]) for k in keys}}
  return table


def _fmt(ms, digits=3):
  return f"{ms['mean']:.{digits}f} ± {ms['std']:.{digits}f}"


def claims(summary):
  """Each claim of the article next to the number that tests it, and a verdict."""
  f, t, m = summary['figures_facts'], summary['table'], summary['models']
  out = []

  def add(claim, number, holds):
    out.append({'claim': claim, 'measured': number, 'supported': bool(holds)})

  ae2 = m['mnist_ae_2d']['recon_per_pixel']['mean']
  ae32 = m['mnist_ae_32']['recon_per_pixel']['mean']
  add(f'2-D classic AE loss stalls near {ARTICLE_AE_2D_LOSS} while a wider code reaches '
      f'~{ARTICLE_AE_WIDE_LOSS} (mean per-pixel BCE)',
      f'2-D: {ae2:.3f}, 32-D: {ae32:.3f}', ae32 < ae2)
  kl = f['vae_rl_kl_latent']
  add('VAE with KL: codes centred on (0, 0), the majority within [-1, 1]',
      f"mean {np.round(kl['code_mean'], 2).tolist()}, share in [-1,1]²: "
      f"{kl['share_in_unit_box']:.2f}",
      kl['share_in_unit_box'] > 0.5 and max(abs(v) for v in kl['code_mean']) < 0.25)
  rl = f['vae_rl_only_latent']
  add('VAE with reconstruction loss only: not centred, spread far beyond [-1, 1]',
      f"std {np.round(rl['code_std'], 2).tolist()}, share in [-1,1]²: "
      f"{rl['share_in_unit_box']:.2f}", rl['share_in_unit_box'] < kl['share_in_unit_box'])
  walk = f['classic_ae_walk']
  add('Walking the classic AE latent space jumps; the VAE changes smoothly '
      '(evenness = largest step / mean step along the walk)',
      f"AE {walk['mnist_ae_2d']['evenness']:.2f}, VAE {walk['mnist_vae_2d']['evenness']:.2f}",
      walk['mnist_ae_2d']['evenness'] > walk['mnist_vae_2d']['evenness'])
  d = f['denoising']
  add('A denoising AE removes noise', f"PSNR {d['psnr_noisy_db']:.1f} → "
      f"{d['psnr_denoised_db']:.1f} dB (gain {d['psnr_gain_db']:.1f} dB)", d['psnr_gain_db'] > 0)
  for dataset in ('mnist', 'fashion_mnist'):
    rows = t.get(dataset, {})
    for metric, better, text in study_models.CLAIM_METRICS:
      if metric not in rows.get('ae_2d', {}):
        continue
      vals = {k: rows[k][metric]['mean'] for k in study_models.TABLE_KINDS}
      order = sorted(vals, key=vals.get, reverse=(better == 'high'))
      holds = study_models.claim_holds(metric, vals)
      add(f'{dataset}: {text}', ', '.join(f'{k} {vals[k]:.3f}' for k in study_models.TABLE_KINDS)
          + f' (best: {order[0]})', holds)
  return out


def summarise(trained, seeds, facts, classifiers, quick, wall_seconds):
  models = {}
  for (name, seed), m in trained.items():
    row = dict(m.test, recon_per_pixel=m.test['recon'] / NUM_PIXELS)
    models.setdefault(name, {})[str(seed)] = row
  aggregated = {name: {k: mean_std([r[k] for r in per_seed.values()])
                       for k in next(iter(per_seed.values()))}
                for name, per_seed in models.items()}
  summary = {
      'quick': quick, 'seeds': seeds, 'wall_seconds': wall_seconds,
      'machine': f'{platform.machine()}, {platform.processor() or "cpu"}',
      'figures': sorted(study_figures.FIGURES), 'figures_facts': facts,
      'models': aggregated, 'per_seed': models, 'table': table_rows(trained, seeds),
      'classifiers': classifiers}
  summary['claims'] = claims(summary)
  return summary


def report_markdown(s):
  lines = ['# Seed study report', '',
           f"{'QUICK smoke run: numbers are not meaningful. ' if s['quick'] else ''}"
           f"Seeds {s['seeds']}; wall time {s['wall_seconds'] / 60:.1f} min.", '',
           '## Figures', '']
  for name, line in study_figures.FIGURES.items():
    lines += [f'### {name}', '', line, '', f'![{name}](figures/{name}.png)', '']
  lines += ['## The article\'s claims, measured', '',
            '| claim | measured | supported |', '|---|---|---|']
  for c in s['claims']:
    lines.append(f"| {c['claim']} | {c['measured']} | {'yes' if c['supported'] else '**no**'} |")
  lines += ['', '## Table (mean ± std over seeds)', '']
  lines += table_markdown(s['table'])
  lines += ['', '## Test metrics of every model (nats per image, mean over seeds)', '',
            '| model | recon | recon / pixel | KL | ELBO | train s |', '|---|---|---|---|---|---|']
  for name, r in sorted(s['models'].items()):
    def g(k, d=2):
      return f"{r[k]['mean']:.{d}f}" if k in r else '–'
    lines.append(f"| {name} | {g('recon')} | {g('recon_per_pixel', 4)} | {g('kl')} | "
                 f"{g('elbo')} | {g('train_seconds', 0)} |")
  return '\n'.join(lines) + '\n'


def table_markdown(table):
  cols = study_models.TABLE_COLUMNS
  lines = ['| data | model | ' + ' | '.join(c[1] for c in cols) + ' |',
           '|---|---|' + '---|' * len(cols)]
  for dataset, rows in table.items():
    for kind, row in rows.items():
      cells = [_fmt(row[k], d) if k in row else '–' for k, _, d in cols]
      lines.append(f"| {dataset} | {row['label']} | " + ' | '.join(cells) + ' |')
  return lines
