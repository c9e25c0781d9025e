"""A VAE with two stochastic layers (Burda et al. 2015, section 5).

Generative model p(z2) p(z1 | z2) p(x | z1), with p(z2) = N(0, I) and both
conditionals diagonal Gaussians (p(x | z1): Bernoulli logits or the fixed-
variance Gaussian of losses.py); inference model q(z1 | x) q(z2 | z1). Burda's
sizes: x ↔ z1 through two deterministic tanh layers of 200, z1 (100 units) ↔
z2 (50 units) through two of 100.

There is no closed-form KL: the model gives its importance log-weights

    log w = log p(x | z1) + log p(z1 | z2) + log p(z2) - log q(z1 | x) - log q(z2 | z1)

for samples (z1, z2) ~ q through ``log_weights``, the call of the model
protocol (models.py) that objective.py and evaluate.py use for every VAE; they
build the ELBO (here the mean of log w) and the IWAE bound (log-mean-exp of
log w) from it. For the
tools that need one code per image (plots, latent metrics) the code is the top
layer: ``encode`` gives q(z2 | E[z1 | x]) and ``decode`` maps z2 through the
mean of p(z1 | z2) to pixel logits.

Mixed precision as in models.py: the layers' matmuls in ``dtype``, their
outputs (means, log-variances, logits) cast to float32, so every density in
``log_weights`` is float32.
"""

import math
from typing import Any, ClassVar, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax.core import losses, models
from vae_jax.core.mixed_precision import Dense


class _GaussianLayer(nn.Module):
  """Deterministic tanh layers, then the mean and log-variance of a diagonal Gaussian."""
  hidden_sizes: Sequence[int]
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, h):
    for size in self.hidden_sizes:
      h = jnp.tanh(Dense(size, self.dtype)(h))
    stats = Dense(2 * self.features, self.dtype)(h).astype(jnp.float32)
    mean, logvar = jnp.split(stats, 2, axis=-1)
    return mean, jnp.clip(logvar, models.LOGVAR_MIN, models.LOGVAR_MAX)


class _PixelLayer(nn.Module):
  hidden_sizes: Sequence[int]
  image_shape: Sequence[int]
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z1):
    h = z1
    for size in self.hidden_sizes:
      h = jnp.tanh(Dense(size, self.dtype)(h))
    logits = Dense(math.prod(self.image_shape), self.dtype)(h).astype(jnp.float32)
    return logits.reshape((*z1.shape[:-1], *self.image_shape))


class TwoLayerVAE(nn.Module):
  """Two stochastic layers; ``latent_dim`` is the top one (z2), the model's code."""
  closed_form_kl: ClassVar[bool] = False  # the ELBO is the mean log-weight
  image_shape: Sequence[int]
  hidden_sizes: Sequence[int] = (200, 200)      # x ↔ z1
  bottom_latent_dim: int = 100                   # z1
  top_hidden_sizes: Sequence[int] = (100, 100)  # z1 ↔ z2
  latent_dim: int = 50                           # z2
  dtype: Any = jnp.float32                       # compute dtype of the matmuls

  def setup(self):
    self.q_z1 = _GaussianLayer(self.hidden_sizes, self.bottom_latent_dim, self.dtype)
    self.q_z2 = _GaussianLayer(self.top_hidden_sizes, self.latent_dim, self.dtype)
    self.p_z1 = _GaussianLayer(self.top_hidden_sizes, self.bottom_latent_dim, self.dtype)
    self.p_x = _PixelLayer(tuple(reversed(self.hidden_sizes)), self.image_shape, self.dtype)

  def _flat(self, x):
    return x.reshape((x.shape[0], -1))

  def encode(self, x, train: bool = False):
    """``(mean, logvar)`` of q(z2 | E[z1 | x]), each ``[B, latent_dim]``."""
    del train  # no dropout
    mean1, _ = self.q_z1(self._flat(x))
    return self.q_z2(mean1)

  def decode(self, z, train: bool = False):
    """Pixel logits ``[B, H, W, C]`` of p(x | E[z1 | z2 = z])."""
    del train
    mean1, _ = self.p_z1(z)
    return self.p_x(mean1)

  def log_weights(self, x, targets, key, num_samples, log_likelihood, train: bool = False):
    """:class:`models.Importance` of ``num_samples`` draws (z1, z2) ~ q(· | x) per image.

    Args:
      x: ``[B, H, W, C]`` what the encoder sees.
      targets: ``[B, H, W, C]`` what p(x | z1) scores (x itself, or the clean
        image of a denoising run).
      key: PRNG key of the draws.
      num_samples: K.
      log_likelihood: ``(logits [B, ...], targets [B, ...]) -> [B]`` log p(x | z1).

    Returns:
      ``Importance(log_w, recon_ll, None)``: log w and its log p(x | z1) part,
      each ``[K, B]``; no closed-form KL (the ELBO is the mean of log w).
    """
    del train  # no dropout
    key1, key2 = jax.random.split(key)
    mean1, logvar1 = self.q_z1(self._flat(x))
    z1 = models.posterior_sample(mean1, logvar1, jax.random.normal(
        key1, (num_samples, *mean1.shape), mean1.dtype))                    # [K, B, D1]
    mean2, logvar2 = self.q_z2(z1)
    z2 = models.reparameterize(key2, mean2, logvar2)
    prior_mean1, prior_logvar1 = self.p_z1(z2)
    logits = self.p_x(z1)                                                   # [K, B, H, W, C]
    recon_ll = jax.vmap(lambda l: log_likelihood(l, targets))(logits)       # [K, B]
    log_w = (recon_ll
             + losses.diagonal_normal_log_density(z1, prior_mean1, prior_logvar1)
             + losses.standard_normal_log_density(z2)
             - losses.diagonal_normal_log_density(z1, mean1, logvar1)
             - losses.diagonal_normal_log_density(z2, mean2, logvar2))
    return models.Importance(log_w, recon_ll, None)

  def __call__(self, x, key, train: bool = False):
    """One draw, as the one-layer VAE returns it: logits of p(x | z1) and the top code."""
    del train
    key1, key2 = jax.random.split(key)
    mean1, logvar1 = self.q_z1(self._flat(x))
    z1 = models.reparameterize(key1, mean1, logvar1)
    mean2, logvar2 = self.q_z2(z1)
    z2 = models.reparameterize(key2, mean2, logvar2)
    # p(z1 | z2) is not part of this output, but ``init`` (which calls this
    # method) must create its parameters; under jit the unused result is dropped.
    self.p_z1(z2)
    return models.ModelOutput(self.p_x(z1), z2, mean2, logvar2)
