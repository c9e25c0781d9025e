"""Batched, jitted encoding and decoding of whole data sets with trained params."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.infra import chunks


@functools.partial(jax.jit, static_argnums=(0,))
def encode_batch(model, params, x):
  """``(mean, logvar or None)`` of one batch on the device, jitted per model and shape."""
  return model.apply({'params': params}, x, method='encode')


@functools.partial(jax.jit, static_argnums=(0,))
def _decode(model, params, z):
  return jax.nn.sigmoid(model.apply({'params': params}, z, method='decode'))


def encode(model, params, images, batch_size=1000):
  """``(mean [N, D], logvar [N, D] or None)``; for an AE the mean is the code."""
  mean, logvar = chunks.map_chunks(lambda x: encode_batch(model, params, jnp.asarray(x)),
                                   np.asarray(images), batch_size)
  return mean, logvar


def decode(model, params, z, batch_size=1000):
  """Decoded images ``[N, H, W, C]`` in [0, 1] (the Bernoulli means)."""
  return chunks.map_chunks(lambda v: _decode(model, params, jnp.asarray(v, jnp.float32)),
                           np.asarray(z), batch_size)


def decoder_fn(model, params):
  """``z -> images`` closure over trained params, for plots and metrics."""
  return lambda z: decode(model, params, z)


def reconstruct(model, params, images, batch_size=1000):
  """Decoded posterior means (no sampling): deterministic reconstructions."""
  mean, _ = encode(model, params, images, batch_size)
  return decode(model, params, mean, batch_size)
