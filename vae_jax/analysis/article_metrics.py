"""Metrics for the article's remaining claims: class geometry, the walk's hole, locality.

Each function measures one sentence of the article (vae_jax/study/claims.py
names the sentence beside the claim that uses it) on plain arrays, so that
tests/test_article_metrics.py can check it on cases whose answer is known.
docs/metrics.md defines each one, what it cannot see and its reference value.

* :func:`pca_projection` -> ``knn_accuracy_gain_over_pca``: "useful for
  dimensionality reduction ... where PCA doesn't work";
* :func:`walk_hole_facts` -> ``walk01/hole_past_halfway_share``: "a hole just
  beyond the halfway mark" of a walk from a 0 to a 1;
* :func:`cluster_overlap`: reconstruction-only codes "may be disjoint";
* :func:`centroid_distance_ratio`: "zeroes and ones on opposite sides ... 6
  and 8 close together";
* :func:`posterior_std_median`: KL pushes "σ ≈ 1";
* :func:`local_class_consistency`: sampling makes the space "locally
  continuous and complete".
"""

import jax
import numpy as np

# Noise around a code for local_class_consistency, in units of the training
# codes' spread (whitened units): a fixed, local scale, the same for an AE and
# a VAE; not tied to either model's own posterior width.
LOCAL_SCALE = 0.1
LOCAL_CODES = 1000   # codes whose neighbourhoods are sampled
LOCAL_DRAWS = 5      # draws around each


def pca_projection(train_images, test_images, dims):
  """``(train [N, dims], test [M, dims])``: both projected on the top ``dims``
  principal axes of ``train_images`` (flattened, centred on their mean)."""
  train = np.asarray(train_images, np.float64).reshape(len(train_images), -1)
  test = np.asarray(test_images, np.float64).reshape(len(test_images), -1)
  mean = train.mean(axis=0)
  # eigh of the pixel covariance: [P, P] with P pixels, cheaper than an SVD of [N, P].
  values, vectors = np.linalg.eigh(np.cov(train - mean, rowvar=False))
  axes = vectors[:, np.argsort(values)[::-1][:dims]]
  return (train - mean) @ axes, (test - mean) @ axes


def first_hole_positions(log_density_fn, threshold, z0, z1, steps=64):
  """``[W]`` where each straight walk ``z0 -> z1`` first enters a hole, as a fraction.

  The walk is cut into ``steps`` equal steps; its interior points
  t = 1/steps … (steps−1)/steps are scored (the endpoints are data codes).
  A hole is a point with ``log_density_fn(z) < threshold`` (the rule of
  metrics.hole_metrics). A walk that meets no hole scores NaN: it has no
  first hole, and counting it at the walk's end would read as a hole "past
  halfway" that is not there.

  Args:
    log_density_fn: ``z [M, D] -> log q(z) [M]``.
    threshold: log density below which a point is a hole.
    z0, z1: ``[W, D]`` start and end codes of the walks.
  """
  z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
  t = np.arange(1, steps) / steps
  points = z0[:, None, :] + t[None, :, None] * (z1 - z0)[:, None, :]     # [W, T, D]
  hole = (np.asarray(log_density_fn(points.reshape(-1, z0.shape[1])))
          .reshape(len(z0), len(t)) < threshold)
  return np.where(hole.any(axis=1), t[hole.argmax(axis=1)], np.nan)


def walk_hole_facts(log_density_fn, threshold, codes, labels, key, *, start=0, end=1,
                    num_walks=100, steps=64):
  """Holes on ``num_walks`` walks from a random code of class ``start`` to one of ``end``.

  ``walks_with_hole``: share of walks that meet a hole; ``hole_past_halfway_share``:
  share whose first hole lies past the halfway mark (a walk with no hole counts
  as not); ``first_hole_position``: mean position of the first hole over the
  walks that meet one (absent when none does). Empty when either class is absent.
  """
  labels = np.asarray(labels)
  a, b = np.flatnonzero(labels == start), np.flatnonzero(labels == end)
  if not (a.size and b.size):
    return {}
  ka, kb = jax.random.split(key)
  ia = a[np.asarray(jax.random.randint(ka, (num_walks,), 0, a.size))]
  ib = b[np.asarray(jax.random.randint(kb, (num_walks,), 0, b.size))]
  pos = first_hole_positions(log_density_fn, threshold, codes[ia], codes[ib], steps)
  met = ~np.isnan(pos)
  facts = {'walks_with_hole': float(np.mean(met)),
           'hole_past_halfway_share': float(np.mean(met & (np.nan_to_num(pos) > 0.5)))}
  if met.any():   # no position to average when no walk meets a hole (never a NaN in JSON)
    facts['first_hole_position'] = float(np.mean(pos[met]))
  return facts


def _gaussian_fit(x, rel_ridge=1e-9):
  """``(mean, covariance)``; the tiny ridge keeps a class with a dead dimension
  invertible while moving BC by about ``rel_ridge`` × the covariance's condition."""
  x = np.asarray(x, np.float64)
  cov = np.atleast_2d(np.cov(x, rowvar=False))
  ridge = rel_ridge * max(float(np.trace(cov)) / cov.shape[0], 1e-30)
  return x.mean(axis=0), cov + ridge * np.eye(cov.shape[0])


def bhattacharyya_coefficient(mean_a, cov_a, mean_b, cov_b):
  """BC = exp(−D_B) of two Gaussians: 1 when equal, → 0 when disjoint.

  D_B = ⅛ Δᵀ Σ⁻¹ Δ + ½ ln(det Σ / √(det Σ_a det Σ_b)), Σ = (Σ_a + Σ_b)/2
  (Bhattacharyya 1943; Fukunaga 1990, eq. 3.152). Invariant to any invertible
  affine map of the codes, so a model's overall code scale does not matter.
  """
  cov = 0.5 * (cov_a + cov_b)
  delta = np.asarray(mean_a, np.float64) - np.asarray(mean_b, np.float64)
  _, logdet = np.linalg.slogdet(cov)
  _, logdet_a = np.linalg.slogdet(cov_a)
  _, logdet_b = np.linalg.slogdet(cov_b)
  distance = (0.125 * delta @ np.linalg.solve(cov, delta)
              + 0.5 * (logdet - 0.5 * (logdet_a + logdet_b)))
  return float(np.exp(-distance))


def cluster_overlap(codes, labels):
  """Mean Bhattacharyya coefficient over every pair of class clusters.

  Each class's codes are summarised by a Gaussian (mean, covariance); the
  score is the mean over the C(C−1)/2 class pairs of their
  :func:`bhattacharyya_coefficient`: near 0 when every class sits in its own
  region, 1 when all classes share one cloud.
  """
  codes, labels = np.asarray(codes, np.float64), np.asarray(labels)
  fits = [_gaussian_fit(codes[labels == c]) for c in np.unique(labels)]
  pairs = [bhattacharyya_coefficient(*fits[i], *fits[j])
           for i in range(len(fits)) for j in range(i + 1, len(fits))]
  return float(np.mean(pairs))


def centroid_distance_ratio(codes, labels, far=(0, 1), near=(6, 8)):
  """||centre(far[0]) − centre(far[1])|| / ||centre(near[0]) − centre(near[1])||
  of the class means of ``codes`` (raw units; > 1 when the ``far`` pair lies
  farther apart than the ``near`` pair). NaN when a class is absent."""
  codes, labels = np.asarray(codes, np.float64), np.asarray(labels)
  if any(not np.any(labels == c) for c in far + near):
    return float('nan')
  centre = {c: codes[labels == c].mean(axis=0) for c in far + near}
  return float(np.linalg.norm(centre[far[0]] - centre[far[1]])
               / max(np.linalg.norm(centre[near[0]] - centre[near[1]]), 1e-30))


def posterior_std_median(logvars):
  """Median of σ = exp(logvar / 2) over codes and dimensions (raw latent units)."""
  return float(np.median(np.exp(0.5 * np.asarray(logvars, np.float64))))


def local_class_consistency(decode_fn, classifier_fn, codes, unwhiten, key, *,
                            scale=LOCAL_SCALE, num_codes=LOCAL_CODES, draws=LOCAL_DRAWS):
  """Share of decodes near a code that the classifier puts in the code's own class.

  For ``num_codes`` random ``codes``: c = the classifier's class of decode(z);
  ``draws`` points z + δ with δ = ``scale`` · ε @ ``unwhiten`` (ε ~ N(0, I):
  ``scale`` in whitened units, one spread of the training codes = 1); the
  share of those decodes whose class is c. 1 when every neighbourhood at that
  scale decodes to one class; 1/C for a decoder whose class changes at random
  from point to point. Measured against the decode of z itself, not the
  input's label, so a poor reconstruction is not counted as a local change.

  Args:
    decode_fn: ``z [N, D] -> images [N, ...]`` (batched by the caller).
    classifier_fn: ``images -> logits [N, C]``.
    codes: ``[N, D]`` codes to pick centres from (raw units).
    unwhiten: ``[D, D]`` map from whitened to raw units (metrics.Normalizer).
  """
  codes = np.asarray(codes, np.float64)
  n, dim = codes.shape
  pick_key, noise_key = jax.random.split(key)
  base = codes[np.asarray(jax.random.randint(pick_key, (num_codes,), 0, n))]
  eps = np.asarray(jax.random.normal(noise_key, (num_codes, draws, dim)), np.float64)
  around = base[:, None, :] + scale * eps @ np.asarray(unwhiten, np.float64)
  z = np.concatenate([base, around.reshape(-1, dim)])
  images = np.asarray(decode_fn(z), np.float32)
  pred = np.asarray(classifier_fn(images)).argmax(axis=-1)
  centre, near = pred[:num_codes], pred[num_codes:].reshape(num_codes, draws)
  return float(np.mean(near == centre[:, None]))
