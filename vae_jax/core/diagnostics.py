"""Latent diagnostics: active units, KL per latent dimension, a posterior-collapse check.

* **Active units** (Burda et al. 2015, §5.2): dimension u is active when
  A_u = Cov_x(E_{q(z|x)}[z_u]) > 0.01, i.e. when its posterior mean moves with
  the input. A collapsed dimension has q(z_u|x) ≈ p(z_u) for every x, so its
  mean is constant and A_u ≈ 0.
* **KL per dimension**: E_x KL(q(z_u|x) || N(0, 1)) in nats
  (losses.gaussian_kl_per_dim); their sum is the KL term of the ELBO. A
  dimension carries information only if its KL is clearly above 0.
* **Collapse check** (:func:`collapse_warning`): a one-line warning when no
  unit is active or the mean total KL is below 0.01 nats, i.e. the decoder
  ignores z and the model is just a pixel-wise density.

For an autoencoder (no log-variance) only the activity of the codes is
reported.

``latent_diagnostics(model, params, images)`` returns a flat dict of floats,
ready for ``metrics.jsonl``::

  diag = diagnostics.latent_diagnostics(exp.model, state.params, exp.test_images)
  log.write(step, epoch, 'latent', diag)
  warning = diagnostics.collapse_warning(diag)
"""

import numpy as np

from vae_jax.core import latent, losses

ACTIVITY_THRESHOLD = 0.01   # Burda et al.'s threshold on Cov_x(E_q[z_u])
COLLAPSE_KL_NATS = 0.01     # mean total KL below this: the code carries nothing


def activity(means):
  """A_u = Var_x(E_q[z_u]) per dimension, ``[N, D] -> [D]`` (float64)."""
  means = np.asarray(means, np.float64)
  return np.var(means, axis=0)


def kl_per_dim(mean, logvar):
  """E_x KL(q(z_u|x) || N(0, 1)) per dimension, ``[N, D] -> [D]`` nats (float64)."""
  return np.mean(np.asarray(losses.gaussian_kl_per_dim(mean, logvar), np.float64), axis=0)


def summarize(mean, logvar=None, *, threshold=ACTIVITY_THRESHOLD, per_dim=True):
  """The diagnostics dict from encoder outputs ``mean, logvar [N, D]`` (logvar None: AE).

  Keys: ``active_units`` (count), ``active_fraction``, ``latent_dim``,
  ``activity_min`` / ``activity_max``; with a log-variance also ``kl``
  (mean total KL, nats), ``kl_min_dim`` / ``kl_max_dim`` and ``posterior_std_mean``
  (mean of exp(logvar/2)); with ``per_dim`` also ``activity_dim_<u>`` and
  ``kl_dim_<u>`` for every dimension u.
  """
  act = activity(mean)
  dim = act.shape[0]
  active = int(np.sum(act > threshold))
  out = {'latent_dim': float(dim), 'active_units': float(active),
         'active_fraction': active / dim,
         'activity_min': float(act.min()), 'activity_max': float(act.max())}
  width = len(str(dim - 1))
  if per_dim:
    out.update({f'activity_dim_{u:0{width}d}': float(a) for u, a in enumerate(act)})
  if logvar is not None:
    kl = kl_per_dim(mean, logvar)
    out.update(kl=float(kl.sum()), kl_min_dim=float(kl.min()), kl_max_dim=float(kl.max()),
               posterior_std_mean=float(np.mean(np.exp(0.5 * np.asarray(logvar, np.float64)))))
    if per_dim:
      out.update({f'kl_dim_{u:0{width}d}': float(k) for u, k in enumerate(kl)})
  return out


def latent_diagnostics(model, params, images, *, batch_size=1000,
                       threshold=ACTIVITY_THRESHOLD, per_dim=True):
  """Encodes ``images`` (jitted, in batches) and returns :func:`summarize`'s dict of floats."""
  mean, logvar = latent.encode(model, params, images, batch_size)
  return summarize(mean, logvar, threshold=threshold, per_dim=per_dim)


def collapse_warning(diag, *, min_kl=COLLAPSE_KL_NATS):
  """A one-line warning when the latent code looks collapsed, else None.

  ``diag`` is a :func:`summarize` / :func:`latent_diagnostics` dict.
  """
  problems = []
  if diag['active_units'] == 0:
    problems.append(f'no active unit (Var_x E_q[z] ≤ {ACTIVITY_THRESHOLD} in every '
                    'dimension)')
  if 'kl' in diag and diag['kl'] < min_kl:
    problems.append(f'mean KL {diag["kl"]:.4f} nats < {min_kl}')
  if not problems:
    return None
  return ('latent collapse: ' + ' and '.join(problems) + ': the decoder ignores z. '
          'Try KL warm-up (kl_warmup_steps), kl_schedule=cyclical, free_bits, a smaller '
          'kl_weight or a weaker decoder')
