r"""Convolutional autoencoder (strided Conv encoder, ConvTranspose decoder), 16-D code.

Runtime on a 2-core CPU: about a minute per epoch (XLA CPU convolutions).

  python -m vae_jax.main --config=experiments/configs/mnist_conv_ae.py \
      --workdir=runs/mnist_conv_ae
"""

from vae_jax.core.config import base_config

# What the seed study requires of this model on the test set before it draws
# a figure or a number from it (vae_jax/analysis/gates.py; per data set where the study
# trains it on both). The measured values are in the study's REPORT.md.
QUALITY_GATES = ('recon_per_pixel <= 0.12',)


def get_config():
  c = base_config()
  c.model.kind = 'autoencoder'
  c.model.family = 'conv'
  c.model.conv.features = (32, 64)
  c.model.conv.dense_size = 64
  c.latent_dim = 16
  c.num_epochs = 10
  c.lock()
  return c
