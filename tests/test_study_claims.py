"""The study's declarative claims: every one names real models and is judged seed by seed."""

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from vae_jax.study import claims as study_claims
from vae_jax.study import catalog as study_models


def test_every_claim_names_models_of_the_study():
  names = {s.name for s in study_models.specs()}
  ids = [c.id for c in study_claims.CLAIMS]
  assert len(ids) == len(set(ids)), 'claim ids must be unique'
  for c in study_claims.CLAIMS:
    assert c.a in names, c
    assert isinstance(c.b, float) or c.b in names, c
    assert c.direction in ('greater', 'less', 'near'), c
    assert (c.direction == 'near') == (c.margin is not None), c


def test_every_quality_gate_parses():
  from vae_jax.study import gates
  for spec in study_models.specs():
    for text in study_models.quality_gates(spec):
      gates.parse(text)
  assert study_models.quality_gates(study_models.specs()[0])  # the table models have gates


def test_judge_all_pairs_seeds_and_gives_each_verdict():
  rng = np.random.default_rng(0)
  seeds = ['0', '1', '2', '3', '4']
  claims = [
      study_claims.Claim('win', 'A above B', 'm', 'a', 'b', 'greater'),
      study_claims.Claim('loss', 'A below B', 'm', 'a', 'b', 'less'),
      study_claims.Claim('noise', 'C above B', 'm', 'c', 'b', 'greater'),
      study_claims.Claim('near', 'A near 2', 'm', 'a', 2.0, 'near', margin=0.1),
      study_claims.Claim('missing', 'D above B', 'm', 'd', 'b', 'greater'),
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
  assert out['near']['verdict'] == 'contradicted'   # 2.5 is outside 2 ± 10 %
  assert 'missing' not in out                         # a model that was not trained
  assert out['win']['difference'] == pytest.approx(1.0)
