"""Generated blocks in README.md and docs/: the one marker replacement and the one source rule.

A generated block sits between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``
and is rewritten whole from a source file that a command wrote; the table of
blocks is ``vae_jax/publish.py``. A source that is missing, or that a
``--quick`` smoke run wrote, stops publishing with one line naming the command
that writes it.
"""

import json
import os
import shutil

from vae_jax.infra import errors, workdir


class PublishError(errors.UserError, RuntimeError):
  """A block that cannot be published as asked; the message names the fix."""


def markers(name):
  return f'<!-- {name}:begin -->', f'<!-- {name}:end -->'


def replace_block(text, name, body):
  """``text`` with the block ``name`` holding ``body`` (one newline inside each marker).

  Raises PublishError when ``text`` lacks either marker or holds the block twice.
  """
  begin, end = markers(name)
  if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
    raise PublishError(f'expected one {begin} ... {end} block, found {text.count(begin)} '
                       f'begin and {text.count(end)} end markers: add the pair where the '
                       'block belongs')
  start, stop = text.index(begin), text.index(end) + len(end)
  return f'{text[:start]}{begin}\n{body.strip(chr(10))}\n{end}{text[stop:]}'


def read_source(path, command):
  """The JSON at ``path`` (a directory: its path), refusing a missing one or a --quick run.

  ``command`` is the command that writes the source; the error line names it.
  """
  if not os.path.exists(path):
    raise PublishError(f'{path} does not exist: write it first with `{command}`')
  if os.path.isdir(path):
    return path
  with open(path) as f:
    data = json.load(f)
  if isinstance(data, dict) and data.get('quick'):
    raise PublishError(f'{path} is a --quick smoke run: its numbers mean nothing; '
                       f'write a full run with `{command}`')
  return data


def copy_source(src, dest, command):
  """Copies the source ``src`` to ``dest`` (where the block table reads it), refused as above."""
  read_source(src, command)
  if os.path.abspath(src) != os.path.abspath(dest):
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    shutil.copy(src, dest)
  return dest


def write_source(path, data, sort_keys=False):
  """Writes ``data`` as the JSON source at ``path``, atomically (a crash leaves the old file
  or none), creating its folder; prints and returns the path."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  workdir.atomic_write_text(path, json.dumps(data, indent=2, sort_keys=sort_keys) + '\n')
  print(f'wrote {path}')
  return path
