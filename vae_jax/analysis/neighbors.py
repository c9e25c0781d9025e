"""Exact k-nearest neighbours in Euclidean space: jitted, in chunks of queries."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.infra import chunks

@functools.partial(jax.jit, static_argnames='k')
def _knn_chunk(queries, refs, k):
  d2 = (jnp.sum(queries ** 2, -1)[:, None] - 2.0 * queries @ refs.T
        + jnp.sum(refs ** 2, -1)[None, :])
  neg, idx = jax.lax.top_k(-d2, k)
  return jnp.maximum(-neg, 0.0), idx


def nearest_neighbors(queries, refs, k=1, chunk=1000):
  """``(distances [Q, k], indices [Q, k])`` of the k nearest ``refs`` (Euclidean), ascending."""
  queries = np.asarray(queries, np.float32)
  refs = jnp.asarray(refs, np.float32)
  k = min(k, refs.shape[0])
  chunk = max(1, min(chunk, queries.shape[0]))
  d2, idx = chunks.map_chunks(lambda q: _knn_chunk(jnp.asarray(q), refs, k), queries, chunk,
                              pad_last=True)
  return np.sqrt(np.asarray(d2, np.float64)), idx
