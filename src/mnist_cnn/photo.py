"""A photo of handwriting in, the ink on it out: bright strokes on black, nothing else.

A phone photo is not a scan. The sheet may lie on a table, the light falls unevenly, a shadow
cuts across the page, pencil is faint, and the paper may be ruled, squared or a printed form.
`find_ink` undoes each in turn, with OpenCV:

1. The sheet: when something else shows round it, the largest bright quadrilateral is taken
   and its perspective straightened (or, with no clean corners, everything outside it painted
   paper).
2. The paper: its light is estimated at each place (a morphological closing wider than any
   stroke, which keeps a shadow's hard edge) and divided out, so gradients and shadows vanish.
3. The ink: what is clearly darker than its own paper (a threshold from the paper's noise,
   with hysteresis so faint pencil joined to firmer strokes stays whole).
4. What is not ink: long straight printed lines (ruled, squared, form boxes) and the box sides
   standing between them, the table or a paper edge along the border, and specks.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from mnist_cnn import marks
from mnist_cnn.errors import ImageError

cv2.setNumThreads(1)  # one request, one core: a server's workers would otherwise fight for them

MIN_CONTRAST = 32  # ink must differ from the paper by this much (0-255) to count as ink
SHEET_SIDE = 256  # the sheet is looked for at this size: its outline needs no more
MIN_LIGHT = 0.7  # of a sheet's area, at least this share is lighter than the photo's Otsu level
EDGE_BAND = 25  # px at SHEET_SIDE about a jump in the paper's median that tell no polarity
MIN_SHEET = 0.08  # a sheet (or a sticky note) covers at least this share of the photo
FLAT = 10  # paper varies less than this (grey levels, std over 5x5 at SHEET_SIDE)
LINE = 0.3  # a printed line runs at least this share of the sheet's width (or height)


@dataclass(frozen=True)
class Ink:
    """What `find_ink` saw: the ink (bright on black, float32, in the flattened sheet's
    pixels), the sheet's corners in the photo (or None), and the map back to the photo."""

    ink: np.ndarray
    sheet: np.ndarray | None = None  # 4 x (x, y): top-left, top-right, bottom-right, bottom-left
    to_photo: np.ndarray | None = None  # 3x3 homography, flattened sheet -> photo pixels

    def box_in_photo(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """A box (x0, y0, x1, y1) of the flattened sheet as the box round it in the photo."""
        if self.to_photo is None:
            return box
        x0, y0, x1, y1 = box
        corners = np.float32([[[x0, y0]], [[x1, y0]], [[x1, y1]], [[x0, y1]]])
        mapped = cv2.perspectiveTransform(corners, self.to_photo)[:, 0]
        lo, hi = np.floor(mapped.min(0)), np.ceil(mapped.max(0))
        return int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1])


def _components(mask: np.ndarray) -> tuple:
    """8-connected components with their stats, as cv2.connectedComponentsWithStats: by
    Grana's algorithm, which gathers the stats three times as fast as OpenCV's default."""
    return cv2.connectedComponentsWithStatsWithAlgorithm(mask, 8, cv2.CV_32S, cv2.CCL_GRANA)


def otsu(values: np.ndarray) -> float:
    """The grey level that best splits values (0-255) into two classes (Otsu's method): the
    ones above it are the brighter class."""
    levels = np.clip(np.asarray(values, np.float32), 0, 255).astype(np.uint8)  # floor, as bins
    if levels.size == 0 or levels.min() == levels.max():  # a single grey level: nothing to split
        return float(levels.min()) if levels.size else 0.0
    level, _ = cv2.threshold(levels.reshape(1, -1), 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(level)


def find_ink(gray: np.ndarray) -> Ink:
    """Bright ink on black from a grayscale photo, scan or drawing (0-255), either polarity."""
    gray = np.ascontiguousarray(gray, np.float32)
    sheet, to_photo = None, None
    if min(gray.shape) >= 100:
        gray, sheet, to_photo = _flatten_sheet(gray)
    if _dark_paper(gray):
        gray = 255 - gray
    darkness, noise = _darkness(gray)
    if darkness.max() * 255 < MIN_CONTRAST:
        raise ImageError("no ink found: the image is blank or has too little contrast")
    mask, low = _ink_mask(darkness, noise)
    if min(mask.shape) >= 100:  # a small picture is one digit: it has no printed lines
        mask = _drop_lines(mask, darkness)
    mask = _drop_shadow_tips(mask, darkness, gray)
    mask = _drop_border_and_faint(mask, darkness)
    if not mask.any():
        raise ImageError("no ink found: only paper, lines or edges in the image")
    # the strokes' anti-aliased rims come along, as a scan's grey levels are: not flattened
    rim = max(1, round(max(gray.shape) / 200))
    near = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=rim) & (darkness > low / 2)
    ink = darkness * 255 * near
    return Ink(ink.astype(np.float32), sheet, to_photo)


def _dark_paper(gray: np.ndarray) -> bool:
    """Whether the ink is the bright part: more pixels stand out above the paper than below
    it. The paper is the border's grey where the border is even; under a gradient or a shadow
    it is each place's median (the paper is the majority wherever one looks), since there the
    border's grey alone would take dim paper for a dark background."""
    step = MIN_CONTRAST // 2
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    low, paper, high = np.percentile(border, [10, 50, 90])
    if high - low < step:
        return bool((gray > paper + 2 * step).sum() > (gray < paper - 2 * step).sum())
    f = min(1.0, SHEET_SIDE / max(gray.shape))
    small = cv2.resize(gray, None, fx=f, fy=f, interpolation=cv2.INTER_AREA) if f < 1 else gray
    small = np.clip(small, 0, 255).astype(np.uint8)
    around = cv2.medianBlur(small, max(3, min(small.shape) // 4) | 1)
    # beside a hard edge in the paper (a shadow's), the median flips from one side's grey to
    # the other's a little way off the edge, and what lies between stands out from it: such
    # places, near a jump in the median that runs across half the picture (a large digit
    # makes a jump of its own size round itself), are left out of the count
    jumps = cv2.morphologyEx(around, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > step
    n, labels, stats, _ = cv2.connectedComponentsWithStats(jumps.astype(np.uint8))
    extent = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    long = (extent >= 0.5 * max(small.shape)) & (np.arange(n) > 0)
    near = cv2.dilate(long[labels].astype(np.uint8), np.ones((EDGE_BAND, EDGE_BAND), np.uint8))
    near = near > 0
    around = around.astype(np.int16)
    above, below = (small > around + step) & ~near, (small < around - step) & ~near
    return bool(above.sum() > below.sum())


# ------------------------------------------------------------------ 1. the sheet


def _flatten_sheet(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The sheet cut out of the photo and straightened, when a table or the like shows round it."""
    quad = _sheet_quad(gray)
    if quad is None:
        return gray, None, None
    top, right = np.linalg.norm(quad[1] - quad[0]), np.linalg.norm(quad[2] - quad[1])
    bottom, left = np.linalg.norm(quad[2] - quad[3]), np.linalg.norm(quad[3] - quad[0])
    w, h = int(max(top, bottom)), int(max(left, right))
    scale = min(1.0, max(gray.shape) / max(w, h))  # never larger than the photo was
    w, h = max(8, int(w * scale)), max(8, int(h * scale))
    flat = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
    to_sheet = cv2.getPerspectiveTransform(quad, flat)
    if not np.isfinite(to_sheet).all() or abs(np.linalg.det(to_sheet)) < 1e-12:
        return gray, None, None  # corners in a line: no sheet to straighten
    sheet = cv2.warpPerspective(
        gray, to_sheet, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return sheet, quad, np.linalg.inv(to_sheet)


def _sheet_quad(gray: np.ndarray) -> np.ndarray | None:
    """The corners of the largest bright four-sided region that something darker surrounds,
    in the photo's pixels; None when the paper fills the photo or no such region is found.
    When none is, again with the writing closed over: a row of digits from edge to edge of a
    small sheet (a sticky note) cuts it in two, each half too small to count."""
    f = SHEET_SIDE / max(gray.shape)
    small = cv2.resize(gray, None, fx=f, fy=f, interpolation=cv2.INTER_AREA) if f < 1 else gray
    f = min(f, 1.0)
    small = small.astype(np.uint8)
    _, bright = cv2.threshold(small, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    light = bright.copy()
    mean = cv2.blur(small.astype(np.float32), (5, 5))
    spread = cv2.blur(small.astype(np.float32) ** 2, (5, 5)) - mean**2
    bright &= (spread < FLAT**2).astype(np.uint8)  # paper is even: a tablecloth's squares are not
    r = max(2, round(0.04 * max(small.shape)))  # cuts off a tablecloth's bright squares
    for closing in (1, 2 * r + 1):  # upright only: the writing runs across (a closed-over
        # tablecloth would join its squares to the sheet, so only where nothing else was found)
        closed = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, np.ones((closing, 1), np.uint8))
        quad = _quad_of(closed, small, spread, r)
        if quad is not None and _mostly_light(light, quad):
            return (quad / f).astype(np.float32)
    return None


def _mostly_light(light: np.ndarray, quad: np.ndarray) -> bool:
    """Whether a found sheet is mostly light: paper with writing on it, not the loops of a
    white digit drawn on black, filled in (an 8's two loops make a four-sided region)."""
    inside = np.zeros_like(light)
    cv2.fillConvexPoly(inside, quad.astype(np.int32), 1)
    return bool(light[inside > 0].mean() > MIN_LIGHT)


def _quad_of(
    bright: np.ndarray, small: np.ndarray, spread: np.ndarray, r: int
) -> np.ndarray | None:
    """The sheet's four corners in `small`, from its bright even paper; or None."""
    # the writing leaves holes in the paper: filled, or a row of digits would cut it below
    outlines, _ = cv2.findContours(bright, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(bright, outlines, -1, 1, thickness=cv2.FILLED)
    bright = cv2.morphologyEx(
        bright, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    )
    n, labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=4)
    if n < 2:
        return None
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[biggest, cv2.CC_STAT_AREA] < MIN_SHEET * small.size:
        return None
    region = (labels == biggest).astype(np.uint8)
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.convexHull(max(contours, key=cv2.contourArea))
    quad = _four_corners(hull)
    if quad is None or cv2.contourArea(quad) > 0.93 * small.size:
        return None  # the paper fills the photo: nothing to cut away
    inside = np.zeros_like(region)
    cv2.fillConvexPoly(inside, quad.astype(np.int32), 1)
    if small[inside == 0].mean() > small[region > 0].mean() - 10:
        return None  # what lies round a sheet is darker than the sheet
    margin = 0.02 * max(small.shape)
    h, w = small.shape
    inner = (quad[:, 0] > margin) & (quad[:, 0] < w - 1 - margin)
    inner &= (quad[:, 1] > margin) & (quad[:, 1] < h - 1 - margin)
    even_round = (spread[inside == 0] < FLAT**2).mean() > 0.5
    if inner.sum() < 3 and even_round:
        return None  # a shadow or the light's fall-off across the page, not a sheet's edges
    sides = np.linalg.norm(quad - np.roll(quad, 1, 0), axis=1)
    if sides.min() < 0.15 * min(h, w):
        return None  # a bright bar (a chalk stroke, a ruler), not a sheet
    area = float(region.sum())
    if abs(cv2.contourArea(quad) - area) > 0.25 * area:
        return None  # the region is no four-sided sheet (a white digit drawn on black)
    quad = _order(quad)
    if len(np.unique(quad, axis=0)) < 4:
        return None  # no clear top-left, top-right, ... corners: a diamond
    return quad + 0.02 * (quad.mean(0) - quad)  # a little inside: no strip of table comes along


def _four_corners(hull: np.ndarray) -> np.ndarray | None:
    """The hull as a quadrilateral, when it is one (within a few per cent of its outline)."""
    length = cv2.arcLength(hull, True)
    for eps in (0.01, 0.02, 0.03, 0.05):
        approx = cv2.approxPolyDP(hull, eps * length, True)
        if len(approx) == 4 and cv2.isContourConvex(approx):
            return approx[:, 0].astype(np.float32)
    return None


def _order(quad: np.ndarray) -> np.ndarray:
    """Corners as top-left, top-right, bottom-right, bottom-left."""
    s, d = quad.sum(1), quad[:, 0] - quad[:, 1]
    return np.float32(
        [quad[np.argmin(s)], quad[np.argmax(d)], quad[np.argmax(s)], quad[np.argmin(d)]]
    )


# ------------------------------------------------------------------ 2. the paper


def _darkness(gray: np.ndarray) -> tuple[np.ndarray, float]:
    """How much darker than its own paper each pixel is, 0 (paper) to 1 (black), and how much
    the paper's grain varies on that scale.

    The paper's light is the image with the ink closed over (a max filter wider than any
    stroke, then a min filter as wide): slow light changes and a shadow's straight hard edge
    survive the closing, the ink does not. The grain is smoothed first, or the max filter
    would take its peaks for the paper.
    """
    smooth = cv2.medianBlur(np.clip(gray, 0, 255).astype(np.uint8), 5)
    k = _closing_size(smooth)
    if k is None:  # one level for the whole picture: the grey of its brighter part
        bright = smooth[smooth > otsu(smooth)]
        level = float(np.median(bright)) if bright.size else float(smooth.max())
        paper = np.full(gray.shape, level, np.float32)
    else:
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
        paper = cv2.morphologyEx(smooth, cv2.MORPH_CLOSE, kernel, borderType=cv2.BORDER_REPLICATE)
    paper = np.maximum(paper.astype(np.float32), 1.0)
    shade, noise = _shade(gray, paper)
    if noise > 0.02 and min(gray.shape) >= 100:  # a photo's grain: smoothed under a pen's width
        shade, noise = _shade(cv2.GaussianBlur(gray, (0, 0), 1.0), paper)
    return np.clip(shade, 0, 1), noise


def _shade(gray: np.ndarray, paper: np.ndarray) -> tuple[np.ndarray, float]:
    """1 - gray / paper, and the paper's grain on that scale (from pixels on both sides of
    the paper's level, so the grain is not halved by clipping)."""
    shade = 1 - gray / paper
    sample = shade[::4, ::4]
    return shade, 1.4826 * float(np.median(np.abs(sample - np.median(sample))))


def _closing_size(gray: np.ndarray) -> int | None:
    """A closing wider than three strokes, at most a third of the picture: the strokes' width
    is read from the dark marks that do not touch the border (shadows mostly do). When the
    writing reaches the border and is too wide for that (a tight crop of one digit), None:
    there is no room for a local estimate of the paper."""
    dark = (gray <= otsu(gray)).astype(np.uint8)  # otsu: the top grey of the darker class
    _n, labels, stats, _ = _components(dark)
    h, w = gray.shape
    x0, y0 = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    inner = (x0 > 0) & (y0 > 0) & (x0 + stats[:, 2] < w) & (y0 + stats[:, 3] < h)
    inner[0] = False
    cropped = not inner.any()
    if cropped:  # every mark but a shadow: large, and only half as dark as ink
        area = stats[:, 4]
        grey = np.bincount(labels.ravel(), gray.ravel(), len(area)) / np.maximum(area, 1)
        bright = gray[dark == 0]
        paper = float(np.median(bright)) if bright.size else 255.0
        inner = ~((area > 0.1 * h * w) & (grey > 0.4 * paper))
        inner[0] = False
    marks = inner[labels].astype(np.uint8)
    width = 3.0
    if marks.any():
        edge = marks - cv2.erode(marks, np.ones((3, 3), np.uint8))
        width = 2 * marks.sum() / max(int(edge.sum()), 1)
    k = 3 * width + 3
    if cropped and k > min(h, w) / 3:
        return None
    return int(np.clip(k, max(3, min(h, w) / 10), max(3, min(h, w) / 3))) | 1


# ------------------------------------------------------------------ 3. the ink


def _ink_mask(darkness: np.ndarray, noise: float) -> tuple[np.ndarray, float]:
    """Pixels clearly darker than their paper, by hysteresis: faint parts are kept where they
    join a firm stroke, so pencil stays whole and paper grain stays out."""
    low = max(3 * noise, 0.5 * MIN_CONTRAST / 255)
    high = max(otsu(darkness * 255) / 255, 2 * low, MIN_CONTRAST / 255)
    weak = (darkness > low).astype(np.uint8)
    n, labels = cv2.connectedComponents(weak, connectivity=8)
    firm = np.zeros(n, bool)
    firm[np.unique(labels[darkness > high])] = True
    firm[0] = False
    return firm[labels].astype(np.uint8), low


# ------------------------------------------------------------------ 4. what is not ink


def _drop_lines(mask: np.ndarray, darkness: np.ndarray) -> np.ndarray:
    """Take out long straight printed lines (ruled, squared) and printed boxes; a stroke that
    crossed a line is joined again where it did, and one written along a line stays where
    the pen is darker than the print."""
    frames = mask & ~_drop_frames(mask)
    mask = mask & ~frames
    h, w = mask.shape
    longest = LINE * np.array([w, h])
    marks = _mark_size(mask)  # a printed line is much longer than a digit is large
    if marks:
        longest = np.maximum(longest, 1.5 * marks)
    t = max(7, round(0.1 * marks))  # a printed line is thinner than this; a big pen is not
    thick = cv2.dilate(
        cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((t, t), np.uint8)), np.ones((3, 3), np.uint8)
    )
    thin = (mask & ~thick) * 255
    thickness = _line_width(thin) + 2
    lines = (_straight_lines(thin, longest, thickness) & mask) | frames
    if not lines.any():
        return mask
    lines = _print_only(lines, mask & ~lines, darkness)
    kept = _drop_between_lines(mask & ~lines, lines, thickness)
    # a stroke crossing a line: its pixels on the line come back where ink lies on both sides
    across = cv2.morphologyEx(kept, cv2.MORPH_CLOSE, np.ones((2 * thickness + 1, 1), np.uint8))
    across |= cv2.morphologyEx(kept, cv2.MORPH_CLOSE, np.ones((1, 2 * thickness + 1), np.uint8))
    return kept | (across & lines)


def _straight_lines(thin: np.ndarray, longest: np.ndarray, thickness: int) -> np.ndarray:
    """The flat and upright straight lines at least `longest` (width, height) long, drawn
    `thickness` wide. A line square to the page may be broken where writing lies on it (a
    row of digits along a grid line): its pieces count together. One Hough transform finds
    both kinds, at half the resolution of a large picture: lines are long."""
    h, w = thin.shape
    f = 2 if max(h, w) > 512 else 1
    small = cv2.resize(thin, (w // f, h // f), interpolation=cv2.INTER_AREA) if f > 1 else thin
    piece = float(min(longest)) / f / 3
    found = cv2.HoughLinesP(
        (small > 0).astype(np.uint8),
        1,
        np.pi / 180,
        threshold=int(0.8 * piece),
        minLineLength=int(piece),
        maxLineGap=int(0.02 * max(h, w) / f),
    )
    lines = np.zeros(thin.shape, np.uint8)
    square: list[tuple[bool, float, np.ndarray]] = []
    for segment in np.reshape(found if found is not None else [], (-1, 4)) * f:
        x0, y0, x1, y1 = segment
        angle = np.degrees(np.arctan2(abs(y1 - y0), abs(x1 - x0)))  # 0 flat, 90 upright
        upright, length = angle >= 70, float(np.hypot(x1 - x0, y1 - y0))
        if min(angle, 90 - angle) <= 1:  # where it crosses the page's middle: its line
            if upright:
                mid = x0 + (h / 2 - y0) * (x1 - x0) / (y1 - y0)
            else:
                mid = y0 + (w / 2 - x0) * (y1 - y0) / max(x1 - x0, 1e-6)
            square.append((bool(upright), float(mid), segment))
        elif (upright or angle <= 20) and length >= longest[int(upright)]:
            cv2.line(lines, (int(x0), int(y0)), (int(x1), int(y1)), 1, thickness)
    for run in _runs(sorted(square, key=lambda s: s[:2]), thickness):
        if _covered(run) >= longest[int(run[0][0])]:  # across the page, broken bits too
            _draw_across(lines, _fitted(run, h, w), thickness + 2)
    return lines


def _fitted(run: list, h: int, w: int) -> tuple[float, float, float, float]:
    """One segment for a run's pieces, fit through their ends: each piece's own angle is only
    good to a degree, and drawn across the page each would widen the line."""
    upright = run[0][0]
    ends = np.concatenate([np.reshape(s, (2, 2)) for *_, s in run]).astype(np.float64)
    along, off = (ends[:, 1], ends[:, 0]) if upright else (ends[:, 0], ends[:, 1])
    slope, at = np.polyfit(along, off, 1) if np.ptp(along) > 0 else (0.0, float(off.mean()))
    far = h if upright else w
    if upright:
        return (at, 0.0, at + slope * far, far)
    return (0.0, at, far, at + slope * far)


def _covered(run: list) -> float:
    """How much of its line a run's segments cover: Hough finds a wide stroke several times
    over, and those must not add up to a line."""
    upright = run[0][0]
    spans = sorted(sorted((s[1], s[3]) if upright else (s[0], s[2])) for *_, s in run)
    total, reach = 0.0, -np.inf
    for lo, hi in spans:
        total += max(0.0, hi - max(lo, reach))
        reach = max(reach, hi)
    return total


def _runs(square: list, gap: float) -> list[list]:
    """Segments (upright, where, segment), sorted, in runs of one line each: the
    same direction, each within `gap` of the one before."""
    runs: list[list] = []
    for item in square:
        if runs and runs[-1][-1][0] == item[0] and item[1] - runs[-1][-1][1] <= gap:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def _print_only(lines: np.ndarray, rest: np.ndarray, darkness: np.ndarray) -> np.ndarray:
    """The printed lines' pixels without those of a pen stroke that runs along a line (a 7's
    bar on a grid line): as dark as the writing, not as the print, and joined to writing
    near by. Only where the pen is clearly darker than the print (as ink over a light grid
    is; pencil is not, and goes with the lines)."""
    printed, written = darkness[lines > 0], darkness[rest > 0]
    if not written.size:
        return lines
    printed_level, written_level = float(np.median(printed)), float(np.median(written))
    if written_level < 1.4 * printed_level:
        return lines
    inky = lines & (darkness > (printed_level + written_level) / 2).astype(np.uint8)
    n, labels = cv2.connectedComponents(rest | inky, connectivity=8)
    written_on = np.zeros(n, bool)
    written_on[labels[rest > 0]] = True
    written_on[0] = False
    inky &= written_on[labels].astype(np.uint8)
    # a long run is a dark printed line (a margin) that writing touches, not a stroke
    n, labels, stats, _ = _components(inky)
    h, w = inky.shape
    short = (stats[:, 2] < LINE * w) & (stats[:, 3] < LINE * h)
    short[0] = False
    return lines & ~short[labels].astype(np.uint8)


def _drop_between_lines(mask: np.ndarray, lines: np.ndarray, width: int) -> np.ndarray:
    """A mark that runs straight up from one printed line to the next, no wider than a line,
    is what is left of a margin line or a box's side between them (a 1 or a 7's stem there
    leans, or is wider: it stays)."""
    _, labels, stats, _ = _components(mask)
    near = cv2.dilate(lines, np.ones((7, 7), np.uint8))
    drop = []
    upright = (
        (stats[1:, 3] >= 10) & (stats[1:, 2] * 4 <= stats[1:, 3]) & (stats[1:, 2] <= width + 1)
    )
    for i in np.flatnonzero(upright) + 1:
        x, y, bw, bh = stats[i, :4]
        mark = labels[y : y + bh, x : x + bw] == i
        if (
            near[y : y + 3, x : x + bw][mark[:3]].any()
            and near[y + bh - 3 : y + bh, x : x + bw][mark[-3:]].any()
        ):
            drop.append(i)
    return mask & ~np.isin(labels, drop).astype(np.uint8) if drop else mask


def _line_width(thin: np.ndarray) -> int:
    """How wide the thin marks are: their area over half their outline."""
    edge = thin - cv2.erode(thin, np.ones((3, 3), np.uint8))
    return max(1, round(2 * int(thin.sum()) / max(int(edge.sum()), 1)))


def _draw_across(canvas: np.ndarray, segment: tuple, thickness: int) -> None:
    """The straight line through a segment, from one edge of the canvas to the other."""
    x0, y0, x1, y1 = (float(v) for v in segment)
    dx, dy = x1 - x0, y1 - y0
    reach = 2 * sum(canvas.shape) / max(np.hypot(dx, dy), 1e-6)
    start = (round(x0 - reach * dx), round(y0 - reach * dy))
    end = (round(x0 + reach * dx), round(y0 + reach * dy))
    cv2.line(canvas, start, end, 1, thickness)


def _mark_size(mask: np.ndarray) -> float:
    """How large the writing is: the median longer side of the sizeable marks, less those as
    large as the page both ways (a grid with the digits that touch it); 0 when none is left."""
    _, _, stats, _ = _components(mask)
    h, w = mask.shape
    small = (stats[1:, 2] < 0.9 * w) | (stats[1:, 3] < 0.9 * h)
    area, size = stats[1:, 4][small], np.maximum(stats[1:, 2], stats[1:, 3])[small]
    if not len(area):
        return 0.0
    return float(np.median(size[area >= 0.05 * area.max()]))


def _drop_frames(mask: np.ndarray) -> np.ndarray:
    """Take out printed boxes: a mark whose outline is four straight sides (a form's row of
    boxes), less its sides and the upright lines between its boxes; digits touching them stay."""
    _n, labels, stats, _ = _components(mask)
    out = mask.copy()
    h, w = mask.shape
    small = (stats[1:, 2] < 0.6 * w) | (stats[1:, 3] < 0.6 * h)  # a page-wide grid: lines
    for i in np.flatnonzero((stats[1:, 2] >= 30) & (stats[1:, 3] >= 20) & small) + 1:
        x, y, bw, bh = stats[i, :4]
        mark = labels[y : y + bh, x : x + bw] == i
        rows, cols = _frame_lines(mark)
        if rows is not None:
            out[y : y + bh, x : x + bw][mark & (rows[:, None] | cols[None, :])] = 0
    return out


def _frame_lines(mark: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The rows and columns a mark's frame runs along, when it has one: a straight line across
    (within a slight tilt) at its top and bottom, and a straight line down at its left and right."""
    h, w = mark.shape
    if mark.mean() > 0.3:
        return None, None  # a blocky digit (a scan's 0), not thin printed sides round space
    tilt_r, tilt_c = max(2, round(0.04 * w)), max(2, round(0.04 * h))
    across = _band_cover(mark, tilt_r) >= 0.9 * w  # rows covered end to end
    down = _band_cover(mark.T, tilt_c) >= 0.9 * h
    edge_r, edge_c = max(3, round(0.15 * h)), max(3, round(0.15 * w))
    if not (
        across[:edge_r].any()
        and across[-edge_r:].any()
        and down[:edge_c].any()
        and down[-edge_c:].any()
    ):
        return None, None
    grow = lambda lines, t: np.convolve(lines, np.ones(2 * t + 1), "same") > 0  # noqa: E731
    return grow(across, tilt_r), grow(down, tilt_c)


def _band_cover(mark: np.ndarray, tilt: int) -> np.ndarray:
    """For each row: how many columns have ink within `tilt` rows of it."""
    cum = np.vstack([np.zeros((1, mark.shape[1]), np.int32), np.cumsum(mark, 0, dtype=np.int32)])
    r = np.arange(mark.shape[0])
    lo, hi = np.clip(r - tilt, 0, None), np.clip(r + tilt + 1, None, mark.shape[0])
    return ((cum[hi] - cum[lo]) > 0).sum(1)


def _drop_shadow_tips(mask: np.ndarray, darkness: np.ndarray, gray: np.ndarray) -> np.ndarray:
    """Drop a mark that goes on just as dark past its own outline: the narrow tip of a shadow,
    which the paper's closing fills in (it is narrower than the closing) while the wide rest
    of the shadow counts as paper. Round a stroke, the photo is paper, clearly brighter."""
    x, y, w, h = cv2.boundingRect(mask)
    if not w:
        return mask
    x0, y0 = max(0, x - 8), max(0, y - 8)  # the writing and a ring round it: all that is read
    window = np.s_[y0 : y + h + 8, x0 : x + w + 8]
    out = mask.copy()
    mask, darkness, gray = mask[window], darkness[window], gray[window]
    n, labels = cv2.connectedComponents(mask, connectivity=8)
    g = cv2.GaussianBlur(gray, (0, 0), 1.5)
    on = mask > 0
    which, dark, grey = labels[on], darkness[on], g[on]
    peak = np.zeros(n, np.float32)
    np.maximum.at(peak, labels.ravel(), darkness.ravel())  # scipy's maximum sorts: slower
    core = dark >= 0.5 * peak[which]  # the mark's own grey, without its soft rim
    level = np.bincount(which[core], grey[core], n) / np.maximum(
        np.bincount(which[core], None, n), 1
    )
    kind = np.uint16 if n < 2**16 else np.float32  # cv2.dilate takes no int32
    ring = cv2.dilate(labels.astype(kind), np.ones((9, 9), np.uint8)).astype(np.int32)
    ring[cv2.dilate(mask, np.ones((5, 5), np.uint8)) > 0] = 0  # 3-4 px out from each mark
    round_ = ring[ring > 0]
    alike = g[ring > 0] < 1.12 * level[round_]
    share = np.bincount(round_, alike, n) / np.maximum(np.bincount(round_, None, n), 1)
    tip = share > 0.15
    tip[0] = False
    out[window] = np.where(tip[labels], 0, mask)
    return out


def _drop_border_and_faint(mask: np.ndarray, darkness: np.ndarray) -> np.ndarray:
    """Drop what is not writing: a mark along the border that spans half the picture (a
    table, a paper edge) or is small beside the writing (a shadow's rim, a corner of the
    table), marks far fainter than the writing (what is left of a shadow's edge), and specks."""
    h, w = mask.shape
    n, labels, stats, _ = _components(mask)
    if n < 2:
        return mask
    x, y, bw, bh, area = (stats[1:, i] for i in range(5))
    m = max(1, round(0.015 * max(h, w)))  # near the border: a strip of table left by the cut
    border = (x < m) | (y < m) | (x + bw > w - m) | (y + bh > h - m)
    inner = area[~border].max() if (~border).any() else 0
    long = (bw > 0.5 * w) | (bh > 0.5 * h)
    # as tall as the writing away from the border: a digit written up to the sheet's edge
    tall = bh >= 0.6 * np.median(bh[~border]) if (~border).any() else np.zeros_like(border)
    # along the border: a strip, or a bit beside the writing; but a digit filling its crop stays
    keep = ~(border & ((long & (inner >= 0.1 * area)) | ((area < 0.5 * area.max()) & ~tall)))
    if min(h, w) < 100:
        keep[:] = True
    on = mask > 0
    which = labels[on]
    if keep.any():
        strength = np.bincount(which, darkness[on], n)[1:] / np.maximum(area, 1)
        firm = np.median(darkness[on][keep[which - 1]])
        keep &= strength >= 0.4 * firm
    depth = np.zeros(n, np.float32)  # half of each mark's thickest stroke
    np.maximum.at(depth, which, cv2.distanceTransform(mask, cv2.DIST_L2, 3)[on])
    depth = depth[1:]
    if keep.sum() > 1:  # a blob far thicker than the strokes, solid or cut by the border:
        thick = depth > 3 * np.median(depth[keep])  # a shadow's corner, a stain; but not one
        point_sized = np.maximum(bw, bh) <= marks.DOT * np.median(bh[keep])  # a blot's size
        keep &= ~(thick & ((area > 0.5 * bw * bh) | border) & ~(point_sized & ~border))
    if keep.any():  # specks go, but a pen's dot (a decimal point) is at least half as thick
        # as its strokes, and at most about twice as long as it is thick (a dot, a short tick)
        dot = (depth >= 0.5 * np.median(depth[keep])) & (np.maximum(bw, bh) <= 4 * depth + 2)
        keep &= (area >= 0.05 * area[keep].max()) | (dot & (area >= 12))
    table = np.concatenate([[False], keep])
    return table[labels].astype(np.uint8)
