"""Flax linen autoencoders and VAEs over three encoder/decoder families, and any other.

An *encoder* maps images ``[B, H, W, C]`` to features ``[B, F]``; a *decoder*
maps codes ``[B, D]`` to Bernoulli logits ``[B, H, W, C]``. The two model kinds
put a head between them:

* :class:`Autoencoder`: ``Dense(D)`` gives a point code.
* :class:`VAE`: ``Dense(2D)`` gives the mean and log-variance of q(z|x), and
  z = mean + exp(logvar / 2) * eps with eps drawn from an explicit PRNG key.

Both return a :class:`ModelOutput`; everything stays pure-functional, so the
same modules serve training, evaluation and notebooks through ``apply``.

**The model protocol.** Every model kind (:class:`Autoencoder`, :class:`VAE`,
``hierarchical.TwoLayerVAE``, and so any registered family, which plugs an
encoder and a decoder into one of the first two) answers the same four calls
and one attribute, and the objective, the evaluation, the latent tools and the
plots use nothing else:

* ``__call__(x, key, train) -> ModelOutput``: one draw (the training step);
* ``encode(x, train) -> (mean, logvar | None)``: one code per image;
* ``decode(z, train) -> logits``: images from codes;
* ``log_weights(x, targets, key, num_samples, log_likelihood, train) ->
  Importance``: K draws z ~ q(z|x) per image with log p(x, z) - log q(z|x),
  their log p(x|z) part and the closed-form KL where there is one (the IWAE
  objective and bound, and the ELBO of a model without a closed-form KL).
  An autoencoder has no q(z|x) and raises ``TypeError`` naming the fix;
* ``closed_form_kl`` (class attribute): whether one draw's KL(q || p) has a
  closed form (one Gaussian layer). The ELBO is then recon + KL, trained from
  ``__call__``; otherwise it is the mean importance log-weight, trained from
  ``log_weights``.

Mixed precision (``config.compute_dtype``, docs/performance.md). Every module
here has flax's ``dtype`` field, the dtype its matrix products take their
operands in; ``param_dtype`` (flax's default, float32) keeps the parameters,
hence their gradients and Adam's moments, in float32. The dense and conv
layers (``mixed_precision.Dense``, ``conv_matmul``) round only the operands
of their products and accumulate, add the bias and apply the activation in
float32 (``mixed_precision.py`` says why); the LSTM and GRU cells are flax's
and compute their gates in ``dtype``. The model kinds cast what leaves the
model (logits, mean, log-variance) to float32, so the losses, the KL, the
log-likelihoods and every reduction run in float32. A registered family takes
part the same way: :func:`build_model` gives ``dtype=config.compute_dtype`` to
each of its encoder and decoder that declares a ``dtype`` field and that
passes it on to its layers (``mixed_precision.Dense(size, self.dtype)``, or
flax's ``nn.Dense(size, dtype=self.dtype)``, which computes the whole layer in
``dtype``). A family whose modules have no ``dtype`` field is left alone and
trains in float32 whatever the setting.
"""

import importlib
from typing import Any, Callable, ClassVar, NamedTuple, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax.core import losses
from vae_jax.core.conv_matmul import Conv, ConvTranspose, ConvTranspose2x
from vae_jax.core.mixed_precision import Dense

COMPUTE_DTYPES = ('float32', 'bfloat16')  # config.compute_dtype

# log-variance is clipped into this range before exp(): exp(20) ≈ 5e8 and
# exp(-30) ≈ 1e-13 keep the KL, the sampling and its gradients finite in
# float32 while never binding for a healthy model (see docs in README).
LOGVAR_MIN = -30.0
LOGVAR_MAX = 20.0


class Importance(NamedTuple):
  """What :meth:`log_weights` returns: K draws z_k ~ q(z|x) per image, scored.

  ``log_w [K, B]``: log p(x, z_k) - log q(z_k | x), the importance log-weights;
  ``recon_ll [K, B]``: their log p(x | z_k) part; ``kl [B]``: KL(q(z|x) || p(z))
  in closed form where the model has one (one Gaussian layer), else None (the
  ELBO is then the mean of ``log_w``).
  """
  log_w: jax.Array
  recon_ll: jax.Array
  kl: Optional[jax.Array]


class ModelOutput(NamedTuple):
  logits: jax.Array          # [B, H, W, C] decoder logits
  z: jax.Array               # [B, D] the code fed to the decoder
  mean: jax.Array            # [B, D] posterior mean (the code itself for an AE)
  logvar: Optional[jax.Array]  # [B, D] posterior log-variance; None for an AE


def posterior_sample(mean, logvar, eps):
  """z = mean + σ·eps with σ = exp(logvar / 2), for standard-normal ``eps``.

  ``eps`` may have leading sample axes (``[S, B, D]`` against ``[B, D]``): the
  one place the reparameterisation is written, for training, IWAE and evaluation.
  """
  return mean + jnp.exp(0.5 * logvar) * eps


def gaussian_log_weights(encode, decode, x, targets, key, num_samples, log_likelihood):
  """:class:`Importance` of K draws from a diagonal-Gaussian q(z|x), under p(z) = N(0, I).

  The VAE's ``log_weights``, for any ``encode(x) -> (mean, logvar)`` and
  ``decode(z [M, D]) -> outputs [M, ...]`` (a model of one's own answers the
  protocol with it).

  Args:
    x: ``[B, ...]`` what the encoder sees.
    targets: ``[B, ...]`` what p(x|z) scores (x, or a denoising run's clean image).
    key: PRNG key of the draws: eps = normal(key, [K, B, D]).
    num_samples: K.
    log_likelihood: ``(outputs [B, ...], targets [B, ...]) -> [B]`` log p(x|z).
  """
  mean, logvar = encode(x)
  eps = jax.random.normal(key, (num_samples, *mean.shape), mean.dtype)
  z = posterior_sample(mean, logvar, eps)                                 # [K, B, D]
  out = decode(z.reshape(-1, z.shape[-1])).reshape((num_samples, *targets.shape))
  recon_ll = jax.vmap(lambda o: log_likelihood(o, targets))(out)          # [K, B]
  return Importance(losses.iwae_log_weights(recon_ll, z, mean, logvar), recon_ll,
                    losses.gaussian_kl(mean, logvar))


def reparameterize(key, mean, logvar):
  """z = mean + sigma * eps, eps ~ N(0, I) from ``key``; differentiable in both."""
  return posterior_sample(mean, logvar, jax.random.normal(key, mean.shape, mean.dtype))


# ----------------------------------------------------------------------------
# Families
# ----------------------------------------------------------------------------
class MLPEncoder(nn.Module):
  """Flatten, then Dense + ReLU (+ dropout) for each hidden size."""
  hidden_sizes: Sequence[int] = (512,)
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32  # compute dtype of the matmuls (parameters stay float32)

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = x.reshape((x.shape[0], -1))
    for size in self.hidden_sizes:
      h = nn.relu(Dense(size, self.dtype)(h))
      h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    return h


class MLPDecoder(nn.Module):
  """Mirror of :class:`MLPEncoder`: hidden sizes reversed, then pixel logits."""
  image_shape: Sequence[int]
  hidden_sizes: Sequence[int] = (512,)
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z, train: bool = False):
    h = z
    for size in reversed(tuple(self.hidden_sizes)):
      h = nn.relu(Dense(size, self.dtype)(h))
      h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    n = 1
    for d in self.image_shape:
      n *= d
    return Dense(n, self.dtype)(h).reshape((z.shape[0], *self.image_shape))


class ConvEncoder(nn.Module):
  """Strided 3x3 convs (the Keras "deconv" VAE), then a small dense layer."""
  features: Sequence[int] = (32, 64)
  dense_size: int = 16
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = x
    for i, f in enumerate(self.features):
      # == nn.Conv(f, (3, 3), strides=(2, 2), padding='SAME'), same parameter names.
      h = nn.relu(Conv(f, 3, 2, dtype=self.dtype, name=f'Conv_{i}')(h))
      h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    h = h.reshape((h.shape[0], -1))
    h = nn.relu(Dense(self.dense_size, self.dtype)(h))
    return nn.Dropout(self.dropout_rate, deterministic=not train)(h)


class ConvDecoder(nn.Module):
  """Dense to a coarse feature map, strided ConvTranspose back to the image."""
  image_shape: Sequence[int]
  features: Sequence[int] = (32, 64)
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z, train: bool = False):
    height, width, channels = self.image_shape
    scale = 2 ** len(self.features)
    if height % scale or width % scale:
      raise ValueError(
          f'conv decoder needs image sides divisible by {scale}, got '
          f'{height}x{width}: use fewer model.conv.features')
    h0, w0 = height // scale, width // scale
    h = nn.relu(Dense(h0 * w0 * self.features[-1], self.dtype)(z))
    h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    h = h.reshape((z.shape[0], h0, w0, self.features[-1]))
    for f in reversed(tuple(self.features)):
      h = nn.relu(ConvTranspose2x(f, dtype=self.dtype)(h))
      h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    # == nn.ConvTranspose(channels, (3, 3), padding='SAME'), same parameter names.
    return ConvTranspose(channels, 3, dtype=self.dtype, name='ConvTranspose_0')(h)


def _rnn_cell(kind, size, dtype):
  # The gates' matmuls in ``dtype``; the carry stays in the parameters' float32.
  if kind == 'lstm':
    return nn.OptimizedLSTMCell(size, dtype=dtype)
  if kind == 'gru':
    return nn.GRUCell(size, dtype=dtype)
  raise ValueError(f"unknown model.rnn.cell {kind!r}: use 'lstm' or 'gru'")


class RNNEncoder(nn.Module):
  """Reads the image row by row; the last hidden state is the feature vector."""
  size: int = 256
  cell: str = 'lstm'
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    rows = x.reshape((x.shape[0], x.shape[1], -1))  # [B, H, W*C]
    carry, _ = nn.RNN(_rnn_cell(self.cell, self.size, self.dtype), return_carry=True)(rows)
    h = carry[1] if self.cell == 'lstm' else carry  # LSTM carry is (c, h)
    return nn.Dropout(self.dropout_rate, deterministic=not train)(h)


class RNNDecoder(nn.Module):
  """Feeds the code at every step (Keras' RepeatVector) and emits one row a step."""
  image_shape: Sequence[int]
  size: int = 256
  cell: str = 'lstm'
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z, train: bool = False):
    height, width, channels = self.image_shape
    h = nn.relu(Dense(self.size, self.dtype)(z))
    h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    inputs = jnp.broadcast_to(h[:, None, :], (z.shape[0], height, self.size))
    outputs = nn.RNN(_rnn_cell(self.cell, self.size, self.dtype))(inputs)  # [B, H, size]
    rows = Dense(width * channels, self.dtype)(outputs)
    return rows.reshape((z.shape[0], height, width, channels))


# ----------------------------------------------------------------------------
# Model kinds
# ----------------------------------------------------------------------------
class Autoencoder(nn.Module):
  """Deterministic autoencoder: the code is a point, ``Dense(latent_dim)(features)``."""
  closed_form_kl: ClassVar[bool] = False  # no posterior, no KL
  encoder: nn.Module
  decoder: nn.Module
  latent_dim: int
  dtype: Any = jnp.float32  # compute dtype of the head; outputs are float32

  def setup(self):
    self.code = Dense(self.latent_dim, self.dtype)

  def encode(self, x, train: bool = False):
    """Returns ``(code, None)`` so callers can treat both kinds alike."""
    return self.code(self.encoder(x, train=train)).astype(jnp.float32), None

  def decode(self, z, train: bool = False):
    # float32 logits, whatever the decoder computes in: the losses are float32.
    return self.decoder(z, train=train).astype(jnp.float32)

  def __call__(self, x, key=None, train: bool = False):
    del key  # deterministic: no sampling
    code, _ = self.encode(x, train)
    return ModelOutput(self.decode(code, train), code, code, None)

  def log_weights(self, x, targets, key, num_samples, log_likelihood, train: bool = False):
    """An autoencoder defines no p(x): there are no importance weights to give."""
    del x, targets, key, num_samples, log_likelihood, train
    raise TypeError('an autoencoder has no posterior q(z|x) and defines no p(x): the ELBO '
                    'and the importance-weighted bound need a VAE (model.kind=vae)')


class VAE(nn.Module):
  """Variational autoencoder with a diagonal Gaussian q(z|x) and N(0, I) prior."""
  closed_form_kl: ClassVar[bool] = True
  encoder: nn.Module
  decoder: nn.Module
  latent_dim: int
  dtype: Any = jnp.float32  # compute dtype of the head; outputs are float32

  def setup(self):
    self.posterior = Dense(2 * self.latent_dim, self.dtype)

  def encode(self, x, train: bool = False):
    """Returns float32 ``(mean, logvar)``, each ``[B, latent_dim]``."""
    stats = self.posterior(self.encoder(x, train=train)).astype(jnp.float32)
    mean, logvar = jnp.split(stats, 2, axis=-1)
    return mean, jnp.clip(logvar, LOGVAR_MIN, LOGVAR_MAX)

  def decode(self, z, train: bool = False):
    # float32 logits, whatever the decoder computes in: the losses are float32.
    return self.decoder(z, train=train).astype(jnp.float32)

  def __call__(self, x, key, train: bool = False):
    mean, logvar = self.encode(x, train)
    z = reparameterize(key, mean, logvar)
    return ModelOutput(self.decode(z, train), z, mean, logvar)

  def log_weights(self, x, targets, key, num_samples, log_likelihood, train: bool = False):
    """:class:`Importance` of ``num_samples`` draws z ~ q(z|x) per image (:func:`gaussian_log_weights`)."""
    return gaussian_log_weights(lambda v: self.encode(v, train), lambda z: self.decode(z, train),
                                x, targets, key, num_samples, log_likelihood)


# ----------------------------------------------------------------------------
# Building from a config
# ----------------------------------------------------------------------------
# Each built-in builder reads the shared fields of ``config.model`` (``cfg``) and
# its own node: ``cfg.mlp``, ``cfg.conv`` or ``cfg.rnn``.
def _mlp(cfg, image_shape):
  sizes = tuple(cfg.mlp.hidden_sizes)
  return (MLPEncoder(sizes, cfg.dropout_rate),
          MLPDecoder(tuple(image_shape), sizes, cfg.dropout_rate))


def _conv(cfg, image_shape):
  features = tuple(cfg.conv.features)
  return (ConvEncoder(features, cfg.conv.dense_size, cfg.dropout_rate),
          ConvDecoder(tuple(image_shape), features, cfg.dropout_rate))


def _rnn(cfg, image_shape):
  return (RNNEncoder(cfg.rnn.size, cfg.rnn.cell, cfg.dropout_rate),
          RNNDecoder(tuple(image_shape), cfg.rnn.size, cfg.rnn.cell, cfg.dropout_rate))


# name -> fn(model_config, image_shape) -> (encoder, decoder), where model_config
# is the whole ``config.model`` node. Extend with :func:`register_family` to
# train a new architecture without editing the library.
FAMILIES: dict[str, Callable[[Any, Sequence[int]], tuple]] = {
    'mlp': _mlp, 'conv': _conv, 'rnn': _rnn}
KINDS = {'autoencoder': Autoencoder, 'vae': VAE}


def register_family(name, builder):
  """Adds ``builder(model_config, image_shape) -> (encoder, decoder)`` as ``name``.

  ``model_config`` is the whole ``config.model`` node: the shared fields
  (``dropout_rate``, ``max_norm``, ...) and, by convention, the family's own
  fields in a node named after it (``config.model.<name>``), which the user's
  config adds; ``config.validate`` checks only the built-in families' nodes.
  """
  FAMILIES[name] = builder


def family_builder(name):
  """The builder of family ``name``: a registered name or ``'package.module:builder'``.

  The second form imports ``package.module`` (from ``sys.path``, e.g.
  ``$PYTHONPATH``) and takes its ``builder(model_config, image_shape) ->
  (encoder, decoder)``: a family defined outside vae_jax, usable from the
  command line (``--config.model.family=my_models:wide_mlp``) and restorable
  in any process that can import it. Either builder gets the whole
  ``config.model`` node, as :func:`register_family` describes.

  Raises:
    ValueError: the name is not registered, or the module or attribute is missing.
  """
  if name in FAMILIES:
    return FAMILIES[name]
  if not isinstance(name, str) or name.count(':') != 1:
    raise ValueError(f'use one of {sorted(FAMILIES)} or package.module:builder')
  module_name, attribute = name.split(':')
  try:
    module = importlib.import_module(module_name)
  except ImportError as e:
    raise ValueError(f'cannot import {module_name} ({e}): put its directory on '
                     'PYTHONPATH') from e
  builder = getattr(module, attribute, None)
  if not callable(builder):
    raise ValueError(f'{module_name} has no function {attribute}(model_config, '
                     'image_shape) -> (encoder, decoder)')
  return builder


def compute_dtype(config):
  """``config.compute_dtype`` as a dtype (float32 where a config predates it)."""
  return jnp.dtype(config.get('compute_dtype', 'float32'))


def with_compute_dtype(module, dtype):
  """``module`` computing in ``dtype`` if it declares a ``dtype`` field; else unchanged.

  The one rule by which a family takes part in mixed precision (module docstring).
  """
  if 'dtype' in getattr(module, '__dataclass_fields__', {}):
    return module.clone(dtype=dtype)
  return module


def build_model(config, image_shape):
  """The one-stochastic-layer model of ``config.model`` and ``config.latent_dim``.

  ``experiment.build_model(config)`` validates the config, takes the image
  shape from its data set and also builds the two-layer VAE
  (hierarchical.py, which builds on this module); call that unless the images
  come from elsewhere. Modules compute in ``config.compute_dtype`` where they
  can (:func:`with_compute_dtype`).
  """
  cfg = config.model
  dtype = compute_dtype(config)
  encoder, decoder = family_builder(cfg.family)(cfg, image_shape)
  return KINDS[cfg.kind](with_compute_dtype(encoder, dtype), with_compute_dtype(decoder, dtype),
                         config.latent_dim, dtype=dtype)
