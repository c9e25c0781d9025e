r"""The Fashion-MNIST conv VAE with the article's extra regularisation.

Dropout 0.5 after every hidden layer and a max-norm constraint of 2.0 on each
unit's incoming weights (projected after every Adam update).
Trained like fashion_mnist_conv_vae_2d (the Keras example: 30 epochs, batch
128, Adam at a constant rate) but at 3e-4 instead of 1e-3: at 1e-3 the
dropout noise made some seeds lose a code dimension or drift to a worse
optimum after their best epoch (docs/study_summary.json as of commit
0358ed8 holds those runs' test metrics and gates), so this model gets the
highest rate tried at which it trains stably. Runtime and the test metrics
of the study's 3 seeds: docs/study_summary.json
(models.fashion_mnist_conv_vae_dropout_maxnorm_2d) and docs/results/study.md.

  python -m vae_jax.main --config=experiments/configs/fashion_mnist_conv_vae_dropout_maxnorm_2d.py \
      --workdir=runs/fashion_mnist_conv_vae_dropout_maxnorm_2d
"""

from vae_jax.core.config import base_config

# What the seed study requires of this model on the test set before it draws
# a figure or a number from it (vae_jax/study/gates.py). The measured values are in
# the study's REPORT.md. The gates were set from converged runs
# (results/gpu/conv_protocols.jsonl, 3 seeds each) and not moved since:
# dropout 0.5 after every layer leaves the ELBO tens of nats below the plain
# conv VAE's and varying by seed, so the ELBO gate is a floor below that
# spread; active_units rejects codes that collapse onto a line (the failure
# of the 2-epoch model, of 15 cosine-decayed epochs, and of one CPU seed at a
# constant 1e-3).
QUALITY_GATES = ('elbo >= -330', 'active_units >= 2')


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
