"""The study's judgement: which models, which claims, which verdicts.

Owns the seed study (``catalog``: the trained models; ``claims``: the primary
and secondary families; ``power``: the declared seed plan; ``run``; ``figures``; ``report``;
``publish``; ``statistics_doc``), the latent-size x beta sweep (``sweep*``) and
the likelihood headline (``likelihood``).

May import: ``vae_jax.analysis``, ``vae_jax.core``, ``vae_jax.infra``.
"""
