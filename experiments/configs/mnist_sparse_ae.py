r"""Sparse autoencoder: hidden layer and code as wide as the input (784), bottleneck made by an L1 penalty on the code.

The penalty is summed over the code and added to the summed-over-pixels
reconstruction loss, so 0.01 here matches Keras' 1e-5 on a per-pixel mean.
Runtime on a 2-core CPU: about 5 s per epoch.

  python -m vae_jax.main --config=experiments/configs/mnist_sparse_ae.py \
      --workdir=runs/mnist_sparse_ae
"""

from vae_jax.config import base_config


def get_config():
  c = base_config()
  c.model.kind = 'autoencoder'
  c.model.hidden_sizes = (784,)
  c.latent_dim = 784
  c.model.l1_activity = 0.01
  c.num_epochs = 50
  c.lock()
  return c
