r"""Recurrent autoencoder: an LSTM reads the 28 rows, another emits them; 32-D code.

Runtime on a 2-core CPU: about 80 s per epoch.

  python -m vae_jax.main --config=experiments/configs/mnist_rnn_ae.py \
      --workdir=runs/mnist_rnn_ae
"""

from vae_jax.core.config import base_config

# What the seed study requires of this model on the test set before it draws
# a figure or a number from it (vae_jax/analysis/gates.py; per data set where the study
# trains it on both). The measured values are in the study's REPORT.md.
QUALITY_GATES = ('recon_per_pixel <= 0.15',)


def get_config():
  c = base_config()
  c.model.kind = 'autoencoder'
  c.model.family = 'rnn'
  c.model.rnn.cell = 'lstm'
  c.model.rnn.size = 128
  c.latent_dim = 32
  c.num_epochs = 10
  c.lock()
  return c
