"""pycaffe's ``caffe.Detector`` (python/caffe/detector.py): R-CNN style windowed detection. Each window
(ymin, xmin, ymax, xmax) of each image is cut out (optionally with ``context_pad`` pixels of context
around it, the part outside the image filled with the mean), warped to the net's input size by the
Transformer's preprocessing, and classified; ``detect_windows`` returns one dict per window.

Differences from pycaffe: the context crop computes its box in floats and slices with integers (pycaffe
slices with the float box, which Python 3 numpy refuses, so its ``context_pad`` path fails there);
``detect_selective_search`` needs the external selective_search_ijcv_with_python package, as pycaffe.
"""
import os

import numpy as np

from . import io as caffe_io
from .classifier import input_transformer
from .net import Net, TEST


class Detector(Net):
    def __init__(self, model_file, pretrained_file, mean=None, input_scale=None, raw_scale=None,
                 channel_swap=None, context_pad=None):
        super().__init__(model_file, TEST, weights=pretrained_file)
        self.transformer = input_transformer(self, mean, input_scale, raw_scale, channel_swap)
        self.configure_crop(context_pad)

    def detect_windows(self, images_windows):
        """[(image file, [window, ...]), ...] -> [{'window', 'prediction', 'filename'}, ...] in order."""
        images_windows = [(fname, list(windows)) for fname, windows in images_windows]
        crops = []
        for fname, windows in images_windows:
            image = caffe_io.load_image(fname).astype(np.float32)
            crops += [self.crop(image, w) for w in windows]
        in_ = self.inputs[0]
        batch = np.zeros((len(crops), crops[0].shape[2]) + tuple(self.blobs[in_].data.shape[2:]), np.float32)
        for i, crop in enumerate(crops):
            batch[i] = self.transformer.preprocess(in_, crop)
        predictions = self.forward_all(**{in_: batch})[self.outputs[0]]
        out, i = [], 0
        for fname, windows in images_windows:
            for w in windows:
                out.append({"window": w, "prediction": predictions[i], "filename": fname})
                i += 1
        return out

    def detect_selective_search(self, image_fnames):
        """detect_windows over Selective Search proposals (needs selective_search_ijcv_with_python)."""
        try:
            import selective_search_ijcv_with_python as selective_search
        except ImportError:
            raise ImportError("detect_selective_search needs the selective_search_ijcv_with_python package "
                              "(and MATLAB), as pycaffe's; give windows to detect_windows instead") from None
        fnames = [os.path.abspath(f) for f in image_fnames]
        windows = selective_search.get_windows(fnames, cmd="selective_search_rcnn")
        return self.detect_windows(zip(fnames, windows))

    def crop(self, im, window):
        """The window (ymin, xmin, ymax, xmax) of an H x W x K image; with context_pad, the window grown
        so that after warping to the input size ``context_pad`` pixels on each side are context, clipped
        to the image, resized, and placed on a mean-filled crop."""
        y0, x0, y1, x1 = (int(v) for v in window[:4])
        if not self.context_pad:
            return im[y0:y1, x0:x1]
        size = self.blobs[self.inputs[0]].data.shape[3]          # pycaffe assumes a square input
        scale = size / (1.0 * size - self.context_pad * 2)
        half_h, half_w = (y1 - y0 + 1) / 2.0, (x1 - x0 + 1) / 2.0
        center = (y0 + half_h, x0 + half_w)
        box = np.round(np.tile(center, 2) + scale * np.array((-half_h, -half_w, half_h, half_w)))
        full_h, full_w = box[2] - box[0] + 1, box[3] - box[1] + 1
        scale_h, scale_w = size / full_h, size / full_w
        pad_y, pad_x = round(max(0, -box[0]) * scale_h), round(max(0, -box[1]) * scale_w)
        im_h, im_w = im.shape[:2]
        box = np.clip(box, 0.0, [im_h, im_w, im_h, im_w])
        clip_h, clip_w = box[2] - box[0] + 1, box[3] - box[1] + 1
        if clip_h <= 0 or clip_w <= 0:
            raise ValueError(f"window {tuple(window)} lies outside the {im_h} x {im_w} image")
        crop_h, crop_w = int(round(clip_h * scale_h)), int(round(clip_w * scale_w))
        crop_h, crop_w = min(crop_h, size - int(pad_y)), min(crop_w, size - int(pad_x))
        b = box.astype(int)
        context = caffe_io.resize_image(im[b[0]:b[2], b[1]:b[3]], (crop_h, crop_w))
        crop = np.ones(self.crop_dims, dtype=np.float32) * self.crop_mean
        crop[int(pad_y):int(pad_y) + crop_h, int(pad_x):int(pad_x) + crop_w] = context
        return crop

    def configure_crop(self, context_pad):
        """Crop dimensions (H, W, K) and, with context, the mean in raw input space to pad with."""
        in_ = self.inputs[0]
        tpose = self.transformer.transpose[in_]
        inv = [tpose[t] for t in tpose]
        self.crop_dims = np.array(self.blobs[in_].data.shape[1:])[inv]
        self.context_pad = context_pad
        if not context_pad:
            return
        mean = self.transformer.mean.get(in_)
        if mean is None:
            self.crop_mean = np.zeros(self.crop_dims, dtype=np.float32)
            return
        crop_mean = np.broadcast_to(mean, self.blobs[in_].data.shape[1:]).transpose(inv).copy()
        order = self.transformer.channel_swap.get(in_)
        if order is not None:
            crop_mean = crop_mean[:, :, [list(order).index(i) for i in range(crop_mean.shape[2])]]
        raw_scale = self.transformer.raw_scale.get(in_)
        if raw_scale is not None:
            crop_mean /= raw_scale
        self.crop_mean = crop_mean
