"""Verdicts over seeds: is a claim supported, contradicted or inconclusive?

A claim compares a metric of model A with model B (or with a number, such as
a value the article quotes). With one value per seed, the per-seed paired
differences d_s = A_s − B_s (models of the same seed share initial key and data
order, so pairing removes that shared noise) get a Student-t confidence
interval for their mean, and

* ``'greater'`` / ``'less'`` (A above / below B): **supported** when the whole
  interval lies on the claimed side of 0, **contradicted** when it lies wholly
  on the other side, otherwise **inconclusive**;
* ``'near'`` (A within ± ``margin`` × |B| of B): supported when the interval lies
  inside that band, contradicted when it lies wholly outside it, otherwise
  inconclusive.

With fewer than two seeds there is no interval and the verdict is inconclusive.
"""

import math

import numpy as np
from scipy import stats

DIRECTIONS = ('greater', 'less', 'near')
SUPPORTED, CONTRADICTED, INCONCLUSIVE = 'supported', 'contradicted', 'inconclusive'


def t_interval(values, level=0.95):
  """``(mean, low, high)`` of the two-sided Student-t interval for the mean of ``values``."""
  v = np.asarray(values, np.float64)
  mean = float(np.mean(v)) if v.size else math.nan
  if v.size < 2 or not np.all(np.isfinite(v)):
    return mean, -math.inf, math.inf
  half = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * np.std(v, ddof=1) / math.sqrt(v.size))
  return mean, mean - half, mean + half


def judge(a, b, direction, *, margin=None, level=0.95):
  """The verdict of "A is ``direction`` B" from per-seed values.

  Args:
    a: per-seed values of A, ``[S]``.
    b: per-seed values of B, ``[S]`` in the same seed order, or one number.
    direction: ``'greater'``, ``'less'`` or ``'near'``.
    margin: for ``'near'``, the relative half-width of the band around B.

  Returns:
    dict: ``difference`` (mean of A − B), ``low`` / ``high`` (its interval),
    ``verdict``, ``n`` (seeds) and ``level``.
  """
  if direction not in DIRECTIONS:
    raise ValueError(f'direction must be one of {DIRECTIONS}, got {direction!r}')
  a = np.asarray(a, np.float64)
  b = np.broadcast_to(np.asarray(b, np.float64), a.shape)
  diff, low, high = t_interval(a - b, level)
  if direction == 'near':
    if margin is None or margin <= 0:
      raise ValueError("direction 'near' needs a positive margin")
    band = margin * float(np.mean(np.abs(b)))
    if -band <= low and high <= band:
      verdict = SUPPORTED
    elif high < -band or low > band:
      verdict = CONTRADICTED
    else:
      verdict = INCONCLUSIVE
  else:
    sign = 1.0 if direction == 'greater' else -1.0
    lo, hi = sorted((sign * low, sign * high))
    verdict = SUPPORTED if lo > 0 else CONTRADICTED if hi < 0 else INCONCLUSIVE
  return {'difference': diff, 'low': low, 'high': high, 'verdict': verdict,
          'n': int(a.size), 'level': level}
