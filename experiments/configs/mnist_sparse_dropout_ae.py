r"""Sparse autoencoder, dropout variant: layers as wide as the input, dropout 0.5 as the bottleneck.

Runtime on a 2-core CPU: about 5 s per epoch.

  python -m vae_jax.main --config=experiments/configs/mnist_sparse_dropout_ae.py \
      --workdir=runs/mnist_sparse_dropout_ae
"""

from vae_jax.core.config import base_config

# What the seed study requires of this model on the test set before it draws
# a figure or a number from it (vae_jax/analysis/gates.py; per data set where the study
# trains it on both). The measured values are in the study's REPORT.md.
QUALITY_GATES = ('recon_per_pixel <= 0.12',)


def get_config():
  c = base_config()
  c.model.kind = 'autoencoder'
  c.model.mlp.hidden_sizes = (784,)
  c.latent_dim = 784
  c.model.dropout_rate = 0.5
  c.num_epochs = 50
  c.lock()
  return c
