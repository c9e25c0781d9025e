r"""Denoising autoencoder: Gaussian noise (std 0.5, clipped to [0, 1]) on the input, clean target.

Runtime on a 2-core CPU: about 2.5 s per epoch.

  python -m vae_jax.main --config=experiments/configs/mnist_denoising_ae.py \
      --workdir=runs/mnist_denoising_ae
"""

from vae_jax.config import base_config


def get_config():
  c = base_config()
  c.model.kind = 'autoencoder'
  c.model.hidden_sizes = (512,)
  c.latent_dim = 32
  c.model.noise = 'gaussian'
  c.model.noise_level = 0.5
  c.num_epochs = 50
  c.lock()
  return c
