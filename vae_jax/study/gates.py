"""Quality gates: the test-set numbers a trained model must reach before it is used.

A figure drawn from an undertrained model says nothing about the method. Each
experiment file may declare, beside ``get_config()``, a tuple of gates::

  QUALITY_GATES = ('elbo >= -262', 'active_units >= 2')

A gate is ``<metric> >= <number>`` or ``<metric> <= <number>`` on the test
metrics of the final parameters: ``elbo``, ``recon``, ``kl`` (nats per image),
``recon_per_pixel`` (recon / pixels: the article's Keras loss) and
``active_units`` (diagnostics.py). The seed study checks every gate of every
model and stops with one line naming the model, the gate and the value.
"""

import re
from typing import NamedTuple

_GATE = re.compile(r'^\s*([a-z_][a-z0-9_]*)\s*(>=|<=)\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*$')


class Gate(NamedTuple):
  metric: str
  op: str          # '>=' or '<='
  threshold: float

  def passes(self, value):
    return value >= self.threshold if self.op == '>=' else value <= self.threshold

  def __str__(self):
    return f'{self.metric} {self.op} {self.threshold:g}'


def parse(text):
  """``'elbo >= -262'`` -> ``Gate('elbo', '>=', -262.0)``; ValueError on anything else."""
  match = _GATE.match(text)
  if not match:
    raise ValueError(f'quality gate {text!r} is not "<metric> >= <number>" or '
                     f'"<metric> <= <number>"')
  return Gate(match.group(1), match.group(2), float(match.group(3)))


def check(gates, values):
  """``[(gate, value, passed)]`` for each gate text in ``gates`` against ``values``.

  A metric missing from ``values`` is a ValueError naming the available ones:
  a gate that cannot be checked must not pass silently.
  """
  results = []
  for text in gates:
    gate = parse(text)
    if gate.metric not in values:
      raise ValueError(f'quality gate {text!r}: no metric {gate.metric!r}; available: '
                       f'{sorted(values)}')
    value = float(values[gate.metric])
    results.append((gate, value, bool(gate.passes(value))))
  return results
