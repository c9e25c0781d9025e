"""Command-line flags: one argparse parser type for every ``vae-jax`` command.

argparse (stdlib) rather than absl: no global registry, so two commands that
both define ``--outdir`` can live in one process, and subcommands come free.
:class:`Parser` keeps the project's rules: ``--help`` ends with an example,
a bad flag is one ``error:`` line and exit 2 (no usage dump), and booleans
read like absl's (``--quick``, ``--noquick``, ``--quick=false``), so every
flag name the commands had keeps working.
"""

import argparse
import logging
import sys

from vae_jax.infra import errors

# What absl's boolean flags (and so ml_collections' config_flags) accept.
_TRUE, _FALSE = ('true', 't', '1'), ('false', 'f', '0')


def boolean(text):
  """``true``/``false`` (any case, or t/f, 1/0) as a bool; ValueError otherwise."""
  if text.strip().lower() in _TRUE + _FALSE:
    return text.strip().lower() in _TRUE
  raise ValueError(f'{text!r} is not a bool: use true or false')


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
    self._bools = set()

  def error(self, message):
    errors.exit_with(f'{message} (see {self.prog} --help)')

  def add_bool(self, name, default, help):  # pylint: disable=redefined-builtin
    """``--name``, ``--noname`` and ``--name=true|false`` (never a value after a space)."""
    self._bools.add(name)
    self.add_argument(f'--{name}', action='store_true', default=default,
                      help=f'{help} (--no{name}: off)')
    self.add_argument(f'--no{name}', dest=name, action='store_false', help=argparse.SUPPRESS)

  def parse_known_args(self, args=None, namespace=None):
    args = sys.argv[1:] if args is None else list(args)
    return super().parse_known_args([self._bool_flag(a) for a in args], namespace)

  def _bool_flag(self, arg):
    """``--name=false`` -> ``--noname``: argparse's store_true takes no value."""
    name, sep, value = arg[2:].partition('=')
    if not (arg.startswith('--') and sep and name in self._bools):
      return arg
    try:
      return f'--{name}' if boolean(value) else f'--no{name}'
    except ValueError as e:
      self.error(f'argument --{name}: {e}')

  def add_verbosity(self):
    """``--verbosity``, as absl had it: -1 warnings (default), 0 info, 1 debug."""
    self.add_argument('--verbosity', type=int, default=-1, metavar='N',
                      help='log level: -1 warnings (default), 0 info (e.g. "resuming ... '
                           'from step S"), 1 debug')


def configure_logging(verbosity):
  """Log lines on stderr at ``--verbosity`` (``W message``; what absl's handler printed)."""
  level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
  logging.basicConfig(level=level, format='%(levelname).1s %(message)s', force=True)
