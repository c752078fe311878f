"""QR code images (PNG and SVG) drawn with ``qrcode``."""

from __future__ import annotations

import io

import qrcode
import qrcode.image.svg
from qrcode.constants import ERROR_CORRECT_M


def _code(text: str) -> qrcode.QRCode:
    # Error correction M survives a cracked phone screen or a smudged label.
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=10, border=4)
    code.add_data(text)
    code.make(fit=True)
    return code


def png(text: str) -> bytes:
    buffer = io.BytesIO()
    _code(text).make_image().save(buffer)
    return buffer.getvalue()


def svg(text: str) -> bytes:
    buffer = io.BytesIO()
    _code(text).make_image(image_factory=qrcode.image.svg.SvgPathImage).save(buffer)
    return buffer.getvalue()
