"""The pre-distorted texture as a print at its true size: a PDF with the setup in its margin, and a PNG.

Size. The print's side is :attr:`predistort.physical.PhysicalSetup.print_size_mm` — what the camera sees
at the print's distance, plus the tutorial's margin — whatever the texture's pixel count. The renderer
reads the texture with bilinear interpolation between texel centres, so the picture that goes to paper is
the texture upsampled bilinearly by a whole factor (same texel centres, same in-between values) to at least
:data:`MIN_DPI` (300): the printer then draws what the renderer saw, not blocks or its own smoothing.

Printer resolution (:func:`predistort_for_print`). Upsampling adds no detail. A print at true detail is
pre-distorted at the texture resolution its size needs (:func:`texture_resolution_for`: 300 dpi, up to
4096 px, so ≥ 300 dpi up to 340 mm) on the camera's own film: the light transport is then rectangular
(film pixels × texels), the solve starts from the picture at print resolution and moves only along what
the camera sees; the picture's finer detail stays as it is.

PDF (:func:`write_pdf`): one page, the print plus margins (:data:`MARGIN_MM`), so the page is a custom
size (a 240 mm print needs a 270 × 300 mm page; print at 100 %, never "fit to page"). The margins say
where the ball and the camera go, carry marks on the print's centre lines (the ball's centre and the camera
sit on the perpendicular through the print's centre) and a 50 mm bar to check the printer's scale.
PNG (:func:`write_png`): the same picture alone, its DPI set (pHYs) so that it prints at the true size.

Orientation: the camera sees the print as it is (not mirrored), with the texture's top row at the top of
its picture; the PDF's top margin says "top".
"""
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

MIN_DPI = 300                       # the printed picture's least resolution (whole-factor bilinear upsampling)
PRINT_STEP = 64                     # print textures are a whole number of these pixels on a side
MARGIN_MM = {"left": 15.0, "right": 15.0, "top": 20.0, "bottom": 40.0}   # bottom: at least
BAR_MM = 50.0                       # the scale bar's length
LINE_MM, TEXT_MM_PER_CHAR = 4.5, 1.3  # margin text: line spacing, and a generous width per character (6.5 pt)
MM_PER_INCH = 25.4
PT_PER_MM = 72 / MM_PER_INCH        # PDF points


def print_image(texture, setup, min_dpi=MIN_DPI):
    """The picture to print: ``(PIL RGB image, dots per inch)`` at `setup`'s print size.

    `texture`: [H, W, 3] (tensor or array) in [0, 1], square, any resolution; it is upsampled bilinearly by
    the smallest whole factor that reaches `min_dpi`.
    """
    array = texture.detach().cpu().numpy() if isinstance(texture, torch.Tensor) else np.asarray(texture)
    if array.ndim != 3 or array.shape[2] != 3 or array.shape[0] != array.shape[1]:
        raise ValueError(f"expected a square RGB texture [R, R, 3], got shape {list(array.shape)}")
    image = Image.fromarray((np.clip(array, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")
    inches = setup.print_size_mm / MM_PER_INCH
    factor = max(1, math.ceil(min_dpi * inches / image.width))
    if factor > 1:   # PIL's bilinear upsampling: texel centres at (i + 0.5) / R, as Mitsuba's bitmap lookup
        image = image.resize((image.width * factor, image.height * factor), Image.BILINEAR)
    return image, image.width / inches


def texture_resolution_for(print_size_mm, dpi=MIN_DPI):
    """The texture side (pixels) that prints `print_size_mm` wide at `dpi` or more: rounded up to a multiple
    of :data:`PRINT_STEP`, at most :data:`predistort.scene.MAX_TEXTURE_RESOLUTION` (4096: 306 dpi at 340 mm)."""
    from .scene import MAX_TEXTURE_RESOLUTION
    if not print_size_mm > 0:
        raise ValueError(f"the print's size must be positive, got {print_size_mm} mm")
    side = math.ceil(dpi * print_size_mm / MM_PER_INCH / PRINT_STEP) * PRINT_STEP
    return int(min(MAX_TEXTURE_RESOLUTION, max(PRINT_STEP, side)))


def print_setup(setup, dpi=MIN_DPI):
    """`setup` with the texture at :func:`texture_resolution_for` its print, on the camera's own film."""
    width, height = setup.film_size
    return setup.replace(resolution=texture_resolution_for(setup.print_size_mm, dpi),
                         film_width=int(width), film_height=int(height))


def predistort_for_print(picture, setup, dpi=MIN_DPI, progress=None):
    """The instant solve of `picture` for `setup` at printer resolution: ``(texture [R, R, 3], scene)``.

    `picture`: a file path (centre-cropped to a square, as ``apply --fit crop``) or an [R', R', 3] tensor in
    [0, 1] (resized to R). R is :func:`texture_resolution_for` the print; the film stays the camera's
    (``setup.film_size``), so the transport is film pixels × R² texels (:mod:`predistort.probe`), probed once
    per setup and cached; ``progress(fraction, message)`` hears how the probe goes. Cost at 4096² on a 128²
    film: minutes and several GB (README, "Real glass").
    """
    import torch.nn.functional as F
    from .images import prepare_texture
    from .probe_cache import transport_for
    from .solve import solve
    from .target import target_for

    scene = print_setup(setup, dpi).to_scene()
    res = scene.resolution
    if isinstance(picture, torch.Tensor):
        x = picture.detach().float().cpu().permute(2, 0, 1)[None]
        picture = F.interpolate(x, size=(res, res), mode="bilinear", antialias=True, align_corners=False)
        picture = picture[0].permute(1, 2, 0).clamp(0, 1)
    else:
        picture, _ = prepare_texture(picture, res, fit="crop")
    transport = transport_for(scene, progress=progress)
    return solve(target_for(picture, scene), transport, start=picture), scene


def write_png(texture, setup, path, min_dpi=MIN_DPI):
    """Write the print as a PNG whose DPI makes it print at the true size; returns the path."""
    image, dpi = print_image(texture, setup, min_dpi)
    image.save(path, dpi=(dpi, dpi))
    return Path(path)


def margin_lines(setup):
    """The setup, in the words printed under the picture."""
    s = setup
    return [(f"Ball: {s.ball_diameter_mm:g} mm diameter, {s.material()}. Its centre: {s.print_distance_mm:g} mm "
             f"in front of the print's centre (on the line through the marks, perpendicular to the print)."),
            (f"Camera: {s.camera_distance_mm:g} mm from the ball's centre (the lens), "
             f"{'on the same line' if s.on_axis else s.camera_place()}, {s.fov_deg:.3g}° field of view across "
             f"the {s.picture_words()}, its top edge up."),
            (f"Print: {s.print_size_mm:.1f} × {s.print_size_mm:.1f} mm. Print at 100 % (no \"fit to page\"); "
             f"the bar is {BAR_MM:g} mm long.")]


def _page(image, w_mm, h_mm, lines, title):
    """A one-page figure: `image` at ``w_mm × h_mm`` (true size) framed in :data:`MARGIN_MM`, `title` above,
    the margin `lines` below it with a :data:`BAR_MM` scale bar. Returns ``(figure, picture axes, page axes in
    millimetres from the page's lower left, margins with the page's width and height)``."""
    import textwrap
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    m = dict(MARGIN_MM)
    width = w_mm + m["left"] + m["right"]
    chars = max(40, int(w_mm / TEXT_MM_PER_CHAR))
    lines = [wrapped for line in lines for wrapped in textwrap.wrap(line, chars)]
    m["bottom"] = max(m["bottom"], 14 + LINE_MM * len(lines) + 10)        # room for every line and the bar
    height = h_mm + m["top"] + m["bottom"]
    fig = Figure(figsize=(width / MM_PER_INCH, height / MM_PER_INCH))

    def box(x, y, w, h):                                   # millimetres from the page's lower left -> fractions
        return [x / width, y / height, w / width, h / height]

    ax = fig.add_axes(box(m["left"], m["bottom"], w_mm, h_mm))
    ax.imshow(np.asarray(image), interpolation="none", extent=(0, 1, 0, 1), aspect="auto")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_axis_off()
    page = fig.add_axes(box(0, 0, width, height), zorder=-1)   # a millimetre canvas for marks and text
    page.set_xlim(0, width)
    page.set_ylim(0, height)
    page.set_axis_off()
    page.add_patch(Rectangle((m["left"], m["bottom"]), w_mm, h_mm, fill=False, lw=0.3, color="0.6"))
    page.text(m["left"], height - 8, title, fontsize=9, va="center")
    for i, line in enumerate(lines):
        page.text(m["left"], m["bottom"] - 14 - LINE_MM * i, line, fontsize=6.5, va="center")
    bar_y = m["bottom"] - 14 - LINE_MM * len(lines) - 2
    page.add_line(Line2D([m["left"], m["left"] + BAR_MM], [bar_y, bar_y], lw=1.5, color="black"))
    page.text(m["left"] + BAR_MM + 3, bar_y, f"{BAR_MM:g} mm", fontsize=6.5, va="center")
    m.update(width=width, height=height)
    return fig, ax, page, m


def write_pdf(texture, setup, path, min_dpi=MIN_DPI, title="predistort: pre-distorted print"):
    """Write a one-page PDF: the print at its true size, the setup in the margins. Returns the path."""
    from matplotlib.lines import Line2D

    image, _ = print_image(texture, setup, min_dpi)
    side = setup.print_size_mm
    fig, _, page, m = _page(image, side, side, margin_lines(setup), f"{title} · TOP ↑")
    width, height = m["width"], m["height"]
    cx, cy = m["left"] + side / 2, m["bottom"] + side / 2
    for (x0, y0, x1, y1) in ((cx, m["bottom"] - 8, cx, m["bottom"] - 2), (cx, height - m["top"] + 2, cx,
                             height - m["top"] + 8), (m["left"] - 8, cy, m["left"] - 2, cy),
                             (width - m["right"] + 2, cy, width - m["right"] + 8, cy)):
        page.add_line(Line2D([x0, x1], [y0, y1], lw=0.8, color="black"))   # marks on the centre lines
    fig.savefig(path, format="pdf")
    return Path(path)


def write_print(texture, setup, out_dir, min_dpi=MIN_DPI, paper=None):
    """Write ``print.pdf`` and ``print.png`` into `out_dir`; returns both paths. `paper` (``a4``, ``letter``,
    ... or ``WxH`` mm): the PDF on that paper, one sheet or tiles (:mod:`predistort.paper`), instead of one page
    of the print's own size."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = write_png(texture, setup, out / "print.png", min_dpi)
    if paper:
        from .paper import write_paper_pdf
        side = setup.print_size_mm
        pdf, _ = write_paper_pdf(print_image(texture, setup, min_dpi)[0], (side, side), paper, out / "print.pdf",
                                 "predistort: pre-distorted print")
        return pdf, png
    return write_pdf(texture, setup, out / "print.pdf", min_dpi), png


# -------------------------------------------------------------------------------------------------------------
# Any world: the print of any aspect, with where each object stands and where the camera goes
# -------------------------------------------------------------------------------------------------------------
def footprints(config):
    """Each object's outline on the print, as the print's texture coordinates [N, 2] (u across, v down):
    the convex hull of the object seen straight down onto the print (a cylinder's circle, a cone's base, a
    mesh's shadow), closed."""
    import cv2
    outlines = []
    normal = np.asarray(config.plane.normal)
    for solid in config.objects:
        points = solid.points(180)
        flat = points - ((points - config.plane.center) @ normal)[:, None] * normal
        uv = config.plane.uv(flat)
        hull = cv2.convexHull(uv.astype(np.float32))[:, 0]
        outlines.append(np.concatenate([hull, hull[:1]]))
    return outlines


def world_lines(config):
    """The world's setup, in the words printed under its picture (millimetres from the print's centre)."""
    mm = config.units_mm
    plane = config.plane
    right, up, normal = (np.asarray(v) for v in (plane.right, plane.up, plane.normal))

    def place(point):
        rel = (np.asarray(point) - plane.center) * mm
        return (f"{rel @ right:+.0f} mm right, {rel @ up:+.0f} mm towards the top edge, {rel @ normal:.0f} mm "
                f"above the print")
    lines = [f"Objects: {'; '.join(o.describe('mm') for o in config.objects)} — stand each on its outline."]
    lines.append(f"Camera (lens): {place(config.camera_origin)}; aimed at the point {place(config.camera_target)}; "
                 f"{config.fov:.3g}° across its {config.film_size[0]}×{config.film_size[1]} picture.")
    w, h = (s * mm for s in plane.size)
    lines.append(f"Print: {w:.1f} × {h:.1f} mm. Print at 100 % (no \"fit to page\"); the bar is {BAR_MM:g} mm long.")
    return lines


def write_world_print(texture, config, out_dir, min_dpi=MIN_DPI, title="predistort: pre-distorted print",
                      paper=None):
    """Write ``print.pdf`` (one page: the print at its true size, each object's outline, the setup in words,
    a scale bar) and ``print.png`` (its DPI set to print at the true size) for a world; returns both paths.
    `texture`: [rows, cols, 3] in [0, 1], the print's aspect (``apply``'s predistorted.png). `paper`: on that
    paper instead, one sheet or tiles, each object's outline drawn (:mod:`predistort.paper`)."""
    array = texture.detach().cpu().numpy() if isinstance(texture, torch.Tensor) else np.asarray(texture)
    w_mm, h_mm = (s * config.units_mm for s in config.plane.size)
    if array.ndim != 3 or not math.isclose(array.shape[1] / array.shape[0], w_mm / h_mm, rel_tol=0.02):
        raise ValueError(f"the texture is {array.shape[1]}×{array.shape[0]} pixels, but the print is "
                         f"{w_mm:g} × {h_mm:g} mm: pass the texture made for this setup (apply's predistorted.png)")
    image = Image.fromarray((np.clip(array, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")
    factor = max(1, math.ceil(min_dpi * w_mm / MM_PER_INCH / image.width))
    if factor > 1:
        image = image.resize((image.width * factor, image.height * factor), Image.BILINEAR)
    dpi = image.width / (w_mm / MM_PER_INCH)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    image.save(out / "print.png", dpi=(dpi, dpi))

    if paper:
        from .paper import write_paper_pdf
        pdf, _ = write_paper_pdf(image, (w_mm, h_mm), paper, out / "print.pdf", title, footprints(config))
        return pdf, out / "print.png"
    fig, ax, _, _ = _page(image, w_mm, h_mm, world_lines(config), f"{title} · TOP ↑ (the print's up edge)")
    for outline in footprints(config):                   # u across, v down the picture: y = 1 − v
        ax.plot(outline[:, 0], 1 - outline[:, 1], color="black", lw=0.6, ls="--")
    fig.savefig(out / "print.pdf", format="pdf")
    return out / "print.pdf", out / "print.png"
