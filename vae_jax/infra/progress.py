"""Progress of a long loop: a tqdm bar on a terminal, plain lines in a log.

Off a terminal (a pipe, a file, a job scheduler's log) a bar writes a
carriage-return update many times a second, which a log shows as one
unreadable line or thousands of them. There :meth:`Progress.log` prints one
plain line instead, with the elapsed time and an ETA, at the points the caller
picks (an epoch end, an evaluation chunk).
"""

import sys
import time


def _hms(seconds):
  if seconds is None:
    return '?'
  seconds = int(round(seconds))
  return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


class Progress:
  """Counts ``done`` of ``total`` units: a bar on a terminal, :meth:`log` lines elsewhere."""

  def __init__(self, desc, total, done=0, unit='img', enabled=True, stream=None):
    self.desc, self.total, self.done = desc, total, done
    self.stream = sys.stderr if stream is None else stream
    self._first, self._start, self._last_line = done, time.perf_counter(), None
    self.bar = None
    tty = self.stream.isatty()
    self.plain = enabled and not tty
    if enabled and tty:
      from tqdm import tqdm
      self.bar = tqdm(total=total, initial=done, unit=unit, unit_scale=True,
                      dynamic_ncols=True, desc=desc, file=self.stream)

  def update(self, n, **postfix):
    self.done += n
    if self.bar is not None:
      self.bar.update(n)
      self.bar.set_postfix(postfix, refresh=False)

  def eta(self):
    """Seconds left at the rate of this process so far (None before any progress)."""
    elapsed = time.perf_counter() - self._start
    rate = (self.done - self._first) / elapsed if elapsed > 0 else 0
    return (self.total - self.done) / rate if rate > 0 else None

  def log(self, text, min_interval=0.0):
    """Off a terminal, prints ``desc: text; H:MM:SS elapsed, ETA H:MM:SS``.

    Nothing if the last line is less than ``min_interval`` seconds old.
    """
    now = time.perf_counter()
    if not self.plain or (self._last_line is not None
                          and now - self._last_line < min_interval):
      return
    self._last_line = now
    print(f'{self.desc}: {text}; {_hms(now - self._start)} elapsed, ETA {_hms(self.eta())}',
          file=self.stream, flush=True)

  def close(self):
    if self.bar is not None:
      self.bar.close()
