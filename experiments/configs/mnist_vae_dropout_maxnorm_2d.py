r"""The MNIST MLP VAE (784-512-2) with the article's dropout 0.5 and max-norm 2.0.

Runtime on a 2-core CPU: about 2.5 s per epoch.

  python -m vae_jax.main --config=experiments/configs/mnist_vae_dropout_maxnorm_2d.py \
      --workdir=runs/mnist_vae_dropout_maxnorm_2d
"""

from vae_jax.config import base_config


def get_config():
  c = base_config()
  c.model.kind = 'vae'
  c.model.hidden_sizes = (512,)
  c.latent_dim = 2
  c.model.dropout_rate = 0.5
  c.model.max_norm = 2.0
  c.num_epochs = 50
  c.lock()
  return c
