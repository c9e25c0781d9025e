"""Verdicts over seeds: tests per claim, Holm within a family, power for what stays open.

A claim compares a metric of model A with model B (or with a number). With one
value per seed, the per-seed paired differences d_s = A_s − B_s (models of the
same seed share initial key and data order, so pairing removes that shared
noise) are tested with Student's t:

* ``'greater'`` / ``'less'`` (A above / below B): the two-sided paired t-test
  of mean(d) = 0. A rejection on the claimed side is **supported**, on the
  other side **contradicted** (a directional decision: Shaffer 1980).
* ``'near'`` (|mean(d)| < ``margin``, the claim's equivalence margin in the
  metric's units): two tests, of which at most one can reject at α ≤ 0.5 —
  TOST (Schuirmann 1987; p = the larger of the two one-sided p-values; it
  rejects at α exactly when the 90 % interval lies inside ±margin) gives
  **equivalent**, and the test that mean(d) lies beyond the nearer edge of the
  band (p = twice the one-sided p-value, so it rejects at α when the 95 %
  interval lies wholly outside the band) gives **contradicted**. The row's p
  is the smaller of the two.

Each family of claims is corrected with Holm's step-down procedure (Holm 1979)
at a family-wise α = 0.05: a row's verdict is its decision when its Holm-adjusted
p is below α, and **inconclusive** otherwise. An inconclusive row carries the
smallest effect its n seeds detect with 80 % power at the Bonferroni level α/m
(Holm's strictest step: a row that reaches it is decided whatever the other rows
do) and the seeds that would settle the observed effect at that level.

With fewer than two seeds or a non-finite value there is no test: p is NaN,
counted as 1 by Holm, and the verdict is inconclusive.
"""

import math

import numpy as np
from scipy import optimize, stats

DIRECTIONS = ('greater', 'less', 'near')
SUPPORTED, CONTRADICTED, EQUIVALENT, INCONCLUSIVE = (
    'supported', 'contradicted', 'equivalent', 'inconclusive')
VERDICTS = (SUPPORTED, CONTRADICTED, EQUIVALENT, INCONCLUSIVE)
DECISIONS = VERDICTS[:3]   # what p_values' decision indexes
ALPHA = 0.05   # family-wise error rate of every family (the field's convention)
POWER = 0.80   # power of the planning and of the detectable effect (Cohen 1988's convention)
MAX_SEEDS = 100   # seeds_to_settle searches up to this many


def t_interval(values, level=0.95):
  """``(mean, low, high)`` of the two-sided Student-t interval for the mean of ``values``."""
  v = np.asarray(values, np.float64)
  mean = float(np.mean(v)) if v.size else math.nan
  if v.size < 2 or not np.all(np.isfinite(v)):
    return mean, -math.inf, math.inf
  half = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * np.std(v, ddof=1) / math.sqrt(v.size))
  return mean, mean - half, mean + half


def p_values(d, direction, margin=None):
  """Raw p-values and decisions of the per-seed differences ``d`` ``[..., S]`` (vectorised).

  Returns ``(p, decision)``, both ``[...]``: ``decision`` indexes ``DECISIONS``
  (supported, contradicted, equivalent): the verdict the row reaches if its p
  survives correction. p is NaN where S < 2 or a value is not finite.
  """
  d = np.asarray(d, np.float64)
  n = d.shape[-1]
  mean = d.mean(-1)
  with np.errstate(divide='ignore', invalid='ignore'):
    se = d.std(-1, ddof=1) / np.sqrt(n) if n > 1 else np.full(mean.shape, np.nan)
    if direction == 'near':
      # cdf(t_upper): H0 mean ≥ +margin; sf(t_lower): H0 mean ≤ −margin (TOST's two tests).
      t_upper, t_lower = (mean - margin) / se, (mean + margin) / se
      p_equivalent = np.maximum(stats.t.cdf(t_upper, n - 1), stats.t.sf(t_lower, n - 1))
      p_outside = np.minimum(1.0, 2 * np.minimum(stats.t.sf(t_upper, n - 1),
                                                 stats.t.cdf(t_lower, n - 1)))
      p = np.minimum(p_equivalent, p_outside)
      decision = np.where(p_equivalent <= p_outside, 2, 1)
    else:
      t = np.where((se == 0) & (mean == 0), 0.0, mean / se)
      p = np.minimum(1.0, 2 * np.minimum(stats.t.cdf(t, n - 1), stats.t.sf(t, n - 1)))
      decision = np.where((mean > 0) == (direction == 'greater'), 0, 1)
  bad = ~np.all(np.isfinite(d), -1) | (n < 2)
  return np.where(bad, np.nan, p), decision


def paired_test(a, b, direction, *, margin=None, level=0.95):
  """The per-claim test of "A is ``direction`` B" from per-seed values (no correction).

  Args:
    a: per-seed values of A, ``[S]``.
    b: per-seed values of B, ``[S]`` in the same seed order, or one number.
    direction: ``'greater'``, ``'less'`` or ``'near'``.
    margin: for ``'near'``, the equivalence margin: half-width of the band
      around 0 for mean(A − B), in the metric's units.
    level: of the displayed two-sided interval.

  Returns:
    dict: ``difference`` (mean of A − B), ``low`` / ``high`` (its ``level``
    interval), ``sd`` (std of the differences), ``n``, ``p`` (raw p-value of
    the row's decision), ``decision`` (the verdict if p survives correction)
    and, for ``'near'``, ``tost_low`` / ``tost_high`` (the 90 % interval TOST uses).
  """
  if direction not in DIRECTIONS:
    raise ValueError(f'direction must be one of {DIRECTIONS}, got {direction!r}')
  if direction == 'near' and (margin is None or not margin > 0):
    raise ValueError("direction 'near' needs a positive margin")
  a = np.asarray(a, np.float64)
  d = a - np.broadcast_to(np.asarray(b, np.float64), a.shape)
  diff, low, high = t_interval(d, level)
  out = {'difference': diff, 'low': low, 'high': high, 'n': int(d.size), 'level': level,
         'sd': float(np.std(d, ddof=1)) if d.size > 1 else math.nan}
  if direction == 'near':
    _, out['tost_low'], out['tost_high'] = t_interval(d, 0.90)
  p, decision = p_values(d, direction, margin)
  if not np.isfinite(p):
    return dict(out, p=math.nan, decision=None)
  return dict(out, p=float(p), decision=DECISIONS[int(decision)])


def holm(p_values):
  """Holm's step-down adjusted p-values (Holm 1979) along the last axis; NaN counts as 1.

  adjusted p_(i) = max over j ≤ i of min(1, (m − j + 1) p_(j)), p_(1) ≤ … ≤ p_(m),
  returned in the input order.
  """
  p = np.nan_to_num(np.asarray(p_values, np.float64), nan=1.0)
  m = p.shape[-1]
  order = np.argsort(p, axis=-1, kind='stable')
  stepped = np.minimum(1.0, (m - np.arange(m)) * np.take_along_axis(p, order, -1))
  adjusted = np.empty_like(p)
  np.put_along_axis(adjusted, order, np.maximum.accumulate(stepped, axis=-1), -1)
  return adjusted


def power(effect, sd, n, alpha, direction='two-sided'):
  """Power of the paired t-test at true mean difference ``effect`` (noncentral t, exact).

  ``direction='two-sided'`` rejects on either side at level ``alpha``;
  ``'one-sided'`` rejects mean ≤ 0 at level ``alpha`` (effect > 0 is the alternative).
  """
  if n < 2 or not sd > 0:
    return math.nan
  df, nc = n - 1, effect / (sd / math.sqrt(n))
  if direction == 'one-sided':
    return float(stats.nct.sf(stats.t.ppf(1 - alpha, df), df, nc))
  # Symmetric in the effect's sign; the far tail is below 1e-15 wherever scipy's
  # nct returns NaN for it (large noncentrality), so it counts as 0 there.
  crit, nc = stats.t.ppf(1 - alpha / 2, df), abs(nc)
  return float(stats.nct.sf(crit, df, nc) + np.nan_to_num(stats.nct.cdf(-crit, df, nc)))


def tost_power(effect, sd, n, margin, alpha):
  """Power of TOST at true mean ``effect`` inside ±``margin`` (the usual bound
  P(both one-sided tests reject) ≥ P(1st) + P(2nd) − 1, clipped to [0, 1])."""
  if n < 2 or not sd > 0:
    return math.nan
  return max(0.0, power(margin + effect, sd, n, alpha, 'one-sided')
             + power(margin - effect, sd, n, alpha, 'one-sided') - 1)


def detectable_effect(sd, n, alpha, target=POWER):
  """Smallest |mean difference| the two-sided paired t-test finds with ``target`` power.

  Closed form for large n: (z_{1−α/2} + z_{power}) sd / √n; exact here (noncentral t).
  """
  if n < 2 or not sd > 0:
    return math.nan
  hi = sd
  while power(hi, sd, n, alpha) < target:
    hi *= 2
  return float(optimize.brentq(lambda e: power(e, sd, n, alpha) - target, 0.0, hi, xtol=1e-12 * hi))


def seeds_to_settle(effect, sd, alpha, *, margin=None, target=POWER, max_seeds=MAX_SEEDS):
  """Fewest seeds (2..``max_seeds``) at which the observed ``effect`` is decided with
  ``target`` power at level ``alpha``, or None when more are needed (or sd is 0/NaN).

  Directional rows: the two-sided test. ``'near'`` rows (``margin`` given):
  TOST when |effect| < margin, else the test that the mean lies beyond the band.
  """
  if not (sd > 0 and np.isfinite(effect)):
    return None
  for n in range(2, max_seeds + 1):
    if margin is None:
      p = power(effect, sd, n, alpha)
    elif abs(effect) < margin:
      p = tost_power(effect, sd, n, margin, alpha)
    else:
      p = power(abs(effect) - margin, sd, n, alpha / 2, 'one-sided')
    if p >= target:
      return n
  return None


def decide(rows, alpha=ALPHA):
  """Holm over one family: each row (a dict from :func:`paired_test`) gains ``p_adjusted``,
  ``verdict``, ``family_size``, and when inconclusive ``detectable_effect`` and
  ``seeds_to_settle`` (both at α / m, 80 % power). Returns the same list."""
  m = len(rows)
  for r, adjusted in zip(rows, holm([r['p'] for r in rows])):
    decided = r['decision'] is not None and adjusted < alpha
    r.update(p_adjusted=float(adjusted), family_size=m, alpha=alpha,
             verdict=r['decision'] if decided else INCONCLUSIVE)
    if not decided:
      r['detectable_effect'] = detectable_effect(r['sd'], r['n'], alpha / m)
      r['seeds_to_settle'] = seeds_to_settle(r['difference'], r['sd'], alpha / m,
                                             margin=r.get('margin'))
  return rows


def judge(a, b, direction, *, margin=None, level=0.95, alpha=ALPHA):
  """One claim judged alone (a family of one): :func:`paired_test` then :func:`decide`."""
  row = dict(paired_test(a, b, direction, margin=margin, level=level), margin=margin)
  return decide([row], alpha)[0]
