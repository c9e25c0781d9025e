r"""The Fashion-MNIST conv VAE with the article's extra regularisation.

Dropout 0.5 after every hidden layer and a max-norm constraint of 2.0 on each
unit's incoming weights (projected after every Adam update).
Runtime on a 2-core CPU: about a minute per epoch.
Expected test metrics: the seed study trains this model for 2 epochs; its
numbers are in docs/study_summary.json (models.fmnist_conv_vae*).

  python -m vae_jax.main --config=experiments/configs/fashion_mnist_conv_vae_dropout_maxnorm_2d.py \
      --workdir=runs/fashion_mnist_conv_vae_dropout_maxnorm_2d
"""

from vae_jax.config import base_config


def get_config():
  c = base_config()
  c.data.name = 'fashion_mnist'
  c.model.kind = 'vae'
  c.model.family = 'conv'
  c.model.conv_features = (32, 64)
  c.model.dense_size = 16
  c.model.dropout_rate = 0.5
  c.model.max_norm = 2.0
  c.latent_dim = 2
  c.num_epochs = 30
  c.lock()
  return c
