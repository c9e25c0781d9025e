"""Every figure of the article, from the seed study's trained models.

Each ``fig_*`` function writes its PNGs and returns ``{figure_name: facts}``,
the numbers the figure rests on (they go to summary.json and REPORT.md).
``models[name]`` is a :class:`Trained`: experiment, params, test codes.
"""

import dataclasses
import os

import jax
import numpy as np

from vae_jax import latent, plotting
from vae_jax.objective import corrupt


@dataclasses.dataclass
class Trained:
  name: str
  label: str
  seed: int
  exp: object      # train.Experiment
  params: object
  codes: np.ndarray        # test-set means [N, D]
  logvars: object          # test-set log-variances, None for an AE
  test: dict               # test-set metrics of the final params
  table: dict = dataclasses.field(default_factory=dict)  # the table's metrics

  @property
  def dataset(self):
    return self.exp.config.data.name

  def decode(self, z):
    return latent.decode(self.exp.model, self.params, z)

  def title(self, what):
    data = 'MNIST' if self.dataset == 'mnist' else 'Fashion-MNIST'
    return f'{what}: {self.label}, {data}, seed {self.seed}'


def _within_unit_box(codes):
  return float(np.mean(np.all(np.abs(codes) <= 1.0, axis=1)))


def _code_facts(m):
  c = m.codes
  return {'code_mean': [float(v) for v in c.mean(0)],
          'code_std': [float(v) for v in c.std(0)],
          'share_in_unit_box': _within_unit_box(c)}


def fig_latents(models, outdir):
  """Figures 1, 3, 4, 7a, 8a: scatters of 2-D test codes."""
  facts = {}
  for fig_name, key, what in [
      ('classic_ae_latent', 'mnist_ae_2d', 'classic AE codes'),
      ('vae_rl_only_latent', 'mnist_vae_rl_only_2d', 'VAE means (kl_weight 0)'),
      ('vae_rl_kl_latent', 'mnist_vae_2d', 'VAE means (with KL)'),
      ('fashion_mnist_latent', 'fmnist_conv_vae_2d', 'VAE means'),
      ('fashion_mnist_dmax_latent', 'fmnist_conv_vae_dmax_2d', 'VAE means')]:
    m = models[key]
    plotting.save(plotting.latent_figure(m.codes, m.exp.test_labels, m.dataset,
                                         m.title(what)),
                  os.path.join(outdir, f'{fig_name}.png'))
    facts[fig_name] = _code_facts(m)
  return facts


def _class_anchor(m, cls):
  """Index of the test example of class ``cls`` whose code is nearest the class median."""
  idx = np.flatnonzero(m.exp.test_labels == cls)
  med = np.median(m.codes[idx], axis=0)
  return int(idx[np.argmin(np.sum((m.codes[idx] - med) ** 2, axis=1))])


def _walk_change(m, z0, z1, steps=64):
  """Largest and mean decoded change per step along the walk (mean |Δpixel|)."""
  imgs = m.decode(plotting.interpolate(z0, z1, steps))
  d = np.mean(np.abs(np.diff(imgs, axis=0)), axis=(1, 2, 3))
  return {'max_step_change': float(d.max()), 'mean_step_change': float(d.mean()),
          'evenness': float(d.max() / max(d.mean(), 1e-12))}


def fig_walk(models, outdir):
  """Figure 2: the same two test images, walked between in the AE and the VAE."""
  ae, vae = models['mnist_ae_2d'], models['mnist_vae_2d']
  i0, i1 = _class_anchor(ae, 0), _class_anchor(ae, 1)
  panels, facts = [], {'inputs': [i0, i1]}
  for m in (ae, vae):
    z0, z1 = m.codes[i0], m.codes[i1]
    panels.append(dict(name=m.title('walk'), codes=m.codes, labels=m.exp.test_labels,
                       z0=z0, z1=z1, decode_fn=m.decode))
    facts[m.name] = _walk_change(m, z0, z1)
  plotting.save(plotting.walk_figure(panels, 'mnist',
                                     'A straight walk from a 0 to a 1, decoded'),
                os.path.join(outdir, 'classic_ae_walk.png'))
  return {'classic_ae_walk': facts}


def fig_posterior_cloud(models, outdir, count=6, draws=300):
  """Figure 5: samples of q(z|x) for a few inputs over the VAE's means."""
  m = models['mnist_vae_2d']
  chosen = [_class_anchor(m, c) for c in range(0, 10, 10 // count)][:count]
  eps = np.asarray(jax.random.normal(jax.random.key(m.seed), (draws, len(chosen), 2)))
  fig = plotting.posterior_cloud_figure(m.codes, m.exp.test_labels, m.codes[chosen],
                                        m.logvars[chosen], eps, 'mnist',
                                        m.title('posterior samples'))
  plotting.save(fig, os.path.join(outdir, 'posterior_cloud.png'))
  sigma = np.exp(0.5 * m.logvars)
  return {'posterior_cloud': {'inputs': chosen,
                              'median_posterior_std': float(np.median(sigma)),
                              'median_code_spread': float(np.median(m.codes.std(0)))}}


def fig_manifolds(models, outdir):
  """Figures 6, 7b, 8b: scatter + decoded 30x30 grids, linear and Gaussian spacing."""
  facts = {}
  for fig_name, key in [('mnist_vae_manifold', 'mnist_vae_2d'),
                        ('fashion_mnist_manifold', 'fmnist_conv_vae_2d'),
                        ('fashion_mnist_dmax_manifold', 'fmnist_conv_vae_dmax_2d')]:
    m = models[key]
    plotting.save(plotting.manifold_figure(m.decode, m.codes, m.exp.test_labels,
                                           m.dataset, m.title('latent space and decoded grid')),
                  os.path.join(outdir, f'{fig_name}.png'))
    facts[fig_name] = {'test_elbo': m.test['elbo'], **_code_facts(m)}
  return facts


def fig_blend(models, outdir):
  """Figure 9: two inputs blended in latent space, classic AE vs VAE."""
  facts = {}
  for fig_name, short, classes in [('blend_mnist', 'mnist', (3, 7)),
                                   ('blend_fashion_mnist', 'fmnist', (0, 3))]:
    ae, vae = models[f'{short}_ae_2d'], models[f'{short}_vae_2d']
    i0, i1 = _class_anchor(vae, classes[0]), _class_anchor(vae, classes[1])
    panels = []
    for m in (ae, vae):
      panels.append(dict(name=m.label, x0=m.exp.test_images[i0], x1=m.exp.test_images[i1],
                         z0=m.codes[i0], z1=m.codes[i1], decode_fn=m.decode))
      facts.setdefault(fig_name, {})[m.name] = _walk_change(m, m.codes[i0], m.codes[i1])
    data = 'MNIST' if short == 'mnist' else 'Fashion-MNIST'
    plotting.save(plotting.blend_figure(panels, f'Blending two test inputs in latent space, '
                                                f'{data}, seed {vae.seed}'),
                  os.path.join(outdir, f'{fig_name}.png'))
  return facts


RECONSTRUCTION_ROWS = ('mnist_ae_2d', 'mnist_ae_32', 'mnist_sparse_ae',
                       'mnist_sparse_dropout_ae', 'mnist_denoising_ae', 'mnist_conv_ae',
                       'mnist_rnn_ae', 'mnist_vae_2d')


def fig_reconstructions(models, outdir, count=12):
  """Figure 10a: the same test digits reconstructed by every kind of autoencoder."""
  ref = models['mnist_ae_2d']
  x = ref.exp.test_images[:count]
  rows, names = [x], ['input']
  for key in RECONSTRUCTION_ROWS:
    m = models[key]
    rows.append(latent.reconstruct(m.exp.model, m.params, x))
    names.append(m.label)
  plotting.save(plotting.image_rows_figure(rows, names,
                                           f'Test reconstructions, MNIST, seed {ref.seed}'),
                os.path.join(outdir, 'reconstructions.png'))
  return {'reconstructions': {'rows': list(names)}}


def psnr(a, b):
  """Peak signal-to-noise ratio (dB) per image, for images in [0, 1]."""
  mse = np.mean((np.asarray(a) - np.asarray(b)) ** 2, axis=(1, 2, 3))
  return 10 * np.log10(1.0 / np.maximum(mse, 1e-12))


def fig_denoising(models, outdir, count=12):
  """Figure 10b: noisy / denoised / clean, and the PSNR gain on the test set."""
  m = models['mnist_denoising_ae']
  cfg = m.exp.config.model
  clean = m.exp.test_images
  noisy = np.asarray(corrupt(jax.random.key(1000 + m.seed), clean, cfg.noise,
                             cfg.noise_level))
  denoised = latent.reconstruct(m.exp.model, m.params, noisy)
  before, after = psnr(noisy, clean), psnr(denoised, clean)
  plotting.save(plotting.image_rows_figure(
      [noisy[:count], denoised[:count], clean[:count]], ['noisy input', 'denoised', 'clean'],
      m.title(f'Denoising (Gaussian noise, std {cfg.noise_level})')),
      os.path.join(outdir, 'denoising.png'))
  return {'denoising': {'psnr_noisy_db': float(before.mean()),
                        'psnr_denoised_db': float(after.mean()),
                        'psnr_gain_db': float(after.mean() - before.mean())}}


ALL = (fig_latents, fig_walk, fig_posterior_cloud, fig_manifolds, fig_blend,
       fig_reconstructions, fig_denoising)

# name -> one line saying what it demonstrates (REPORT.md).
FIGURES = {
    'classic_ae_latent': 'Classic AE, 2-D codes of the MNIST test set: classes form separate, '
                         'uncentred regions with gaps (article fig. "classic autoencoder").',
    'classic_ae_walk': 'A straight walk from a 0 to a 1: the classic AE crosses other classes '
                       'and empty space; the VAE changes gradually.',
    'vae_rl_only_latent': 'VAE trained on reconstruction loss only: similar digits sit '
                          'together (continuous) but the space is uncentred with holes '
                          '(not complete).',
    'vae_rl_kl_latent': 'VAE with the KL term: codes centred on 0, mostly within [-1, 1] '
                        '(continuous and complete).',
    'posterior_cloud': 'Each input is a Gaussian cloud, not a point: samples of q(z|x) '
                       'overlap their neighbours.',
    'mnist_vae_manifold': 'MNIST VAE latent space and decoded 30x30 grids (linear over ±4 and '
                          'Gaussian quantiles): every grid point decodes to a digit.',
    'fashion_mnist_latent': 'Fashion-MNIST conv VAE: codes of the test set.',
    'fashion_mnist_manifold': 'Fashion-MNIST conv VAE: decoded grid of the latent space.',
    'fashion_mnist_dmax_latent': 'Fashion-MNIST conv VAE with dropout 0.5 + max-norm 2: codes.',
    'fashion_mnist_dmax_manifold': 'Fashion-MNIST conv VAE with dropout + max-norm: decoded grid.',
    'blend_mnist': 'Blending a 3 and a 7 in latent space: classic AE vs VAE.',
    'blend_fashion_mnist': 'Blending a T-shirt and a dress: classic AE vs VAE.',
    'reconstructions': 'The same test digits reconstructed by every kind of autoencoder the '
                       'article names.',
    'denoising': 'Denoising AE: noisy input, its reconstruction, the clean digit.',
}
