"""PNG and PDF with Pillow: a scene rasterised, a 256-colour PNG, a hand-written one-page PDF.

Pillow comes with torchvision; it is imported inside the functions so that importing this module
stays cheap.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

from ghnctl.errors import MissingExtra
from ghnctl.graph.render.shapes import Curve, Item, Rect, Scene, Text, bezier_segments, flatten
from ghnctl.graph.render.style import dejavu_font

# PNG limits: the longest side and the pixel count (memory) a picture may have.
PNG_MAX_SIDE = 8000
PNG_MAX_PIXELS = 40_000_000
_PNG_MAX_SCALE = 2.0  # 2x: crisp on high-density screens, still small files


def png_scale(width: float, height: float) -> float:
    """Pixels per SVG unit: up to 2x, within the side and pixel-count caps."""
    return min(
        _PNG_MAX_SCALE,
        PNG_MAX_SIDE / max(width, 1.0),
        PNG_MAX_SIDE / max(height, 1.0),
        math.sqrt(PNG_MAX_PIXELS / max(width * height, 1.0)),
    )


def scene_to_image(scene: Scene) -> tuple[Any, float]:
    """Rasterise the scene with Pillow; returns (RGB image, dpi that keeps the SVG's physical size)."""
    try:
        from PIL import Image, ImageDraw
    except ImportError as exc:  # pragma: no cover - Pillow comes with torchvision
        raise MissingExtra("PNG/PDF output needs Pillow", hint="pip install pillow, or write .svg") from exc
    scale = png_scale(scene.width, scene.height)
    size = (max(1, round(scene.width * scale)), max(1, round(scene.height * scale)))
    # Pillow draws aliased lines; draw small pictures at 2x and shrink for smooth edges.
    ss = 2 if size[0] * size[1] <= 8_000_000 else 1
    image = Image.new("RGB", (size[0] * ss, size[1] * ss), "#ffffff")
    painter = _Painter(ImageDraw.Draw(image), scale * ss)
    for item in flatten(scene.items):
        painter.paint(item)
    if ss > 1:
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image, 96.0 * scale


def palette_png(image: Any) -> Any:
    """256-colour version of a drawing: a third of the RGB file size, no visible difference."""
    from PIL import Image

    quantized = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    # Median cut averages the background with near-white anti-aliasing: make it pure white again.
    _, background = max(quantized.getcolors(256))
    palette = quantized.getpalette()
    palette[3 * background : 3 * background + 3] = [255, 255, 255]
    quantized.putpalette(palette)
    return quantized


def pdf_bytes(image: Any, dpi: float, title: str = "") -> bytes:
    """A one-page PDF showing ``image`` (palette, zlib-compressed) at ``dpi``.

    Written by hand because Pillow's PDF writer stores RGB as JPEG (smudged text) and palette
    images as uncompressed hex (huge); this is lossless and about the size of the PNG.
    """
    indexed = palette_png(image) if image.mode != "P" else image
    width, height = indexed.size
    palette = bytes(indexed.getpalette()[: 3 * 256])
    data = zlib.compress(indexed.tobytes(), 9)
    w_pt, h_pt = width * 72 / dpi, height * 72 / dpi
    content = f"q {w_pt:.2f} 0 0 {h_pt:.2f} 0 0 cm /Im0 Do Q".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {w_pt:.2f} {h_pt:.2f}] "
        "/Resources << /XObject << /Im0 4 0 R >> >> /Contents 5 0 R >>".encode(),
        f"<< /Type /XObject /Subtype /Image /Width {width} /Height {height} /ColorSpace "
        f"[/Indexed /DeviceRGB {len(palette) // 3 - 1} <{palette.hex()}>] /BitsPerComponent 8 "
        f"/Filter /FlateDecode /Length {len(data)} >>\nstream\n".encode()
        + data
        + b"\nendstream",
        f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"\nendstream",
        b"<< /Title " + _pdf_string(title) + b" /Producer (ghnctl) >>",
    ]
    return _pdf_file(objects)


def _pdf_file(objects: list[bytes]) -> bytes:
    """Numbered objects with the cross-reference table and trailer; the last object is the Info."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info {len(objects)} 0 R >>\n".encode()
    out += f"startxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def _pdf_string(text: str) -> bytes:
    """A PDF text string: UTF-16BE with BOM, as hex (no escaping rules to get wrong)."""
    return b"<" + (b"\xfe\xff" + text.encode("utf-16-be")).hex().encode() + b">"


def _font(size: int, bold: bool = False, italic: bool = False) -> Any:
    """A Pillow font for drawing: DejaVu Sans, else Pillow's bundled font."""
    from PIL import ImageFont

    return dejavu_font(size, bold, italic) or ImageFont.load_default(size=size)


class _Painter:
    """Draws scene items on a Pillow canvas ``k`` pixels per unit."""

    def __init__(self, draw: Any, k: float) -> None:
        self.draw = draw
        self.k = k

    def paint(self, item: Item) -> None:
        if isinstance(item, Rect):
            self._rect(item)
        elif isinstance(item, Text):
            self._text(item)
        elif isinstance(item, Curve):
            self._curve(item)

    def _rect(self, r: Rect) -> None:
        k = self.k
        box = (r.x * k, r.y * k, (r.x + r.w) * k, (r.y + r.h) * k)
        width = max(1, round(r.stroke_width * k))
        radius = min(r.radius * k, (box[3] - box[1]) / 2)
        outline = None if r.dashed else r.stroke
        self.draw.rounded_rectangle(box, radius=radius, fill=r.fill, outline=outline, width=width)
        if r.dashed and r.stroke:
            self._dashed_box(box, radius, r.stroke, width)

    def _dashed_box(self, box: tuple[float, ...], radius: float, color: str, width: int) -> None:
        x0, y0, x1, y1 = box
        sides = [
            ((x0 + radius, y0), (x1 - radius, y0)),
            ((x0 + radius, y1), (x1 - radius, y1)),
            ((x0, y0 + radius), (x0, y1 - radius)),
            ((x1, y0 + radius), (x1, y1 - radius)),
        ]
        for a, b in sides:
            self._dashed_line(a, b, color, width)
        if radius <= 0:
            return
        for cx, cy, start in (
            (x0, y0, 180),
            (x1 - 2 * radius, y0, 270),
            (x1 - 2 * radius, y1 - 2 * radius, 0),
            (x0, y1 - 2 * radius, 90),
        ):
            self.draw.arc((cx, cy, cx + 2 * radius, cy + 2 * radius), start, start + 90, fill=color, width=width)

    def _dashed_line(self, a: tuple[float, float], b: tuple[float, float], color: str, width: int) -> None:
        """5-unit dashes with 4-unit gaps from ``a`` to ``b`` (Pillow has no dash style)."""
        (ax, ay), (bx, by) = a, b
        dash, gap = 5 * self.k, 4 * self.k
        length = math.hypot(bx - ax, by - ay)
        t = 0.0
        while t < length:
            t1 = min(t + dash, length)
            self.draw.line(
                [
                    (ax + (bx - ax) * t / length, ay + (by - ay) * t / length),
                    (ax + (bx - ax) * t1 / length, ay + (by - ay) * t1 / length),
                ],
                fill=color,
                width=width,
            )
            t = t1 + gap

    def _text(self, t: Text) -> None:
        k = self.k
        font = _font(max(1, round(t.size * k)), t.bold, t.italic)
        anchor = {"start": "ls", "middle": "ms", "end": "rs"}[t.anchor]
        self.draw.text((t.x * k, t.y * k), t.text, font=font, fill=t.color, anchor=anchor)

    def _curve(self, c: Curve) -> None:
        k = self.k
        pts: list[tuple[float, float]] = []
        for p0, c1, c2, p1 in bezier_segments(c.points):
            steps = max(4, min(24, int(abs(p1[1] - p0[1]) * k / 6)))
            for s in range(0 if not pts else 1, steps + 1):
                pts.append(_cubic(p0, c1, c2, p1, s / steps, k))
        width = max(1, round(c.width * k))
        # Stop the line at the arrow's base so the tip stays sharp.
        tip, base_y = pts[-1], pts[-1][1] - 5 * k
        line = [p for p in pts if p[1] <= base_y] + [(tip[0], base_y)]
        self.draw.line(line, fill=c.color, width=width, joint="curve")
        half = 2.6 * k
        self.draw.polygon([tip, (tip[0] - half, base_y - 0.5 * k), (tip[0] + half, base_y - 0.5 * k)], fill=c.color)


def _cubic(p0: Any, c1: Any, c2: Any, p1: Any, t: float, k: float) -> tuple[float, float]:
    u = 1 - t
    x = u**3 * p0[0] + 3 * u * u * t * c1[0] + 3 * u * t * t * c2[0] + t**3 * p1[0]
    y = u**3 * p0[1] + 3 * u * u * t * c1[1] + 3 * u * t * t * c2[1] + t**3 * p1[1]
    return x * k, y * k
