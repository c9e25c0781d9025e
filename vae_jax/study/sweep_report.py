"""The sweep's numbers: per-cell means, the two questions judged over seeds, REPORT.md.

1. Does a deterministic AE plus an ex-post GMM sample as well as a VAE
   (Ghosh et al. 2020)? Claims of group ``ghosh``: the AE sampled from a
   10-component GMM fitted to its codes against the β = 1 VAE sampled from
   N(0, I) (and from its own GMM), per data set and latent size.
2. Where along β do continuity and completeness appear? Claims of group
   ``beta``: each VAE variant against the classic AE (and against β = 0),
   laid out as one interval matrix per metric (rows: data set × latent size,
   columns: β).

Every verdict is study_claims.judge_all's under the study's rules
(vae_jax/analysis/verdicts.py, docs/statistics.md): per-seed paired t-tests, Holm
within each question (:func:`question`) at a family-wise 5 %, the seeds per
cell from power.SWEEP_SEEDS. Both questions are exploratory: the article made
neither claim. A sampler's numbers enter a claim as a pseudo-model
``<cell>@<sampler>`` so that two samplers can be compared.
"""

import numpy as np

from vae_jax.analysis import metric_registry as registry
from vae_jax.study import claims as study_claims
from vae_jax.study import report as study_report
from vae_jax.study import sweep_catalog as sweep_models
from vae_jax.analysis import samplers
from vae_jax.core import data as data_lib
from vae_jax.infra import run_clock

# Per-cell numbers kept in summary.json (mean ± std over seeds).
CORE_KEYS = ('recon', 'kl', 'elbo', 'active_units', 'path_jump_ratio', 'path_confident_share',
             'path_class_changes', 'lipschitz_p99_relative', 'knn_accuracy', 'train_seconds',
             'metrics_seconds')
SAMPLER_KEYS = study_report.SAMPLER_KEYS
BETA_ORDER = ('beta0', 'beta0p25', 'beta1', 'beta4')   # along β; free bits apart

# Ghosh et al.: (metric, what "AE + GMM is at least as good" says); the direction
# of "better" is the registry's.
GHOSH_METRICS = (
    ('frechet_distance', 'a lower Fréchet distance to the test images'),
    ('precision', 'a higher precision (samples look real)'),
    ('coverage', 'a higher coverage (samples reach the data\'s variety; real-side balls)'),
    ('balanced_confident_share', 'more samples the classifier calls confidently, within the '
     'data\'s class proportions'),
)
# The β question: (metric, baseline variant, what it measures); "better": the registry's.
BETA_MATRICES = (
    ('path_jump_ratio', 'ae', 'continuity: evenness of change along class-pair walks'),
    ('path_confident_share', 'ae', 'continuity: walk images called confidently'),
    ('prior/balanced_confident_share', 'ae',
     'completeness: N(0, I) samples called confidently, class-balanced'),
    ('prior/hole_share', 'ae', 'completeness: N(0, I) samples where the aggregate posterior '
     'is thin'),
    ('prior/frechet_distance', 'ae', 'sample quality: N(0, I) Fréchet distance'),
    ('prior/balanced_confident_share', 'beta0',
     'completeness: N(0, I) samples called confidently, class-balanced'),
    ('prior/hole_share', 'beta0', 'completeness: N(0, I) samples where the aggregate '
     'posterior is thin'),
)
MARK = {'supported': '✓', 'contradicted': '✗', 'equivalent': '≈', 'inconclusive': '?'}


def question(group):
  """The family a display group belongs to: question 1 (``'ghosh'``) or 2 (``'beta'``)."""
  return 'ghosh' if group.startswith('ghosh') else 'beta'


def _cell(dataset, z, variant):
  return sweep_models.cell_name(dataset, z, variant)


def matrix_group(metric, baseline):
  return f'beta:{metric}:{baseline}'


def claims(grid):
  """The declarative claims of the grid (study_claims.Claim rows)."""
  rows = []
  variants = grid['variants']
  for d in grid['datasets']:
    for z in grid['latent_dims']:
      ae, vae = _cell(d, z, 'ae'), _cell(d, z, 'beta1')
      if 'ae' in variants and 'beta1' in variants:
        where = f'{d}, {z}-D'
        for metric, what in GHOSH_METRICS:
          rows.append(study_claims.Claim(
              f'{ae}_gmm_vs_prior_{metric}', f'{where}: the classic AE sampled from a GMM '
              f'fitted to its codes has {what} than the β = 1 VAE sampled from N(0, I)',
              metric, f'{ae}@gmm', f'{vae}@prior', registry.direction(metric), 'ghosh'))
        rows.append(study_claims.Claim(
            f'{ae}_gmm_vs_gmm_frechet_distance', f'{where}: the classic AE with a GMM has a '
            'lower Fréchet distance than the β = 1 VAE with the same kind of GMM',
            'frechet_distance', f'{ae}@gmm', f'{vae}@gmm',
            registry.direction('frechet_distance'), 'ghosh_gmm'))
      for metric, base, what in BETA_MATRICES:
        for v in sweep_models.VAE_VARIANTS:
          if v in variants and base in variants and v != base:
            rows.append(study_claims.Claim(
                f'{_cell(d, z, v)}_{metric}_vs_{base}',
                f'{d}, {z}-D: {sweep_models.VARIANT[v].label} beats the '
                f'{sweep_models.VARIANT[base].label} on {what}', metric, _cell(d, z, v),
                _cell(d, z, base), registry.direction(metric), matrix_group(metric, base)))
  return rows


def with_sampler_models(per_seed):
  """``per_seed`` plus a pseudo-model ``<cell>@<sampler>`` per sampler with its metrics."""
  out = dict(per_seed)
  for name, rows in per_seed.items():
    for sampler in samplers.SAMPLERS:
      prefix = f'{sampler}/'
      out[f'{name}@{sampler}'] = {
          seed: {k[len(prefix):]: v for k, v in row.items() if k.startswith(prefix)}
          for seed, row in rows.items()}
  return out


def cell_table(per_seed, grid):
  """``{cell: {dataset, latent_dim, variant, label, n, metrics: {key: mean_std}}}``."""
  keys = CORE_KEYS + tuple(f'{s}/{k}' for s in samplers.SAMPLERS for k in SAMPLER_KEYS)
  out = {}
  for d in grid['datasets']:
    for z in grid['latent_dims']:
      for v in grid['variants']:
        rows = list(per_seed.get(_cell(d, z, v), {}).values())
        if not rows:
          continue
        out[_cell(d, z, v)] = {
            'dataset': d, 'latent_dim': z, 'variant': v, 'label': sweep_models.VARIANT[v].label,
            'n': len(rows), 'metrics': {k: study_report.mean_std([r[k] for r in rows])
                                        for k in keys if all(k in r for r in rows)}}
  return out


def beta_onsets(judged, grid, metric, baseline):
  """Per (data set, latent size): the smallest β whose claim holds; whether all larger β hold."""
  by_id = {c['id']: c for c in judged}
  out = []
  for d in grid['datasets']:
    for z in grid['latent_dims']:
      betas = [v for v in BETA_ORDER if v != baseline
               and f'{_cell(d, z, v)}_{metric}_vs_{baseline}' in by_id]
      verdicts = [by_id[f'{_cell(d, z, v)}_{metric}_vs_{baseline}']['verdict'] for v in betas]
      if not betas:
        continue
      first = next((i for i, x in enumerate(verdicts) if x == 'supported'), None)
      out.append({'dataset': d, 'latent_dim': z, 'betas': betas, 'verdicts': verdicts,
                  'onset': None if first is None else sweep_models.VARIANT[betas[first]].beta,
                  'stays': first is not None and all(x == 'supported' for x in verdicts[first:])})
  return out


def timing(passes, per_seed):
  """Wall time of the processes that ran, and the seconds spent per cell."""
  rows = [r for cells in per_seed.values() for r in cells.values()]
  span = (max(p['started'] + p['wall_seconds'] for p in passes)
          - min(p['started'] for p in passes)) if passes else 0.0
  return {'passes': passes, 'wall_seconds_busy': run_clock.busy_seconds(passes),
          'wall_seconds_span': span,
          'wall_seconds_sum': float(sum(p['wall_seconds'] for p in passes)),
          'train_seconds_total': float(sum(r.get('train_seconds', 0.0) for r in rows)),
          'metrics_seconds_total': float(sum(r.get('metrics_seconds', 0.0) for r in rows)),
          'machines': sorted({p.get('machine', '?') for p in passes})}


def judge(per_seed, grid):
  """``(claims, onsets)``: every row judged within its question's family, and the β onsets."""
  judged = study_claims.judge_all(with_sampler_models(per_seed), claims(grid), family_of=question)
  return judged, {matrix_group(m, b): beta_onsets(judged, grid, m, b)
                  for m, b, _ in BETA_MATRICES}


def summarise(per_seed, missing, failed, grid, quick, passes, classifiers):
  judged, onsets = judge(per_seed, grid)
  expected = (len(grid['datasets']) * len(grid['latent_dims']) * len(grid['variants'])
              * len(grid['seeds']))
  return {'quick': quick, 'grid': {k: list(v) for k, v in grid.items()},
          'epochs': sorted({int(r['epochs']) for rows in per_seed.values()
                            for r in rows.values() if 'epochs' in r}),
          'free_bits': sweep_models.FREE_BITS,
          'expected_cells': expected, 'missing': missing, 'failed': failed,
          'per_seed': per_seed, 'cells': cell_table(per_seed, grid), 'claims': judged,
          'onsets': onsets, 'timing': timing(passes, per_seed),
          'classifiers': classifiers}


# ----------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------
_num, _fmt = study_report._num, study_report._fmt


def status_lines(s):
  """What the summary covers: quick or not, cells done or missing, wall time."""
  t = s['timing']
  done = s['expected_cells'] - len(s['missing'])
  lines = []
  if s['quick']:
    lines.append('**QUICK smoke run: a small grid on a data slice for one epoch; its numbers '
                 'mean nothing.**')
  if s['missing']:
    lines.append(f"**INCOMPLETE: {done} of {s['expected_cells']} cells finished; missing "
                 f"{len(s['missing'])}: {', '.join(s['missing'])}"
                 + (f"; failed (see their sweep_error.txt): {', '.join(s['failed'])}"
                    if s['failed'] else '') + '. Every number below covers the finished '
                 'cells only.**')
  else:
    lines.append(f"All {s['expected_cells']} cells finished.")
  lines.append(
      f"Grid: data sets {', '.join(s['grid']['datasets'])}; latent sizes "
      f"{', '.join(map(str, s['grid']['latent_dims']))}; "
      f"{', '.join(sweep_models.VARIANT[v].label for v in s['grid']['variants'])}; seeds "
      f"{', '.join(map(str, s['grid']['seeds']))}; the study's 784-512-d MLP trained for "
      f"{' or '.join(map(str, s['epochs'])) or '–'} epochs per cell; free bits "
      f"λ = {s['free_bits']} nats per dimension. Measured wall time: "
      f"{t['wall_seconds_busy'] / 60:.1f} min during which at least one of its "
      f"{len(t['passes'])} process runs was running ({t['wall_seconds_span'] / 60:.1f} min "
      f"from the first start to the last end, {t['wall_seconds_sum'] / 60:.1f} min summed "
      f"over the runs); {t['train_seconds_total'] / 60:.1f} min training and "
      f"{t['metrics_seconds_total'] / 60:.1f} min of metrics over the finished cells, on "
      f"{'; '.join(t['machines']) or 'no recorded machine'}.")
  return lines


def ghosh_finding(s):
  """One generated paragraph on question 1."""
  judged = [c for c in s['claims'] if c['group'] == 'ghosh'
            and c['metric'] == 'frechet_distance']
  if not judged:
    return 'No cell pair of a classic AE and a β = 1 VAE is finished: question 1 is open.'
  count = {v: sum(c['verdict'] == v for c in judged) for v in MARK}
  ratio = [float(np.mean(c['values_a']) / np.mean(c['values_b'])) for c in judged]
  return (f"Fréchet distance (lower is better) of the classic AE sampled from a 10-component "
          f"GMM against the β = 1 VAE sampled from N(0, I), over {len(judged)} (data set, "
          f"latent size) pairs: the AE + GMM is better (Holm-adjusted p < 0.05) in "
          f"{count['supported']}, worse in {count['contradicted']}, and not distinguishable "
          f"with these seeds in {count['inconclusive']}; its distance is "
          f"{min(ratio):.2f}–{max(ratio):.2f} × the VAE's. Precision, coverage and the "
          'class-balanced confident share are judged the same way in the table. '
          + study_report.FRECHET_NOTE)


def _beta_label(beta):
  return f'β = {beta:g}'


def onset_sentences(s):
  """One generated line per interval matrix: where along β the property first holds."""
  lines = []
  for metric, base, what in BETA_MATRICES:
    rows = s['onsets'].get(matrix_group(metric, base), [])
    if not rows:
      continue
    parts = []
    for r in rows:
      where = f"{data_lib.title(r['dataset'])} {r['latent_dim']}-D"
      if r['onset'] is None:
        parts.append(f'{where}: at no β')
      else:
        parts.append(f"{where}: from {_beta_label(r['onset'])}"
                     + ('' if r['stays'] else ' (not at every larger β)'))
    lines.append(f"- **{what} {registry.arrow(metric)}**, better than the "
                 f"{sweep_models.VARIANT[base].label}: "
                 + '; '.join(parts) + '.')
  return lines


def matrix_markdown(s, metric, base):
  """Rows: data set × latent size; columns: VAE variants; cells: A − B [95 % CI] verdict."""
  group = matrix_group(metric, base)
  judged = {(c['a']): c for c in s['claims'] if c['group'] == group}
  variants = [v for v in sweep_models.VAE_VARIANTS if v in s['grid']['variants'] and v != base]
  lines = ['| data | latent | ' + ' | '.join(sweep_models.VARIANT[v].label for v in variants)
           + ' |', '|---|---:|' + '---|' * len(variants)]
  for d in s['grid']['datasets']:
    for z in s['grid']['latent_dims']:
      cells = []
      for v in variants:
        c = judged.get(_cell(d, z, v))
        if c is None:
          cells.append('–')
        elif np.isfinite(c['low']):
          cells.append(f"{_num(c['difference'])} [{_num(c['low'])}, {_num(c['high'])}] "
                       f"{MARK[c['verdict']]}")
        else:
          cells.append(f"{_num(c['difference'])} [no interval] {MARK[c['verdict']]}")
      lines.append(f'| {d} | {z} | ' + ' | '.join(cells) + ' |')
  return lines


def matrices_markdown(s, heading='###'):
  lines = []
  for metric, base, what in BETA_MATRICES:
    if not any(c['group'] == matrix_group(metric, base) for c in s['claims']):
      continue
    lines += [f'{heading} {what} {registry.arrow(metric)}: VAE − '
              f'{sweep_models.VARIANT[base].label}', '']
    lines += matrix_markdown(s, metric, base) + ['']
  return lines


def cells_markdown(s):
  cols = ('kl', 'recon', 'active_units', 'path_jump_ratio', 'path_confident_share',
          'path_class_changes', 'lipschitz_p99_relative', 'knn_accuracy')
  lines = ['| data | latent | model | seeds | ' + ' | '.join(registry.header(k) for k in cols)
           + ' |', '|---|---:|---|---:|' + '---|' * len(cols)]
  for name, c in s['cells'].items():
    m = c['metrics']
    lines.append(f"| {c['dataset']} | {c['latent_dim']} | {c['label']} | {c['n']} | "
                 + ' | '.join(_fmt(m[k], registry.decimals(k)) if k in m else '–'
                              for k in cols) + ' |')
  return lines


def samplers_markdown(s):
  cols = SAMPLER_KEYS
  lines = ['| data | latent | model | sampler | ' + ' | '.join(registry.header(k) for k in cols)
           + ' |', '|---|---:|---|---|' + '---|' * len(cols)]
  for c in s['cells'].values():
    m = c['metrics']
    for sampler in samplers.SAMPLERS:
      cells = [_fmt(m[f'{sampler}/{k}'], registry.decimals(k)) if f'{sampler}/{k}' in m
               else '–' for k in cols]
      lines.append(f"| {c['dataset']} | {c['latent_dim']} | {c['label']} | "
                   f"{study_claims.SAMPLER_TEXT[sampler]} | " + ' | '.join(cells) + ' |')
  return lines


def findings_markdown(s, heading='##'):
  """The two questions, answered from the summary (README and REPORT.md share it)."""
  lines = [f'{heading} Does a classic AE plus an ex-post GMM sample as well as a VAE?', '',
           ghosh_finding(s), '',
           study_report.VERDICT_RULE + ' Here each question is one family (Holm over '
           'all its rows, both tables of question 1 together); both are exploratory. '
           '`X@gmm` is model X sampled from a GMM fitted to its training codes, `X@prior` '
           'from N(0, I).', '']
  lines += study_report.claims_markdown(s['claims'], 'ghosh')
  lines += ['', 'The same, with the VAE also sampled from a GMM fitted to its codes:', '']
  lines += study_report.claims_markdown(s['claims'], 'ghosh_gmm')
  lines += ['', f'{heading} Where along β do continuity and completeness appear?', '']
  lines += onset_sentences(s)
  lines += ['', 'Each cell of the tables below: mean over seeds of VAE − baseline, its 95 % '
            'interval and the verdict that the VAE is better after Holm over all of question '
            '2 (✓ supported, ✗ contradicted, ? inconclusive).', '']
  lines += matrices_markdown(s, heading + '#')
  return lines


def report_markdown(s, figure_prefix):
  lines = ['# Sweep report: latent size × β', ''] + status_lines(s) + ['']
  lines += findings_markdown(s)
  lines += ['## Every cell (mean ± std over seeds)', '',
            'Rate is the test KL(q(z|x) ‖ N(0, I)) and distortion the test reconstruction '
            'loss, nats per image (the classic AE has no rate: its code is deterministic). '
            'Active units: dimensions whose code varies with the input (Burda et al.). '
            'docs/metrics.md defines the rest.', '']
  lines += cells_markdown(s)
  lines += ['', '## Every sampler (mean ± std over seeds)', '']
  lines += samplers_markdown(s)
  lines += ['', '## Figures', '']
  for name in s['figures']:
    lines += [f'### {name}', '', s['captions'][name], '',
              f'![{name}]({figure_prefix}/{name}.png)', '']
  return '\n'.join(lines) + '\n'
