"""The conv family's dot-based layers compute exactly what the flax layers compute.

vae_jax.core.models writes every convolution of the conv family as matrix products
(fast on XLA's CPU backend, see docs/performance.md). These tests pin that
rewrite to the reference: ``lax``/flax convolutions give the same outputs and
the same gradients (up to float32 rounding: the sums run in another order),
and the modules have the same parameter names, shapes and initial values, so
checkpoints written before the rewrite restore unchanged.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax.core import conv_matmul, models

RTOL, ATOL = 2e-5, 2e-5
DN = ('NHWC', 'HWIO', 'NHWC')


def _rand(seed, shape):
  # numpy, not jax.random: each new shape would compile a sampler (seconds each).
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape, np.float32))


def _value_and_vjp(fn, args, g):
  out, vjp = jax.vjp(fn, *args)
  return out, vjp(g)


def _check_same_function(fast, ref, *args):
  """Equal outputs and equal vector-Jacobian products for a random cotangent."""
  shape = jax.eval_shape(ref, *args).shape
  assert jax.eval_shape(fast, *args).shape == shape
  g = _rand(99, shape)
  out_fast, grads_fast = jax.jit(_value_and_vjp, static_argnums=0)(fast, args, g)
  out_ref, grads_ref = jax.jit(_value_and_vjp, static_argnums=0)(ref, args, g)
  scale = float(jnp.max(jnp.abs(out_ref)))
  np.testing.assert_allclose(out_fast, out_ref, rtol=RTOL, atol=ATOL * scale)
  for a, b in zip(grads_fast, grads_ref, strict=True):
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL * float(jnp.max(jnp.abs(b))))


@pytest.mark.parametrize('shape,features,stride', [
    ((2, 7, 9, 5), 4, 2),       # im2col, odd non-square sides (the encoder's layers)
    ((2, 28, 28, 32), 1, 1),    # decoder output layer (tap products, then shifts)
    ((2, 6, 5, 8), 3, 1),       # stride 1, few outputs, non-square
    ((2, 6, 5, 3), 8, 1),       # stride 1, im2col
])
def test_conv_same_equals_lax_conv(shape, features, stride):
  x = _rand(0, shape)
  k = _rand(1, (3, 3, shape[-1], features)) / 3
  _check_same_function(
      lambda x, k: conv_matmul.conv_same(x, k, stride),
      lambda x, k: jax.lax.conv_general_dilated(x, k, (stride, stride), 'SAME',
                                                dimension_numbers=DN), x, k)


@pytest.mark.parametrize('shape,features', [
    ((2, 14, 14, 64), 32), ((2, 5, 3, 4), 6), ((1, 1, 1, 2), 3)])
def test_conv_transpose_2x_equals_lax_conv_transpose(shape, features):
  x = _rand(2, shape)
  k = _rand(3, (3, 3, shape[-1], features)) / 3
  _check_same_function(
      conv_matmul.conv_transpose_2x,
      lambda x, k: jax.lax.conv_transpose(x, k, (2, 2), 'SAME', dimension_numbers=DN),
      x, k)


# ----------------------------------------------------------------------------
# Whole modules against the flax layers they replace
# ----------------------------------------------------------------------------
class RefConvEncoder(nn.Module):
  features: tuple = (32, 64)
  dense_size: int = 16
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x, train=False):
    h = x
    for f in self.features:
      h = nn.relu(nn.Conv(f, (3, 3), strides=(2, 2), padding='SAME')(h))
      h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    h = nn.relu(nn.Dense(self.dense_size)(h.reshape((h.shape[0], -1))))
    return nn.Dropout(self.dropout_rate, deterministic=not train)(h)


class RefConvDecoder(nn.Module):
  image_shape: tuple = (28, 28, 1)
  features: tuple = (32, 64)
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, z, train=False):
    height, width, channels = self.image_shape
    scale = 2 ** len(self.features)
    h = nn.relu(nn.Dense(height // scale * width // scale * self.features[-1])(z))
    h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    h = h.reshape((z.shape[0], height // scale, width // scale, self.features[-1]))
    for f in reversed(self.features):
      # The flax layer itself (not vae_jax's): a strided, lhs-dilated transposed conv.
      h = nn.relu(nn.ConvTranspose(f, (3, 3), strides=(2, 2), padding='SAME',
                                   name=None)(h))
      h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    return nn.ConvTranspose(channels, (3, 3), padding='SAME')(h)


def _rename_ref(params):
  """flax names the reference decoder's strided layers ConvTranspose_0..n-1 and the
  output layer ConvTranspose_n; vae_jax calls them ConvTranspose2x_0.. and
  ConvTranspose_0. Map the reference tree onto vae_jax's names."""
  dec = dict(params['decoder'])
  n = len([k for k in dec if k.startswith('ConvTranspose_')]) - 1
  out = {k: v for k, v in dec.items() if not k.startswith('ConvTranspose_')}
  for i in range(n):
    out[f'ConvTranspose2x_{i}'] = dec[f'ConvTranspose_{i}']
  out['ConvTranspose_0'] = dec[f'ConvTranspose_{n}']
  return {**params, 'decoder': out}


@pytest.mark.parametrize('features,image_shape', [((32, 64), (28, 28, 1)),
                                                  ((4, 8, 4), (16, 24, 3))])
def test_conv_vae_equals_flax_reference(features, image_shape):
  fast = models.VAE(models.ConvEncoder(features, 16), models.ConvDecoder(image_shape, features), 2)
  ref = models.VAE(RefConvEncoder(features, 16), RefConvDecoder(image_shape, features), 2)
  x = jnp.asarray(np.random.default_rng(4).random((3, *image_shape), np.float32))
  rngs = {'params': jax.random.key(5)}
  # Same parameter names and shapes (shapes only: nothing is compiled or run).
  shapes_fast = jax.eval_shape(fast.init, rngs, x[:1], jax.random.key(6))['params']
  shapes_ref = jax.eval_shape(ref.init, rngs, x[:1], jax.random.key(6))['params']
  assert (jax.tree_util.tree_map(lambda a: a.shape, shapes_fast)
          == jax.tree_util.tree_map(lambda a: a.shape, _rename_ref(shapes_ref)))
  # Random values (biases too, so every term of the gradient is exercised).
  leaves, treedef = jax.tree_util.tree_flatten(shapes_ref)
  ref_params_as_flax = jax.tree_util.tree_unflatten(treedef, [
      _rand(10 + i, a.shape) / np.sqrt(max(1, np.prod(a.shape[:-1])))
      for i, a in enumerate(leaves)])
  p_ref = _rename_ref(ref_params_as_flax)

  def loss(model, params, x):
    out = model.apply({'params': params}, x, jax.random.key(7))
    return jnp.sum(jnp.square(jax.nn.sigmoid(out.logits) - x)) + jnp.sum(out.mean ** 2)

  # Evaluate both on the *same* parameter values (the reference's, renamed).
  v_fast, g_fast = jax.jit(jax.value_and_grad(lambda p: loss(fast, p, x)))(p_ref)
  v_ref, g_ref = jax.jit(jax.value_and_grad(lambda p: loss(ref, p, x)))(ref_params_as_flax)
  np.testing.assert_allclose(v_fast, v_ref, rtol=1e-5)
  g_ref = _rename_ref(g_ref)
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(g_fast),
                          jax.tree_util.tree_leaves(g_ref), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(jnp.max(jnp.abs(b))),
                               err_msg=jax.tree_util.keystr(path))


def test_conv_init_values_unchanged_by_rewrite():
  """The encoder's Conv layers keep flax's names, so init draws the same numbers."""
  x = jnp.zeros((1, 28, 28, 1))
  fast = jax.jit(models.ConvEncoder().init)(jax.random.key(0), x)['params']
  ref = jax.jit(RefConvEncoder().init)(jax.random.key(0), x)['params']
  for a, b in zip(jax.tree_util.tree_leaves(fast), jax.tree_util.tree_leaves(ref), strict=True):
    np.testing.assert_array_equal(a, b)


def test_conv_dropout_masks_unchanged_by_rewrite():
  """Dropout sits where it sat, so a training-mode pass draws the same masks."""
  enc_fast = models.ConvEncoder(dropout_rate=0.5)
  enc_ref = RefConvEncoder(dropout_rate=0.5)
  x = jnp.asarray(np.random.default_rng(1).random((2, 28, 28, 1), np.float32))
  params = jax.jit(enc_ref.init)(jax.random.key(0), x)['params']
  rngs = {'dropout': jax.random.key(3)}
  a = jax.jit(lambda p: enc_fast.apply({'params': p}, x, train=True, rngs=rngs))(params)
  b = jax.jit(lambda p: enc_ref.apply({'params': p}, x, train=True, rngs=rngs))(params)
  np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
