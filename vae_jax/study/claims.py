"""The article's claims as declarative rows, judged over seeds (vae_jax/study/verdicts.py).

Each :class:`Claim` names one metric, model A, model B (or a number the
article quotes) and the direction the article asserts. Its verdict comes from
the per-seed paired differences A_s − B_s with a 95 % Student-t interval:
supported, contradicted or inconclusive. Model names are the study's
(study_models.SPECS); metric keys are those of ``summary['per_seed']``.
"""

import math
from typing import NamedTuple, Optional, Union

from vae_jax.analysis import metric_registry as registry
from vae_jax.study import verdicts

# The article's quoted losses (mean per-pixel binary cross-entropy, Keras).
ARTICLE_AE_2D_LOSS = 0.25   # "the loss value stalled at around 0.25"
ARTICLE_AE_WIDE_LOSS = 0.09  # "in a similar network a loss of 0.09 could be achieved"
NEAR_MARGIN = 0.10          # "around x" read as within ±10 % of x
# Share of N(0, I) in [-1, 1]²: the reference for "the majority within [-1, 1]".
PRIOR_SHARE_IN_UNIT_BOX = math.erf(1 / math.sqrt(2)) ** 2


class Claim(NamedTuple):
  id: str
  text: str
  metric: str                 # key in summary['per_seed'][model][seed]
  a: str                      # model name
  b: Union[str, float]        # model name, or a number
  direction: str              # 'greater', 'less' or 'near'
  group: str = 'article'      # 'article', 'samplers' (the same claim under another sampler)
  margin: Optional[float] = None
  reference: Optional[str] = None  # what the metric's reference distribution implies


def _per_dataset(dataset, sampler, group):
  vae, ae, recon_only = f'{dataset}_vae_2d', f'{dataset}_ae_2d', f'{dataset}_vae_recon_only_2d'
  where = f'{dataset}, samples from {SAMPLER_TEXT[sampler]}'
  rows = []
  for metric, what in (
      ('balanced_confident_share', 'more samples decode to a confidently classified image, '
       'within the data\'s class proportions'),
      ('hole_share', 'fewer samples land where the aggregate posterior is thin'),
      ('frechet_distance', 'samples closer to the test images (Fréchet distance)')):
    direction = registry.direction(metric)
    for other, other_label in ((ae, 'the classic AE'), (recon_only, 'the reconstruction-only VAE')):
      rows.append(Claim(f'{dataset}_{sampler}_{metric}_vs_{other.split("_", 1)[1]}',
                        f'{where}: the VAE with KL is more complete than {other_label}: '
                        f'{what}', f'{sampler}/{metric}', vae, other, direction, group))
  return rows


SAMPLER_TEXT = {'prior': 'N(0, I)', 'gaussian': 'a Gaussian fitted to the codes',
                'gmm': 'a 10-component GMM fitted to the codes'}


def _article_claims():
  rows = [
      Claim('ae2d_loss', f'A 2-D classic AE\'s loss stalls at ≈ {ARTICLE_AE_2D_LOSS} (mean '
            f'per-pixel BCE; "≈" read as ±{NEAR_MARGIN:.0%})', 'recon_per_pixel',
            'mnist_ae_2d', ARTICLE_AE_2D_LOSS, 'near', margin=NEAR_MARGIN),
      Claim('wide_loss', f'A similar AE with a wider (32-D) code reaches ≈ '
            f'{ARTICLE_AE_WIDE_LOSS}', 'recon_per_pixel', 'mnist_ae_32', ARTICLE_AE_WIDE_LOSS,
            'near', margin=NEAR_MARGIN),
      Claim('wide_better', 'The wider code reconstructs better than the 2-D code',
            'recon_per_pixel', 'mnist_ae_32', 'mnist_ae_2d', 'less'),
      Claim('kl_centres', 'The KL term centres the codes on (0, 0): the code mean is nearer '
            '0, in units of the codes\' spread, than without KL', 'centre_offset',
            'mnist_vae_2d', 'mnist_vae_recon_only_2d', 'less'),
      Claim('kl_majority_in_box', 'With KL, the majority of codes lie within [-1, 1]²',
            'share_in_unit_box', 'mnist_vae_2d', 0.5, 'greater',
            reference=f'N(0, I) itself puts {PRIOR_SHARE_IN_UNIT_BOX:.3f} of its mass there'),
      Claim('rl_spreads', 'Without KL the codes spread beyond [-1, 1]² (a smaller share '
            'inside than with KL)', 'share_in_unit_box', 'mnist_vae_recon_only_2d',
            'mnist_vae_2d', 'less'),
      Claim('walk_jumps', 'Walking from a 0 to a 1, the classic AE\'s output changes less '
            'evenly than the VAE\'s (largest step / mean step, mean of 50 walks)',
            'walk_evenness',
            'mnist_ae_2d', 'mnist_vae_2d', 'greater'),
      Claim('denoising', 'A denoising AE removes noise (PSNR gain over the noisy input, dB)',
            'psnr_gain_db', 'mnist_denoising_ae', 0.0, 'greater'),
  ]
  for dataset in ('mnist', 'fashion_mnist'):
    rows += _per_dataset(dataset, 'prior', 'article')
    vae, ae, recon_only = f'{dataset}_vae_2d', f'{dataset}_ae_2d', f'{dataset}_vae_recon_only_2d'
    for model, label in ((vae, 'the VAE with KL'), (recon_only, 'the reconstruction-only VAE')):
      # Continuity judged on both: even change along class-pair walks, and
      # walks that stay recognisable (a pixel cross-fade is even, not recognisable).
      for metric, suffix, what in (
          ('path_jump_ratio', '', 'evenness of change along class-pair walks'),
          ('path_confident_share', '_recognisable', 'share of walk images called '
           'confidently')):
        rows.append(Claim(f'{dataset}_continuity{suffix}_{model.split("_", 1)[1]}',
                          f'{dataset}: {label} is more continuous than the classic AE '
                          f'({what})', metric, model, ae, registry.direction(metric)))
    rows.append(Claim(f'{dataset}_dropout_maxnorm_knn', f'{dataset}, MLP: dropout 0.5 + '
                      'max-norm 2 improves class separation of the codes (kNN accuracy)',
                      'knn_accuracy',
                      f'{dataset}_vae_dropout_maxnorm_2d', vae, 'greater'))
  for metric, what in (('knn_accuracy', 'class separation of the codes (kNN accuracy)'),
                       ('prior/balanced_confident_share', 'how often N(0, I) samples decode '
                        'to a confidently classified garment, within the classes\' proportions')):
    rows.append(Claim(f'fashion_mnist_conv_dropout_maxnorm_{metric.split("/")[-1]}',
                      f'fashion_mnist, conv VAE (where the article made the claim): dropout 0.5 '
                      f'+ max-norm 2 improves {what}', metric,
                      'fashion_mnist_conv_vae_dropout_maxnorm_2d', 'fashion_mnist_conv_vae_2d',
                      'greater'))
  return rows


CLAIMS = _article_claims() + [
    row for dataset in ('mnist', 'fashion_mnist')
    for sampler in ('gaussian', 'gmm') for row in _per_dataset(dataset, sampler, 'samplers')]


def values(per_seed, model, metric):
  """``(seeds, [value per seed])`` of ``metric`` for ``model`` (seeds in ascending order)."""
  rows = per_seed[model]
  seeds = sorted(rows, key=int)
  return seeds, [float(rows[s][metric]) for s in seeds]


def judge_all(per_seed, claims=CLAIMS):
  """Every claim with its per-seed values, the interval of A − B and the verdict."""
  out = []
  for c in claims:
    if c.a not in per_seed or (isinstance(c.b, str) and c.b not in per_seed):
      continue
    seeds, a = values(per_seed, c.a, c.metric)
    if isinstance(c.b, str):
      b_seeds, b = values(per_seed, c.b, c.metric)
      common = [s for s in seeds if s in b_seeds]   # pair seed with seed
      a = [a[seeds.index(s)] for s in common]
      b = [b[b_seeds.index(s)] for s in common]
      seeds = common
    else:
      b = c.b
    result = verdicts.judge(a, b, c.direction, margin=c.margin)
    out.append({**c._asdict(), 'seeds': seeds, 'values_a': a,
                'values_b': b if isinstance(b, list) else None, **result})
  return out
