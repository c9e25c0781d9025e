r"""Sparse autoencoder, dropout variant: layers as wide as the input, dropout 0.5 as the bottleneck.

Runtime on a 2-core CPU: about 5 s per epoch.

  python -m vae_jax.main --config=experiments/configs/mnist_sparse_dropout_ae.py \
      --workdir=runs/mnist_sparse_dropout_ae
"""

from vae_jax.config import base_config


def get_config():
  c = base_config()
  c.model.kind = 'autoencoder'
  c.model.hidden_sizes = (784,)
  c.latent_dim = 784
  c.model.dropout_rate = 0.5
  c.num_epochs = 50
  c.lock()
  return c
