"""Whole arrays through a function in chunks of rows: the one padding and batched-apply helper.

Jitted functions compile once per input shape; padding the last chunk to the
chunk size keeps one shape for every chunk of every call, and the padded rows'
outputs are dropped.
"""

import jax
import numpy as np


def pad_rows(x, rows):
  """``x [N, ...]`` with zero rows appended up to ``rows`` rows (unchanged if N >= rows)."""
  x = np.asarray(x)
  missing = rows - x.shape[0]
  if missing <= 0:
    return x
  return np.concatenate([x, np.zeros((missing, *x.shape[1:]), x.dtype)])


def map_chunks(fn, inputs, chunk_size, pad_last=False):
  """``fn`` applied to ``inputs [N, ...]`` ``chunk_size`` rows at a time, on the host.

  ``fn`` returns an array or a pytree of arrays (None leaves allowed) with one
  row per input row; the chunks' outputs are fetched and concatenated. With
  ``pad_last`` the last chunk is zero-padded to ``chunk_size`` rows (one
  compiled shape) and its padded rows dropped. ``inputs`` must have a row.
  """
  inputs = np.asarray(inputs)
  outs = []
  for start in range(0, inputs.shape[0], chunk_size):
    part = inputs[start:start + chunk_size]
    valid = part.shape[0]
    out = jax.device_get(fn(pad_rows(part, chunk_size) if pad_last else part))
    outs.append(jax.tree_util.tree_map(lambda o, n=valid: np.asarray(o)[:n], out))
  return jax.tree_util.tree_map(lambda *parts: np.concatenate(parts), *outs)
