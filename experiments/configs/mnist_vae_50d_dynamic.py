r"""The likelihood headline: a one-stochastic-layer VAE on dynamically binarised MNIST.

Burda et al. (2015), Table 1, same protocol (one stochastic layer of 50 units,
dynamic binarisation, IWAE-5000 test estimate): VAE 86.76 nats, IWAE k=50
84.78 nats, after 3^8 passes over the data. This config trains the VAE
(``--config.iwae_samples=50`` trains the IWAE bound instead) with two
deterministic layers of 512 units.

  python -m vae_jax.main --config=experiments/configs/mnist_vae_50d_dynamic.py \
      --workdir=runs/mnist_vae_50d_dynamic
  python -m vae_jax.evaluate --workdir=runs/mnist_vae_50d_dynamic --iwae_samples=5000

Runtime on a 2-core CPU: about 10 s per epoch; 100 epochs ~ 17 minutes.
"""

from vae_jax.config import base_config


def get_config():
  c = base_config()
  c.model.kind = 'vae'
  c.model.hidden_sizes = (512, 512)
  c.latent_dim = 50
  c.data.binarize = 'dynamic'
  c.num_epochs = 100
  c.batch_size = 100
  c.learning_rate = 1e-3
  c.lock()
  return c
