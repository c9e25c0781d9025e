"""User errors end a command with one line and exit status 2, never a traceback.

A *user* error is one the user can fix (a config value, a path, a file, a
full disk, a workdir in use); it prints ``error: <what> ... <fix>``. An
interrupted run prints its one line (``interrupted at step S; ...``) and exits
130 (SIGINT) or 143 (SIGTERM). Anything else is a bug and keeps its traceback.
"""

import contextlib
import signal
import sys

from vae_jax.infra.interrupts import Interrupted

EXIT_USER_ERROR = 2
EXIT_NON_FINITE = 3


class UserError(Exception):
  """An error the user can fix; its message names the problem and the fix.

  Every layer's own error types (``ConfigError``, ``DataError``,
  ``WorkdirError``, ...) derive from it, so this module catches them all
  without importing the layers above it.
  """


class NonFiniteError(FloatingPointError):
  """Training produced NaN/inf; the message names the step, metric and last checkpoint."""


def exit_with(message, code=EXIT_USER_ERROR):
  print(f'error: {message}', file=sys.stderr)
  sys.exit(code)


@contextlib.contextmanager
def user_errors():
  """Turns a :class:`UserError` into one line + exit 2.

  A non-finite loss ends with one line and exit 3: not the user's typo, but
  not a crash of the program either. :class:`interrupts.Interrupted` (the
  run saved its state) prints its line and exits 130 or 143; a Ctrl-C outside
  a run (which takes the signals over) prints one line too.
  """
  try:
    yield
  except UserError as e:
    exit_with(str(e))
  except NonFiniteError as e:
    exit_with(str(e), EXIT_NON_FINITE)
  except Interrupted as e:
    print(str(e), file=sys.stderr)
    sys.exit(e.exit_code)
  except KeyboardInterrupt:
    print('interrupted; rerun the same command to resume from what was saved',
          file=sys.stderr)
    sys.exit(128 + signal.SIGINT)


def run_absl_app(main, argv):
  """``absl.app.run`` with flag-parsing errors shortened to one line.

  absl prints the full usage text after a bad flag (e.g. an unknown
  ``--config.field``); a user only needs the line that says what was wrong.
  """
  from absl import app, flags, logging

  def parse(args):
    try:
      rest = flags.FLAGS(args)
    except flags.Error as e:
      lines = [l.strip() for l in str(e).splitlines() if l.strip()]
      if len(lines) > 1 and lines[0].endswith(':'):
        # A config file whose get_config() raised: the message holds a
        # traceback; its last line says what went wrong.
        lines[0] = f'{lines[0]} {lines[-1]}'
      exit_with(f'{lines[0] if lines else type(e).__name__} (see --help for the flags)')
    except SyntaxError as e:  # ml_collections imports a --config file while parsing
      exit_with(f'cannot load config file {e.filename}: {e.msg} at line {e.lineno}: '
                'fix the file')
    except (KeyError, AttributeError) as e:
      # ml_collections raises these for a --config.<field> the config lacks.
      field = str(e).strip('"\'')
      given = [a for a in args if a.startswith('--config.') and field in a]
      exit_with(f'unknown config field {field!r}'
                f'{f" in {given[0]}" if given else ""}: see the fields (with a comment '
                'each) in vae_jax/core/config.py and the --config file')
    if not flags.FLAGS['verbosity'].present:
      logging.set_verbosity(logging.WARNING)  # orbax logs every file it writes at INFO
    return rest

  app.run(main, argv=argv, flags_parser=parse)
