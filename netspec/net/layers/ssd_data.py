"""SSD's AnnotatedData layer (weiliu89/caffe ssd: src/caffe/layers/annotated_data_layer.cpp, with the
annotated DataTransformer of src/caffe/data_transformer.cpp; the box and sampling rules are in
ssd_sample.py).

Reads AnnotatedDatum records (the SSD fork's message, protos/forkschema/ssd.proto: a Datum plus
groups of normalized boxes) from ``data_param.source`` in key order, wrapping at the end, batch_size
per forward. Per image, in the fork's order: distort_param (encoded images), expand_param (place
the image on a canvas of mean colour), batch sampling (annotated_data_param.batch_sampler: the
candidate crops of every sampler that meet its sample_constraint; one of them picked at random, the
image cropped to it), then the transform: resize_param (WARP), crop_size, mirror (boxes flipped),
(pixel - mean) * scale. Boxes follow each step (projected into the crop, dropped unless they meet
emit_constraint, clipped); an encoded image is stored again as JPEG after each of the first three
steps, as the fork does.

Tops: data (batch, C, H, W); label (1, 1, boxes, 8) rows [item, group_label, instance_id, xmin,
ymin, xmax, ymax, difficult] over the whole batch, or one row of -1 when the batch has no box. When
neither the records nor annotated_data_param give an annotation type, the label top is the Datum
labels (batch,), as the fork. label_map_file is not read (the fork keeps it unused).

Randomness: a numpy generator seeded from torch's global generator when the layer is built (set
``layer.seed`` before the first forward to choose it). Batches are made in the calling thread.
A mean_file is subtracted at each pixel's source position (BVLC's rule; the fork's cv::Mat path
was not checked for it; SSD nets use mean_value). Not supported (a clear error): resize modes other than WARP, noise_param with prob > 0, float_data
records, expand_param with mean_file.
"""
import numpy as np
import torch

from recaffe.protos import caffe_pb2
from recaffe.protos.errors import DataError
from recaffe.protos.forks import fork_fields, layer_param
from recaffe.protos.forkschema import ssd_pb2
from recaffe.netspec.data.image import AS_STORED, COLOR, GRAY, cv2, decode_hwc, encode_hwc
from recaffe.netspec.data.lmdb_io import LMDBReader
from recaffe.netspec.data.meanfile import read_mean
from . import ssd_sample as S
from .base import Layer
from .registry import register

_RESIZE = ssd_pb2.ResizeParameter
_INTERP = {_RESIZE.LINEAR: "INTER_LINEAR", _RESIZE.AREA: "INTER_AREA", _RESIZE.NEAREST: "INTER_NEAREST",
           _RESIZE.CUBIC: "INTER_CUBIC", _RESIZE.LANCZOS4: "INTER_LANCZOS4"}


@register("AnnotatedData")
class AnnotatedData(Layer):
    exact_bottoms = 0
    min_tops, max_tops = 1, 2
    is_data = True
    param_field = "data_param"

    def setup(self, p):
        if not p.source:
            raise self.error("data_param.source is empty; give the path of an LMDB of AnnotatedDatum records")
        self.batch_size = int(p.batch_size)
        if self.batch_size <= 0:
            raise self.error(f"data_param.batch_size must be > 0, got {self.batch_size}")
        ap = layer_param(self.lp, "annotated_data_param")
        self.samplers = list(ap.batch_sampler)
        tp = self.lp.transform_param
        self.fork_tp = fork_fields(tp, "ssd")
        self._check_transform(tp)
        try:
            self.reader = LMDBReader(p.source)
        except DataError as e:
            raise DataError(f"layer '{self.name}': {e}") from None
        first, where = self._record(0)
        self.anno_type = None
        if first.HasField("type") or ap.HasField("anno_type"):
            self.anno_type = ap.anno_type if ap.HasField("anno_type") else first.type
        img = self._image(first, where)
        c, h, w = self._out_chw(img)
        self.top_shapes = [(self.batch_size, c, h, w)]
        if len(self.lp.top) > 1:
            boxes = sum(len(g.annotation) for g in first.annotation_group)
            self.top_shapes.append((1, 1, max(boxes, 1), 8) if self.anno_type is not None else (self.batch_size,))
        self.seed = int(torch.randint(0, 2 ** 62, ()).item())
        self._rng, self._pos = None, 0
        self.last_crops = []
        self.register_buffer("_device_probe", torch.empty(0), persistent=False)

    def _check_transform(self, tp):
        ft = self.fork_tp
        if tp.force_color and tp.force_gray:
            raise self.error("transform_param: force_color and force_gray are exclusive; give one")
        self.mode = COLOR if tp.force_color else GRAY if tp.force_gray else AS_STORED
        if tp.mean_file and len(tp.mean_value):
            raise self.error("transform_param: give mean_file or mean_value, not both")
        self.mean = read_mean(tp.mean_file) if tp.mean_file else None
        self.mean_value = np.asarray(tp.mean_value, np.float32) if len(tp.mean_value) else None
        self.scale, self.crop, self.mirror = np.float32(tp.scale), int(tp.crop_size), bool(tp.mirror)
        self.resize = ft.resize_param if ft.HasField("resize_param") else None
        if self.resize is not None:
            if self.resize.resize_mode != _RESIZE.WARP:
                raise self.error(f"resize_param.resize_mode {_RESIZE.Resize_mode.Name(self.resize.resize_mode)} "
                                 "is not supported; valid: WARP")
            if self.resize.height <= 0 or self.resize.width <= 0:
                raise self.error("resize_param needs height and width > 0")
        if ft.HasField("noise_param") and ft.noise_param.prob > 0:
            raise self.error("noise_param with prob > 0 is not supported; remove it")
        self.emit = ft.emit_constraint if ft.HasField("emit_constraint") else None
        self.distort = ft.distort_param if ft.HasField("distort_param") else None
        self.expand = ft.expand_param if ft.HasField("expand_param") else None
        if self.expand is not None and self.mean is not None:
            raise self.error("expand_param with mean_file is not supported; use mean_value")

    # -- records ----------------------------------------------------------------------------------
    def _record(self, i):
        where = f"{self.reader.path}: record {i}"
        try:
            rec = ssd_pb2.AnnotatedDatum.FromString(self.reader.get(i))
        except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends
            raise DataError(f"{where}: not a serialized AnnotatedDatum ({e})") from None
        if not rec.HasField("datum"):
            raise DataError(f"{where}: AnnotatedDatum without a datum")
        return rec, where

    def _image(self, rec, where):
        d = rec.datum
        if d.encoded:
            return decode_hwc(d.data, self.mode, where)
        if not d.data:
            raise DataError(f"{where}: float_data records are not supported; store uint8 pixels")
        n = d.channels * d.height * d.width
        if n <= 0 or len(d.data) != n:
            raise DataError(f"{where}: raw datum of {len(d.data)} bytes for {d.channels}x{d.height}x{d.width}")
        chw = np.frombuffer(d.data, np.uint8).reshape(d.channels, d.height, d.width)
        return chw[0].copy() if d.channels == 1 else np.ascontiguousarray(chw.transpose(1, 2, 0))

    def _out_chw(self, img):
        """InferBlobShape: channels, then the resize size (encoded records) or the image's, or crop_size."""
        c = 1 if img.ndim == 2 else img.shape[2]
        h, w = img.shape[:2]
        if self.resize is not None:
            h, w = int(self.resize.height), int(self.resize.width)
        if self.crop:
            h = w = self.crop
        return c, h, w

    @staticmethod
    def groups(rec):
        return [(g.group_label, [(a.instance_id, np.array([a.bbox.xmin, a.bbox.ymin, a.bbox.xmax, a.bbox.ymax],
                                                          np.float32), bool(a.bbox.difficult))
                                 for a in g.annotation]) for g in rec.annotation_group]

    # -- one image --------------------------------------------------------------------------------
    def _rejpeg(self, img, encoded, where):
        """The fork stores an encoded image again as JPEG (EncodeCVMatToDatum "jpg") after a step."""
        return decode_hwc(encode_hwc(img, "jpg", where), self.mode, where) if encoded else img

    def augment(self, rng, rec, where):
        """Distortion, expansion and batch sampling of one record: (image, groups, encoded); the
        chosen crop (normalized, before clipping) is appended to ``last_crops`` (None: no crop)."""
        chosen = None
        img, groups, enc = self._image(rec, where), self.groups(rec), rec.datum.encoded
        if self.distort is not None and enc:
            img = self._rejpeg(S.distort(rng, img, self.distort, cv2()), enc, where)
        if self.expand is not None and S.uniform(rng, 0, 1) <= self.expand.prob \
                and abs(self.expand.max_expand_ratio - 1) >= 1e-2:
            ratio = S.uniform(rng, 1, self.expand.max_expand_ratio)
            c = 1 if img.ndim == 2 else img.shape[2]
            fill = np.zeros(c) if self.mean_value is None else np.broadcast_to(self.mean_value, (c,))
            img, box = S.expand(rng, img, ratio, fill)
            img = self._rejpeg(img, enc, where)
            groups = S.transform_annotations(groups, box, emit=self.emit)
        if self.samplers:
            boxes = S.batch_samples(rng, groups, self.samplers)
            if boxes:
                box = chosen = boxes[int(rng.integers(len(boxes)))]
                img = self._rejpeg(np.ascontiguousarray(S.crop_pixels(img, box)), enc, where)
                groups = S.transform_annotations(groups, S.clip_box(box), emit=self.emit)
        self.last_crops.append(chosen)
        return img, groups, enc

    def transform(self, rng, img, groups, encoded, out):
        """The annotated Transform into ``out`` (C, H, W float32): resize (encoded images), crop,
        mirror, mean and scale; returns the boxes transformed alike."""
        do_mirror = self.mirror and bool(rng.integers(2))
        old_wh = (img.shape[1], img.shape[0])
        warp = None
        if self.resize is not None and encoded:
            modes = list(self.resize.interp_mode) or [_RESIZE.LINEAR]
            flag = getattr(cv2(), _INTERP[modes[int(rng.integers(len(modes)))]])
            img = cv2().resize(img, (int(self.resize.width), int(self.resize.height)), interpolation=flag)
        if self.resize is not None:
            warp = (old_wh, (int(self.resize.width), int(self.resize.height)))
        if img.ndim == 2:
            img = img[..., None]
        ih, iw = img.shape[:2]
        c, h, w = out.shape
        if img.shape[2] != c or (not self.crop and (ih, iw) != (h, w)) or ih < h or iw < w:
            raise DataError(f"layer '{self.name}': an image of {img.shape[2]}x{ih}x{iw} after sampling does "
                            f"not fit the data top {c}x{h}x{w} (raw records are not resized, as in the fork: "
                            "store encoded images, or drop expand_param / batch_sampler)")
        ho = wo = 0
        if self.crop:
            if self.phase == "TRAIN":
                ho, wo = int(rng.integers(ih - h + 1)), int(rng.integers(iw - w + 1))
            else:
                ho, wo = (ih - h) // 2, (iw - w) // 2
        crop = np.array([wo / iw, ho / ih, (wo + w) / iw, (ho + h) / ih], np.float32)
        x = img[ho:ho + h, wo:wo + w].astype(np.float32).transpose(2, 0, 1)
        if self.mean is not None:
            if self.mean.shape != (c, ih, iw):
                raise DataError(f"layer '{self.name}': mean file shape {self.mean.shape} != image {(c, ih, iw)}")
            x = x - self.mean[:, ho:ho + h, wo:wo + w]
        elif self.mean_value is not None:
            if len(self.mean_value) not in (1, c):
                raise self.error(f"{len(self.mean_value)} mean_value(s) for {c}-channel data; give 1 or {c}")
            x = x - np.broadcast_to(self.mean_value, (c,))[:, None, None]
        x = x * self.scale
        out[...] = x[:, :, ::-1] if do_mirror else x
        return S.transform_annotations(groups, crop, do_mirror, self.emit, warp)

    # -- the batch --------------------------------------------------------------------------------
    def next_batch(self):
        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)
        rng = self._rng
        data = np.empty(self.top_shapes[0], np.float32)
        rows, labels = [], []
        self.last_crops = []
        for item in range(self.batch_size):
            rec, where = self._record(self._pos)
            self._pos = (self._pos + 1) % len(self.reader)
            if self.anno_type is not None and rec.HasField("type") and rec.type != self.anno_type \
                    and not layer_param(self.lp, "annotated_data_param").HasField("anno_type"):
                raise DataError(f"{where}: annotation type {rec.type} differs from the first record's")
            img, groups, enc = self.augment(rng, rec, where)
            groups = self.transform(rng, img, groups, enc, data[item])
            labels.append(rec.datum.label)
            for label, annos in groups:
                for inst, b, difficult in annos:
                    rows.append([item, label, inst, b[0], b[1], b[2], b[3], float(difficult)])
        if self.anno_type is None:
            label = np.asarray(labels, np.float32)
        elif rows:
            label = np.asarray(rows, np.float32).reshape(1, 1, -1, 8)
        else:
            label = np.full((1, 1, 1, 8), -1, np.float32)
        return data, label

    def forward(self):
        data, label = self.next_batch()
        dev = self._device_probe.device
        tops = [torch.from_numpy(data).to(dev), torch.from_numpy(label).to(dev)]
        return tops[:len(self.lp.top)]


def label_map(items):
    """A LabelMap message from (name, label, display_name) triples (labelmap_voc.prototxt's format)."""
    lm = ssd_pb2.LabelMap()
    for name, label, display in items:
        lm.item.add(name=name, label=int(label), display_name=display)
    return lm


def annotated_datum(datum, groups, anno_type=ssd_pb2.AnnotatedDatum.BBOX):
    """An AnnotatedDatum (the fork schema) from a caffe Datum and groups (group_label, [(instance_id,
    (xmin, ymin, xmax, ymax), difficult), ...]): what convert_annoset stores."""
    rec = ssd_pb2.AnnotatedDatum(type=anno_type)
    rec.datum.CopyFrom(datum if isinstance(datum, caffe_pb2.Datum) else caffe_pb2.Datum.FromString(datum))
    for label, annos in groups:
        g = rec.annotation_group.add(group_label=int(label))
        for inst, box, difficult in annos:
            a = g.annotation.add(instance_id=int(inst))
            a.bbox.xmin, a.bbox.ymin, a.bbox.xmax, a.bbox.ymax = (float(v) for v in box)
            a.bbox.difficult = bool(difficult)
    return rec
