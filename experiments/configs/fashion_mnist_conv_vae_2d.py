r"""The article's Fashion-MNIST VAE (Keras 'deconv' example), 2-D code.

Encoder: Conv 32 and 64 (3x3, stride 2, ReLU), Dense 16; decoder: Dense 7*7*64,
ConvTranspose 64 and 32 (stride 2), ConvTranspose 1. Batch 128, Adam, 30 epochs.
Runtime on a 2-core CPU: about a minute per epoch (XLA CPU convolutions).
Expected test metrics: the seed study trains this model for 2 epochs; its
numbers are in docs/study_summary.json (models.fmnist_conv_vae*).

  python -m vae_jax.main --config=experiments/configs/fashion_mnist_conv_vae_2d.py \
      --workdir=runs/fashion_mnist_conv_vae_2d
"""

from vae_jax.config import base_config


def get_config():
  c = base_config()
  c.data.name = 'fashion_mnist'
  c.model.kind = 'vae'
  c.model.family = 'conv'
  c.model.conv_features = (32, 64)
  c.model.dense_size = 16
  c.latent_dim = 2
  c.num_epochs = 30
  c.lock()
  return c
