"""Where generated codes come from: the same three samplers for every model.

A fair comparison of an autoencoder with a VAE samples both the same ways:

* ``'prior'``: N(0, I) in raw latent units, the article's literal experiment
  ("sample a point and decode it"). It is the VAE's own prior; for a classic
  AE it is whatever N(0, I) happens to hit.
* ``'gaussian'``: the Gaussian N(mean, cov) fitted to the training codes.
* ``'gmm'``: a 10-component, full-covariance Gaussian mixture fitted to the
  training codes by EM: the ex-post density of Ghosh et al. 2020 ("From
  variational to deterministic autoencoders").

"Codes" are what the encoder outputs for an image: an AE's code, a VAE's
posterior mean. Each fitted sampler is a deterministic function of the codes
and a PRNG key. All arithmetic is float64 NumPy (a few thousand points of
dimension ≤ 64: EM costs milliseconds).
"""

from typing import Callable, NamedTuple

import jax
import numpy as np

SAMPLERS = ('prior', 'gaussian', 'gmm')
GMM_COMPONENTS = 10


class GaussianMixture(NamedTuple):
  weights: np.ndarray   # [K], sums to 1
  means: np.ndarray     # [K, D]
  chols: np.ndarray     # [K, D, D], lower Cholesky factors of the covariances

  def sample(self, key, num):
    """``num`` codes ``[num, D]`` (float64)."""
    comp_key, eps_key = jax.random.split(key)
    comp = np.asarray(jax.random.choice(comp_key, len(self.weights), (num,),
                                        p=np.asarray(self.weights)))
    eps = np.asarray(jax.random.normal(eps_key, (num, self.means.shape[1])), np.float64)
    return self.means[comp] + np.einsum('nij,nj->ni', self.chols[comp], eps)

  def log_density(self, x):
    """log p(x) ``[N]`` under the mixture."""
    return _logsumexp(_component_log_probs(self, np.asarray(x, np.float64)), axis=1)


def _logsumexp(a, axis):
  m = np.max(a, axis=axis, keepdims=True)
  return np.squeeze(m, axis) + np.log(np.sum(np.exp(a - m), axis=axis))


def _component_log_probs(gmm, x):
  """``[N, K]``: log w_k + log N(x | mean_k, cov_k)."""
  n, d = x.shape
  out = np.empty((n, len(gmm.weights)))
  for k, (w, mean, chol) in enumerate(zip(gmm.weights, gmm.means, gmm.chols)):
    # Solve L y = (x - mean)ᵀ: |y|² is the Mahalanobis distance.
    y = np.linalg.solve(chol, (x - mean).T)
    log_det = 2.0 * np.sum(np.log(np.diag(chol)))
    out[:, k] = (np.log(max(w, 1e-300)) - 0.5 * np.sum(y * y, axis=0)
                 - 0.5 * (log_det + d * np.log(2 * np.pi)))
  return out


def _kmeans_pp(x, k, key):
  """k-means++ seeding: indices of ``k`` rows of ``x`` spread over the data."""
  n = x.shape[0]
  keys = jax.random.split(key, k)
  chosen = [int(jax.random.randint(keys[0], (), 0, n))]
  d2 = np.sum((x - x[chosen[0]]) ** 2, axis=1)
  for i in range(1, k):
    p = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1.0 / n)
    idx = int(jax.random.choice(keys[i], n, p=p))
    chosen.append(idx)
    d2 = np.minimum(d2, np.sum((x - x[idx]) ** 2, axis=1))
  return np.asarray(chosen)


def fit_gmm(x, key, num_components=GMM_COMPONENTS, *, iterations=200, tol=1e-7,
            rel_reg=1e-6):
  """Maximum-likelihood Gaussian mixture of ``x [N, D]`` by EM.

  Seeded by k-means++ (from ``key``), covariances raised by ``rel_reg`` times
  the mean data variance so none becomes singular. Stops when the mean
  log-likelihood gains less than ``tol`` nats per point.
  """
  x = np.asarray(x, np.float64)
  n, d = x.shape
  k = min(num_components, n)
  reg = rel_reg * max(float(np.mean(np.var(x, axis=0))), 1e-30) * np.eye(d)
  data_cov = np.atleast_2d(np.cov(x, rowvar=False)) + reg
  chol0 = np.linalg.cholesky(data_cov)
  gmm = GaussianMixture(np.full(k, 1.0 / k), x[_kmeans_pp(x, k, key)].copy(),
                        np.repeat(chol0[None], k, axis=0))
  previous = -np.inf
  for _ in range(iterations):
    log_p = _component_log_probs(gmm, x)                  # E step
    log_norm = _logsumexp(log_p, axis=1)
    resp = np.exp(log_p - log_norm[:, None])               # [N, K]
    mean_ll = float(np.mean(log_norm))
    if mean_ll - previous < tol:
      break
    previous = mean_ll
    counts = resp.sum(axis=0) + 1e-12                      # M step
    means = (resp.T @ x) / counts[:, None]
    chols = np.empty((k, d, d))
    for j in range(k):
      c = x - means[j]
      cov = (resp[:, j, None] * c).T @ c / counts[j] + reg
      chols[j] = np.linalg.cholesky(cov)
    gmm = GaussianMixture(counts / counts.sum(), means, chols)
  return gmm


Sampler = Callable[[jax.Array, int], np.ndarray]


def make_sampler(name, codes, key) -> Sampler:
  """``sample(key, num) -> codes [num, D]`` for sampler ``name`` fitted to ``codes``."""
  codes = np.asarray(codes, np.float64)
  dim = codes.shape[1]
  if name == 'prior':
    return lambda k, num: np.asarray(jax.random.normal(k, (num, dim)), np.float64)
  if name == 'gaussian':
    gmm = GaussianMixture(np.ones(1), codes.mean(axis=0, keepdims=True),
                          np.linalg.cholesky(np.atleast_2d(np.cov(codes, rowvar=False))
                                             + 1e-12 * np.eye(dim))[None])
    return gmm.sample
  if name == 'gmm':
    return fit_gmm(codes, key).sample
  raise ValueError(f'unknown sampler {name!r}: use one of {SAMPLERS}')
