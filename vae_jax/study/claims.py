"""The article's claims as declarative rows in families, judged over seeds (verdicts.py).

Each :class:`Claim` names one metric, model A, model B (or a number) and the
direction the article asserts ('near' claims carry an equivalence margin in
the metric's units). Rows belong to a family (``group``):

* ``'primary'`` (:data:`PRIMARY`): one row per claim of the article, each with
  one primary metric and a one-line ``source`` that uses none of this study's
  outcomes (a quote of the article, a metric's own reference value, a fixed
  convention). Holm over this family at a family-wise 5 % decides the study.
* the secondary families, every one exploratory and corrected within itself:
  ``'wording'`` (the article's one-off numbers and wording, judged with a band
  chosen here), ``'other_metrics'`` (the primary claims under other metrics),
  ``'replication'`` (the MNIST claims repeated on Fashion-MNIST),
  ``'mlp_dropout'`` (dropout + max-norm on the MLP, where the article did not
  make the claim) and ``'samplers'`` (completeness under fitted samplers).

A primary row whose metric the study does not compute yet (``needs_metric``)
stays in the family, with no test (p counted as 1), so that the family and
its correction are fixed before the run that judges it. Model names are the
study's (catalog.specs()); metric keys are those of ``summary['per_seed']``.
"""

import math
from typing import NamedTuple, Optional, Union

from vae_jax.analysis import metric_registry as registry
from vae_jax.core import data
from vae_jax.analysis import verdicts

PRIMARY = 'primary'
SECONDARY = ('wording', 'other_metrics', 'replication', 'mlp_dropout', 'samplers')
FAMILIES = (PRIMARY,) + SECONDARY

# The article's quoted losses (mean per-pixel binary cross-entropy, Keras).
ARTICLE_AE_2D_LOSS = 0.25   # "the loss value stalled at around 0.25"
ARTICLE_AE_WIDE_LOSS = 0.09  # "in a similar network a loss of 0.09 could be achieved"
NEAR_MARGIN = 0.10          # "around x" read as within ±10 % of x (a wording row, exploratory)
# Share of N(0, I) in [-1, 1]²: the reference for "the majority within [-1, 1]".
PRIOR_SHARE_IN_UNIT_BOX = math.erf(1 / math.sqrt(2)) ** 2
# "No practical difference" for a share of codes: within 5 percentage points,
# the convention of a small effect for proportions (Cohen's h ≈ 0.1 near 0.5).
SHARE_MARGIN = 0.05
# "σ ≈ 1": a posterior std between 0.5 and 1.5, half the prior's own scale either side.
SIGMA_MARGIN = 0.5


class Claim(NamedTuple):
  id: str
  text: str
  metric: str                 # key in summary['per_seed'][model][seed]
  a: str                      # model name
  b: Union[str, float]        # model name, or a number
  direction: str              # 'greater', 'less' or 'near'
  group: str = PRIMARY        # the family (FAMILIES)
  margin: Optional[float] = None   # 'near': equivalence margin, metric units
  reference: Optional[str] = None  # what the metric's reference distribution implies
  source: str = ''            # why the row, its direction and margin (never this study's outcome)
  needs_metric: bool = False  # the metric is declared but not computed by the study yet


SAMPLER_TEXT = {'prior': 'N(0, I)', 'gaussian': 'a Gaussian fitted to the codes',
                'gmm': 'a 10-component GMM fitted to the codes'}
_ARTICLE = 'article: '


def _model_kind(dataset, model):
  """``'fashion_mnist_vae_2d'`` -> ``'vae_2d'`` (the data set prefix removed, never split)."""
  assert model.startswith(dataset + '_'), (dataset, model)
  return model[len(dataset) + 1:]


def _completeness(dataset, sampler, group, metrics):
  vae, ae, recon_only = f'{dataset}_vae_2d', f'{dataset}_ae_2d', f'{dataset}_vae_recon_only_2d'
  where = f'{dataset}, samples from {SAMPLER_TEXT[sampler]}'
  rows = []
  for metric, what in (
      ('balanced_confident_share', 'more samples decode to a confidently classified image, '
       'within the data\'s class proportions'),
      ('hole_share', 'fewer samples land where the aggregate posterior is thin'),
      ('frechet_distance', 'samples closer to the test images (Fréchet distance)')):
    if metric not in metrics:
      continue
    direction = registry.direction(metric)
    for other, label in ((ae, 'the classic AE'), (recon_only, 'the reconstruction-only VAE')):
      rows.append(Claim(
          f'{dataset}_{sampler}_{metric}_vs_{_model_kind(dataset, other)}',
          f'{where}: the VAE with KL is more complete than {label}: {what}',
          f'{sampler}/{metric}', vae, other, direction, group,
          source=_ARTICLE + '"the completeness principle is now also met to a great extent"'))
  return rows


def _primary():
  m = 'mnist'
  ae, vae, ro = f'{m}_ae_2d', f'{m}_vae_2d', f'{m}_vae_recon_only_2d'
  f_ae, f_vae = 'fashion_mnist_ae_2d', 'fashion_mnist_vae_2d'
  return [
      Claim('wide_better', 'A wider (32-D) code reconstructs better than the 2-D code',
            'recon_per_pixel', 'mnist_ae_32', ae, 'less',
            source=_ARTICLE + '"going from 784 to 2 dimensions ... will likely lead to too much '
            'information loss"'),
      Claim('denoising', 'A denoising AE removes noise (PSNR gain over the noisy input, dB)',
            'psnr_gain_db', 'mnist_denoising_ae', 0.0, 'greater',
            source=_ARTICLE + '"autoencoders may also be used for noise reduction"'),
      Claim('ae_dimensionality_reduction', 'mnist: the classic AE\'s 2-D codes separate the '
            'classes better than 2-D PCA (kNN accuracy, AE − PCA)',
            'knn_accuracy_gain_over_pca', ae, 0.0, 'greater',
            source=_ARTICLE + '"useful when you wish to perform dimensionality reduction ... '
            'when e.g. PCA doesn\'t work"'),
      Claim('ae_hole_past_halfway', 'mnist: walking from a 0 to a 1, most of the classic AE\'s '
            'walks meet their first hole past the halfway mark (share of 100 walks; a walk '
            'with no hole counts as not)', 'walk01/hole_past_halfway_share', ae, 0.5, 'greater',
            source=_ARTICLE + '"I\'d find a hole just beyond the halfway mark"'),
      Claim('ae_cannot_generate', 'mnist: N(0, I) samples of the classic AE are called '
            'confidently less often than real test images (ratio to the real share)',
            'prior/confident_share_ratio_to_real', ae, 1.0, 'less',
            source=_ARTICLE + '"traditional autoencoders cannot be used for content generation"'),
      Claim('mnist_continuity_vae_recon_only_2d', 'mnist: the reconstruction-only VAE is more '
            'continuous than the classic AE (jump ratio along paths)', 'path_jump_ratio',
            ro, ae, 'less',
            source=_ARTICLE + '"VAEs trained to minimize reconstruction loss are continuous"'),
      Claim('recon_only_not_complete', 'mnist: the reconstruction-only VAE is less complete '
            'than the VAE with KL (N(0, I) samples called confidently, class-balanced)',
            'prior/balanced_confident_share',
            vae, ro, 'greater', source=_ARTICLE + '"continuous, but not complete"'),
      Claim('recon_only_disjoint_clusters', 'mnist: class clusters overlap more with KL than '
            'without it (reconstruction only: "may be disjoint")', 'cluster_overlap', vae, ro,
            'greater',
            source=_ARTICLE + '"the encoder will encode samples into disjoint clusters"'),
      Claim('rl_spreads', 'mnist: without KL the codes spread beyond [-1, 1]² (a smaller share '
            'inside than with KL)', 'share_in_unit_box', ro, vae, 'less',
            source=_ARTICLE + '"move samples ... as far away as possible"'),
      Claim('mnist_continuity_vae_2d', 'mnist: the VAE with KL is more continuous than the '
            'classic AE (jump ratio along paths)', 'path_jump_ratio', vae, ae, 'less',
            source=_ARTICLE + '"continuity is still enforced"'),
      Claim('kl_complete', 'mnist: the VAE with KL is more complete than the classic AE '
            '(N(0, I) samples called confidently, class-balanced)',
            'prior/balanced_confident_share', vae, ae,
            'greater', source=_ARTICLE + '"the completeness principle is now also met"'),
      Claim('kl_class_geometry', 'mnist, VAE with KL: the 0 and 1 class centres lie farther '
            'apart than the 6 and 8 centres (ratio of the two distances, > 1)',
            'centroid_distance_ratio_01_68', vae, 1.0, 'greater',
            source=_ARTICLE + '"zeroes and ones are still on opposite sides ... 6 and 8 are '
            'close together"'),
      Claim('kl_centres', 'mnist: KL centres the codes on (0, 0): the code mean is nearer 0, '
            'in units of the codes\' spread, than without KL', 'centre_offset', vae, ro, 'less',
            source=_ARTICLE + '"the entire latent space is built around the point (0, 0)"'),
      Claim('kl_codes_like_prior', f'mnist: with KL, the share of codes in [-1, 1]² is that '
            f'of N(0, I) ({PRIOR_SHARE_IN_UNIT_BOX:.3f}) within ±{SHARE_MARGIN}',
            'share_in_unit_box', vae, PRIOR_SHARE_IN_UNIT_BOX, 'near', margin=SHARE_MARGIN,
            source=_ARTICLE + '"the majority of samples being within the [-1, +1] domain"; '
            f'margin: ±{SHARE_MARGIN} of a share, a small effect by convention'),
      Claim('kl_sigma_near_one', f'mnist: KL pushes the posterior std to ≈ 1 (median over '
            f'codes and dimensions, within ±{SIGMA_MARGIN})', 'posterior_std_median', vae, 1.0,
            'near', margin=SIGMA_MARGIN,
            source=_ARTICLE + '"an encoder that produces ... σ ≈ 1"; margin: half the prior\'s '
            'scale either side'),
      Claim('kl_locally_complete', 'mnist: decodes of samples around a code keep the class of '
            'the code\'s own decode more often with KL than for the classic AE (noise of a '
            'tenth of the codes\' spread)',
            'local/class_consistency', vae, ae, 'greater',
            source=_ARTICLE + '"we create a continuous and complete latent space locally"'),
      Claim('fashion_harder', 'fashion_mnist is harder: its VAE codes separate the classes '
            'less well than MNIST\'s (kNN accuracy; "flurrier" plot)', 'knn_accuracy', f_vae,
            vae, 'less', source=_ARTICLE + '"This should be harder for the model ... the more '
            'discriminative - the MNIST - produced a better plot"'),
      Claim('fashion_vae_generates', 'fashion_mnist: N(0, I) samples of the VAE are called '
            'confidently more often than the classic AE\'s (class-balanced)',
            'prior/balanced_confident_share', f_vae,
            f_ae, 'greater', source=_ARTICLE + '"random decodings of points in the latent space '
            'show that it works"'),
      Claim('fashion_mnist_conv_dropout_maxnorm_knn_accuracy', 'fashion_mnist, conv VAE (both '
            'trained alike: 30 epochs, Adam 3e-4): dropout 0.5 + max-norm 2 improves class '
            'separation of the codes (kNN accuracy)', 'knn_accuracy',
            'fashion_mnist_conv_vae_dropout_maxnorm_2d', 'fashion_mnist_conv_vae_2d', 'greater',
            source=_ARTICLE + '"It seems to improve the model\'s ability to discriminate between '
            'classes"'),
  ]


def _secondary():
  rows = [
      Claim('ae2d_loss', f'A 2-D classic AE\'s loss stalls at ≈ {ARTICLE_AE_2D_LOSS} (mean '
            f'per-pixel BCE; "≈" read as ±{NEAR_MARGIN:.0%})', 'recon_per_pixel',
            'mnist_ae_2d', ARTICLE_AE_2D_LOSS, 'near', 'wording',
            margin=NEAR_MARGIN * ARTICLE_AE_2D_LOSS, source='a one-off number; band chosen here'),
      Claim('wide_loss', f'A similar AE with a wider (32-D) code reaches ≈ '
            f'{ARTICLE_AE_WIDE_LOSS}', 'recon_per_pixel', 'mnist_ae_32', ARTICLE_AE_WIDE_LOSS,
            'near', 'wording', margin=NEAR_MARGIN * ARTICLE_AE_WIDE_LOSS,
            source='a one-off number; band chosen here'),
      Claim('kl_majority_in_box', 'With KL, the majority of codes lie within [-1, 1]²',
            'share_in_unit_box', 'mnist_vae_2d', 0.5, 'greater', 'wording',
            reference=f'N(0, I) itself puts {PRIOR_SHARE_IN_UNIT_BOX:.3f} of its mass there',
            source='the wording "majority", taken literally'),
      Claim('walk_jumps', 'Walking from a 0 to a 1, the classic AE\'s output changes less '
            'evenly than the VAE\'s (largest step / mean step; one walk per seed)',
            'walk_evenness', 'mnist_ae_2d', 'mnist_vae_2d', 'greater', 'wording',
            source='the article\'s single walk, reproduced once per seed'),
      *[Claim(f'mnist_continuity_recognisable_{_model_kind("mnist", model)}',
              f'mnist: {label} keeps the images along class-pair walks recognisable more often '
              'than the classic AE (share of walk images called confidently)',
              'path_confident_share', model, 'mnist_ae_2d', registry.direction(
                  'path_confident_share'), 'other_metrics',
              source=_ARTICLE + '"between a zero and a five ... a five-ish output"')
        for model, label in (('mnist_vae_2d', 'the VAE with KL'),
                             ('mnist_vae_recon_only_2d', 'the reconstruction-only VAE'))],
      Claim('fashion_mnist_conv_dropout_maxnorm_confident_share', 'fashion_mnist, conv VAE: '
            'dropout 0.5 + max-norm 2 makes N(0, I) samples confidently classified more often',
            'prior/balanced_confident_share', 'fashion_mnist_conv_vae_dropout_maxnorm_2d',
            'fashion_mnist_conv_vae_2d', 'greater', 'other_metrics'),
  ]
  rows += [c for c in _completeness('mnist', 'prior', 'other_metrics',
                                    ('hole_share', 'frechet_distance'))]
  for d in data.study_datasets():
    if d == 'mnist':
      continue  # the primary family's data set
    ae, vae, ro = f'{d}_ae_2d', f'{d}_vae_2d', f'{d}_vae_recon_only_2d'
    rows += _completeness(d, 'prior', 'replication',
                          ('balanced_confident_share', 'hole_share', 'frechet_distance'))
    rows += [
        Claim(f'{d}_continuity_vae_2d', f'{d}: the VAE with KL is more continuous than the '
              'classic AE (jump ratio along paths)', 'path_jump_ratio', vae, ae, 'less',
              'replication'),
        Claim(f'{d}_continuity_vae_recon_only_2d', f'{d}: the reconstruction-only VAE is more '
              'continuous than the classic AE (jump ratio along paths)', 'path_jump_ratio', ro,
              ae, 'less', 'replication'),
        Claim(f'{d}_kl_centres', f'{d}: KL centres the codes on (0, 0)', 'centre_offset', vae,
              ro, 'less', 'replication'),
    ]
  for dataset in data.study_datasets():
    rows.append(Claim(f'{dataset}_dropout_maxnorm_knn', f'{dataset}, MLP: dropout 0.5 + '
                      'max-norm 2 improves class separation of the codes (kNN accuracy)',
                      'knn_accuracy', f'{dataset}_vae_dropout_maxnorm_2d',
                      f'{dataset}_vae_2d', 'greater', 'mlp_dropout',
                      source='not the article\'s claim (made for the deconv VAE)'))
  for dataset in data.study_datasets():
    for sampler in ('gaussian', 'gmm'):
      rows += _completeness(dataset, sampler, 'samplers',
                            ('balanced_confident_share', 'hole_share', 'frechet_distance'))
  return rows


def all_claims():
  """Every row, primary then secondary, for the data sets registered now (data.study_datasets)."""
  return _primary() + _secondary()


PRIMARY_CLAIMS = _primary()
CLAIMS = all_claims()   # as declared at import: MNIST and Fashion-MNIST


def values(per_seed, model, metric):
  """``(seeds, [value per seed])`` of ``metric`` for ``model`` (seeds in ascending order)."""
  rows = per_seed[model]
  seeds = sorted(rows, key=int)
  return seeds, [float(rows[s][metric]) for s in seeds]


def _measured(per_seed, c):
  models = [c.a] + ([c.b] if isinstance(c.b, str) else [])
  return all(m in per_seed and per_seed[m] and all(c.metric in r for r in per_seed[m].values())
             for m in models)


def _paired(per_seed, c):
  seeds, a = values(per_seed, c.a, c.metric)
  if not isinstance(c.b, str):
    return seeds, a, c.b
  b_seeds, b = values(per_seed, c.b, c.metric)
  common = [s for s in seeds if s in b_seeds]   # pair seed with seed
  return (common, [a[seeds.index(s)] for s in common], [b[b_seeds.index(s)] for s in common])


def judge_all(per_seed, claims=None, alpha=verdicts.ALPHA, family_of=None):
  """Every claim with its per-seed values, interval, raw and Holm-adjusted p and verdict.

  Holm runs within each family: ``family_of(group)``, by default the group itself
  (the sweep maps its display groups onto its two questions). A primary row that cannot be
  measured (metric or model missing) stays in its family untested, with
  ``measured`` False; a secondary row that cannot be measured is left out.
  """
  out = []
  for c in all_claims() if claims is None else claims:
    if not _measured(per_seed, c):
      if c.group == PRIMARY:
        out.append({**c._asdict(), 'measured': False, 'seeds': [], 'values_a': [],
                    'values_b': None, 'difference': math.nan, 'low': -math.inf,
                    'high': math.inf, 'sd': math.nan, 'n': 0, 'level': 0.95, 'p': math.nan,
                    'decision': None})
      continue
    seeds, a, b = _paired(per_seed, c)
    result = verdicts.paired_test(a, b, c.direction, margin=c.margin)
    out.append({**c._asdict(), 'measured': True, 'seeds': seeds, 'values_a': a,
                'values_b': b if isinstance(b, list) else None, **result})
  for r in out:
    r['family'] = family_of(r['group']) if family_of else r['group']
  for family in dict.fromkeys(r['family'] for r in out):
    verdicts.decide([r for r in out if r['family'] == family], alpha)
  return out
