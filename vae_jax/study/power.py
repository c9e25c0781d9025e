"""Seeds from a power analysis, declared before the run that judges the claims.

For every claim of a family, :func:`row_needs` asks: with the effect and the
seed-to-seed spread of the paired differences published so far, how many seeds
decide the claim with 80 % power at the family's Bonferroni level α/m
(verdicts.seeds_to_settle)? A model then trains as many seeds as its
most demanding row needs, up to :data:`MAX_SEEDS` (MLP models cost 1–3 min a
seed on the 2-core CPU); rows that need more stay open and say so. A primary
row without published values (its metric is new) is planned at the cap.

The constants below are what :func:`plan_study` and :func:`plan_sweep` return on
the per-seed values in PLAN_DATA; tests/test_power.py reruns them on that
data and fails if they differ. Rerunning them on a later summary would tune
the seeds to the outcome: the plan is changed only by a new declaration.
"""

from vae_jax.study import claims as study_claims
from vae_jax.analysis import verdicts

MAX_SEEDS = 10
PLAN_COMMIT = '739aefb'   # the commit whose published summaries the plan used
PLAN_DATA = {'study': 'docs/study_summary.json', 'sweep': 'docs/sweep_summary.json'}

# plan_study(per_seed of docs/study_summary.json at PLAN_COMMIT, current seeds):
STUDY_SEEDS = {
    'fashion_mnist_ae_2d': 10,
    'fashion_mnist_conv_vae_2d': 4,
    'fashion_mnist_conv_vae_dropout_maxnorm_2d': 4,
    'fashion_mnist_vae_2d': 10,
    'mnist_ae_2d': 10,
    'mnist_ae_32': 5,
    'mnist_denoising_ae': 5,
    'mnist_vae_2d': 10,
    'mnist_vae_recon_only_2d': 10,
}
# plan_sweep(docs/sweep_summary.json at PLAN_COMMIT): one seed count for every cell.
SWEEP_SEEDS = 10


def row_needs(judged_row, family_size, alpha=verdicts.ALPHA, cap=MAX_SEEDS):
  """Seeds the row needs (``None``: more than ``cap``); 0 when already decided at α/m."""
  level = alpha / family_size
  if judged_row['measured'] is False:
    return cap
  if judged_row['decision'] is not None and judged_row['p'] < level:
    return 0
  n = verdicts.seeds_to_settle(judged_row['difference'], judged_row['sd'], level,
                               margin=judged_row.get('margin'))
  return n if n is not None and n <= cap else None


def plan_rows(per_seed, claims, cap=MAX_SEEDS, family_of=None):
  """``[(claim id, models, n now, n needed or None)]`` for each row, at α / family size."""
  judged = study_claims.judge_all(per_seed, claims, family_of=family_of)
  return [(r['id'], [r['a']] + ([r['b']] if isinstance(r['b'], str) else []), r['n'],
           row_needs(r, r['family_size'], cap=cap)) for r in judged]


def plan_study(per_seed, current, cap=MAX_SEEDS):
  """``{model: seeds}`` for the models of the primary family: the most any of its rows
  needs (at most ``cap``), never fewer than ``current[model]``."""
  seeds = {}
  for _, models, _, need in plan_rows(per_seed, study_claims.PRIMARY_CLAIMS, cap):
    for m in models:
      seeds[m] = max(seeds.get(m, current.get(m, 0)), need or 0, current.get(m, 0))
  return dict(sorted(seeds.items()))


def plan_sweep(summary, cap=MAX_SEEDS):
  """Seeds per cell of the sweep: the most any of its rows needs within ``cap``,
  each row at its question's Bonferroni level (sweep_report.question)."""
  from vae_jax.study import sweep_report   # imports catalog, which imports this module
  rows = plan_rows(sweep_report.with_sampler_models(summary['per_seed']),
                   sweep_report.claims(summary['grid']), cap, sweep_report.question)
  return max([len(summary['grid']['seeds'])] + [need for *_, need in rows if need])


def describe(per_seed, claims, cap=MAX_SEEDS):
  """One line per row: what it needs (for docs/statistics.md and the report)."""
  lines = []
  for cid, _, n, need in plan_rows(per_seed, claims, cap):
    what = ('decided' if need == 0 else f'more than {cap} seeds' if need is None
            else f'{need} seeds')
    lines.append(f'{cid}: n = {n} now; {what}')
  return lines


def current_seeds(summary):
  """``{model: seeds it has}`` in a published study summary."""
  return {m: len(rows) for m, rows in summary['per_seed'].items()}


def published(which, commit=PLAN_COMMIT):
  """The summary the plan used: ``PLAN_DATA[which]`` as committed at ``commit`` (git)."""
  import json
  import subprocess
  from vae_jax.infra import paths
  text = subprocess.run(['git', 'show', f'{commit}:{PLAN_DATA[which]}'], cwd=paths.REPO_ROOT,
                        check=True, capture_output=True, text=True).stdout
  return json.loads(text)
