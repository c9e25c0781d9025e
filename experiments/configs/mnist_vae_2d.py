r"""The article's MNIST VAE (Keras example): MLP 784-512-2, batch 128, Adam, 50 epochs.

  python -m vae_jax.main --config=experiments/configs/mnist_vae_2d.py \
      --workdir=runs/mnist_vae_2d

Runtime on a 2-core CPU: RUNTIME. Expected test metrics (nats per image):
EXPECTED.
"""

from vae_jax.config import base_config


def get_config():
  c = base_config()
  c.model.kind = 'vae'
  c.model.family = 'mlp'
  c.model.hidden_sizes = (512,)
  c.latent_dim = 2
  c.kl_weight = 1.0
  c.num_epochs = 50
  c.lock()
  return c
