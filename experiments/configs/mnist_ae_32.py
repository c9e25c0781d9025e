r"""Undercomplete MLP autoencoder with a wider code (32): the article's 'similar network' whose loss reaches ~0.09.

Runtime on a 2-core CPU: about 2.5 s per epoch.

  python -m vae_jax.main --config=experiments/configs/mnist_ae_32.py \
      --workdir=runs/mnist_ae_32
"""

from vae_jax.core.config import base_config

# What the seed study requires of this model on the test set before it draws
# a figure or a number from it (vae_jax/analysis/gates.py). The measured values are
# in the study's REPORT.md. Source: a fixed rule, beating the code-free model
# (gates.CODE_FREE['mnist']); the article's 0.09 is a claim the study judges
# (claims.py, 'wide_loss'), so it cannot also be the gate that admits the model.
QUALITY_GATES = ('recon_per_pixel <= 0.2626',)


def get_config():
  c = base_config()
  c.model.kind = 'autoencoder'
  c.model.mlp.hidden_sizes = (512,)
  c.latent_dim = 32
  c.num_epochs = 50
  c.lock()
  return c
