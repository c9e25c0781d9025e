"""Work counters for the benchmark's roofline: matmul FLOPs and unavoidable bytes.

A workload's time lower bound on a machine is
``max(flops / matmul_peak, bytes / memory_bandwidth)``; its share of the
roofline is that bound divided by the measured time. The counts here are
deliberately *lower* bounds on the work, so the share is an upper bound on
what a faster implementation could gain:

* FLOPs: 2 x multiply-adds of every ``dot_general`` and convolution of the
  traced program (forward and backward; scans multiplied by their length).
  Elementwise work is not counted: it could in principle hide under the dots.
* bytes, one training step: the parameters read once and written once, the
  gradient written once and read once, Adam's two moments read once and
  written once: ``8 x 4`` bytes per float32 parameter. Activations are not
  counted (they can live in cache), nor the batch gather; each image is read
  once (its float32 pixels).
"""

import math

import numpy as np

# Per float32 parameter and Adam step: params r+w, gradient w+r, m r+w, v r+w.
ADAM_STEP_ACCESSES = 8


def _sub_jaxprs(value):
  from jax.extend import core
  if isinstance(value, core.ClosedJaxpr):
    yield value.jaxpr
  elif isinstance(value, core.Jaxpr):
    yield value
  elif isinstance(value, (tuple, list)):
    for v in value:
      yield from _sub_jaxprs(v)


def _jaxpr_matmul_flops(jaxpr):
  """2 x multiply-adds of every dot_general and convolution, through scans and calls."""
  total = 0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == 'dot_general':
      (lhs_contract, _), _ = eqn.params['dimension_numbers']
      lhs = eqn.invars[0].aval.shape
      total += 2 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in lhs_contract)
    elif name == 'conv_general_dilated':
      rhs = eqn.invars[1].aval.shape
      spec = eqn.params['dimension_numbers'].rhs_spec  # (out, in, spatial...)
      in_per_group = rhs[spec[1]]
      kernel = math.prod(rhs[d] for d in spec[2:])
      total += 2 * math.prod(eqn.outvars[0].aval.shape) * in_per_group * kernel
    inner = sum(_jaxpr_matmul_flops(j) for v in eqn.params.values() for j in _sub_jaxprs(v))
    if name == 'scan':
      inner *= eqn.params['length']
    total += inner
  return total


def matmul_flops(fn, *args):
  """Matmul FLOPs of one call of ``fn(*args)`` (forward, and backward if it differentiates)."""
  import jax
  return _jaxpr_matmul_flops(jax.make_jaxpr(fn)(*args).jaxpr)


def num_params(params):
  """Number of scalars in a parameter tree."""
  import jax
  return int(sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(params)))


def train_bytes_per_image(param_count, batch_size, image_shape, itemsize=4):
  """Unavoidable memory traffic of one Adam training step, per image."""
  state = ADAM_STEP_ACCESSES * itemsize * param_count
  return state / batch_size + itemsize * math.prod(image_shape)


def eval_bytes_per_image(image_shape, itemsize=4):
  """An evaluation reads each image once; its parameters stay in cache."""
  return itemsize * math.prod(image_shape)


def roofline(flops, nbytes, peak_flops, bandwidth):
  """Time lower bound of one unit of work, and which term binds.

  ``peak_flops`` in FLOP/s, ``bandwidth`` in bytes/s.
  """
  compute, memory = flops / peak_flops, nbytes / bandwidth
  return {'seconds': max(compute, memory), 'compute_seconds': compute,
          'memory_seconds': memory, 'binds': 'matmul' if compute >= memory else 'memory'}
