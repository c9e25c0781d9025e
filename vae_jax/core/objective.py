"""The training objective: per-example terms for a batch, from a config.

``loss_terms`` returns a dict of ``[B]`` arrays in nats (see losses.py for the
conventions): ``loss`` (what is minimised: recon + β·KL with β from the
schedule and, while training, the KL with free bits; docs/kl_schedules.md),
``recon`` (-log p(x|z), summed over
pixels), and for a VAE ``kl`` and ``elbo`` (= -(recon + kl), the evidence lower
bound at kl_weight 1 whatever the weight used for training).

Every term is computed in float32 whatever ``config.compute_dtype`` the model
computes in: its outputs are cast to float32 (:func:`_float32`) before a loss
sees them.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp

from vae_jax.core import losses, models

NOISE_KINDS = ('none', 'gaussian', 'masking')


@dataclasses.dataclass(frozen=True)
class Objective:
  """Static settings of the loss, read once from the config."""
  kind: str = 'vae'                 # 'vae' or 'autoencoder'
  likelihood: str = 'bernoulli'     # decoder observation model
  gaussian_variance: float = 1.0    # variance of the gaussian likelihood
  kl_weight: float = 1.0            # β; 0 gives the reconstruction-only VAE
  kl_schedule: str = 'warmup'       # β over training: 'warmup' or 'cyclical'
  kl_warmup_steps: int = 0          # 'warmup': linear warm-up of β from 0
  kl_cycles: int = 4                # 'cyclical': number of cycles M in the run
  kl_cycle_ratio: float = 0.5       # 'cyclical': share R of a cycle over which β rises
  total_steps: int = 0              # 'cyclical': steps T of the whole run
  free_bits: float = 0.0            # λ nats per latent dimension (0: off)
  l1_activity: float = 0.0          # sparse-AE penalty weight on |code|
  iwae_samples: int = 1             # k of the IWAE bound; 1 is the usual ELBO
  noise: str = 'none'               # input corruption for a denoising AE
  noise_level: float = 0.0          # std (gaussian) or drop probability (masking)

  @classmethod
  def from_config(cls, config, total_steps=0):
    """``total_steps``: the run's length, which a cyclical schedule needs."""
    m = config.model
    return cls(kind=m.kind, likelihood=m.likelihood,
               gaussian_variance=m.gaussian_variance,
               kl_weight=config.kl_weight, kl_schedule=config.kl_schedule,
               kl_warmup_steps=config.kl_warmup_steps, kl_cycles=config.kl_cycles,
               kl_cycle_ratio=config.kl_cycle_ratio, total_steps=total_steps,
               free_bits=config.free_bits, l1_activity=m.l1_activity,
               iwae_samples=config.iwae_samples, noise=m.noise, noise_level=m.noise_level)

  @property
  def weights_kl(self):
    """Whether β and free bits act: a VAE trained on the ELBO (IWAE-k has no β)."""
    return self.kind == 'vae' and self.iwae_samples == 1

  def beta(self, step=None):
    """β in effect at training ``step``; None: the full ``kl_weight`` (evaluation)."""
    if step is None:
      return self.kl_weight
    if self.kl_schedule == 'cyclical':
      if self.total_steps <= 0:
        raise ValueError('a cyclical KL schedule needs Objective.total_steps > 0')
      return losses.cyclical_kl_weight_at(step, self.kl_weight, self.total_steps,
                                          self.kl_cycles, self.kl_cycle_ratio)
    return losses.kl_weight_at(step, self.kl_weight, self.kl_warmup_steps)


def corrupt(key, images, noise, level):
  """Denoising-AE input: Gaussian noise clipped to [0, 1], or masking noise."""
  if noise == 'none' or level == 0:
    return images
  if noise == 'gaussian':
    noisy = images + level * jax.random.normal(key, images.shape, images.dtype)
    return jnp.clip(noisy, 0.0, 1.0)
  if noise == 'masking':
    keep = jax.random.bernoulli(key, 1.0 - level, images.shape)
    return jnp.where(keep, images, 0.0).astype(images.dtype)
  raise ValueError(f'unknown model.noise {noise!r}: use one of {NOISE_KINDS}')


def _float32(*arrays):
  """The model's outputs as float32 (None passes): the losses and their sums stay float32.

  The model kinds already return float32 (models.py); this holds for any model.
  """
  return tuple(None if a is None else a.astype(jnp.float32) for a in arrays)


def loss_terms(model, params, inputs, targets, key, objective: Objective, *,
               train, step=None):
  """Per-example objective terms.

  Args:
    model: an ``Autoencoder`` or ``VAE``.
    params: its parameters.
    inputs: ``[B, H, W, C]`` what the encoder sees (possibly corrupted).
    targets: ``[B, H, W, C]`` what the decoder must reproduce.
    key: PRNG key for the reparameterisation and dropout (used once here).
    objective: the static :class:`Objective`.
    train: enables dropout.
    step: training step, for the β schedule and free bits (None: full β and
      the plain KL, as evaluation reports it).

  Returns:
    dict of ``[B]`` arrays, in nats.
  """
  z_key, dropout_key = jax.random.split(key)
  variables = {'params': params}
  rngs = {'dropout': dropout_key}
  beta = objective.beta(step)

  if objective.kind == 'vae' and (objective.iwae_samples > 1 or not model.closed_form_kl):
    return _importance_terms(model, variables, inputs, targets, z_key, rngs, objective,
                             train, beta)

  out = model.apply(variables, inputs, z_key, train=train, rngs=rngs)
  out = models.ModelOutput(*_float32(*out))
  recon = -losses.reconstruction_log_likelihood(
      out.logits, targets, objective.likelihood, objective.gaussian_variance)
  terms = {'recon': recon}
  loss = recon
  if objective.kind == 'vae':
    kl = losses.gaussian_kl(out.mean, out.logvar)
    terms.update(kl=kl, elbo=-(recon + kl))
    loss = loss + beta * _weighted_kl(out, kl, objective, step)
  if objective.l1_activity > 0:
    l1 = losses.l1_activity(out.z)
    terms['l1'] = l1
    loss = loss + objective.l1_activity * l1
  terms['loss'] = loss
  return terms


def _weighted_kl(out, kl, objective, step):
  """The KL that β multiplies: with free bits while training, else the plain KL.

  Evaluation (``step`` None) reports the plain KL: free bits change which
  gradient training follows, not the model's ELBO.
  """
  if objective.free_bits > 0 and step is not None:
    return losses.free_bits_kl(losses.gaussian_kl_per_dim(out.mean, out.logvar),
                               objective.free_bits)
  return kl


def _importance_terms(model, variables, inputs, targets, key, rngs, objective, train, beta):
  """Terms from K importance-weighted draws (``model.log_weights``, the protocol call).

  ``recon`` is the mean -log p(x|z) over the draws; ``kl`` the closed-form KL
  where the model has one (then ``elbo = -(recon + kl)``), else what separates
  ``recon`` from the ELBO, the mean log-weight (a sampled KL over every
  stochastic layer). The loss is ``recon + β kl`` at k = 1 and the IWAE
  bound's negative at k > 1 (where β does not act).
  """
  log_lik = functools.partial(losses.reconstruction_log_likelihood,
                              likelihood=objective.likelihood,
                              variance=objective.gaussian_variance)
  log_w, recon_ll, kl = _float32(*model.apply(
      variables, inputs, targets, key, objective.iwae_samples, log_lik, train=train,
      rngs=rngs, method='log_weights'))                                  # [K, B], [K, B], [B]
  recon = -jnp.mean(recon_ll, axis=0)
  if kl is None:
    if objective.free_bits > 0:
      raise ValueError('free bits need a KL per latent dimension, which a model with '
                       'several stochastic layers does not have: set free_bits=0')
    elbo = jnp.mean(log_w, axis=0)
    kl = -elbo - recon
  else:
    elbo = -(recon + kl)
  loss = recon + beta * kl if objective.iwae_samples == 1 else -losses.iwae_bound(log_w)
  return {'recon': recon, 'kl': kl, 'elbo': elbo, 'loss': loss}
