"""The one padding / batched-apply helper, and the one reparameterisation, against NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax.core import models
from vae_jax.infra import chunks


def test_pad_rows_appends_zero_rows_and_leaves_full_arrays_alone():
  x = np.arange(6, dtype=np.float32).reshape(3, 2) + 1
  padded = chunks.pad_rows(x, 5)
  np.testing.assert_array_equal(padded, [[1, 2], [3, 4], [5, 6], [0, 0], [0, 0]])
  assert padded.dtype == np.float32
  assert chunks.pad_rows(x, 3) is x and chunks.pad_rows(x, 2) is x


@pytest.mark.parametrize('n,chunk', [(10, 3), (9, 3), (1, 4), (7, 7)])
@pytest.mark.parametrize('pad_last', [False, True])
def test_map_chunks_equals_one_call_on_the_whole_array(n, chunk, pad_last):
  x = np.random.default_rng(n).normal(size=(n, 4)).astype(np.float32)
  seen = []

  def fn(part):
    seen.append(part.shape[0])
    return {'sum': part.sum(1), 'pair': (part * 2, None)}

  out = chunks.map_chunks(fn, x, chunk, pad_last=pad_last)
  np.testing.assert_allclose(out['sum'], x.sum(1), rtol=1e-6)
  np.testing.assert_array_equal(out['pair'][0], x * 2)
  assert out['pair'][1] is None
  expected_sizes = [min(chunk, n - s) for s in range(0, n, chunk)]
  assert seen == ([chunk] * len(expected_sizes) if pad_last else expected_sizes)


def test_pad_last_compiles_one_shape():
  traces = []

  @jax.jit
  def square(x):
    traces.append(x.shape)
    return x ** 2

  x = np.arange(10, dtype=np.float32)[:, None]
  np.testing.assert_array_equal(chunks.map_chunks(square, x, 4, pad_last=True), x ** 2)
  assert traces == [(4, 1)]


def test_posterior_sample_is_mean_plus_std_times_noise_for_any_sample_axes():
  rng = np.random.default_rng(0)
  mean, logvar = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
  eps = rng.normal(size=(5, 3, 2))
  z = models.posterior_sample(jnp.asarray(mean, jnp.float32), jnp.asarray(logvar, jnp.float32),
                              jnp.asarray(eps, jnp.float32))
  assert z.shape == (5, 3, 2)
  np.testing.assert_allclose(z, mean + np.sqrt(np.exp(logvar)) * eps, rtol=1e-5, atol=1e-6)


def test_reparameterize_uses_the_key_s_standard_normal_draw():
  key = jax.random.key(4)
  mean, logvar = jnp.array([[1.0, -2.0]]), jnp.array([[0.5, -1.0]])
  eps = np.asarray(jax.random.normal(key, (1, 2)))
  np.testing.assert_allclose(models.reparameterize(key, mean, logvar),
                             np.asarray(mean) + np.exp(np.asarray(logvar) / 2) * eps, rtol=1e-6)
