r"""Convolutional autoencoder (strided Conv encoder, ConvTranspose decoder), 16-D code.

Runtime on a 2-core CPU: about a minute per epoch (XLA CPU convolutions).

  python -m vae_jax.main --config=experiments/configs/mnist_conv_ae.py \
      --workdir=runs/mnist_conv_ae
"""

from vae_jax.config import base_config


def get_config():
  c = base_config()
  c.model.kind = 'autoencoder'
  c.model.family = 'conv'
  c.model.conv_features = (32, 64)
  c.model.dense_size = 64
  c.latent_dim = 16
  c.num_epochs = 10
  c.lock()
  return c
