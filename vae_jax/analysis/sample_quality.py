"""How good are generated samples: Fréchet distance, density and coverage, precision and recall.

Both compare two sets of *features* (``[N, F]`` arrays): here the
penultimate-layer activations of the project's independent classifier
(``classifier.make_features_fn``), computed on decoded samples and on real
test images. The classifier is trained on real images only, so the feature
space is the same for every model being scored.

* :func:`frechet_distance`: ‖μ_a − μ_b‖² + tr Σ_a + tr Σ_b − 2 tr (Σ_a^½ Σ_b Σ_a^½)^½,
  the Fréchet (2-Wasserstein) distance between Gaussians fitted to the two sets
  (Heusel et al. 2017's FID, in our classifier's feature space). 0 for equal
  sets; grows with any difference of mean or covariance. It depends on the
  sample size (biased upwards for small sets): compare numbers computed with
  the same sizes only.
* :func:`precision_recall`: Kynkäänniemi et al. 2019. Each real feature gets a
  ball whose radius is the distance to its k-th nearest other real feature;
  **precision** is the share of generated features inside at least one real
  ball (are samples realistic?), **recall** the share of real features inside
  at least one generated ball (is the data's variety covered?). Recall builds
  its balls on the *generated* side: samples of a 2-D generator lie on a 2-D
  sheet, their balls are tiny and recall is ≈ 0 even for a correct generator
  (tests/test_sample_quality.py shows it).
* :func:`density_coverage`: Naeem et al. 2020, "Reliable fidelity and
  diversity metrics for generative models". Balls on the *real* side only
  (radius: the distance to the k-th nearest other real feature, k = 5):
  **density** = mean number of real balls containing a sample / k (≈ 1 when
  the sets come from one distribution, > 1 when samples crowd dense regions),
  **coverage** = share of real balls containing at least one sample (≈ 1 − 2⁻ᵏ
  ≈ 0.97 for one distribution with as many samples as real points; → 0 when
  samples miss the data). Both work whatever the dimension the samples span.

The features are the 512-d penultimate layer of the project's MLP classifier,
not Inception: the Fréchet distance here is *not* FID and its numbers are
comparable only with each other (same features, same set sizes).
"""

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.infra import chunks
from vae_jax.analysis.neighbors import nearest_neighbors


def _sqrtm_psd(a):
  """Square root of a symmetric positive semi-definite matrix (eigen-decomposition)."""
  w, v = np.linalg.eigh(a)
  return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(features_a, features_b):
  """Fréchet distance between Gaussians fitted to ``features_a [N, F]`` and ``features_b [M, F]``.

  Float64 throughout; the trace of the matrix square root is taken from the
  eigenvalues of the symmetric Σ_a^½ Σ_b Σ_a^½, so no complex parts arise.
  """
  a = np.asarray(features_a, np.float64)
  b = np.asarray(features_b, np.float64)
  mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
  cov_a = np.atleast_2d(np.cov(a, rowvar=False))
  cov_b = np.atleast_2d(np.cov(b, rowvar=False))
  root_a = _sqrtm_psd(cov_a)
  cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
  trace_root = float(np.sum(np.sqrt(np.clip(cross, 0.0, None))))
  value = float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b)
                - 2.0 * trace_root)
  return max(value, 0.0)


@jax.jit
def _inside_any_ball(queries, centres, radii2):
  d2 = (jnp.sum(queries ** 2, -1)[:, None] - 2.0 * queries @ centres.T
        + jnp.sum(centres ** 2, -1)[None, :])
  return jnp.any(d2 <= radii2[None, :], axis=1)


@jax.jit
def _balls_containing(queries, centres, radii2):
  d2 = (jnp.sum(queries ** 2, -1)[:, None] - 2.0 * queries @ centres.T
        + jnp.sum(centres ** 2, -1)[None, :])
  return jnp.sum(d2 <= radii2[None, :], axis=1)


def _share_inside(queries, centres, radii, chunk=1000):
  """Share of ``queries`` within distance ``radii[j]`` of some ``centres[j]``."""
  centres = jnp.asarray(centres, jnp.float32)
  radii2 = jnp.asarray(np.asarray(radii, np.float64) ** 2, jnp.float32)
  queries = np.asarray(queries, np.float32)
  inside = chunks.map_chunks(lambda q: _inside_any_ball(jnp.asarray(q), centres, radii2),
                             queries, chunk, pad_last=True)
  return int(np.sum(inside)) / queries.shape[0]


def _kth_neighbour_radius(features, k):
  """Distance of each row of ``features`` to its k-th nearest *other* row."""
  dists, _ = nearest_neighbors(features, features, k=k + 1)
  return dists[:, k]  # column 0 is the point itself


def precision_recall(real_features, fake_features, k=3):
  """``{'precision', 'recall'}`` of ``fake_features`` against ``real_features`` (k-NN balls)."""
  real = np.asarray(real_features, np.float32)
  fake = np.asarray(fake_features, np.float32)
  precision = _share_inside(fake, real, _kth_neighbour_radius(real, k))
  recall = _share_inside(real, fake, _kth_neighbour_radius(fake, k))
  return {'precision': float(precision), 'recall': float(recall)}


DENSITY_COVERAGE_K = 5   # Naeem et al. 2020's choice (their section 4)


def density_coverage(real_features, fake_features, k=DENSITY_COVERAGE_K):
  """``{'density', 'coverage'}`` of ``fake_features [M, F]`` against ``real_features [N, F]``.

  Real balls B_i (centre real_i, radius: distance to its k-th nearest other
  real feature). density = (1 / kM) Σ_j #{i: fake_j ∈ B_i};
  coverage = (1 / N) #{i: some fake_j ∈ B_i}.
  """
  real = np.asarray(real_features, np.float32)
  fake = np.asarray(fake_features, np.float32)
  radii2 = jnp.asarray(_kth_neighbour_radius(real, k).astype(np.float64) ** 2, jnp.float32)
  counts = chunks.map_chunks(
      lambda q: _balls_containing(jnp.asarray(q), jnp.asarray(real), radii2), fake,
      1000, pad_last=True)
  # Coverage: is the nearest sample of each real point inside that point's ball?
  nearest, _ = nearest_neighbors(real, fake, k=1)
  return {'density': float(np.sum(counts)) / (k * fake.shape[0]),
          'coverage': float(np.mean(nearest[:, 0] ** 2 <= np.asarray(radii2)))}


def sample_quality(real_features, fake_features, k=3):
  """Fréchet distance, precision / recall (k-NN balls) and density / coverage."""
  return {'frechet_distance': frechet_distance(real_features, fake_features),
          **precision_recall(real_features, fake_features, k),
          **density_coverage(real_features, fake_features)}

