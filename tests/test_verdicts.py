"""Verdict logic over seeds and quality gates, on constructed numbers."""

import numpy as np
import pytest
from scipy import stats

from vae_jax.study import gates, verdicts


def test_t_interval_matches_the_textbook_formula():
  x = np.array([1.0, 2.0, 4.0, 3.0, 5.0])
  mean, low, high = verdicts.t_interval(x)
  half = 2.776445105 * np.std(x, ddof=1) / np.sqrt(5)   # t_{0.975, 4}
  assert mean == 3.0 and low == pytest.approx(3 - half) and high == pytest.approx(3 + half)
  assert stats.t.ppf(0.975, 4) == pytest.approx(2.776445105)


def test_clear_win_clear_loss_and_noise():
  a = np.array([1.00, 1.10, 0.95, 1.05, 1.02])
  b = a - 0.5 + np.array([0.01, -0.02, 0.0, 0.02, -0.01])
  assert verdicts.judge(a, b, 'greater')['verdict'] == 'supported'
  assert verdicts.judge(a, b, 'less')['verdict'] == 'contradicted'
  noise = np.random.default_rng(0).normal(size=5)
  r = verdicts.judge(noise, 0.0, 'greater')
  assert r['verdict'] == 'inconclusive' and r['low'] < 0 < r['high']


def test_pairing_removes_shared_seed_noise():
  """A small, consistent per-seed gain is supported although the seeds vary a lot."""
  seed_effect = np.array([-3.0, 2.0, 0.5, -1.0, 4.0])
  a, b = seed_effect + 0.1, seed_effect
  assert verdicts.judge(a, b, 'greater')['verdict'] == 'supported'
  # Unpaired (shuffled) the same numbers prove nothing.
  assert verdicts.judge(a, b[::-1], 'greater')['verdict'] == 'inconclusive'


def test_near_claims_use_a_band_around_the_value():
  value = 0.25
  assert verdicts.judge([0.249, 0.251, 0.250], value, 'near', margin=0.1)['verdict'] == 'supported'
  assert verdicts.judge([0.18, 0.185, 0.183], value, 'near', margin=0.1)['verdict'] == 'contradicted'
  assert verdicts.judge([0.20, 0.26, 0.30], value, 'near', margin=0.1)['verdict'] == 'inconclusive'
  with pytest.raises(ValueError, match='margin'):
    verdicts.judge([1.0, 2.0], 1.0, 'near')


def test_one_seed_or_non_finite_values_are_inconclusive():
  assert verdicts.judge([5.0], [1.0], 'greater')['verdict'] == 'inconclusive'
  assert verdicts.judge([np.inf, 2.0, 3.0], [1.0, 1.0, 1.0], 'greater')['verdict'] == 'inconclusive'
  with pytest.raises(ValueError, match='direction'):
    verdicts.judge([1.0, 2.0], [0.0, 0.0], 'bigger')


def test_gates_parse_and_check():
  g = gates.parse(' elbo >= -262.5 ')
  assert g == gates.Gate('elbo', '>=', -262.5) and str(g) == 'elbo >= -262.5'
  results = gates.check(['elbo >= -262.5', 'recon_per_pixel <= 1e-1', 'active_units >= 2'],
                        {'elbo': -263.0, 'recon_per_pixel': 0.09, 'active_units': 2.0})
  assert [passed for _, _, passed in results] == [False, True, True]
  assert gates.check(['elbo >= 0'], {'elbo': float('nan')})[0][2] is False
  for bad in ('elbo > 3', 'elbo >= ', '>= 3', 'elbo >= three'):
    with pytest.raises(ValueError, match='quality gate'):
      gates.parse(bad)
  with pytest.raises(ValueError, match="no metric 'kl'"):
    gates.check(['kl <= 5'], {'elbo': 1.0})
