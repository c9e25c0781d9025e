"""Verdict logic over seeds and quality gates, on constructed numbers and simulations."""

import itertools

import numpy as np
import pytest
from scipy import stats

from vae_jax.analysis import gates, verdicts


def test_t_interval_matches_the_textbook_formula():
  x = np.array([1.0, 2.0, 4.0, 3.0, 5.0])
  mean, low, high = verdicts.t_interval(x)
  half = 2.776445105 * np.std(x, ddof=1) / np.sqrt(5)   # t_{0.975, 4}
  assert mean == 3.0 and low == pytest.approx(3 - half) and high == pytest.approx(3 + half)
  assert stats.t.ppf(0.975, 4) == pytest.approx(2.776445105)


def test_holm_on_a_worked_example():
  # Sorted 0.005, 0.01, 0.03, 0.04 -> 4 x 0.005 = 0.02, 3 x 0.01 = 0.03,
  # 2 x 0.03 = 0.06, max(0.06, 1 x 0.04) = 0.06; back in input order:
  p = [0.01, 0.04, 0.03, 0.005]
  np.testing.assert_allclose(verdicts.holm(p), [0.03, 0.06, 0.06, 0.02])
  # At 5 % only the two smallest are rejected; Bonferroni (x 4) would reject one.
  assert list(verdicts.holm(p) < 0.05) == [True, False, False, True]
  np.testing.assert_allclose(verdicts.holm([np.nan, 0.01]), [1.0, 0.02])   # NaN counts as 1


def test_holm_equals_closed_testing_with_bonferroni_by_brute_force():
  """Holm is the closed test of Bonferroni tests: adjusted p_i = max over index sets
  S containing i of min(1, |S| min_{j in S} p_j)."""
  rng = np.random.default_rng(0)
  for _ in range(50):
    p = rng.uniform(0, 0.2, size=5)
    brute = [max(min(1.0, len(s) * min(p[j] for j in s))
                 for r in range(1, 6) for s in itertools.combinations(range(5), r) if i in s)
             for i in range(5)]
    np.testing.assert_allclose(verdicts.holm(p), brute)
  batch = rng.uniform(size=(7, 5))   # along the last axis, row by row
  np.testing.assert_allclose(verdicts.holm(batch), [verdicts.holm(row) for row in batch])


def test_clear_win_clear_loss_and_noise():
  a = np.array([1.00, 1.10, 0.95, 1.05, 1.02])
  b = a - 0.5 + np.array([0.01, -0.02, 0.0, 0.02, -0.01])
  assert verdicts.judge(a, b, 'greater')['verdict'] == 'supported'
  assert verdicts.judge(a, b, 'less')['verdict'] == 'contradicted'
  noise = np.random.default_rng(0).normal(size=5)
  r = verdicts.judge(noise, 0.0, 'greater')
  assert r['verdict'] == 'inconclusive' and r['low'] < 0 < r['high']


def test_directional_p_is_the_two_sided_paired_t_test():
  rng = np.random.default_rng(1)
  a, b = rng.normal(size=6), rng.normal(size=6)
  r = verdicts.paired_test(a, b, 'greater')
  assert r['p'] == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-10)
  # Alone (a family of one) a row is decided exactly when its 95 % interval excludes 0.
  for seed in range(200):
    x = np.random.default_rng(seed).normal(0.8, 1.0, size=4)
    j = verdicts.judge(x, 0.0, 'greater')
    assert (j['verdict'] != 'inconclusive') == (j['low'] > 0 or j['high'] < 0)


def test_pairing_removes_shared_seed_noise():
  """A small, consistent per-seed gain is supported although the seeds vary a lot."""
  seed_effect = np.array([-3.0, 2.0, 0.5, -1.0, 4.0])
  a, b = seed_effect + 0.1, seed_effect
  assert verdicts.judge(a, b, 'greater')['verdict'] == 'supported'
  # Unpaired (shuffled) the same numbers prove nothing.
  assert verdicts.judge(a, b[::-1], 'greater')['verdict'] == 'inconclusive'


def test_equivalence_verdict_is_the_90_percent_interval_inside_the_margin():
  value = 0.25
  close = verdicts.judge([0.249, 0.251, 0.250], value, 'near', margin=0.025)
  assert close['verdict'] == 'equivalent'
  assert -0.025 < close['tost_low'] and close['tost_high'] < 0.025
  assert verdicts.judge([0.18, 0.185, 0.183], value, 'near', margin=0.025)['verdict'] == \
      'contradicted'
  assert verdicts.judge([0.20, 0.26, 0.30], value, 'near', margin=0.025)['verdict'] == \
      'inconclusive'
  # Alone, TOST at 5 % rejects exactly when the 90 % interval lies inside ±margin, and
  # "contradicted" exactly when the 95 % interval lies wholly outside the band.
  rng = np.random.default_rng(2)
  for _ in range(300):
    x = rng.normal(rng.uniform(-2, 2), rng.uniform(0.1, 1.5), size=5)
    j = verdicts.judge(x, 0.0, 'near', margin=1.0)
    inside = -1.0 < j['tost_low'] and j['tost_high'] < 1.0
    outside = j['high'] < -1.0 or j['low'] > 1.0
    assert (j['verdict'] == 'equivalent') == inside
    assert (j['verdict'] == 'contradicted') == outside
  with pytest.raises(ValueError, match='margin'):
    verdicts.judge([1.0, 2.0], 1.0, 'near')


def test_one_seed_or_non_finite_values_are_inconclusive():
  assert verdicts.judge([5.0], [1.0], 'greater')['verdict'] == 'inconclusive'
  assert verdicts.judge([np.inf, 2.0, 3.0], [1.0, 1.0, 1.0], 'greater')['verdict'] == \
      'inconclusive'
  with pytest.raises(ValueError, match='direction'):
    verdicts.judge([1.0, 2.0], [0.0, 0.0], 'bigger')


def test_the_verdict_follows_the_adjusted_p():
  """Four rows with raw p below 0.05 but one that Holm cannot keep."""
  rows = [dict(verdicts.paired_test(x, 0.0, 'greater'), margin=None) for x in (
      [1.0, 1.1, 0.9, 1.05, 0.95],          # p ~ 1e-6
      [0.3, 0.0, 0.5, 0.2, 0.4],             # p ~ 0.03, Holm x 2
      [-1.0, -1.1, -0.9, -1.05, -0.95],     # clearly on the other side
      [0.5, -0.5, 0.2, -0.3, 0.1])]         # noise
  rows = verdicts.decide(rows)
  assert rows[1]['p'] < 0.05 < rows[1]['p_adjusted']
  assert rows[1]['p_adjusted'] == pytest.approx(2 * rows[1]['p'])
  assert [r['verdict'] for r in rows] == ['supported', 'inconclusive', 'contradicted',
                                          'inconclusive']
  assert rows[1]['family_size'] == 4 and rows[1]['detectable_effect'] > 0
  assert 'detectable_effect' not in rows[0]


def test_detectable_effect_matches_the_normal_closed_form_for_large_n():
  sd, alpha = 2.0, 0.05
  for n in (200, 1000):
    closed = (stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(0.8)) * sd / np.sqrt(n)
    assert verdicts.detectable_effect(sd, n, alpha) == pytest.approx(closed, rel=0.01)


def test_detectable_effect_has_80_percent_power_in_simulation():
  """At n = 5 and α = 0.01 the simulated paired t-test rejects 80 % of the time."""
  sd, n, alpha = 1.5, 5, 0.01
  effect = verdicts.detectable_effect(sd, n, alpha)
  d = np.random.default_rng(3).normal(effect, sd, size=(200_000, n))
  p, _ = verdicts.p_values(d, 'greater')
  assert np.mean(p < alpha) == pytest.approx(0.80, abs=0.005)
  # Smaller effects are detected less often.
  assert verdicts.power(0.5 * effect, sd, n, alpha) < 0.5


def test_seeds_to_settle_is_the_first_n_with_80_percent_power():
  sd, alpha = 1.0, 0.05 / 19
  n = verdicts.seeds_to_settle(1.5, sd, alpha)
  assert verdicts.power(1.5, sd, n, alpha) >= 0.8 > verdicts.power(1.5, sd, n - 1, alpha)
  assert verdicts.seeds_to_settle(0.001, sd, alpha) is None      # would need > 100
  # Equivalence: TOST power of the observed effect inside the margin.
  m = verdicts.seeds_to_settle(0.1, sd, alpha, margin=2.0)
  assert verdicts.tost_power(0.1, sd, m, 2.0, alpha) >= 0.8
  assert verdicts.tost_power(0.1, sd, m - 1, 2.0, alpha) < 0.8


def _simulate_families(num_families, n, directional, near, margin, rng):
  """Per family: ``directional`` rows with true mean 0 and ``near`` rows whose true
  mean sits on the margin (the equivalence null at its worst); any decided row is a
  false claim. Returns the share of families with at least one."""
  d = rng.normal(0.0, rng.uniform(0.2, 3.0, size=(1, directional, 1)),
                 size=(num_families, directional, n))
  p_dir, _ = verdicts.p_values(d, 'greater')
  e = rng.normal(margin, 1.0, size=(num_families, near, n))
  p_near, decision = verdicts.p_values(e, 'near', margin)
  p = np.concatenate([p_dir, p_near], axis=-1)
  return np.mean(np.any(verdicts.holm(p) < verdicts.ALPHA, axis=-1)), decision


def test_familywise_false_claims_stay_below_5_percent_when_every_null_holds():
  rng = np.random.default_rng(4)
  for n, directional, near in ((5, 17, 2), (3, 30, 0), (10, 4, 4)):
    rate, _ = _simulate_families(4000, n, directional, near, margin=0.5, rng=rng)
    # 4000 families: the 5 % bound plus two binomial standard errors (0.7 %).
    assert rate <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 4000), (n, directional, near, rate)
  # Uncorrected, the same study makes a false claim in most families: the test can fail.
  d = rng.normal(size=(4000, 19, 5))
  p, _ = verdicts.p_values(d, 'greater')
  assert np.mean(np.any(p < 0.05, axis=-1)) > 0.5


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
