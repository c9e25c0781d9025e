"""Command-line flags: one argparse parser type for every ``vae-jax`` command.

argparse (stdlib) rather than absl: no global registry, so two commands that
both define ``--outdir`` can live in one process, and subcommands come free.
:class:`Parser` keeps the project's rules: ``--help`` ends with an example,
a bad flag is one ``error:`` line and exit 2 (no usage dump), and booleans
read like absl's (``--quick``, ``--noquick``, ``--quick=false``), so every
flag name the commands had keeps working.
"""

import argparse

from vae_jax.infra import errors

_TRUE, _FALSE = ('true', 't', '1', 'yes'), ('false', 'f', '0', 'no')


def boolean(text):
  """``true``/``false`` (or 1/0, yes/no) as a bool; argparse reports anything else."""
  if text.lower() in _TRUE + _FALSE:
    return text.lower() in _TRUE
  raise argparse.ArgumentTypeError(f'{text!r} is not a bool: use true or false')


def comma_list(text):
  """``'0,1,2'`` -> ``['0', '1', '2']``, as absl's list flags split."""
  return [t.strip() for t in text.split(',') if t.strip()]


class Parser(argparse.ArgumentParser):
  """argparse with one-line errors, an example under ``--help`` and absl-style booleans."""

  def __init__(self, prog=None, description=None, examples=(), **kwargs):
    # Subcommands' parsers (add_subparsers().add_parser) are built with keywords only.
    examples = [examples] if isinstance(examples, str) else list(examples)
    epilog = kwargs.pop('epilog', None)
    if examples:
      epilog = (epilog + '\n\n' if epilog else '') + (
          'example:\n' if len(examples) == 1 else 'examples:\n') + ''.join(
              f'  {e}\n' for e in examples)
    super().__init__(prog=prog, description=description, epilog=epilog,
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     allow_abbrev=False, **kwargs)

  def error(self, message):
    errors.exit_with(f'{message} (see {self.prog} --help)')

  def add_bool(self, name, default, help):  # pylint: disable=redefined-builtin
    """``--name``, ``--name=true|false`` and ``--noname``."""
    self.add_argument(f'--{name}', nargs='?', const=True, default=default, type=boolean,
                      metavar='true|false', help=f'{help} (--no{name}: off)')
    self.add_argument(f'--no{name}', dest=name, action='store_false', help=argparse.SUPPRESS)
