"""The model and training core.

Owns configs (``config``: the fields, loading a file, ``--config.*`` overrides,
upgrading an old config.json), data sets (``data``), the models (``models``,
``conv_matmul``, ``hierarchical``), per-example losses (``losses``), the
training objective (``objective``), the optimiser (``optim``), building and
restoring a run (``experiment``), the train step and loop (``train``), the
likelihood evaluation (``evaluate``), batched encode/decode (``latent``) and
the posterior diagnostics logged while training (``diagnostics``).

May import: ``vae_jax.infra``.
"""
