"""Every metric's name, direction, label, unit and decimals, declared once.

Every table, report, figure and claim reads a metric's label and its "better"
direction from here (issue 25: they were declared in four files). A new
metric is its function plus one :data:`METRICS` entry; tests/test_metric_registry.py
fails when a key used by the study, the sweep or the latent report has none.

Keys are those of :func:`vae_jax.analysis.metrics.latent_metrics` (and the
study's per-seed facts). A sampler-scored key ``<sampler>/<metric>`` (e.g.
``prior/hole_share``) resolves to the entry of ``<metric>``, its label
prefixed with the sampler's short name. docs/metrics.md defines each metric.
"""

from typing import NamedTuple, Optional

GREATER, LESS = 'greater', 'less'   # the words of study claims' directions
ARROWS = {GREATER: '↑', LESS: '↓', None: ''}


class Metric(NamedTuple):
  key: str
  direction: Optional[str]   # GREATER or LESS is better; None: a fact, not a score
  label: str                 # short, for table headers and axes
  unit: str = ''             # '' for shares and ratios
  decimals: int = 3


_ENTRIES = [
    # Likelihood and codes.
    Metric('recon', LESS, 'test recon', 'nats', 1),
    Metric('kl', None, 'test KL', 'nats', 1),
    Metric('elbo', GREATER, 'test ELBO', 'nats', 1),
    Metric('recon_per_pixel', LESS, 'test recon / pixel', 'nats', 4),
    Metric('active_units', None, 'active units', '', 1),
    Metric('code_scale', None, 'code RMS spread', 'latent units', 3),
    Metric('centre_offset', LESS, 'code mean offset', 'code spreads', 3),
    Metric('share_in_unit_box', None, 'codes in [-1, 1]^D', '', 3),
    Metric('psnr_gain_db', GREATER, 'denoising PSNR gain', 'dB', 2),
    Metric('train_seconds', None, 'train time', 's', 0),
    Metric('metrics_seconds', None, 'metrics time', 's', 0),
    # Class separation.
    Metric('knn_accuracy', GREATER, 'kNN acc.'),
    # Continuity: smoothness of change along walks (scale-free) ...
    Metric('path_jump_ratio', LESS, 'step evenness (max/mean step)', '', 2),
    # Not a continuity score: blind to a hard switch (tests/test_metric_ground_truth.py).
    Metric('lipschitz_p99_relative', None, 'p99 local / global slope', '', 2),
    Metric('walk_evenness', LESS, '0→1 walk evenness (max/mean step)', '', 2),
    Metric('path_step_mean', None, 'mean path step', 'pixel L2', 3),
    Metric('path_max_step', None, 'largest path step', 'pixel L2', 3),
    Metric('lipschitz_mean', None, 'Lipschitz mean', 'pixel L2 / unit', 3),
    Metric('lipschitz_median', None, 'Lipschitz median', 'pixel L2 / unit', 3),
    Metric('lipschitz_p99', None, 'Lipschitz p99', 'pixel L2 / unit', 3),
    Metric('global_slope', None, 'global slope', 'pixel L2 / unit', 3),
    # ... and whether the way between two classes stays recognisable.
    Metric('path_confident_share', GREATER, 'walks: confident'),
    Metric('path_class_changes', LESS, 'walks: class changes', 'per walk', 2),
    # Completeness of a sampler's codes (keys <sampler>/<metric>).
    Metric('balanced_confident_share', GREATER, 'confident, class-balanced'),
    Metric('confident_share', GREATER, 'confident'),
    Metric('class_distance', LESS, 'class hist. TV'),
    Metric('class_entropy', GREATER, 'class entropy'),
    Metric('mean_max_prob', GREATER, 'mean max prob.'),
    Metric('hole_share', LESS, 'holes'),
    # Sample quality (classifier features, not Inception: not FID).
    Metric('frechet_distance', LESS, 'Fréchet (MLP feat.)', '', 1),
    Metric('precision', GREATER, 'precision'),
    Metric('recall', GREATER, 'recall (fake balls)'),
    Metric('density', GREATER, 'density'),
    Metric('coverage', GREATER, 'coverage'),
    # The article's remaining claims (vae_jax/analysis/article_metrics.py).
    # Facts (None) where the claim compares with a number, not "better".
    Metric('knn_accuracy_gain_over_pca', GREATER, 'kNN acc. − PCA\'s'),
    Metric('first_hole_position', None, 'first hole along the walk', 'walk fraction', 2),
    Metric('walks_with_hole', None, 'walks that meet a hole'),
    Metric('hole_past_halfway_share', None, 'walks whose first hole is past halfway'),
    Metric('confident_share_ratio_to_real', None, 'confident / real images\''),
    Metric('cluster_overlap', None, 'class cluster overlap'),
    Metric('centroid_distance_ratio_01_68', None, 'centre distance 0–1 / 6–8', '', 2),
    Metric('posterior_std_median', None, 'median posterior std', 'latent units'),
    Metric('class_consistency', GREATER, 'class kept around a code'),
]
METRICS = {m.key: m for m in _ENTRIES}
assert len(METRICS) == len(_ENTRIES), 'a metric key is declared twice'

# Short names of the samplers (vae_jax/analysis/samplers.SAMPLERS) in headers.
SAMPLER_LABELS = {'prior': 'N(0,I)', 'gaussian': 'Gaussian', 'gmm': 'GMM'}


def split(key):
  """``(sampler or None, base key)`` of ``'prior/hole_share'`` or ``'knn_accuracy'``."""
  sampler, _, base = key.rpartition('/')
  return (sampler or None), base


def get(key):
  """The :class:`Metric` of ``key`` (a sampler prefix resolves to its base entry)."""
  _, base = split(key)
  if base not in METRICS:
    raise KeyError(f'metric {key!r} has no entry in vae_jax/analysis/metric_registry.py')
  return METRICS[base]


def direction(key):
  return get(key).direction


def arrow(key):
  """'↑' when higher is better, '↓' when lower is, '' for a fact."""
  return ARROWS[get(key).direction]


def header(key, *, sampler=True, arrow_sign=True):
  """Table header: ``'N(0,I): holes ↓'`` (sampler prefix with ``sampler``)."""
  s, _ = split(key)
  m = get(key)
  text = m.label + (f' ({m.unit})' if m.unit else '')
  if sampler and s:
    text = f'{SAMPLER_LABELS.get(s, s)}: {text}'
  return f'{text} {arrow(key)}'.rstrip() if arrow_sign else text


def decimals(key):
  return get(key).decimals
