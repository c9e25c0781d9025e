"""Ctrl-C and SIGTERM ask a run to stop at its next chunk boundary, with a checkpoint.

Inside :func:`stop_on_signals` the first SIGINT or SIGTERM only sets a flag
(:meth:`Stop.requested`); the training and evaluation loops read it on the host
between chunks, save what they have, and raise :class:`Interrupted`, which the
command line (``errors.user_errors``) turns into its one line and exit status
130 (SIGINT) or 143 (SIGTERM). A second signal ends the process at once, still
without a traceback. Outside the context the previous handlers are back, so
notebooks and pytest keep their own Ctrl-C.

The signals are read by a small thread through ``signal.set_wakeup_fd``: the
C-level handler writes the signal number into a pipe at once, even while the
main thread sits in the XLA compiler or waits for a device, where a Python
handler would run only when it returns. That is what lets the second signal
stop a run at once.

Several processes (``jax.distributed``): they must all save the same step, so
the stop is agreed through JAX's preemption service
(``multihost_utils.reached_preemption_sync_point``). JAX owns SIGTERM there (its
C++ notifier starts the agreement, and Python cannot restore that handler once
replaced), so only SIGINT is caught, and it is passed on as a SIGTERM to this
process.
"""

import contextlib
import functools
import os
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
  """A run stopped on a signal after saving its state; ``str(e)`` is the line to print.

  A ``BaseException``, like ``KeyboardInterrupt``: a caller that loops over
  runs with ``except Exception`` lets it through to the top-level handler.
  """

  def __init__(self, message, signum):
    super().__init__(message)
    self.signum = signum
    self.exit_code = 128 + signum   # 130 for SIGINT, 143 for SIGTERM, as a shell reports


class Stop:
  """Whether to stop, read on the host between chunks (never inside a jitted chunk)."""

  def __init__(self, sync=False):
    self.signum = None       # the first signal received by this process
    self._sync = sync
    self._boundaries = 0

  def requested(self):
    """True when the loop should save and stop here.

    With several processes, every process calls this at every chunk boundary
    in the same order; it is True on all of them at the same call.
    """
    if not self._sync:
      return self.signum is not None
    from jax.experimental import multihost_utils
    self._boundaries += 1  # the service counts calls: one per boundary, from 1
    return multihost_utils.reached_preemption_sync_point(self._boundaries)

  def interrupted(self, message):
    """The exception to raise once the state is saved (SIGTERM when another process was told)."""
    return Interrupted(message, self.signum or signal.SIGTERM)

  def raise_if_requested(self, message):
    if self.requested():
      raise self.interrupted(message)


_active = []  # the Stop of the enclosing stop_on_signals(), if any


def _preemption_service():
  """True when jax.distributed runs a preemption sync manager (it then owns SIGTERM)."""
  if 'jax' not in sys.modules:
    return False
  from jax._src import distributed  # no public accessor in jax 0.10
  return getattr(distributed.global_state, 'preemption_sync_manager', None) is not None


def _listen(read_fd, stop, forward_to_jax):
  received = 0
  while True:
    data = os.read(read_fd, 1)
    if not data or data[0] == 0:  # the context ended
      return
    signum = data[0]
    if signum not in SIGNALS:  # another signal with a Python handler: not ours
      continue
    received += 1
    if received == 1:
      if stop.signum is None:  # usually set already by the Python handler
        stop.signum = signum
      if forward_to_jax:
        os.kill(os.getpid(), signal.SIGTERM)  # JAX's notifier tells the other processes
      continue
    sys.stderr.write(f'interrupted again ({signal.Signals(signum).name}): stopped at once '
                     'without saving; rerun the same command to resume from the last '
                     'checkpoint\n')
    sys.stderr.flush()
    os._exit(128 + signum)


def _note(stop, signum, frame):
  """The Python handler: sets the flag in the main thread, at its next bytecode.

  The listener thread sees the same signal through the wakeup fd and counts it;
  setting the flag here too makes the stop point independent of when that
  thread gets scheduled (on a loaded machine, possibly several chunks later).
  """
  del frame
  if stop.signum is None:
    stop.signum = signum


@contextlib.contextmanager
def stop_on_signals():
  """Within: SIGINT/SIGTERM set the yielded :class:`Stop`; a second one exits at once.

  Nested uses share the outer :class:`Stop`. Outside the main thread, where
  Python cannot handle signals, the Stop never fires.
  """
  if _active:
    yield _active[-1]
    return
  if threading.current_thread() is not threading.main_thread():
    yield Stop()
    return
  sync = _preemption_service()
  stop = Stop(sync=sync)
  # A handler installed outside Python (getsignal() is None) could not be put back.
  caught = [s for s in ((signal.SIGINT,) if sync else SIGNALS)
            if signal.getsignal(s) is not None]
  read_fd, write_fd = os.pipe()
  os.set_blocking(write_fd, False)  # set_wakeup_fd requires it
  listener = threading.Thread(target=_listen, args=(read_fd, stop, sync),
                              name='vae_jax-signals', daemon=True)
  listener.start()
  previous, previous_fd = {}, None
  _active.append(stop)
  try:
    for s in caught:
      previous[s] = signal.signal(s, functools.partial(_note, stop))
      # Without SA_RESTART a signal landing on an XLA or orbax thread could
      # fail its read or write with EINTR.
      signal.siginterrupt(s, False)
    previous_fd = signal.set_wakeup_fd(write_fd)
    yield stop
  finally:
    _active.pop()
    for s, handler in previous.items():
      signal.signal(s, handler)
    if previous_fd is not None:
      signal.set_wakeup_fd(previous_fd)
    os.write(write_fd, b'\0')  # ends the listener
    listener.join()
    os.close(read_fd)
    os.close(write_fd)
