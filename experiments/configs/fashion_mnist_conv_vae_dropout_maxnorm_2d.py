r"""The Fashion-MNIST conv VAE with the article's extra regularisation.

Dropout 0.5 after every hidden layer and a max-norm constraint of 2.0 on each
unit's incoming weights (projected after every Adam update).
Trained under the same protocol as fashion_mnist_conv_vae_2d, so that the
study's paired comparison of the two differs only in dropout + max-norm: 30
epochs, batch 128, Adam at a constant 3e-4 (the Keras example uses 1e-3; at
1e-3 the dropout noise made some seeds lose a code dimension or drift to a
worse optimum after their best epoch: docs/study_summary.json as of commit
0358ed8 holds those runs' test metrics and gates). Runtime and the test
metrics of the study's seeds: docs/study_summary.json
(models.fashion_mnist_conv_vae_dropout_maxnorm_2d) and docs/results/study.md.

  python -m vae_jax.main --config=experiments/configs/fashion_mnist_conv_vae_dropout_maxnorm_2d.py \
      --workdir=runs/fashion_mnist_conv_vae_dropout_maxnorm_2d
"""

from vae_jax.core.config import base_config

# What the seed study requires of this model on the test set before it draws
# a figure or a number from it (vae_jax/analysis/gates.py). The measured values are
# in the study's REPORT.md. Sources, both fixed rules and the same for the plain
# conv VAE it is compared with: the ELBO must beat the code-free model's
# (gates.CODE_FREE['fashion_mnist']), and a 2-D code must use both dimensions.
# (The earlier -330 was set after seeing this model's seeds.)
QUALITY_GATES = ('elbo >= -384.5', 'active_units >= 2')


def get_config():
  c = base_config()
  c.data.name = 'fashion_mnist'
  c.model.kind = 'vae'
  c.model.family = 'conv'
  c.model.conv.features = (32, 64)
  c.model.conv.dense_size = 16
  c.model.dropout_rate = 0.5
  c.model.max_norm = 2.0
  c.latent_dim = 2
  c.num_epochs = 30
  c.lr_schedule = 'constant'
  c.learning_rate = 3e-4
  c.lock()
  return c
