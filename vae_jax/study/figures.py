"""Every figure of the article, from the seed study's trained models.

Each ``fig_*`` function writes its PNGs and returns ``{figure_name: facts}``,
the numbers the figure rests on (they go to summary.json and REPORT.md), and
each figure's caption is generated from those facts (:func:`captions`): no
statement about a figure is typed by hand. ``models[name]`` is a
:class:`Trained`: config, model, params, test set and codes. ``confident(dataset,
images)`` is the share of images the study's independent classifier calls
with confidence.
"""

import dataclasses
import os

import jax
import numpy as np

from vae_jax.analysis import article_metrics
from vae_jax.analysis import plotting
from vae_jax.core import data as data_lib
from vae_jax.core import latent
from vae_jax.core.objective import corrupt


@dataclasses.dataclass
class Trained:
  """A study model restored from its workdir (experiment.restore), with its test set."""
  name: str
  label: str
  seed: int
  config: object           # the run's ml_collections.ConfigDict
  model: object            # the flax module
  params: object
  test_images: np.ndarray  # as evaluated (binarised when the run binarises)
  test_labels: np.ndarray
  codes: np.ndarray        # test-set means [N, D]
  logvars: object          # test-set log-variances, None for an AE
  test: dict               # test-set metrics of the final params
  table: dict = dataclasses.field(default_factory=dict)  # latent metrics (table models)
  facts: dict = dataclasses.field(default_factory=dict)  # per-seed facts (walk, denoising)

  @property
  def dataset(self):
    return self.config.data.name

  def train_split(self):
    """``(images, labels)`` of the training set, loaded on demand, never kept."""
    return data_lib.load_split(self.config.data, 'train')

  def decode(self, z):
    return latent.decode(self.model, self.params, z)

  def title(self, what):
    return f'{what}: {self.label}, {data_lib.title(self.dataset)}, seed {self.seed}'


def _within_unit_box(codes):
  return float(np.mean(np.all(np.abs(codes) <= 1.0, axis=1)))


def code_facts(m):
  """Where the test codes lie: mean, spread, share in [-1, 1]², centre offset, the
  class clusters' overlap and centre distances, a VAE's median posterior std."""
  c = np.asarray(m.codes, np.float64)
  spread = float(np.sqrt(np.mean(c.var(0))))
  facts = {'code_mean': [float(v) for v in c.mean(0)],
           'code_std': [float(v) for v in c.std(0)],
           'share_in_unit_box': _within_unit_box(c),
           # |mean| in units of the codes' RMS spread: 0 when centred, scale-free.
           'centre_offset': float(np.linalg.norm(c.mean(0)) / max(spread, 1e-30)),
           'cluster_overlap': article_metrics.cluster_overlap(c, m.test_labels),
           'centroid_distance_ratio_01_68': article_metrics.centroid_distance_ratio(
               c, m.test_labels)}
  if m.logvars is not None:
    facts['posterior_std_median'] = article_metrics.posterior_std_median(m.logvars)
  return facts


def fig_latents(models, outdir, confident):
  """Figures 1, 3, 4, 7a, 8a: scatters of 2-D test codes."""
  facts = {}
  for fig_name, key, what in [
      ('classic_ae_latent', 'mnist_ae_2d', 'classic AE codes'),
      ('vae_recon_only_latent', 'mnist_vae_recon_only_2d', 'VAE means (kl_weight 0)'),
      ('vae_recon_kl_latent', 'mnist_vae_2d', 'VAE means (with KL)'),
      ('fashion_mnist_latent', 'fashion_mnist_conv_vae_2d', 'VAE means'),
      ('fashion_mnist_dropout_maxnorm_latent', 'fashion_mnist_conv_vae_dropout_maxnorm_2d',
       'VAE means')]:
    m = models[key]
    plotting.save(plotting.latent_figure(m.codes, m.test_labels, m.dataset,
                                         m.title(what)),
                  os.path.join(outdir, f'{fig_name}.png'))
    facts[fig_name] = dict(code_facts(m), model=m.name, seed=m.seed)
  return facts


def _class_anchor(m, cls):
  """Index of the test example of class ``cls`` whose code is nearest the class median."""
  idx = np.flatnonzero(m.test_labels == cls)
  med = np.median(m.codes[idx], axis=0)
  return int(idx[np.argmin(np.sum((m.codes[idx] - med) ** 2, axis=1))])


# Walks from a 0 to a 1 per seed (issue 27): a seed's evenness is not one path.
NUM_WALKS = 50


def _walk_change(m, z0, z1, steps=64):
  """Largest and mean decoded change per step (mean |Δpixel|), mean over walks z0[i] → z1[i]."""
  z0, z1 = np.atleast_2d(z0), np.atleast_2d(z1)
  t = np.linspace(0.0, 1.0, steps + 1)[None, :, None]
  paths = z0[:, None] + t * (z1 - z0)[:, None]                     # [W, T+1, D]
  imgs = np.asarray(m.decode(paths.reshape(-1, z0.shape[1])), np.float64)
  imgs = imgs.reshape(len(z0), steps + 1, -1)
  d = np.mean(np.abs(np.diff(imgs, axis=1)), axis=-1)              # [W, T]
  return {'max_step_change': float(d.max(1).mean()), 'mean_step_change': float(d.mean()),
          'evenness': float(np.mean(d.max(1) / np.maximum(d.mean(1), 1e-12)))}


def walk_facts(ae, vae, num_walks=NUM_WALKS):
  """Figure 2's walks for one seed, in both models: ``num_walks`` from a test 0 to a test 1.

  The first is the one drawn (the AE's typical 0 to its typical 1); the others
  join random test 0s and 1s (key: the seed). Evenness is the mean over all.
  """
  i0, i1 = _class_anchor(ae, 0), _class_anchor(ae, 1)
  zeros, ones = np.flatnonzero(ae.test_labels == 0), np.flatnonzero(ae.test_labels == 1)
  k0, k1 = jax.random.split(jax.random.key(ae.seed))
  a = np.concatenate([[i0], zeros[np.asarray(jax.random.randint(k0, (num_walks - 1,), 0,
                                                                 len(zeros)))]])
  b = np.concatenate([[i1], ones[np.asarray(jax.random.randint(k1, (num_walks - 1,), 0,
                                                                len(ones)))]])
  return {'inputs': [i0, i1], 'num_walks': num_walks,
          **{m.name: _walk_change(m, m.codes[a], m.codes[b]) for m in (ae, vae)}}


def fig_walk(models, outdir, confident):
  """Figure 2: the same two test images, walked between in the AE and the VAE."""
  ae, vae = models['mnist_ae_2d'], models['mnist_vae_2d']
  facts = walk_facts(ae, vae)
  i0, i1 = facts['inputs']
  panels = []
  for m in (ae, vae):
    panels.append(dict(name=m.title('walk'), codes=m.codes, labels=m.test_labels,
                       z0=m.codes[i0], z1=m.codes[i1], decode_fn=m.decode))
  plotting.save(plotting.walk_figure(panels, 'mnist',
                                     'A straight walk from a 0 to a 1, decoded'),
                os.path.join(outdir, 'classic_ae_walk.png'))
  return {'classic_ae_walk': dict(facts, seed=ae.seed)}


def fig_posterior_cloud(models, outdir, confident, count=6, draws=300):
  """Figure 5: samples of q(z|x) for a few inputs over the VAE's means."""
  m = models['mnist_vae_2d']
  chosen = [_class_anchor(m, c) for c in range(0, 10, 10 // count)][:count]
  eps = np.asarray(jax.random.normal(jax.random.key(m.seed), (draws, len(chosen), 2)))
  fig = plotting.posterior_cloud_figure(m.codes, m.test_labels, m.codes[chosen],
                                        m.logvars[chosen], eps, 'mnist',
                                        m.title('posterior samples'))
  plotting.save(fig, os.path.join(outdir, 'posterior_cloud.png'))
  sigma = np.exp(0.5 * m.logvars)
  return {'posterior_cloud': {'inputs': chosen, 'seed': m.seed,
                              'median_posterior_std': float(np.median(sigma)),
                              'median_code_spread': float(np.median(m.codes.std(0)))}}


GRID_SPACINGS = {'linear': 'linear over ±4', 'gaussian': 'Gaussian quantiles'}
MANIFOLDS = {'mnist_vae_manifold': 'MNIST VAE', 'fashion_mnist_manifold':
             'Fashion-MNIST conv VAE', 'fashion_mnist_dropout_maxnorm_manifold':
             'Fashion-MNIST conv VAE with dropout 0.5 + max-norm 2'}


def fig_manifolds(models, outdir, confident):
  """Figures 6, 7b, 8b: scatter + decoded 30x30 grids, linear and Gaussian spacing."""
  facts = {}
  for fig_name, key in [('mnist_vae_manifold', 'mnist_vae_2d'),
                        ('fashion_mnist_manifold', 'fashion_mnist_conv_vae_2d'),
                        ('fashion_mnist_dropout_maxnorm_manifold',
                         'fashion_mnist_conv_vae_dropout_maxnorm_2d')]:
    m = models[key]
    plotting.save(plotting.manifold_figure(m.decode, m.codes, m.test_labels,
                                           m.dataset, m.title('latent space and decoded grid')),
                  os.path.join(outdir, f'{fig_name}.png'))
    grids = {spacing: confident(m.dataset, m.decode(plotting.grid_points(30, spacing)[0]))
             for spacing in GRID_SPACINGS}
    for spacing, how in GRID_SPACINGS.items():
      # Each grid on its own, one screen pixel per image pixel: readable digits.
      plotting.save(plotting.grid_figure(m.decode, m.title(f'decoded 30x30 grid, {how}'),
                                         spacing=spacing),
                    os.path.join(outdir, f'{fig_name}_grid_{spacing}.png'))
    facts[fig_name] = {'test_elbo': m.test['elbo'], 'model': m.name, 'seed': m.seed,
                       'grid_confident_share': grids, **code_facts(m)}
  return facts


def fig_blend(models, outdir, confident):
  """Figure 9: two inputs blended in latent space, classic AE vs VAE."""
  facts = {}
  for fig_name, dataset, classes in [('blend_mnist', 'mnist', (3, 7)),
                                     ('blend_fashion_mnist', 'fashion_mnist', (0, 3))]:
    ae, vae = models[f'{dataset}_ae_2d'], models[f'{dataset}_vae_2d']
    i0, i1 = _class_anchor(vae, classes[0]), _class_anchor(vae, classes[1])
    panels = []
    for m in (ae, vae):
      panels.append(dict(name=m.label, x0=m.test_images[i0], x1=m.test_images[i1],
                         z0=m.codes[i0], z1=m.codes[i1], decode_fn=m.decode))
      facts.setdefault(fig_name, {})[m.name] = _walk_change(m, m.codes[i0], m.codes[i1])
    data = data_lib.title(dataset)
    plotting.save(plotting.blend_figure(panels, f'Blending two test inputs in latent space, '
                                                f'{data}, seed {vae.seed}'),
                  os.path.join(outdir, f'{fig_name}.png'))
  return facts


RECONSTRUCTION_ROWS = ('mnist_ae_2d', 'mnist_ae_32', 'mnist_sparse_ae',
                       'mnist_sparse_dropout_ae', 'mnist_denoising_ae', 'mnist_conv_ae',
                       'mnist_rnn_ae', 'mnist_vae_2d')


def fig_reconstructions(models, outdir, confident, count=12):
  """Figure 10a: the same test digits reconstructed by every kind of autoencoder."""
  ref = models['mnist_ae_2d']
  x = ref.test_images[:count]
  rows, names = [x], ['input']
  for key in RECONSTRUCTION_ROWS:
    m = models[key]
    rows.append(latent.reconstruct(m.model, m.params, x))
    names.append(m.label)
  per_pixel = {m: models[m].test['recon'] / num_pixels(models[m]) for m in RECONSTRUCTION_ROWS}
  plotting.save(plotting.image_rows_figure(rows, names,
                                           f'Test reconstructions, MNIST, seed {ref.seed}'),
                os.path.join(outdir, 'reconstructions.png'))
  return {'reconstructions': {'rows': list(names), 'recon_per_pixel': per_pixel,
                              'seed': ref.seed}}


def num_pixels(m):
  return int(np.prod(m.test_images.shape[1:]))


def psnr(a, b):
  """Peak signal-to-noise ratio (dB) per image, for images in [0, 1]."""
  mse = np.mean((np.asarray(a) - np.asarray(b)) ** 2, axis=(1, 2, 3))
  return 10 * np.log10(1.0 / np.maximum(mse, 1e-12))


def _denoise(m):
  cfg = m.config.model
  clean = m.test_images
  noisy = np.asarray(corrupt(jax.random.key(1000 + m.seed), clean, cfg.noise,
                             cfg.noise_level))
  return noisy, latent.reconstruct(m.model, m.params, noisy), clean


def denoising_facts(m):
  """Mean PSNR of the noisy and the denoised test images against the clean ones."""
  noisy, denoised, clean = _denoise(m)
  before, after = psnr(noisy, clean), psnr(denoised, clean)
  return {'psnr_noisy_db': float(before.mean()), 'psnr_denoised_db': float(after.mean()),
          'psnr_gain_db': float(after.mean() - before.mean()),
          'noise_std': float(m.config.model.noise_level)}


def fig_denoising(models, outdir, confident, count=12):
  """Figure 10b: noisy / denoised / clean, and the PSNR gain on the test set."""
  m = models['mnist_denoising_ae']
  noisy, denoised, clean = _denoise(m)
  plotting.save(plotting.image_rows_figure(
      [noisy[:count], denoised[:count], clean[:count]], ['noisy input', 'denoised', 'clean'],
      m.title(f'Denoising (Gaussian noise, std {m.config.model.noise_level})')),
      os.path.join(outdir, 'denoising.png'))
  return {'denoising': dict(denoising_facts(m), model=m.name, seed=m.seed)}


ALL = (fig_latents, fig_walk, fig_posterior_cloud, fig_manifolds, fig_blend,
       fig_reconstructions, fig_denoising)

# name -> what the figure shows (a description; the measured facts are added
# by captions()).
FIGURES = {
    'classic_ae_latent': 'Classic AE: 2-D codes of the MNIST test set, coloured by class.',
    'classic_ae_walk': 'A straight walk from a typical 0 to a typical 1 (the AE\'s class '
                       'medians), decoded by the classic AE and by the VAE.',
    'vae_recon_only_latent': 'VAE trained on reconstruction loss only (KL weight 0): '
                             'posterior means of the MNIST test set.',
    'vae_recon_kl_latent': 'VAE with the KL term: posterior means of the MNIST test set.',
    'posterior_cloud': 'Samples of q(z|x) for a few test inputs, over the VAE\'s means.',
    'mnist_vae_manifold': 'MNIST VAE: codes and decoded 30x30 grids (linear over ±4 and '
                          'Gaussian quantiles).',
    'fashion_mnist_latent': 'Fashion-MNIST conv ("deconv") VAE: posterior means of the test set.',
    'fashion_mnist_manifold': 'Fashion-MNIST conv VAE: decoded grids of the latent space.',
    'fashion_mnist_dropout_maxnorm_latent': 'Fashion-MNIST conv VAE with dropout 0.5 + '
                                            'max-norm 2: posterior means.',
    'fashion_mnist_dropout_maxnorm_manifold': 'Fashion-MNIST conv VAE with dropout 0.5 + '
                                              'max-norm 2: decoded grids.',
    'blend_mnist': 'Blending a 3 and a 7 in latent space: classic AE vs VAE.',
    'blend_fashion_mnist': 'Blending a T-shirt and a dress in latent space: classic AE vs VAE.',
    'reconstructions': 'The same test digits reconstructed by every kind of autoencoder the '
                       'article names.',
    'denoising': 'Denoising AE: noisy input, its reconstruction, the clean digit.',
}
FIGURES.update({f'{name}_grid_{spacing}': f'{who}: the decoded 30x30 grid, {how}, at one '
                'screen pixel per image pixel.'
                for name, who in MANIFOLDS.items() for spacing, how in GRID_SPACINGS.items()})


def _pct(x):
  return f'{100 * x:.0f} %'


def _where(f):
  mean = ', '.join(f'{v:.2f}' for v in f['code_mean'])
  std = ', '.join(f'{v:.2f}' for v in f['code_std'])
  return (f'Code mean ({mean}), std ({std}); {_pct(f["share_in_unit_box"])} of the codes lie '
          f'in [-1, 1]²')


def _verdict(claims, claim_id):
  c = claims.get(claim_id)
  return '' if c is None else f' Over {c["n"]} seeds the claim "{c["text"]}" is **{c["verdict"]}**.'


def captions(facts, claims, prior_share_in_box, real_confident, failed_gates=None):
  """``{figure: caption}``: FIGURES' description plus the numbers measured for it.

  ``claims`` maps claim id -> judged claim (study_claims.judge_all);
  ``real_confident`` maps data set -> the classifier's confident share on real
  test images (the ceiling for decoded images).
  """
  out = {}
  for name, text in FIGURES.items():
    f = facts.get(name, {})
    extra = ''
    if name in ('classic_ae_latent', 'vae_recon_only_latent', 'fashion_mnist_latent',
                'fashion_mnist_dropout_maxnorm_latent'):
      extra = _where(f) + '.'
    elif name == 'vae_recon_kl_latent':
      extra = (_where(f) + f' (N(0, I) itself: {_pct(prior_share_in_box)}).'
               + _verdict(claims, 'kl_majority_in_box'))
    elif name == 'classic_ae_walk':
      extra = (f'Largest / mean decoded step, mean of {f.get("num_walks", 1)} walks from a test 0 '
               'to a test 1 (the drawn one first): AE '
               f'{f["mnist_ae_2d"]["evenness"]:.2f}, VAE {f["mnist_vae_2d"]["evenness"]:.2f} '
               '(1 = even).' + _verdict(claims, 'walk_jumps'))
    elif name == 'posterior_cloud':
      extra = (f'Median posterior std {f["median_posterior_std"]:.3f} against a median spread '
               f'of the means of {f["median_code_spread"]:.3f}.')
    elif name.endswith('_manifold'):
      data = 'fashion_mnist' if name.startswith('fashion') else 'mnist'
      g = f['grid_confident_share']
      extra = (f'The independent classifier calls {_pct(g["linear"])} of the linear grid and '
               f'{_pct(g["gaussian"])} of the Gaussian grid confidently (real test images: '
               f'{_pct(real_confident[data])}); test ELBO {f["test_elbo"]:.1f} nats.')
    elif '_grid_' in name:
      manifold, spacing = name.rsplit('_grid_', 1)
      data = 'fashion_mnist' if name.startswith('fashion') else 'mnist'
      extra = (f'The independent classifier calls '
               f'{_pct(facts[manifold]["grid_confident_share"][spacing])} of its images '
               f'confidently (real test images: {_pct(real_confident[data])}).')
    elif name.startswith('blend_'):
      extra = 'Largest / mean step along the blend: ' + ', '.join(
          f'{m} {v["evenness"]:.2f}' for m, v in f.items()) + '.'
    elif name == 'reconstructions':
      extra = 'Test loss per pixel (BCE): ' + ', '.join(
          f'{m} {v:.3f}' for m, v in f['recon_per_pixel'].items()) + '.'
    elif name == 'denoising':
      extra = (f'Gaussian noise of std {f["noise_std"]}: PSNR {f["psnr_noisy_db"]:.1f} dB noisy, '
               f'{f["psnr_denoised_db"]:.1f} dB denoised.' + _verdict(claims, 'denoising'))
    seed = f' Seed {f["seed"]}.' if 'seed' in f else ''
    failed = (failed_gates or {}).get((f.get('model'), f.get('seed')))
    if failed:  # drawn only because the study ran with --nocheck_gates
      seed += f' **Drawn from a model below its quality gate: {failed}.**'
    out[name] = f'{text} {extra}{seed}'.strip()
  return out
