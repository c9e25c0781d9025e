"""The study's declarative claims: families, ids, sources; judged seed by seed with Holm."""

import numpy as np
import pytest

from vae_jax.study import claims as study_claims
from vae_jax.study import catalog as study_models
from vae_jax.analysis import verdicts

DATASETS = ('fashion_mnist', 'mnist')   # longest first: 'mnist' is a suffix of the other


def _dataset(model):
  return next(d for d in DATASETS if model.startswith(d + '_'))


def test_every_claim_names_models_of_the_study():
  names = {s.name for s in study_models.specs()}
  ids = [c.id for c in study_claims.CLAIMS]
  assert len(ids) == len(set(ids)), 'claim ids must be unique'
  for c in study_claims.CLAIMS:
    assert c.a in names, c
    assert isinstance(c.b, float) or c.b in names, c
    assert c.direction in verdicts.DIRECTIONS, c
    assert (c.direction == 'near') == (c.margin is not None), c
    assert c.group in study_claims.FAMILIES, c


def test_claim_ids_are_unique_and_name_the_right_data_set():
  ids = [c.id for c in study_claims.CLAIMS]
  assert len(ids) == len(set(ids)), 'claim ids must be unique'
  for c in study_claims.CLAIMS:
    models = [c.a] + ([c.b] if isinstance(c.b, str) else [])
    if c.id.startswith('fashion_mnist'):
      # A Fashion-MNIST row compares Fashion-MNIST models and says "mnist" once.
      assert c.id.count('mnist') == 1, c.id
      assert all(_dataset(m) == 'fashion_mnist' for m in models), c
    elif c.id.startswith('mnist'):
      assert all(_dataset(m) == 'mnist' for m in models), c
    if {_dataset(m) for m in models} == {'fashion_mnist'}:
      assert 'fashion' in c.id or c.id.startswith('fashion'), c.id
  assert 'fashion_mnist_prior_balanced_confident_share_vs_ae_2d' in ids   # the split("_", 1) bug


def test_the_primary_family_is_one_sourced_row_per_claim():
  primary = study_claims.PRIMARY_CLAIMS
  assert all(c.group == study_claims.PRIMARY for c in primary)
  assert [c for c in study_claims.CLAIMS if c.group == study_claims.PRIMARY] == primary
  for c in primary:
    # A quote of the article, never a number this study measured.
    assert c.source.startswith('article: "'), c.id
  # The claims the issue lists as unjudged are declared, each with one metric.
  for cid in ('kl_sigma_near_one', 'kl_class_geometry', 'ae_hole_past_halfway',
              'recon_only_disjoint_clusters', 'kl_locally_complete', 'fashion_harder',
              'fashion_mnist_conv_dropout_maxnorm_knn_accuracy', 'ae_cannot_generate',
              'ae_dimensionality_reduction'):
    assert cid in {c.id for c in primary}, cid
  # The MLP dropout rows and the loss-number rows are exploratory.
  by_id = {c.id: c for c in study_claims.CLAIMS}
  assert by_id['mnist_dropout_maxnorm_knn'].group == 'mlp_dropout'
  assert by_id['ae2d_loss'].group == by_id['wide_loss'].group == 'wording'


def test_every_quality_gate_parses():
  from vae_jax.analysis import gates
  for spec in study_models.specs():
    for text in study_models.quality_gates(spec):
      gates.parse(text)
  assert study_models.quality_gates(study_models.specs()[0])  # the table models have gates


def test_judge_all_pairs_seeds_corrects_per_family_and_keeps_unmeasured_primary_rows():
  rng = np.random.default_rng(0)
  seeds = ['0', '1', '2', '3', '4']
  claims = [
      study_claims.Claim('win', 'A above B', 'm', 'a', 'b', 'greater'),
      study_claims.Claim('loss', 'A below B', 'm', 'a', 'b', 'less'),
      study_claims.Claim('noise', 'C above B', 'm', 'c', 'b', 'greater'),
      study_claims.Claim('near', 'A near 2', 'm', 'a', 2.0, 'near', margin=0.2),
      study_claims.Claim('equal', 'A near 2.5', 'm', 'a', 2.5, 'near', margin=0.2),
      study_claims.Claim('missing', 'D above B', 'm', 'd', 'b', 'greater'),
      study_claims.Claim('new_metric', 'A above B on n', 'n', 'a', 'b', 'greater',
                         needs_metric=True),
      study_claims.Claim('other', 'A above B, exploratory', 'm', 'a', 'b', 'greater',
                         'samplers'),
      study_claims.Claim('gone', 'D above B, exploratory', 'm', 'd', 'b', 'greater',
                         'samplers'),
  ]
  base = rng.normal(size=5) * 3            # seed-to-seed spread shared by all models
  per_seed = {
      'a': {s: {'m': 2.0 + base[i] * 0.01 + 0.5} for i, s in enumerate(seeds)},
      'b': {s: {'m': 1.5 + base[i] * 0.01} for i, s in enumerate(seeds)},
      'c': {s: {'m': 1.5 + base[i] * 0.01 + rng.normal() * 0.5} for i, s in enumerate(seeds)},
  }
  # Model b lacks seed 4: pairs are formed on the seeds both have.
  del per_seed['b']['4']
  out = {r['id']: r for r in study_claims.judge_all(per_seed, claims)}
  assert out['win']['verdict'] == 'supported' and out['win']['seeds'] == seeds[:4]
  assert out['loss']['verdict'] == 'contradicted'
  assert out['noise']['verdict'] == 'inconclusive'
  assert out['near']['verdict'] == 'contradicted'   # 2.5 is outside 2 ± 0.2
  assert out['equal']['verdict'] == 'equivalent'
  assert out['win']['difference'] == pytest.approx(1.0)
  # Unmeasured primary rows stay in the family (p counted as 1); secondary ones leave.
  assert out['missing']['measured'] is False and out['missing']['verdict'] == 'inconclusive'
  assert out['new_metric']['measured'] is False and 'gone' not in out
  primary = [r for r in out.values() if r['group'] == 'primary']
  assert all(r['family_size'] == 7 for r in primary)
  np.testing.assert_allclose([r['p_adjusted'] for r in primary],
                             verdicts.holm([r['p'] for r in primary]))
  assert out['other']['family_size'] == 1
  assert out['other']['p_adjusted'] == pytest.approx(out['other']['p'])


def test_the_report_gives_raw_and_adjusted_p_and_why_a_row_is_open():
  from vae_jax.study import report
  per_seed = {'a': {str(s): {'m': 1.0 + 0.1 * s} for s in range(5)},
              'b': {str(s): {'m': 1.0 + 0.1 * s + (0.05 if s % 2 else -0.04)} for s in range(5)}}
  claims = [study_claims.Claim('open', 'A above B', 'm', 'a', 'b', 'greater',
                               source='article: "x"'),
            study_claims.Claim('todo', 'A above B on n', 'n', 'a', 'b', 'greater',
                               needs_metric=True, source='article: "y"')]
  judged = study_claims.judge_all(per_seed, claims)
  table = '\n'.join(report.claims_markdown(judged))
  row = next(line for line in table.splitlines() if line.startswith('| A above B |'))
  cells = [c.strip() for c in row.strip('|').split('|')]
  assert len(cells) == 11   # no stray pipe inside a cell
  r = judged[0]
  assert cells[6] == report._p(r['p']) and cells[7] == report._p(r['p_adjusted'])
  assert r['p_adjusted'] == pytest.approx(min(1.0, 2 * r['p']))
  assert f"±{report._num(r['detectable_effect'])}" in cells[9]
  assert 'needs metric `n`' in table
  counts = report.verdict_counts(judged)
  assert counts == {'supported': 0, 'contradicted': 0, 'equivalent': 0, 'inconclusive': 2}
