"""The study's judgement: which models, which claims, which verdicts.

Owns the seed study (``catalog``: the trained models; ``claims``; ``gates``;
``verdicts``; ``run``; ``figures``; ``report``; ``publish``), the latent-size
x beta sweep (``sweep*``) and the likelihood headline (``likelihood``).

May import: ``vae_jax.analysis``, ``vae_jax.core``, ``vae_jax.infra``.
"""
