"""pycaffe's ``caffe.Classifier`` (python/caffe/classifier.py): a TEST-phase Net that scales images to
``image_dims``, takes the centre crop or the 10 oversampled crops of the net's input size, preprocesses
them with a Transformer (HWC -> CHW, then channel swap, raw scale, mean, input scale) and returns the
class probabilities of the net's first output, averaged over the 10 crops when oversampling.
"""
import numpy as np

from . import io as caffe_io
from .net import Net, TEST


def input_transformer(net, mean, input_scale, raw_scale, channel_swap):
    """The Transformer of the net's first input as pycaffe's Classifier and Detector configure it:
    HWC -> CHW, then the options given (None: not set)."""
    in_ = net.inputs[0]
    tf = caffe_io.Transformer({in_: net.blobs[in_].data.shape})
    tf.set_transpose(in_, (2, 0, 1))
    if mean is not None:
        tf.set_mean(in_, mean)
    if input_scale is not None:
        tf.set_input_scale(in_, input_scale)
    if raw_scale is not None:
        tf.set_raw_scale(in_, raw_scale)
    if channel_swap is not None:
        tf.set_channel_swap(in_, channel_swap)
    return tf


class Classifier(Net):
    def __init__(self, model_file, pretrained_file, image_dims=None, mean=None, input_scale=None,
                 raw_scale=None, channel_swap=None):
        super().__init__(model_file, TEST, weights=pretrained_file)
        self._configure(image_dims, mean, input_scale, raw_scale, channel_swap)

    def _configure(self, image_dims, mean, input_scale, raw_scale, channel_swap):
        """Set up the Transformer and crop/image sizes for the current input blob shape."""
        in_ = self.inputs[0]
        self.transformer = input_transformer(self, mean, input_scale, raw_scale, channel_swap)
        self.crop_dims = np.array(self.blobs[in_].data.shape[2:])
        if image_dims is None or len(image_dims) == 0:
            image_dims = self.crop_dims
        self.image_dims = image_dims

    def predict(self, inputs, oversample=True):
        """N x C class probabilities for a list of H x W x K images (floats, as caffe.io.load_image)."""
        inputs = list(inputs)
        h, w = int(self.image_dims[0]), int(self.image_dims[1])
        scaled = np.zeros((len(inputs), h, w, inputs[0].shape[2]), dtype=np.float32)
        for i, im in enumerate(inputs):
            scaled[i] = caffe_io.resize_image(im, (h, w))
        if oversample:
            crops = caffe_io.oversample(scaled, self.crop_dims)
        else:
            center = np.array([h, w]) / 2.0
            lo = (center - self.crop_dims / 2.0).astype(int)
            hi = (center + self.crop_dims / 2.0).astype(int)
            crops = scaled[:, lo[0]:hi[0], lo[1]:hi[1], :]
        in_ = self.inputs[0]
        batch = np.zeros((crops.shape[0], crops.shape[3], crops.shape[1], crops.shape[2]), dtype=np.float32)
        for i, crop in enumerate(crops):
            batch[i] = self.transformer.preprocess(in_, crop)
        predictions = self.forward_all(**{in_: batch})[self.outputs[0]]
        if oversample:
            predictions = predictions.reshape((len(predictions) // 10, 10, -1)).mean(1)
        return predictions
