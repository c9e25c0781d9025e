"""Quality gates: the test-set numbers a trained model must reach before it is used.

A figure drawn from an undertrained model says nothing about the method. Each
experiment file may declare, beside ``get_config()``, a tuple of gates::

  QUALITY_GATES = ('elbo >= -262', 'active_units >= 2')

A gate is ``<metric> >= <number>`` or ``<metric> <= <number>`` on the test
metrics of the final parameters: ``elbo``, ``recon``, ``kl`` (nats per image),
``recon_per_pixel`` (recon / pixels: the article's Keras loss) and
``active_units`` (diagnostics.py). The seed study checks every gate of every
model and stops with one line naming the model, the gate and the value.

Every gate needs a source that does not look at the model's outcome: the
Keras example's own reported value, or a fixed rule. :func:`code_free_loss`
is one such rule: a model must beat the code-free model, which predicts
every pixel by its training-set mean and ignores the input (a KL of 0, so its
ELBO is minus its reconstruction loss). :data:`CODE_FREE` holds its test
values; tests/test_gates.py recomputes them from the data.
"""

import re
from typing import NamedTuple

import numpy as np

# code_free_loss(dataset): (nats per test image, mean per-pixel BCE), rounded
# up to the gates' precision (so a gate at this value is never stricter than the rule).
CODE_FREE = {'mnist': (205.81, 0.2626), 'fashion_mnist': (384.50, 0.4905)}

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


def code_free_loss(dataset, data_dir=None):
  """Test loss of the code-free model: ``(nats per image, mean per-pixel BCE)``.

  Each pixel is an independent Bernoulli with its mean over the training
  images (grey values as targets, as the study trains); a model that ignores
  its code reaches this, so a gate at it rejects a model that learnt nothing.
  """
  from vae_jax.core import data
  train, _ = data.load(dataset, 'train', data_dir=data_dir)
  test, _ = data.load(dataset, 'test', data_dir=data_dir)
  train = np.asarray(train, np.float64).reshape(len(train), -1)
  test = np.asarray(test, np.float64).reshape(len(test), -1)
  p = np.clip(train.mean(0), 1e-7, 1 - 1e-7)
  bce = -(test * np.log(p) + (1 - test) * np.log1p(-p))
  return float(bce.sum(1).mean()), float(bce.mean())
