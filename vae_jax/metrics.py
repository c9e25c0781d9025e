"""Continuity and completeness of a latent space, comparable between an AE and a VAE.

The article asks two things of a latent space used for generation:
*continuous* (close codes decode to similar outputs) and *complete* (every
code drawn from the prior decodes to something that makes sense). This
module measures both; docs/metrics.md gives the definitions, why they measure
what the article means, and what a perfect and a broken model score.

All distances in the latent space are taken in **normalised units**: codes
are whitened by the mean and covariance of the *decoder's training inputs*
(an AE's codes; a VAE's posterior samples z ~ q(z|x), one per training image),
so a unit is "one standard deviation of what the decoder was trained on" in
both kinds, whatever their raw scales. Prior samples are N(0, I) for a VAE
(its prior) and, for an AE, the Gaussian fitted to its training codes (the
most favourable prior it can have), i.e. N(0, I) in normalised units.

The building blocks take plain callables and arrays so that they can be tested
on constructed cases:

* ``decode_fn(z [N, D]) -> images [N, ...]`` with values in [0, 1];
* ``classifier_fn(images [N, 28, 28, 1]) -> logits [N, C]``.

:func:`latent_space_metrics` runs them all for a trained model and returns a
flat dict of floats.
"""

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import latent


# ----------------------------------------------------------------------------
# Normalised latent units
# ----------------------------------------------------------------------------
class Normalizer(NamedTuple):
  """u = (z - mean) @ whiten and z = u @ unwhiten + mean."""
  mean: np.ndarray      # [D]
  whiten: np.ndarray    # [D, D]
  unwhiten: np.ndarray  # [D, D]

  def normalize(self, z):
    return (np.asarray(z, np.float64) - self.mean) @ self.whiten

  def denormalize(self, u):
    return np.asarray(u, np.float64) @ self.unwhiten + self.mean


def fit_normalizer(codes, rel_floor=1e-6):
  """Whitening by the mean and covariance of ``codes [N, D]``.

  Cholesky whitening, u = L⁻¹ (z - mean) with L Lᵀ = Cov: the normalised
  codes have mean 0 and covariance I, and rescaling any latent axis (z_d → s
  z_d) leaves every u, hence every metric, unchanged. Each variance is raised
  by ``rel_floor`` of itself (and a dead dimension's by ``rel_floor`` of the
  mean variance) so that the Cholesky factor always exists.
  """
  codes = np.asarray(codes, np.float64)
  mean = codes.mean(axis=0)
  cov = np.atleast_2d(np.cov(codes, rowvar=False))
  var = np.diag(cov)
  dead = rel_floor * max(float(np.mean(var)), 1e-30)
  jitter = np.where(var > dead, rel_floor * var, dead)
  chol = np.linalg.cholesky(cov + np.diag(jitter))
  return Normalizer(mean, np.linalg.inv(chol).T, chol.T)


def fitted_gaussian_samples(key, normalizer, num):
  """``num`` codes from N(mean, cov) of the fitted codes (N(0, I) in normalised units)."""
  u = np.asarray(jax.random.normal(key, (num, normalizer.mean.shape[0])), np.float64)
  return normalizer.denormalize(u)


def standard_normal_samples(key, dim, num):
  """``num`` codes from a VAE's prior N(0, I)."""
  return np.asarray(jax.random.normal(key, (num, dim)), np.float64)


# ----------------------------------------------------------------------------
# Nearest neighbours (jitted, in chunks of queries)
# ----------------------------------------------------------------------------
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
  dists, idxs = [], []
  for start in range(0, queries.shape[0], chunk):
    q = queries[start:start + chunk]
    valid = q.shape[0]
    if valid < chunk:
      q = np.concatenate([q, np.zeros((chunk - valid, q.shape[1]), q.dtype)])
    d2, idx = _knn_chunk(jnp.asarray(q), refs, k)
    dists.append(np.sqrt(np.asarray(d2, np.float64))[:valid])
    idxs.append(np.asarray(idx)[:valid])
  return np.concatenate(dists), np.concatenate(idxs)


# ----------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------
def _decode(decode_fn, z, batch_size=None):
  """Decoded images of ``z [N, D]`` as a float64 array ``[N, ...]`` (shape kept)."""
  z = np.asarray(z, np.float32)
  if batch_size:
    parts = [np.asarray(decode_fn(z[i:i + batch_size]))
             for i in range(0, z.shape[0], batch_size)]
    images = np.concatenate(parts)
  else:
    images = np.asarray(decode_fn(z))
  return images.astype(np.float64)


def _flat(images):
  return images.reshape(images.shape[0], -1)


def _softmax(logits):
  logits = np.asarray(logits, np.float64)
  logits = logits - logits.max(axis=-1, keepdims=True)
  p = np.exp(logits)
  return p / p.sum(axis=-1, keepdims=True)


def classifier_scores(classifier_fn, images, confidence=0.9):
  """Confidence of an independent classifier on ``images``.

  Returns ``confident_share`` (share with max softmax ≥ ``confidence``),
  ``mean_max_prob`` and ``class_entropy`` (entropy of the histogram of
  predicted classes divided by log C: 1 = all classes equally often, 0 = one
  class only).
  """
  p = _softmax(classifier_fn(images))
  maxp = p.max(axis=-1)
  hist = np.bincount(p.argmax(axis=-1), minlength=p.shape[-1]) / p.shape[0]
  nz = hist[hist > 0]
  return {'confident_share': float(np.mean(maxp >= confidence)),
          'mean_max_prob': float(np.mean(maxp)),
          'class_entropy': float(-np.sum(nz * np.log(nz)) / math.log(p.shape[-1]))}


# ----------------------------------------------------------------------------
# Continuity
# ----------------------------------------------------------------------------
def continuity_metrics(decode_fn, codes, key, *, normalizer=None, num_paths=100,
                       path_steps=64, num_perturb=500, perturb_scale=0.05,
                       classifier_fn=None, confidence=0.9, batch_size=None):
  """How smoothly the decoder's output changes as the code moves.

  Paths: ``num_paths`` random pairs of ``codes`` (e.g. test codes) are joined
  by straight lines of ``path_steps`` equal steps; with x_t the decoded image
  (values in [0, 1]) at step t and d_t = ||x_{t+1} - x_t||_2 (pixel L2):

  * ``path_step_mean``: mean of d_t over steps and paths;
  * ``path_max_step``: mean over paths of max_t d_t (a jump shows here as the
    size of the jump, however finely the path is cut);
  * ``path_jump_ratio``: mean over paths of max_t d_t / mean_t d_t: 1 for an
    even morph, up to ``path_steps`` when the whole change happens in one step;
  * ``path_confident_share`` (with ``classifier_fn``): share of decoded path
    points the classifier calls with confidence, i.e. whether the way from
    one code to another passes through sensible outputs.

  Local Lipschitz: around ``num_perturb`` random codes, a random direction of
  length ``perturb_scale`` normalised units:
  L = ||decode(z + δ) - decode(z)||_2 / ||δ||_normalised; ``lipschitz_mean``,
  ``lipschitz_median`` and ``lipschitz_p99``.

  Args:
    decode_fn: ``z [N, D] -> images [N, ...]`` in [0, 1].
    codes: ``[N, D]`` codes to draw endpoints and base points from.
    key: PRNG key; the result is a deterministic function of it.
    normalizer: :class:`Normalizer` defining the normalised units (default:
      fitted to ``codes``).
  """
  codes = np.asarray(codes, np.float64)
  n, dim = codes.shape
  normalizer = fit_normalizer(codes) if normalizer is None else normalizer
  pair_key, base_key, dir_key = jax.random.split(key, 3)

  # Paths between random pairs (a != b).
  a = np.asarray(jax.random.randint(pair_key, (num_paths,), 0, n))
  b = (a + 1 + np.asarray(jax.random.randint(jax.random.fold_in(pair_key, 1),
                                             (num_paths,), 0, max(n - 1, 1)))) % n
  t = np.linspace(0.0, 1.0, path_steps + 1)[None, :, None]
  paths = codes[a][:, None, :] + t * (codes[b] - codes[a])[:, None, :]  # [P, T+1, D]
  images = _decode(decode_fn, paths.reshape(-1, dim), batch_size)
  flat = _flat(images).reshape(num_paths, path_steps + 1, -1)
  steps = np.linalg.norm(np.diff(flat, axis=1), axis=-1)                # [P, T]
  eps = 1e-12
  out = {
      'path_step_mean': float(np.mean(steps)),
      'path_max_step': float(np.mean(steps.max(axis=1))),
      'path_jump_ratio': float(np.mean((steps.max(axis=1) + eps)
                                       / (steps.mean(axis=1) + eps))),
  }
  if classifier_fn is not None:
    scores = classifier_scores(classifier_fn, images.astype(np.float32), confidence)
    out['path_confident_share'] = scores['confident_share']

  # Local Lipschitz estimate in normalised units.
  base = codes[np.asarray(jax.random.randint(base_key, (num_perturb,), 0, n))]
  direction = np.asarray(jax.random.normal(dir_key, (num_perturb, dim)), np.float64)
  direction /= np.linalg.norm(direction, axis=1, keepdims=True) + 1e-30
  delta = perturb_scale * direction @ normalizer.unwhiten                # raw units
  both = _flat(_decode(decode_fn, np.concatenate([base, base + delta]), batch_size))
  lip = np.linalg.norm(both[num_perturb:] - both[:num_perturb], axis=1) / perturb_scale
  out.update(lipschitz_mean=float(np.mean(lip)), lipschitz_median=float(np.median(lip)),
             lipschitz_p99=float(np.quantile(lip, 0.99)))
  return out


# ----------------------------------------------------------------------------
# Completeness
# ----------------------------------------------------------------------------
def hole_metrics(prior_codes, train_codes, key, *, normalizer=None, quantile=0.99,
                 num_reference=2000):
  """Share of prior samples that fall into holes of the training codes.

  In normalised units, r = the ``quantile`` of the nearest-neighbour
  distances among training codes (each to its nearest *other* training code,
  on ``num_reference`` of them drawn with ``key``). A prior sample whose
  nearest training code is farther than r lies where the decoder has seen no
  input: ``hole_share`` is the share of such samples (≈ 1 - quantile when the
  prior matches the codes; → 1 when the prior puts its mass away from them).
  ``nn_distance_ratio`` = median NN distance of prior samples / median NN
  distance among training codes (≈ 1 when matched).
  """
  normalizer = fit_normalizer(train_codes) if normalizer is None else normalizer
  train_u = normalizer.normalize(train_codes)
  prior_u = normalizer.normalize(prior_codes)
  n = train_u.shape[0]
  ref = np.asarray(jax.random.permutation(key, n))[:min(num_reference, n)]
  ref_d, _ = nearest_neighbors(train_u[ref], train_u, k=2)
  ref_nn = ref_d[:, 1]  # the nearest one is the code itself
  threshold = float(np.quantile(ref_nn, quantile))
  prior_d, _ = nearest_neighbors(prior_u, train_u, k=1)
  prior_nn = prior_d[:, 0]
  return {'hole_share': float(np.mean(prior_nn > threshold)),
          'hole_threshold': threshold,
          'nn_distance_ratio': float(np.median(prior_nn) / max(np.median(ref_nn), 1e-30))}


def completeness_metrics(decode_fn, prior_codes, train_codes, key, *,
                         classifier_fn=None, normalizer=None, confidence=0.9,
                         hole_quantile=0.99, num_reference=2000, batch_size=None):
  """Do codes drawn from the prior decode to sensible outputs?

  With ``classifier_fn`` (an independent classifier trained on real images),
  the decoded prior samples get :func:`classifier_scores`: ``confident_share``
  (the headline), ``mean_max_prob`` and ``class_entropy``. Always: the
  geometric :func:`hole_metrics` of ``prior_codes`` against ``train_codes``.
  """
  out = hole_metrics(prior_codes, train_codes, key, normalizer=normalizer,
                     quantile=hole_quantile, num_reference=num_reference)
  if classifier_fn is not None:
    images = _decode(decode_fn, prior_codes, batch_size)
    out.update(classifier_scores(classifier_fn, images.astype(np.float32), confidence))
  return out


# ----------------------------------------------------------------------------
# Class separation
# ----------------------------------------------------------------------------
def knn_accuracy(train_codes, train_labels, test_codes, test_labels, k=10,
                 normalizer=None):
  """Share of test codes whose k nearest training codes vote for their label.

  Distances in normalised units (``normalizer``; default: fitted to
  ``train_codes``). Ties go to the smallest label.
  """
  normalizer = fit_normalizer(train_codes) if normalizer is None else normalizer
  _, idx = nearest_neighbors(normalizer.normalize(test_codes),
                             normalizer.normalize(train_codes), k=k)
  train_labels = np.asarray(train_labels)
  votes = train_labels[idx]                                      # [Q, k]
  num_classes = int(max(train_labels.max(), np.max(test_labels))) + 1
  counts = np.stack([(votes == c).sum(axis=1) for c in range(num_classes)], axis=1)
  return float(np.mean(counts.argmax(axis=1) == np.asarray(test_labels)))


# ----------------------------------------------------------------------------
# Everything for a trained model
# ----------------------------------------------------------------------------
def _subset(key, n, size):
  idx = np.asarray(jax.random.permutation(key, n))
  return np.sort(idx[:min(size, n)])


def latent_space_metrics(model, params, kind, train_images, train_labels,
                         test_images, test_labels, classifier_fn, key, *,
                         num_train=10000, num_test=5000, num_prior=2000,
                         num_paths=100, path_steps=64, num_perturb=500,
                         perturb_scale=0.05, knn_k=10, confidence=0.9,
                         hole_quantile=0.99, num_reference=2000, batch_size=1000):
  """Continuity, completeness and class separation of a trained model, as floats.

  Args:
    model, params: a trained :class:`models.VAE` or :class:`models.Autoencoder`.
    kind: ``'vae'`` (prior N(0, I)) or ``'autoencoder'`` (prior: the Gaussian
      fitted to its training codes).
    train_images, train_labels, test_images, test_labels: data the model was
      trained/evaluated on; ``num_train`` / ``num_test`` random ones are used.
    classifier_fn: ``images -> logits`` of an independent classifier (see
      classifier.make_logits_fn), or None to skip the classifier scores.
    key: PRNG key; the result is a deterministic function of it.

  Returns:
    flat dict: :func:`continuity_metrics` keys, :func:`completeness_metrics`
    keys (prior samples), ``knn_accuracy`` and ``code_scale`` (RMS spread of the
    decoder's training inputs, raw units, for reference).
  """
  if kind not in ('vae', 'autoencoder'):
    raise ValueError(f"kind must be 'vae' or 'autoencoder', got {kind!r}")
  keys = jax.random.split(key, 7)
  tr = _subset(keys[0], len(train_images), num_train)
  te = _subset(keys[1], len(test_images), num_test)
  train_mean, train_logvar = latent.encode(model, params, np.asarray(train_images)[tr],
                                           batch_size)
  test_mean, _ = latent.encode(model, params, np.asarray(test_images)[te], batch_size)
  train_mean = np.asarray(train_mean, np.float64)
  if kind == 'vae':
    if train_logvar is None:
      raise ValueError("kind='vae' but the model's encoder returns no log-variance")
    eps = np.asarray(jax.random.normal(keys[2], train_mean.shape), np.float64)
    decoder_inputs = train_mean + np.exp(0.5 * np.asarray(train_logvar, np.float64)) * eps
  else:
    decoder_inputs = train_mean
  normalizer = fit_normalizer(decoder_inputs)
  dim = train_mean.shape[1]
  if kind == 'vae':
    prior = standard_normal_samples(keys[3], dim, num_prior)
  else:
    prior = fitted_gaussian_samples(keys[3], normalizer, num_prior)

  decode_fn = lambda z: latent.decode(model, params, z, batch_size)
  out = continuity_metrics(decode_fn, test_mean, keys[4], normalizer=normalizer,
                           num_paths=num_paths, path_steps=path_steps,
                           num_perturb=num_perturb, perturb_scale=perturb_scale,
                           classifier_fn=classifier_fn, confidence=confidence)
  out.update(completeness_metrics(decode_fn, prior, decoder_inputs, keys[5],
                                  classifier_fn=classifier_fn, normalizer=normalizer,
                                  confidence=confidence, hole_quantile=hole_quantile,
                                  num_reference=num_reference))
  out['knn_accuracy'] = knn_accuracy(train_mean, np.asarray(train_labels)[tr], test_mean,
                                     np.asarray(test_labels)[te], k=knn_k,
                                     normalizer=normalizer)
  centered = decoder_inputs - decoder_inputs.mean(axis=0)
  out['code_scale'] = float(np.sqrt(np.mean(np.sum(centered ** 2, axis=1)) / dim))
  return out
