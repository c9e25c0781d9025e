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

