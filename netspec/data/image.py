"""Image decoding, resizing and encoding as Caffe does them (src/caffe/util/io.cpp), with OpenCV's
own Python binding (opencv-python-headless), so the pixels are Caffe's bit for bit.

Caffe keeps images as uint8 **BGR**, channel-major (C x H x W) once in a Datum; OpenCV decodes to
H x W x C BGR, so a C x H x W array here is a transposed view of OpenCV's buffer (no copy; callers
copy what they keep). Modes:

* ``COLOR`` (``imdecode(.., IMREAD_COLOR)``, ReadImageToCVMat / DecodeDatumToCVMat with is_color):
  3-channel BGR, grey replicated;
* ``GRAY`` (``IMREAD_GRAYSCALE``): 1 channel, converted by the codec as OpenCV does it (libjpeg's
  grey output for JPEG, libpng's rgb_to_gray for PNG, cvtColor otherwise);
* ``AS_STORED`` (``imdecode(.., IMREAD_UNCHANGED)``, DecodeDatumToCVMatNative: an encoded datum
  without force_color / force_gray): the stored channels (grey 1, colour 3, with alpha 4).

Resize: ``cv::resize(.., INTER_LINEAR)`` with dsize (width, height) as ReadImageToCVMat calls it
(OpenCV's fixed-point bilinear, and its INTER_AREA shortcut for exact 2x shrinking, come with it).
Encode: ``cv::imencode`` with its default parameters (JPEG quality 95), as convert_imageset.
Checked byte for byte against the real convert_imageset (raw, --gray, --encoded, --encode_type png,
shrinking and enlarging): tests/test_data_tools.py, goldens by tests/oracle/make_data_goldens.py.

OpenCV is imported on first use, so code that never touches an image does not pay for it.

Size limit: an image's width x height is read from its header (``image_size``, PIL's format parsers,
a few microseconds) and checked against RECAFFE_MAX_IMAGE_PIXELS (protos.limits) before OpenCV
decodes anything; files are read only when regular (not /dev/zero, a FIFO...). OpenCV's own limit
(OPENCV_IO_MAX_IMAGE_PIXELS) is set to the same value when recaffe imports it, for formats PIL
does not parse.
"""
import io
import os

import numpy as np

from recaffe.protos import limits
from recaffe.protos.errors import DataError

COLOR, GRAY, AS_STORED = "color", "gray", "as_stored"
_cv2 = None


def cv2():
    """The cv2 module (imported once), or a DataError saying how to install it."""
    global _cv2
    if _cv2 is None:
        limit = limits.max_image_pixels()
        os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(limit or 1 << 62))
        try:
            import cv2 as mod
        except ImportError:
            raise DataError("image decoding needs OpenCV's Python binding: pip install "
                            "opencv-python-headless") from None
        _cv2 = mod
    return _cv2


def _flag(mode):
    cv = cv2()
    try:
        return {COLOR: cv.IMREAD_COLOR, GRAY: cv.IMREAD_GRAYSCALE, AS_STORED: cv.IMREAD_UNCHANGED}[mode]
    except KeyError:
        raise DataError(f"image mode {mode!r}; valid: {COLOR}, {GRAY}, {AS_STORED}") from None


def hwc_to_chw(img):
    """OpenCV's H x W (x C) array as a C x H x W view."""
    return img[None] if img.ndim == 2 else img.transpose(2, 0, 1)


def chw_to_hwc(chw):
    """A C x H x W array as the H x W (x C) view OpenCV takes (1 channel -> H x W)."""
    return chw[0] if chw.shape[0] == 1 else chw.transpose(1, 2, 0)


def image_size(data):
    """(width, height) from the header of encoded image bytes, without decoding the pixels; None when
    PIL does not recognise the format. PIL's format parsers are called as ``Image.open`` calls them,
    minus its decompression-bomb check (the caller applies recaffe's limit to the size)."""
    head = bytes(data[:32])
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":     # PNG: IHDR comes first
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head[:2] == b"\xff\xd8":
        size = _jpeg_size(memoryview(data).cast("B"))
        if size is not None:
            return size
    from PIL import Image
    Image.init()
    for fmt in list(Image.ID):
        factory, accept = Image.OPEN[fmt]
        try:
            ok = not accept or accept(head)
            if ok and not isinstance(ok, str):
                return factory(io.BytesIO(data), "").size
        except Exception:  # noqa: BLE001 - a third-party parser on untrusted bytes: not this format
            continue
    return None


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(buf):
    """(width, height) of the first SOF segment of a JPEG (ITU T.81 B.2.2), walking the marker
    segments; None when the stream ends first (PIL then decides)."""
    pos, n = 2, len(buf)
    while pos + 9 <= n:
        if buf[pos] != 0xFF:
            return None
        marker = buf[pos + 1]
        if marker == 0xFF:                  # fill byte
            pos += 1
            continue
        if marker in (0x01, 0xD0, 0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7):   # no length
            pos += 2
            continue
        if marker in _SOF:
            return (buf[pos + 7] << 8 | buf[pos + 8]), (buf[pos + 5] << 8 | buf[pos + 6])
        pos += 2 + (buf[pos + 2] << 8 | buf[pos + 3])
    return None


def check_pixels(data, where):
    """Refuse encoded image bytes whose header declares more than RECAFFE_MAX_IMAGE_PIXELS; returns
    (width, height) or None (format unknown to PIL: OpenCV's own limit then applies)."""
    size = image_size(data)
    if size is not None:
        limits.check_image_pixels(size[0], size[1], where, DataError)
    return size


def decode_hwc(data, mode=COLOR, where="<bytes>"):
    """Encoded image bytes (bytes, memoryview, numpy uint8) -> OpenCV's H x W (x C) uint8 array."""
    flag = _flag(mode)
    buf = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data
    if buf.size:
        check_pixels(buf, where)
    try:
        img = _cv2.imdecode(buf, flag) if buf.size else None
    except _cv2.error as e:
        raise DataError(f"{where}: cannot decode image: {str(e).strip().splitlines()[-1]}") from None
    if img is None:
        raise DataError(f"{where}: cannot decode image (not a JPEG/PNG/BMP/TIFF/... file OpenCV reads, or "
                        f"corrupt)")
    if img.dtype != np.uint8:
        raise DataError(f"{where}: image of {img.dtype} pixels; Caffe reads 8-bit images only")
    return img


def decode_image(data, mode=COLOR, where="<bytes>"):
    """Decode encoded image bytes (or a path) to a uint8 C x H x W array in Caffe's channel order (BGR)."""
    if isinstance(data, (str, os.PathLike)):
        return read_image(data, mode)
    return hwc_to_chw(decode_hwc(data, mode, where))


def read_file(path):
    """The bytes of an image file (a regular file; its size checked against the memory available)."""
    return limits.read_file(path, "image", DataError)


def read_image_hwc(path, mode=COLOR, height=0, width=0):
    """Caffe's ReadImageToCVMat as an H x W (x C) array: decode, then resize if height and width > 0."""
    img = decode_hwc(read_file(path), mode, where=str(path))
    if height > 0 and width > 0:
        img = _cv2.resize(img, (int(width), int(height)), interpolation=_cv2.INTER_LINEAR)
    return img


def read_image(path, mode=COLOR, height=0, width=0):
    """Caffe's ReadImageToCVMat as a uint8 C x H x W BGR array (a view of OpenCV's buffer)."""
    return hwc_to_chw(read_image_hwc(path, mode, height, width))


def resize(chw, height, width):
    """``cv::resize(.., INTER_LINEAR)`` of a uint8 C x H x W array to (height, width), C x H x W."""
    cv = cv2()
    hwc = np.ascontiguousarray(chw_to_hwc(np.asarray(chw)))
    return hwc_to_chw(cv.resize(hwc, (int(width), int(height)), interpolation=cv.INTER_LINEAR))


_EXTS = ("jpg", "jpeg", "jpe", "png", "bmp", "dib", "tif", "tiff", "ppm", "pgm", "pbm", "webp")


def encode_hwc(img, fmt, where="<image>"):
    """``cv::imencode('.' + fmt, img)`` with OpenCV's default parameters -> bytes."""
    ext = fmt.lower().lstrip(".")
    if ext not in _EXTS:
        raise DataError(f"{where}: cannot encode as '{fmt}'; valid: {', '.join(_EXTS)}")
    cv = cv2()
    try:
        ok, buf = cv.imencode("." + ext, img)
    except cv.error as e:
        raise DataError(f"{where}: cannot encode as '{fmt}': {str(e).strip().splitlines()[-1]}") from None
    if not ok:
        raise DataError(f"{where}: OpenCV could not encode the image as '{fmt}'")
    return buf.tobytes()


def encode_image(chw, fmt):
    """Encode a uint8 C x H x W BGR (or 1-channel) array as PNG/JPEG/... bytes (OpenCV's imencode)."""
    return encode_hwc(np.ascontiguousarray(chw_to_hwc(np.asarray(chw, np.uint8))), fmt)


def check_image_header(data, where="<bytes>"):
    """Raise DataError unless ``data`` starts like an image file of at most RECAFFE_MAX_IMAGE_PIXELS
    (its header parsed by PIL, without decoding the pixels: convert_imageset's verbatim --encoded path
    stores the file as it is)."""
    size = check_pixels(data, where)
    if size is None:
        raise DataError(f"{where}: cannot decode image (not a JPEG/PNG/BMP/TIFF/... image file)")
    if size[0] <= 0 or size[1] <= 0:
        raise DataError(f"{where}: cannot decode image: empty image ({size[0]} x {size[1]})")
