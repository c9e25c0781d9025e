r"""Recurrent autoencoder: an LSTM reads the 28 rows, another emits them; 32-D code.

Runtime on a 2-core CPU: about 80 s per epoch.

  python -m vae_jax.main --config=experiments/configs/mnist_rnn_ae.py \
      --workdir=runs/mnist_rnn_ae
"""

from vae_jax.config import base_config


def get_config():
  c = base_config()
  c.model.kind = 'autoencoder'
  c.model.family = 'rnn'
  c.model.rnn_cell = 'lstm'
  c.model.rnn_size = 128
  c.latent_dim = 32
  c.num_epochs = 10
  c.lock()
  return c
