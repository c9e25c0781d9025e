"""Models: shapes per family, the exact fast ConvTranspose, max-norm, clamps."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vae_jax import losses, models, optim
from vae_jax.config import base_config


@pytest.mark.parametrize('family', ['mlp', 'conv', 'rnn'])
@pytest.mark.parametrize('kind', ['autoencoder', 'vae'])
def test_every_family_and_kind_maps_images_to_logits(family, kind):
  c = base_config()
  c.model.family, c.model.kind, c.latent_dim = family, kind, 3
  c.model.hidden_sizes, c.model.rnn_size = (16,), 8
  model = models.build_model(c)
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
  np.testing.assert_allclose(models.ConvTranspose2x(4).apply(params, x),
                             ref.apply(params, x), atol=1e-5)
  assert (jax.tree_util.tree_structure(models.ConvTranspose2x(4).init(jax.random.key(1), x))
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


def test_logvar_clamp_keeps_kl_finite_for_huge_encoder_outputs():
  c = base_config()
  c.model.hidden_sizes, c.latent_dim = (8,), 2
  model = models.build_model(c)
  x = jnp.ones((2, 28, 28, 1))
  params = model.init(jax.random.key(0), x, jax.random.key(1))['params']
  params = jax.tree_util.tree_map(lambda p: p * 1e6, params)
  mean, logvar = model.apply({'params': params}, x * 1e3, method='encode')
  assert float(logvar.max()) <= models.LOGVAR_MAX and float(logvar.min()) >= models.LOGVAR_MIN
  assert np.all(np.isfinite(jnp.exp(logvar)))
  assert np.all(np.isfinite(losses.gaussian_kl(jnp.zeros_like(mean), logvar)))
