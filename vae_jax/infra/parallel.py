"""Device mesh helpers: one ``data`` axis, batch sharded, everything else replicated.

The same jitted code runs on one CPU core, one GPU, a TPU slice or several
hosts: only the mesh changes. The compiler inserts the gradient all-reduce
because the loss is a mean over a batch sharded along ``data``.
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = 'data'


def make_mesh(devices=None):
  """A 1-D mesh over all (global) devices."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh):
  return NamedSharding(mesh, P())


def batch_sharded(mesh, batch_axis=0):
  """Shards axis ``batch_axis`` over the ``data`` mesh axis."""
  return NamedSharding(mesh, P(*([None] * batch_axis), DATA_AXIS))


def put_replicated(array, mesh):
  """Places a host array (the same on every process) on every device.

  ``make_array_from_callback`` works for one process and for many, where
  ``device_put`` cannot reach other hosts' devices.
  """
  array = np.asarray(array)
  return jax.make_array_from_callback(array.shape, replicated(mesh),
                                      lambda index: array[index])


def put_sharded(array, mesh, batch_axis=0):
  """Places a host array (the same on every process) sharded along ``batch_axis``."""
  array = np.asarray(array)
  return jax.make_array_from_callback(array.shape, batch_sharded(mesh, batch_axis),
                                      lambda index: array[index])
