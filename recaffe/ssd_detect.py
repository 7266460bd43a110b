"""Object detection with an SSD deploy net (a DetectionOutput top), as the SSD and MobileNet-SSD demos
run it: the image resized to the net's input size (OpenCV, INTER_LINEAR), (pixel - mean) * scale in
BGR order, one forward; the rows [image, label, score, xmin, ymin, xmax, ymax] of DetectionOutput
(normalized corners) scaled to the image's pixels and kept from ``threshold`` up.

    det = SSDDetector("deploy.prototxt", "MobileNetSSD_deploy.caffemodel")
    for d in det.detect(cv2.imread("street.jpg"), threshold=0.5): print(d)
    cv2.imwrite("out.png", draw(image, dets))
"""
import collections

import numpy as np
import torch

from recaffe.netspec.net.net import Net
from recaffe.protos.errors import DataError, NetError

#: PASCAL VOC's 20 classes after the background (label 0), the label order of the VOC SSD models
VOC_LABELS = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
              "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
              "train", "tvmonitor")

Detection = collections.namedtuple("Detection", "label name score xmin ymin xmax ymax")


def read_labels(spec):
    """{label: name}: "voc" (VOC_LABELS), an SSD label map prototxt (``item { name label
    display_name }``, display_name preferred) or a text file with one name per line (line i: label i)."""
    if not spec:
        return {}
    if spec == "voc":
        return dict(enumerate(VOC_LABELS))
    try:
        with open(spec, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise DataError(f"{spec}: cannot read labels: {e.strerror}") from None
    if "item" in text and "{" in text:
        from google.protobuf import text_format
        from recaffe.protos.forkschema import ssd_pb2
        lm = ssd_pb2.LabelMap()
        try:
            text_format.Parse(text, lm)
        except text_format.ParseError as e:
            raise DataError(f"{spec}:{e.GetLine()}:{e.GetColumn()}: not an SSD label map ({e})") from None
        return {it.label: it.display_name or it.name for it in lm.item}
    return {i: line.strip() for i, line in enumerate(text.splitlines()) if line.strip()}


class SSDDetector:
    def __init__(self, model, weights=None, mean=(127.5, 127.5, 127.5), scale=0.007843, swap_rb=False,
                 labels=None):
        self.net = Net(model, phase="TEST", weights=weights)
        tops = [lp.top[0] for lp in self.net.saved_params if lp.type == "DetectionOutput"]
        if not tops:
            raise NetError(f"{model}: no DetectionOutput layer; expected an SSD deploy net")
        self.output = tops[-1]
        if len(self.net.inputs) != 1:
            raise NetError(f"{model}: expected one input blob, got {self.net.inputs}")
        self.input = self.net.inputs[0]
        shape = self.net.blob_shapes[self.input]
        if len(shape) != 4:
            raise NetError(f"{model}: input '{self.input}' has shape {shape}; expected N, C, H, W")
        self.channels, self.size = shape[1], (shape[2], shape[3])
        self.mean = np.asarray(mean, np.float32).reshape(-1, 1, 1)
        self.scale, self.swap_rb = float(scale), swap_rb
        self.labels = labels or {}

    def preprocess(self, image):
        """(C, H, W) float32 net input of an OpenCV (BGR, or grey) uint8 image."""
        import cv2
        img = cv2.resize(image, (self.size[1], self.size[0]), interpolation=cv2.INTER_LINEAR)
        if img.ndim == 2:
            img = img[:, :, None]
        if img.shape[2] != self.channels:
            raise DataError(f"image has {img.shape[2]} channel(s), the net takes {self.channels}")
        if self.swap_rb:
            img = img[:, :, ::-1]
        return (img.transpose(2, 0, 1).astype(np.float32) - self.mean) * np.float32(self.scale)

    def detect(self, images, threshold=0.5):
        """Detections of one image (list of Detection) or of a list of images (list of lists), boxes in
        the image's pixels (normalized corners times width / height)."""
        single = isinstance(images, np.ndarray)
        batch = [images] if single else list(images)
        x = torch.from_numpy(np.stack([self.preprocess(im) for im in batch]))
        with torch.no_grad():
            self.net.forward(**{self.input: x})
        rows = self.net.blobs[self.output].reshape(-1, 7).numpy()
        out = [[] for _ in batch]
        for i, label, score, x0, y0, x1, y1 in rows.tolist():
            if label < 0 or score < threshold:      # -1 rows: no detection in that image
                continue
            h, w = batch[int(i)].shape[:2]
            out[int(i)].append(Detection(int(label), self.labels.get(int(label), str(int(label))), score,
                                         x0 * w, y0 * h, x1 * w, y1 * h))
        return out[0] if single else out


def draw(image, detections):
    """A copy of ``image`` (BGR) with each detection's box and "name score" drawn."""
    import cv2
    out = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    for d in detections:
        hue = (d.label * 47) % 180
        color = tuple(int(c) for c in cv2.cvtColor(np.uint8([[[hue, 220, 255]]]), cv2.COLOR_HSV2BGR)[0, 0])
        p0 = (int(round(d.xmin)), int(round(d.ymin)))
        cv2.rectangle(out, p0, (int(round(d.xmax)), int(round(d.ymax))), color, 2)
        text = f"{d.name} {d.score:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        y = max(p0[1], th + base)
        cv2.rectangle(out, (p0[0], y - th - base), (p0[0] + tw, y), color, -1)
        cv2.putText(out, text, (p0[0], y - base), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return out
