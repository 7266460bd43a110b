"""Image decoding and resizing as Caffe does them through OpenCV (src/caffe/util/io.cpp), with PIL/torch.

Caffe keeps images as uint8 **BGR**, channel-major (C x H x W) once in a Datum. Decoding:

* colour (``imread(.., IMREAD_COLOR)``): every image becomes 3-channel BGR (grey replicated);
* grey (``IMREAD_GRAYSCALE``): 1 channel. For JPEG, libjpeg is asked for grey output (the Y plane,
  no chroma) -- PIL's ``draft('L')`` asks libjpeg for the same thing. For other formats OpenCV/libpng
  use ``(9798 R + 19235 G + 3735 B + 16384) >> 15`` (libpng's rgb_to_gray with 0.299/0.587), which we
  reproduce exactly instead of PIL's ``convert('L')``;
* "as stored" (encoded datum without force_color/force_gray): grey stays 1 channel, colour -> BGR.

Resize (``cv::resize`` INTER_LINEAR): we use ``torch.nn.functional.interpolate(mode='bilinear',
align_corners=False, antialias=False)``, the same half-pixel mapping and edge clamping as OpenCV but
in floating point (OpenCV uses 11-bit fixed-point weights), rounded to uint8. The pixel difference to
Caffe's resize is bounded in tests/test_data_codec.py (<= 2 levels; OpenCV's special 2x INTER_AREA
shortcut is not reproduced).
"""
import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from protos.errors import DataError

COLOR, GRAY, AS_STORED = "color", "gray", "as_stored"


def _rgb_to_gray_libpng(rgb):
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    return ((9798 * r + 19235 * g + 3735 * b + 16384) >> 15).astype(np.uint8)


def decode_image(data, mode=COLOR, where="<bytes>"):
    """Decode encoded image bytes (or a path) to a uint8 CHW array in Caffe's channel order (BGR)."""
    try:
        img = Image.open(io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data)
        is_jpeg = img.format == "JPEG"
        if mode == GRAY and is_jpeg and img.mode != "L":
            img.draft("L", img.size)   # libjpeg grey output at full scale, as OpenCV requests it
        img.load()
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{where}: cannot decode image: {e}") from None
    if img.mode in ("I;16", "I;16B", "I", "F"):
        raise DataError(f"{where}: image mode {img.mode} is not 8-bit; Caffe reads 8-bit images only")
    stored_gray = img.mode in ("L", "1", "LA") or (img.mode == "P" and _palette_is_gray(img))
    if mode == GRAY or (mode == AS_STORED and stored_gray):
        if img.mode == "L":
            arr = np.asarray(img)
        elif img.mode in ("1", "LA") or stored_gray:
            arr = np.asarray(img.convert("L"))
        else:
            arr = _rgb_to_gray_libpng(np.asarray(img.convert("RGB")))
        return np.ascontiguousarray(arr[None])
    rgb = np.asarray(img.convert("RGB"))
    return np.ascontiguousarray(rgb[:, :, ::-1].transpose(2, 0, 1))


def _palette_is_gray(img):
    pal = np.asarray(img.convert("RGB"))
    return bool((pal[..., 0] == pal[..., 1]).all() and (pal[..., 1] == pal[..., 2]).all())


def read_image(path, mode=COLOR, height=0, width=0):
    """Read an image file as Caffe's ReadImageToCVMat: decode, then resize if height and width > 0."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DataError(f"{path}: cannot read image: {e.strerror}") from None
    arr = decode_image(data, mode, where=path)
    return resize(arr, height, width) if height > 0 and width > 0 else arr


def resize(chw, height, width):
    """Bilinear resize of a uint8 CHW array to (height, width) (OpenCV INTER_LINEAR mapping)."""
    if chw.shape[1] == height and chw.shape[2] == width:
        return chw
    t = torch.from_numpy(np.ascontiguousarray(chw)).unsqueeze(0).float()
    out = F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False, antialias=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)[0].numpy()


def encode_image(chw, fmt):
    """Encode a uint8 CHW BGR (or 1-channel) array as PNG/JPEG bytes (OpenCV imencode's role)."""
    fmt = fmt.lower().lstrip(".")
    pil_fmt = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "bmp": "BMP", "tif": "TIFF", "tiff": "TIFF"}.get(fmt)
    if pil_fmt is None:
        raise DataError(f"cannot encode as '{fmt}'; valid: jpg, jpeg, png, bmp, tif")
    img = Image.fromarray(chw[0] if chw.shape[0] == 1 else chw[::-1].transpose(1, 2, 0))
    buf = io.BytesIO()
    img.save(buf, pil_fmt, **({"quality": 95} if pil_fmt == "JPEG" else {}))  # OpenCV's default quality
    return buf.getvalue()
