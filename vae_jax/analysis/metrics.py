"""Continuity and completeness of a latent space, comparable between an AE and a VAE.

The article asks two things of a latent space used for generation:
*continuous* (close codes decode to similar outputs) and *complete* (every
code drawn from the prior decodes to something that makes sense). This
module measures both; docs/metrics.md gives the definitions, why they measure
what the article means, and what a perfect and a broken model score.

One protocol serves every model, AE or VAE (docs/metrics.md says why each
choice is fair to both):

* **Codes** are what the encoder outputs for an image: an AE's code, a VAE's
  posterior mean. The training codes are the reference for the normalisation,
  the fitted samplers and the class separation of every model.
* **Holes** are judged against the aggregate posterior itself: a VAE's
  q(z) = mean of its posteriors q(z|x), an AE's codes under a Gaussian kernel
  of Scott's width (:func:`aggregate_posterior`), so inactive units, where
  every posterior is the prior, are not holes at any latent size.
* **Walks** join test codes of two different classes (≥ 50 per seed): every
  path score is a mean over them, never one path.
* **Normalised units**: codes are whitened by the mean and covariance of the
  training codes, so a unit is "one standard deviation of the codes" whatever
  their raw scale.
* **Samplers** (vae_jax/analysis/samplers.py): N(0, I) (the article's literal
  experiment), the Gaussian fitted to the codes and a 10-component GMM fitted
  to the codes, each scored with the same completeness and sample-quality
  metrics (keys ``<sampler>/<metric>``).

The building blocks take plain callables and arrays so that they can be tested
on constructed cases:

* ``decode_fn(z [N, D]) -> images [N, ...]`` with values in [0, 1];
* ``classifier_fn(images [N, H, W, C]) -> logits [N, classes]``;
* ``features_fn(images) -> features [N, F]`` (sample quality).

:func:`latent_metrics` runs them all for a model given as two such functions
(``encode_fn(images) -> codes``, any framework) and returns a flat dict of
floats; :func:`latent_space_metrics` does the same for a trained vae_jax model.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.analysis import article_metrics
from vae_jax.analysis import sample_quality
from vae_jax.infra import chunks
from vae_jax.core import latent
from vae_jax.analysis import samplers as samplers_lib
from vae_jax.analysis.neighbors import nearest_neighbors


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


# ----------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------
def decode_codes(decode_fn, z, batch_size=None):
  """Decoded images of ``z [N, D]`` as a float64 array ``[N, ...]`` (shape kept).

  ``decode_fn`` is called on at most ``batch_size`` codes at a time (None: all).
  """
  z = np.asarray(z, np.float32)
  if batch_size:
    parts = [np.asarray(decode_fn(z[i:i + batch_size]))
             for i in range(0, z.shape[0], batch_size)]
    images = np.concatenate(parts)
  else:
    images = np.asarray(decode_fn(z))
  return images.astype(np.float64)


def encode_codes(encode_fn, images, batch_size=None):
  """``(codes [N, D], logvar [N, D] or None)`` as float64 arrays.

  ``encode_fn(images) -> codes``, or ``-> (codes, logvars)`` for a model with
  a Gaussian posterior (codes are then its means); ``(codes, None)`` is read
  as codes only. Called on at most ``batch_size`` images at a time (None: all
  at once).
  """
  images = np.asarray(images)
  step = batch_size or max(images.shape[0], 1)
  parts = [encode_fn(images[i:i + step]) for i in range(0, images.shape[0], step)]
  pairs = [p if isinstance(p, (tuple, list)) else (p, None) for p in parts]
  codes = np.concatenate([np.asarray(c, np.float64) for c, _ in pairs])
  if codes.ndim != 2:
    raise ValueError(f'encode_fn must return codes of shape [N, D], got {codes.shape}')
  logvars = [v for _, v in pairs]
  if any(v is None for v in logvars):
    return codes, None
  return codes, np.concatenate([np.asarray(v, np.float64) for v in logvars])


def _flat(images):
  return images.reshape(images.shape[0], -1)


def _softmax(logits):
  logits = np.asarray(logits, np.float64)
  logits = logits - logits.max(axis=-1, keepdims=True)
  p = np.exp(logits)
  return p / p.sum(axis=-1, keepdims=True)


def class_proportions(labels, num_classes):
  """``[num_classes]`` share of each class among integer ``labels``."""
  return np.bincount(np.asarray(labels), minlength=num_classes) / max(len(labels), 1)


def classifier_scores(classifier_fn, images, confidence=0.9, proportions=None):
  """Confidence of an independent classifier on ``images``.

  Returns ``confident_share`` (share with max softmax ≥ ``confidence``),
  ``mean_max_prob`` and ``class_entropy`` (entropy of the histogram of
  predicted classes divided by log C: 1 = all classes equally often, 0 = one
  class only). With the data's class ``proportions`` π [C], also:

  * ``balanced_confident_share`` = Σ_c min(q_c, π_c), q_c the share of images
    called class c with confidence: the confident share that fits inside the
    data's class proportions, so a generator collapsed onto one class scores
    at most that class's π_c (≤ ``confident_share``; equal when the confident
    images are spread over the classes as the data are);
  * ``class_distance`` = ½ Σ_c |h_c − π_c|, the total-variation distance of
    the predicted-class histogram h from π (0: the data's proportions).
  """
  p = _softmax(classifier_fn(images))
  maxp, pred = p.max(axis=-1), p.argmax(axis=-1)
  num_classes = p.shape[-1]
  hist = np.bincount(pred, minlength=num_classes) / p.shape[0]
  nz = hist[hist > 0]
  out = {'confident_share': float(np.mean(maxp >= confidence)),
         'mean_max_prob': float(np.mean(maxp)),
         'class_entropy': float(-np.sum(nz * np.log(nz)) / math.log(num_classes))}
  if proportions is not None:
    pi = np.asarray(proportions, np.float64)
    confident = np.bincount(pred[maxp >= confidence], minlength=num_classes) / p.shape[0]
    out['balanced_confident_share'] = float(np.sum(np.minimum(confident, pi)))
    out['class_distance'] = float(0.5 * np.sum(np.abs(hist - pi)))
  return out


# ----------------------------------------------------------------------------
# Continuity
# ----------------------------------------------------------------------------
def class_pairs(key, labels, num_pairs, candidates=64):
  """``(a [P], b [P])`` indices of ``num_pairs`` random pairs with different labels.

  Each a is uniform; b is the first of ``candidates`` uniform draws whose label
  differs from a's (any other index when none does, e.g. one-class data).
  """
  labels = np.asarray(labels)
  n = labels.shape[0]
  a_key, b_key = jax.random.split(key)
  a = np.asarray(jax.random.randint(a_key, (num_pairs,), 0, n))
  cand = (a[:, None] + 1 + np.asarray(
      jax.random.randint(b_key, (num_pairs, candidates), 0, max(n - 1, 1)))) % n
  other = labels[cand] != labels[a][:, None]
  first = np.where(other.any(axis=1), other.argmax(axis=1), 0)
  return a, cand[np.arange(num_pairs), first]


def continuity_metrics(decode_fn, codes, key, *, labels=None, normalizer=None,
                       num_paths=100, path_steps=64, num_perturb=500, perturb_scale=0.05,
                       classifier_fn=None, confidence=0.9, batch_size=None):
  """How smoothly the decoder's output changes as the code moves.

  Walks: ``num_paths`` random pairs of ``codes`` (e.g. test codes; with
  ``labels``, each pair of two different classes: class-pair walks) are joined
  by straight lines of ``path_steps`` equal steps; every path score below is a
  mean over all walks. With x_t the decoded image (values in [0, 1]) at step t
  and d_t = ||x_{t+1} - x_t||_2 (pixel L2):

  * ``path_step_mean``: mean of d_t over steps and paths;
  * ``path_max_step``: mean over paths of max_t d_t (a jump shows here as the
    size of the jump, however finely the path is cut);
  * ``path_jump_ratio``: mean over paths of max_t d_t / mean_t d_t: 1 for an
    even morph (a pixel cross-fade too), up to ``path_steps`` when the whole
    change happens in one step. It measures the *evenness* of change, not
    whether the way is recognisable;
  * with ``classifier_fn``: ``path_confident_share``, the share of decoded
    path points the classifier calls with confidence (does the way from one
    code to another pass through sensible outputs?), and
    ``path_class_changes``, the mean number of steps per walk where the
    predicted class changes (1 for a walk that goes from class a to class b
    once; more when the class flickers or detours).

  Local Lipschitz: around ``num_perturb`` random codes, a random direction of
  length ``perturb_scale`` normalised units:
  L = ||decode(z + δ) - decode(z)||_2 / ||δ||_normalised; ``lipschitz_mean``,
  ``lipschitz_median`` and ``lipschitz_p99``. ``global_slope`` = mean over
  the paths of ||x_T - x_0||_2 / ||u_b - u_a|| (normalised units), and
  ``lipschitz_p99_relative`` = ``lipschitz_p99`` / ``global_slope``: 1-ish for
  an evenly varying decoder, large for cliffs, inf for a constant decoder.

  Args:
    decode_fn: ``z [N, D] -> images [N, ...]`` in [0, 1].
    codes: ``[N, D]`` codes to draw endpoints and base points from.
    key: PRNG key; the result is a deterministic function of it.
    labels: ``[N]`` classes of ``codes``: walks join two different classes.
    normalizer: :class:`Normalizer` defining the normalised units (default:
      fitted to ``codes``).
  """
  codes = np.asarray(codes, np.float64)
  n, dim = codes.shape
  normalizer = fit_normalizer(codes) if normalizer is None else normalizer
  pair_key, base_key, dir_key = jax.random.split(key, 3)

  # Walks between random pairs (a != b; of two classes when labels are given).
  a, b = class_pairs(pair_key, np.arange(n) if labels is None else labels, num_paths)
  t = np.linspace(0.0, 1.0, path_steps + 1)[None, :, None]
  paths = codes[a][:, None, :] + t * (codes[b] - codes[a])[:, None, :]  # [P, T+1, D]
  images = decode_codes(decode_fn, paths.reshape(-1, dim), batch_size)
  flat = _flat(images).reshape(num_paths, path_steps + 1, -1)
  steps = np.linalg.norm(np.diff(flat, axis=1), axis=-1)                # [P, T]
  out = {
      'path_step_mean': float(np.mean(steps)),
      'path_max_step': float(np.mean(steps.max(axis=1))),
      # A path whose decodings do not change at all has no "even" morph to
      # speak of: it scores inf, so a constant decoder cannot win.
      'path_jump_ratio': float(np.mean(_ratio(steps.max(axis=1), steps.mean(axis=1)))),
  }
  if classifier_fn is not None:
    probs = _softmax(classifier_fn(images.astype(np.float32)))
    confident = probs.max(axis=-1) >= confidence
    pred = probs.argmax(axis=-1).reshape(num_paths, path_steps + 1)
    out['path_confident_share'] = float(np.mean(confident))
    out['path_class_changes'] = float(np.mean(np.sum(np.diff(pred, axis=1) != 0, axis=1)))
  # Global slope: how far apart the decodings of two codes are per normalised
  # unit between them, averaged over the path endpoints.
  ends = np.linalg.norm(flat[:, -1] - flat[:, 0], axis=-1)
  span = np.linalg.norm(normalizer.normalize(codes[b]) - normalizer.normalize(codes[a]), axis=-1)
  global_slope = float(np.mean(ends / np.maximum(span, 1e-30)))

  # Local Lipschitz estimate in normalised units.
  base = codes[np.asarray(jax.random.randint(base_key, (num_perturb,), 0, n))]
  direction = np.asarray(jax.random.normal(dir_key, (num_perturb, dim)), np.float64)
  direction /= np.linalg.norm(direction, axis=1, keepdims=True) + 1e-30
  delta = perturb_scale * direction @ normalizer.unwhiten                # raw units
  both = _flat(decode_codes(decode_fn, np.concatenate([base, base + delta]), batch_size))
  lip = np.linalg.norm(both[num_perturb:] - both[:num_perturb], axis=1) / perturb_scale
  out.update(lipschitz_mean=float(np.mean(lip)), lipschitz_median=float(np.median(lip)),
             lipschitz_p99=float(np.quantile(lip, 0.99)), global_slope=global_slope,
             # Blur-proof: the steepest local slopes relative to the decoder's
             # typical slope across the data. A decoder that varies little
             # everywhere (blur) does not score well by that alone; a constant
             # one scores inf.
             lipschitz_p99_relative=float(_ratio(np.quantile(lip, 0.99), global_slope)))
  return out


def _ratio(num, den, tiny=1e-9):
  """num / den, and inf where den (a change of decoded images) is ~0."""
  num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
  return np.where(den > tiny, num / np.maximum(den, tiny), np.inf)


# ----------------------------------------------------------------------------
# Completeness
# ----------------------------------------------------------------------------
class AggregatePosterior(NamedTuple):
  """q(z) = (1/N) Σ_n N(z; means_n, diag(stds_n²)): a VAE's posteriors, an AE's kernels."""
  means: np.ndarray   # [N, D]
  stds: np.ndarray    # [N, D]

  def log_density(self, z):
    """log q(z) ``[M]`` for ``z [M, D]`` (float32 arithmetic, exact differences)."""
    z = np.asarray(z, np.float32)
    n, dim = self.means.shape
    # Rows of z per call: the [rows, N, D] differences stay under 2^24 floats.
    rows = max(1, min(z.shape[0], 2 ** 24 // max(n * dim, 1)))
    means = jnp.asarray(self.means, jnp.float32)
    log_stds = jnp.asarray(np.log(self.stds), jnp.float32)
    return np.asarray(chunks.map_chunks(
        lambda q: _mixture_log_density(jnp.asarray(q), means, log_stds), z, rows,
        pad_last=True), np.float64)


@jax.jit
def _mixture_log_density(z, means, log_stds):
  u = (z[:, None, :] - means[None]) * jnp.exp(-log_stds)[None]          # [M, N, D]
  log_n = -0.5 * jnp.sum(u * u, -1) - jnp.sum(log_stds, -1)[None]
  dim = means.shape[1]
  return (jax.nn.logsumexp(log_n, axis=1) - jnp.log(means.shape[0])
          - 0.5 * dim * jnp.log(2 * jnp.pi))


def scott_bandwidth(codes, rel_floor=1e-6):
  """``[D]`` kernel widths of an AE's point codes: Scott's rule σ_d · N^(-1/(D+4)).

  Scott (1992), "Multivariate density estimation", eq. 6.42, for a product
  Gaussian kernel. A dead dimension gets ``rel_floor`` of the largest width,
  so that any sample away from the codes' constant value is a hole there.
  """
  codes = np.asarray(codes, np.float64)
  n, dim = codes.shape
  h = codes.std(axis=0) * n ** (-1.0 / (dim + 4))
  return np.maximum(h, rel_floor * max(float(h.max()), 1e-30))


def aggregate_posterior(codes, logvars, key, num_reference):
  """``(AggregatePosterior, reference [R, D])`` from training codes, for :func:`hole_metrics`.

  The last ``num_reference`` rows are held out: the reference is a draw
  z ~ q(z|x) of each held-out image (a VAE: mean + std · ε), or its point code
  (an AE: ``logvars`` None). The rest build q: a VAE's Gaussian posteriors;
  for an AE, a Gaussian kernel of Scott's width (:func:`scott_bandwidth`) on
  each code. Held out, so a reference point is never scored by its own term.
  """
  codes = np.asarray(codes, np.float64)
  n_ref = min(num_reference, codes.shape[0] // 2)
  fit, ref = codes[:-n_ref], codes[-n_ref:]
  if logvars is None:
    stds = np.broadcast_to(scott_bandwidth(fit), fit.shape)
    return AggregatePosterior(fit, stds), ref
  std = np.exp(0.5 * np.asarray(logvars, np.float64))
  eps = np.asarray(jax.random.normal(key, ref.shape), np.float64)
  return AggregatePosterior(fit, std[:-n_ref]), ref + std[-n_ref:] * eps


def hole_metrics(sampled_codes, posterior, reference, *, quantile=0.99):
  """Share of a sampler's codes that land where the aggregate posterior is thin.

  τ = the (1 − ``quantile``) quantile of log q(z) over ``reference`` codes drawn
  from q itself (held out, :func:`aggregate_posterior`): only 1 % of the
  aggregate posterior's own mass lies below that density. ``hole_share`` =
  share of ``sampled_codes`` with log q(z) < τ: ≈ 1 − ``quantile`` when the
  sampler draws from q (at any latent size: inactive units, where every
  posterior is the prior, are not holes), → 1 when its mass lies where no
  training image's posterior is.

  Args:
    sampled_codes: ``[M, D]`` codes of a sampler (raw latent units).
    posterior: the :class:`AggregatePosterior` of the training images.
    reference: ``[R, D]`` held-out draws from it.
  """
  threshold = hole_threshold(posterior, reference, quantile)
  return {'hole_share': float(np.mean(posterior.log_density(sampled_codes) < threshold))}


def hole_threshold(posterior, reference, quantile=0.99):
  """τ of :func:`hole_metrics`: log q(z) below which a code is in a hole."""
  return float(np.quantile(posterior.log_density(reference), 1.0 - quantile))


def completeness_metrics(decode_fn, sampled_codes, posterior, reference, *,
                         classifier_fn=None, proportions=None, confidence=0.9,
                         hole_quantile=0.99, batch_size=None):
  """Do a sampler's codes decode to sensible outputs, spread like the data?

  Always the :func:`hole_metrics` of ``sampled_codes`` against the aggregate
  posterior. With ``classifier_fn`` (an independent classifier trained on
  real images) the decoded codes get :func:`classifier_scores` with the data's
  class ``proportions``: ``balanced_confident_share`` (the headline),
  ``confident_share``, ``class_distance``, ``mean_max_prob``, ``class_entropy``.
  """
  out = hole_metrics(sampled_codes, posterior, reference, quantile=hole_quantile)
  if classifier_fn is not None:
    images = decode_codes(decode_fn, sampled_codes, batch_size)
    out.update(classifier_scores(classifier_fn, images.astype(np.float32), confidence,
                                 proportions))
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


def latent_metrics(encode_fn, decode_fn, train_images, train_labels, test_images,
                   test_labels, key, *, classifier_fn=None, features_fn=None,
                   samplers=samplers_lib.SAMPLERS, num_train=10000, num_test=5000,
                   num_samples=5000, num_paths=100, path_steps=64, num_perturb=500,
                   perturb_scale=0.05, knn_k=10, confidence=0.9, hole_quantile=0.99,
                   num_reference=2000, pr_k=3, batch_size=None):
  """Continuity, completeness, sample quality and class separation of any model.

  The model is two plain functions on NumPy arrays, so one from any framework
  can be scored under the protocol of :func:`latent_space_metrics`:

  Args:
    encode_fn: ``images [N, H, W, C] -> codes [N, D]`` (or ``(codes, logvars)``:
      the codes are then the posterior means).
    decode_fn: ``codes [N, D] -> images [N, H, W, C]`` in [0, 1].
    batch_size: call ``encode_fn`` / ``decode_fn`` on at most this many inputs
      at a time (None: a whole set at once).
    The rest: as :func:`latent_space_metrics`.

  Returns:
    the flat dict of :func:`latent_space_metrics`.
  """
  keys = jax.random.split(key, 8)
  tr = _subset(keys[0], len(train_images), num_train)
  te = _subset(keys[1], len(test_images), num_test)
  train_codes, train_logvars = encode_codes(encode_fn, np.asarray(train_images)[tr],
                                            batch_size)
  test_codes, _ = encode_codes(encode_fn, np.asarray(test_images)[te], batch_size)
  normalizer = fit_normalizer(train_codes)
  test_labels = np.asarray(test_labels)
  num_classes = int(max(np.max(train_labels), np.max(test_labels))) + 1
  proportions = class_proportions(test_labels, num_classes)

  out = continuity_metrics(decode_fn, test_codes, keys[2], labels=test_labels[te],
                           normalizer=normalizer, num_paths=num_paths, path_steps=path_steps,
                           num_perturb=num_perturb, perturb_scale=perturb_scale,
                           classifier_fn=classifier_fn, confidence=confidence,
                           batch_size=batch_size)
  posterior, reference = aggregate_posterior(train_codes, train_logvars, keys[5],
                                             num_reference)
  if features_fn is not None:
    real = np.asarray(test_images)[_subset(keys[3], len(test_images), num_samples)]
    real_features = features_fn(real)
  for i, name in enumerate(samplers):
    fit_key, draw_key = jax.random.split(jax.random.fold_in(keys[4], i))
    codes = samplers_lib.make_sampler(name, train_codes, fit_key)(draw_key, num_samples)
    row = completeness_metrics(decode_fn, codes, posterior, reference,
                               classifier_fn=classifier_fn, proportions=proportions,
                               confidence=confidence, hole_quantile=hole_quantile,
                               batch_size=batch_size)
    if features_fn is not None:
      fake = decode_codes(decode_fn, codes, batch_size).astype(np.float32)
      row.update(sample_quality.sample_quality(real_features, features_fn(fake), k=pr_k))
    out.update({f'{name}/{k}': v for k, v in row.items()})
  out['knn_accuracy'] = knn_accuracy(train_codes, np.asarray(train_labels)[tr], test_codes,
                                     test_labels[te], k=knn_k,
                                     normalizer=normalizer)
  # The same k-NN rule on the images' top principal components, as many as the
  # code has dimensions (same images; the PCA codes whitened by their own fit).
  pca_train, pca_test = article_metrics.pca_projection(
      np.asarray(train_images)[tr], np.asarray(test_images)[te], train_codes.shape[1])
  out['knn_accuracy_gain_over_pca'] = out['knn_accuracy'] - knn_accuracy(
      pca_train, np.asarray(train_labels)[tr], pca_test, test_labels[te], k=knn_k)
  # Walks from a 0 to a 1 (a digit 0 and 1 on MNIST; the first two classes
  # elsewhere): where does each first meet a hole of the aggregate posterior?
  walk = article_metrics.walk_hole_facts(posterior.log_density,
                                         hole_threshold(posterior, reference, hole_quantile),
                                         test_codes,
                                         test_labels[te], keys[6], steps=path_steps)
  out.update({f'walk01/{k}': v for k, v in walk.items()})
  if classifier_fn is not None:
    out['local/class_consistency'] = article_metrics.local_class_consistency(
        lambda z: decode_codes(decode_fn, z, batch_size), classifier_fn, test_codes,
        normalizer.unwhiten, keys[7])
  centered = train_codes - train_codes.mean(axis=0)
  out['code_scale'] = float(np.sqrt(np.mean(np.sum(centered ** 2, axis=1))
                                    / train_codes.shape[1]))
  return out


def latent_space_metrics(model, params, train_images, train_labels, test_images,
                         test_labels, key, *, classifier_fn=None, features_fn=None,
                         samplers=samplers_lib.SAMPLERS, num_train=10000, num_test=5000,
                         num_samples=5000, num_paths=100, path_steps=64, num_perturb=500,
                         perturb_scale=0.05, knn_k=10, confidence=0.9, hole_quantile=0.99,
                         num_reference=2000, pr_k=3, batch_size=1000):
  """Continuity, completeness, sample quality and class separation, as flat floats.

  One protocol for an AE and a VAE alike (module docstring): codes are the
  encoder's outputs (a VAE's means), the training codes are the reference and
  define the normalised units, and every sampler in ``samplers`` is scored
  the same way. A thin wrapper of :func:`latent_metrics` over the model's
  jitted, batched encoder and decoder.

  Args:
    model, params: a trained :class:`models.VAE` or :class:`models.Autoencoder`.
    train_images, train_labels, test_images, test_labels: data the model was
      trained/evaluated on; ``num_train`` / ``num_test`` random ones are used.
    key: PRNG key; the result is a deterministic function of it (models scored
      with the same key see the same images, pairs and noise).
    classifier_fn: ``images -> logits`` of an independent classifier
      (classifier.make_logits_fn), or None to skip the classifier scores.
    features_fn: ``images -> features`` (classifier.make_features_fn), or None
      to skip the Fréchet distance and precision / recall.
    batch_size: images or codes per jitted encoder / decoder call.

  Returns:
    flat dict: :func:`continuity_metrics` keys; for each sampler
    ``<sampler>/<key>`` with the :func:`completeness_metrics` keys (class
    proportions: the test labels') and, with ``features_fn``, the
    :func:`sample_quality.sample_quality` keys against ``num_samples`` real
    test images; ``knn_accuracy``; ``knn_accuracy_gain_over_pca``;
    ``walk01/walks_with_hole``, ``walk01/hole_past_halfway_share`` and
    ``walk01/first_hole_position`` (walks from class 0 to class 1); with
    ``classifier_fn``, ``local/class_consistency``
    (vae_jax/analysis/article_metrics.py); ``code_scale`` (RMS spread of the
    training codes, raw units).
  """
  return latent_metrics(
      lambda x: latent.encode(model, params, x, batch_size),
      lambda z: latent.decode(model, params, z, batch_size),
      train_images, train_labels, test_images, test_labels, key,
      classifier_fn=classifier_fn, features_fn=features_fn, samplers=samplers,
      num_train=num_train, num_test=num_test, num_samples=num_samples,
      num_paths=num_paths, path_steps=path_steps, num_perturb=num_perturb,
      perturb_scale=perturb_scale, knn_k=knn_k, confidence=confidence,
      hole_quantile=hole_quantile, num_reference=num_reference, pr_k=pr_k)
