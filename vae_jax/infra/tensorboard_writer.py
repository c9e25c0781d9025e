"""TensorBoard event files without TensorFlow.

A minimal metric writer with clu's ``MetricWriter`` method names
(``write_scalars``, ``write_images``, ``flush``, ``close``),
built on the ``tensorboard`` package's own event-file writer. clu's writers
import TensorFlow, and TensorFlow loaded beside XLA in one long process crashed
a seed study inside the XLA compiler; this keeps the training process free of
TensorFlow (and saves seconds of import per run).
"""

import io
import sys
import time
import types

import numpy as np

# TensorBoard's compat layer imports TensorFlow for file I/O unless the module
# ``tensorboard.compat.notf`` exists (its own "no_tensorflow" build switch);
# then it uses its pure-Python stub, which is all an event file needs.
sys.modules.setdefault('tensorboard.compat.notf', types.ModuleType('tensorboard.compat.notf'))

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter


def _png(image):
  """``[H, W, C]`` floats in [0, 1] (or uint8) -> PNG bytes."""
  from PIL import Image
  array = np.asarray(image)
  if array.dtype != np.uint8:
    array = (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)
  if array.ndim == 3 and array.shape[-1] == 1:
    array = array[..., 0]
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format='PNG')
  return buffer.getvalue(), array.shape[0], array.shape[1]


class SummaryWriter:
  """Writes scalars, images and texts as TensorBoard events under ``logdir``."""

  def __init__(self, logdir):
    self._writer = EventFileWriter(logdir)

  def _add(self, step, values):
    event = event_pb2.Event(wall_time=time.time(), step=int(step),
                            summary=summary_pb2.Summary(value=values))
    self._writer.add_event(event)

  def write_scalars(self, step, scalars):
    self._add(step, [summary_pb2.Summary.Value(tag=k, simple_value=float(v))
                     for k, v in scalars.items()])

  def write_images(self, step, images):
    """``images``: name -> ``[N, H, W, C]`` or ``[H, W, C]``; the first image is written."""
    values = []
    for name, batch in images.items():
      batch = np.asarray(batch)
      image = batch[0] if batch.ndim == 4 else batch
      encoded, height, width = _png(image)
      channels = 1 if image.ndim == 2 or image.shape[-1] == 1 else image.shape[-1]
      values.append(summary_pb2.Summary.Value(tag=name, image=summary_pb2.Summary.Image(
          height=height, width=width, colorspace=channels, encoded_image_string=encoded)))
    self._add(step, values)

  def flush(self):
    self._writer.flush()

  def close(self):
    self._writer.close()
