"""A print on the paper a person has at home: one sheet when it fits, else tiles with overlap, marks and labels.

The picture is always at its true size (``print_mm``: width × height in millimetres) and every page carries a
100 mm ruler, so the person can check that the printer did not scale it ("fit to page" must be off).

- **It fits** (:func:`layout` finds one tile, in the orientation that fits): one sheet of the paper, the picture
  centred, its size and the ruler below it.
- **It does not**: tiles. Each page of the paper holds a part of the picture as large as its printable area
  (:data:`MARGIN_MM` all round, :data:`FOOTER_MM` at the bottom for the label and the ruler); neighbouring
  tiles share :data:`OVERLAP_MM`, where they are glued. Each tile has crop marks at its corners, a dashed line
  where the next tile's overlap begins (cut there, or glue on it), and a label: "row 1, column 2 of 2 × 2".
  A last page, the assembly sheet, shows the whole picture small with its tiles numbered. The orientation
  (portrait or landscape) is the one that needs fewer pages.

Papers (:data:`PAPERS`): a4, letter, a3, legal, tabloid, or ``WxH`` in millimetres (e.g. ``300x450``).

Limits: the PDF is made with matplotlib (one page a tile, the picture embedded at its own resolution); the
printer's own unprintable border is assumed within :data:`MARGIN_MM`.
"""
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PAPERS = {"a4": (210.0, 297.0), "letter": (215.9, 279.4), "a3": (297.0, 420.0), "legal": (215.9, 355.6),
          "tabloid": (279.4, 431.8)}
MARGIN_MM = 10.0            # all round: most home printers cannot print the outer 3–6 mm
FOOTER_MM = 16.0            # below the printable area: the label and the ruler
OVERLAP_MM = 10.0           # shared by neighbouring tiles: the glue strip
RULER_MM = 100.0
MM_PER_INCH = 25.4


def paper_size(name):
    """``(width, height)`` in mm, portrait, of a paper name of :data:`PAPERS` or ``WxH`` (mm); ValueError
    naming what to give otherwise."""
    key = str(name).strip().lower()
    if key in PAPERS:
        return PAPERS[key]
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*x\s*(\d+(?:\.\d+)?)", key)
    if match:
        w, h = (float(v) for v in match.groups())
        if min(w, h) >= 2 * MARGIN_MM + 40 and max(w, h) <= 2000:
            return (min(w, h), max(w, h))
    raise ValueError(f"--paper must be one of {', '.join(PAPERS)} or WxH in millimetres (e.g. 300x450, each side "
                     f"{2 * MARGIN_MM + 40:g} to 2000 mm), got {name!r}")


@dataclass
class Layout:
    """How a print of ``print_mm`` goes on ``paper_mm`` (as fed, width × height): ``rows`` × ``cols`` tiles
    whose picture parts start at ``x0s``, ``y0s`` (mm from the picture's left and top edges), each
    ``tile_mm`` large at most."""
    paper_mm: tuple
    print_mm: tuple
    rows: int
    cols: int
    x0s: list
    y0s: list
    tile_mm: tuple

    @property
    def pages(self):
        return self.rows * self.cols + (1 if self.rows * self.cols > 1 else 0)


def _starts(length, usable):
    """Where the tiles along one side start (mm), each `usable` long, neighbours sharing OVERLAP_MM."""
    if length <= usable:
        return [0.0]
    count = math.ceil((length - OVERLAP_MM) / (usable - OVERLAP_MM))
    return [i * (usable - OVERLAP_MM) for i in range(count)]              # the last tile is the shortest


def layout(print_mm, paper):
    """The :class:`Layout` of a print ``(width, height)`` mm on `paper` (a name, see :func:`paper_size`): the
    orientation with fewer tiles (portrait when equal)."""
    best = None
    for paper_mm in (paper_size(paper), paper_size(paper)[::-1]):
        usable = (paper_mm[0] - 2 * MARGIN_MM, paper_mm[1] - 2 * MARGIN_MM - FOOTER_MM)
        xs, ys = _starts(print_mm[0], usable[0]), _starts(print_mm[1], usable[1])
        option = Layout(paper_mm, tuple(print_mm), len(ys), len(xs), xs, ys,
                        (min(usable[0], print_mm[0]), min(usable[1], print_mm[1])))
        if best is None or option.rows * option.cols < best.rows * best.cols:
            best = option
    return best


def one_sheet_mm(paper, aspect=1.0):
    """The largest print of `aspect` (width ÷ height) that goes on one sheet of `paper` (see :func:`paper_size`)
    in either orientation, with the sheet's margins, label and ruler: ``(width, height)`` in mm."""
    best = (0.0, 0.0)
    for paper_mm in (paper_size(paper), paper_size(paper)[::-1]):
        usable = (paper_mm[0] - 2 * MARGIN_MM, paper_mm[1] - 2 * MARGIN_MM - FOOTER_MM)
        width = min(usable[0], usable[1] * aspect)
        if width > best[0]:
            best = (width, width / aspect)
    return best


def _ruler(ax, x, y):
    """A 100 mm ruler with a tick every 10 mm, its left end at (x, y) mm on the page axes."""
    ax.plot([x, x + RULER_MM], [y, y], color="black", lw=0.8)
    for k in range(11):
        ax.plot([x + 10 * k, x + 10 * k], [y, y + (3 if k % 5 == 0 else 1.5)], color="black", lw=0.5)
    ax.text(x + RULER_MM + 3, y, f"{RULER_MM:g} mm: measure it; if it is not 100 mm, print again at 100 % "
            f"(no \"fit to page\")", fontsize=6, va="center")


def _page(pdf, paper_mm, draw):
    """One page of `paper_mm` whose axes are in millimetres from its lower left corner; `draw(ax)` fills it."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(paper_mm[0] / MM_PER_INCH, paper_mm[1] / MM_PER_INCH))
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, paper_mm[0])
    ax.set_ylim(0, paper_mm[1])
    ax.set_axis_off()
    draw(ax)
    pdf.savefig(fig)


def _crop_marks(ax, x0, y0, w, h):
    for cx, cy, dx, dy in ((x0, y0, -1, -1), (x0 + w, y0, 1, -1), (x0, y0 + h, -1, 1), (x0 + w, y0 + h, 1, 1)):
        ax.plot([cx + dx * 1.5, cx + dx * 6], [cy, cy], color="black", lw=0.4)
        ax.plot([cx, cx], [cy + dy * 1.5, cy + dy * 6], color="black", lw=0.4)


def write_paper_pdf(image, print_mm, paper, path, title, outlines=()):
    """Write the print `image` (a PIL image, the whole picture, any resolution) at its true size ``print_mm``
    on `paper`: one sheet or tiles and an assembly sheet (module doc). `outlines`: closed polylines in the
    picture's [0, 1]² (u across, v down) drawn dashed on it (where objects stand). Returns ``(path, layout)``."""
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.patches import Rectangle
    plan = layout(print_mm, paper)
    pw, ph = plan.paper_mm
    picture = np.asarray(image)
    W, H = print_mm
    with PdfPages(path) as pdf:
        for r, y0 in enumerate(plan.y0s):
            for c, x0 in enumerate(plan.x0s):
                w, h = min(plan.tile_mm[0], W - x0), min(plan.tile_mm[1], H - y0)
                left = MARGIN_MM if plan.cols > 1 else (pw - w) / 2         # one sheet: centred
                top = ph - MARGIN_MM if plan.rows > 1 else ph - FOOTER_MM / 2 - (ph - FOOTER_MM - h) / 2

                def draw(ax, x0=x0, y0=y0, w=w, h=h, left=left, top=top, r=r, c=c):
                    # The whole picture placed so that this tile's part falls on the printable area, clipped.
                    shown = ax.imshow(picture, extent=(left - x0, left - x0 + W, top - (H - y0), top + y0),
                                      interpolation="none", aspect="auto")
                    clip = Rectangle((left, top - h), w, h, transform=ax.transData)
                    shown.set_clip_path(clip)
                    for line in outlines:
                        drawn, = ax.plot(left - x0 + line[:, 0] * W, top + y0 - line[:, 1] * H, color="black",
                                         lw=0.6, ls="--")
                        drawn.set_clip_path(clip)
                    _crop_marks(ax, left, top - h, w, h)
                    if c + 1 < plan.cols:                # where the next column's part begins: glue or cut there
                        x = left + plan.x0s[c + 1] - x0
                        ax.plot([x, x], [top - h, top], color="0.5", lw=0.4, ls=(0, (4, 3)))
                    if r + 1 < plan.rows:
                        y = top - (plan.y0s[r + 1] - y0)
                        ax.plot([left, left + w], [y, y], color="0.5", lw=0.4, ls=(0, (4, 3)))
                    label = (f"{title} · {W:.0f} × {H:.0f} mm" if plan.rows * plan.cols == 1 else
                             f"{title} · row {r + 1}, column {c + 1} of {plan.rows} × {plan.cols} · overlap "
                             f"{OVERLAP_MM:g} mm: glue each tile over the dashed line of its neighbour")
                    ax.text(MARGIN_MM, MARGIN_MM + 10, label, fontsize=6.5, va="center")
                    _ruler(ax, MARGIN_MM, MARGIN_MM + 3)
                _page(pdf, plan.paper_mm, draw)
        if plan.rows * plan.cols > 1:
            def assembly(ax):
                scale = min((pw - 2 * MARGIN_MM) / W, (ph - 2 * MARGIN_MM - FOOTER_MM - 10) / H)
                left, top = (pw - W * scale) / 2, ph - MARGIN_MM - 10
                ax.imshow(picture, extent=(left, left + W * scale, top - H * scale, top), aspect="auto")
                for r, y0 in enumerate(plan.y0s):
                    for c, x0 in enumerate(plan.x0s):
                        w, h = min(plan.tile_mm[0], W - x0), min(plan.tile_mm[1], H - y0)
                        ax.add_patch(Rectangle((left + x0 * scale, top - (y0 + h) * scale), w * scale, h * scale,
                                               fill=False, lw=0.6))
                        ax.text(left + (x0 + w / 2) * scale, top - (y0 + h / 2) * scale, f"{r + 1}, {c + 1}",
                                fontsize=9, ha="center", va="center", color="black",
                                bbox={"facecolor": "white", "alpha": 0.7, "lw": 0})
                ax.text(MARGIN_MM, ph - MARGIN_MM - 3, f"{title}: assembly of {plan.rows} × {plan.cols} tiles "
                        f"(row, column) into {W:.0f} × {H:.0f} mm", fontsize=8, va="center")
                _ruler(ax, MARGIN_MM, MARGIN_MM + 3)
            _page(pdf, plan.paper_mm, assembly)
    return Path(path), plan
