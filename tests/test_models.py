"""Models: shapes per family, the exact fast ConvTranspose, max-norm, clamps."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vae_jax.core import conv_matmul, experiment, losses, models, optim
from vae_jax.core.config import base_config


@pytest.mark.parametrize('family', ['mlp', 'conv', 'rnn'])
@pytest.mark.parametrize('kind', ['autoencoder', 'vae'])
def test_every_family_and_kind_maps_images_to_logits(family, kind):
  c = base_config()
  c.model.family, c.model.kind, c.latent_dim = family, kind, 3
  c.model.mlp.hidden_sizes, c.model.rnn.size = (16,), 8
  model = experiment.build_model(c)
  x = jnp.ones((2, 28, 28, 1))
  params = model.init(jax.random.key(0), x, jax.random.key(1))['params']
  out = model.apply({'params': params}, x, jax.random.key(2))
  assert out.logits.shape == (2, 28, 28, 1) and out.z.shape == (2, 3)
  assert (out.logvar is None) == (kind == 'autoencoder')


def test_conv_transpose_2x_equals_flax_conv_transpose():
  x = jax.random.normal(jax.random.key(0), (3, 7, 7, 5))
  ref = nn.ConvTranspose(4, (3, 3), strides=(2, 2), padding='SAME')
  params = ref.init(jax.random.key(1), x)
  params = jax.tree_util.tree_map(lambda p: p + 0.1, params)  # nonzero bias too
  np.testing.assert_allclose(conv_matmul.ConvTranspose2x(4).apply(params, x),
                             ref.apply(params, x), atol=1e-5)
  assert (jax.tree_util.tree_structure(conv_matmul.ConvTranspose2x(4).init(jax.random.key(1), x))
          == jax.tree_util.tree_structure(params))


def test_max_norm_projects_kernels_and_leaves_biases():
  params = {'kernel': jnp.full((4, 3), 5.0), 'bias': jnp.full((3,), 9.0)}
  tx = optax.chain(optax.sgd(0.1), optim.max_norm(2.0))
  grads = jax.tree_util.tree_map(jnp.ones_like, params)
  updates, _ = tx.update(grads, tx.init(params), params)
  new = optax.apply_updates(params, updates)
  norms = np.linalg.norm(np.asarray(new['kernel']), axis=0)
  np.testing.assert_allclose(norms, 2.0, rtol=1e-5)
  np.testing.assert_allclose(new['bias'], 9.0 - 0.1)


def test_max_norm_below_the_bound_changes_nothing():
  params = {'kernel': jnp.full((4, 3), 0.1)}
  tx = optax.chain(optax.sgd(0.1), optim.max_norm(2.0))
  grads = {'kernel': jnp.ones((4, 3))}
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(optax.apply_updates(params, updates)['kernel'], 0.0, atol=1e-7)


def test_max_norm_optimizer_on_model_parameters():
  # make_optimizer as training builds it: Adam, then max-norm. After an update
  # every kernel (dense [in, out], conv [h, w, in, out]) has unit norms ≤ c;
  # biases get exactly Adam's update.
  c = base_config()
  c.model.max_norm, c.learning_rate, c.model.mlp.hidden_sizes = 0.5, 0.05, (16,)
  model = experiment.build_model(c)
  x = jnp.ones((2, 28, 28, 1))
  params = jax.jit(model.init)(jax.random.key(0), x, jax.random.key(1))['params']
  params = dict(params, conv={'kernel': jnp.ones((3, 3, 4, 8)), 'bias': jnp.ones((8,))})
  params = jax.tree_util.tree_map(lambda p: p * 3.0 + 0.2, params)  # start outside the ball
  grads = jax.tree_util.tree_map(lambda p: jnp.ones_like(p) * 0.5, params)

  @jax.jit
  def one_update(params, grads):
    out = []
    for tx in (optim.make_optimizer(c), optax.adam(c.learning_rate)):
      out.append(optax.apply_updates(params, tx.update(grads, tx.init(params), params)[0]))
    return out

  new, plain = one_update(params, grads)
  kernels = 0
  for (path, p), q in zip(jax.tree_util.tree_flatten_with_path(new)[0],
                          jax.tree_util.tree_leaves(plain), strict=True):
    if p.ndim >= 2:
      kernels += 1
      norms = np.sqrt(np.sum(np.square(p), axis=tuple(range(p.ndim - 1))))
      assert norms.shape == (p.shape[-1],)
      assert np.all(norms <= 0.5 * (1 + 1e-5)), jax.tree_util.keystr(path)
      assert np.all(norms > 0.49), 'projection should land on the sphere'
    else:
      np.testing.assert_array_equal(p, q, err_msg=jax.tree_util.keystr(path))
  assert kernels == 5  # encoder, posterior, decoder x2, conv


def test_logvar_clamp_keeps_kl_finite_for_huge_encoder_outputs():
  c = base_config()
  c.model.mlp.hidden_sizes, c.latent_dim = (8,), 2
  model = experiment.build_model(c)
  x = jnp.ones((2, 28, 28, 1))
  params = model.init(jax.random.key(0), x, jax.random.key(1))['params']
  params = jax.tree_util.tree_map(lambda p: p * 1e6, params)
  mean, logvar = model.apply({'params': params}, x * 1e3, method='encode')
  assert float(logvar.max()) <= models.LOGVAR_MAX and float(logvar.min()) >= models.LOGVAR_MIN
  assert np.all(np.isfinite(jnp.exp(logvar)))
  assert np.all(np.isfinite(losses.gaussian_kl(jnp.zeros_like(mean), logvar)))
