"""vae_jax: autoencoders and variational autoencoders in JAX/Flax (linen).

Modules are imported on use (``from vae_jax import models, train``) so that
``import vae_jax`` stays cheap; see README.md for the map of the library.
"""

__version__ = '0.1.0'
