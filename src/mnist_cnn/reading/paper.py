"""A photo of handwriting in, its paper evened out: how much darker than its own paper each
pixel is, on a flattened sheet.

Classical image code does what it does well, and nothing more: the network (`detector`) decides
what is ink, a digit or a mark. A phone photo is not a scan: the sheet may lie on a table, the
light falls unevenly and a shadow cuts across the page. `prepare` undoes each, with OpenCV:

1. The sheet: when something else shows round it, the largest bright quadrilateral is taken
   and its perspective straightened.
2. The polarity: white chalk on a board becomes dark ink on light paper.
3. The paper: its light is estimated at each place (a morphological closing wider than any
   stroke, which keeps a shadow's hard edge, on the picture with its grain smoothed) and
   divided out, so gradients and shadows vanish.
4. The contrast: the darkest strokes are stretched to full strength, so faint pencil and a
   dim photo reach the network as a marker on white does.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from mnist_cnn.reading.geometry import Box

MIN_CONTRAST = 32  # ink must differ from the paper by this much (0-255) to count as ink
SHEET_SIDE = 256  # the sheet is looked for at this size: its outline needs no more
MIN_LIGHT = 0.7  # of a sheet's area, at least this share is lighter than the photo's Otsu level
EDGE_BAND = 25  # px at SHEET_SIDE about a jump in the paper's median that tell no polarity
MIN_SHEET = 0.08  # a sheet (or a sticky note) covers at least this share of the photo
FLAT = 10  # paper varies less than this (grey levels, std over 5x5 at SHEET_SIDE)
STRONG = 0.9  # the share of ink pixels fainter than the level that is stretched to full ink
MAX_GAIN = 6.0  # contrast is stretched at most this much: paper grain is not ink
NOISE_FLOOR = 3.0  # ink lies at least this many times the paper's grain above the paper
PAPER_BLUR = 2.0  # px: the grain is smoothed this much before the paper's light is estimated


@dataclass(frozen=True)
class Paper:
    """What `prepare` made of a photo: `ink`, how much darker than its paper each pixel is
    (float32, 0 paper to 1 the strongest strokes), in the flattened sheet's pixels; the
    sheet's corners in the photo (or None) and the map back to the photo's pixels."""

    ink: np.ndarray
    sheet: np.ndarray | None = None  # 4 x (x, y): top-left, top-right, bottom-right, bottom-left
    to_photo: np.ndarray | None = None  # 3x3 homography, flattened sheet -> photo pixels

    def box_in_photo(self, box: Box) -> Box:
        """A box of the flattened sheet as the box round it in the photo."""
        if self.to_photo is None:
            return box
        corners = np.float32([[[x, y]] for x, y in box.corners()])
        mapped = cv2.perspectiveTransform(corners, self.to_photo)[:, 0]
        lo, hi = mapped.min(0), mapped.max(0)
        return Box(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))


def prepare(gray: np.ndarray) -> Paper:
    """The evened paper of a grayscale photo, scan or drawing (0-255), either polarity."""
    gray = np.ascontiguousarray(gray, np.float32)
    sheet, to_photo = None, None
    if min(gray.shape) >= 100:
        gray, sheet, to_photo = _flatten_sheet(gray)
    return Paper(even(gray), sheet, to_photo)


def even(gray: np.ndarray) -> np.ndarray:
    """Steps 2-4 on a picture that is all paper (a scan, a crop, a generated page): how much
    darker than its paper each pixel is, 0-1, the strong strokes at 1."""
    gray = np.ascontiguousarray(gray, np.float32)
    if float(np.ptp(gray)) < MIN_CONTRAST:  # one grey all over: paper and nothing on it
        return np.zeros(gray.shape, np.float32)
    if _dark_paper(gray):
        gray = 255 - gray
    darkness, noise = _darkness(gray)
    return stretch(darkness, noise)


def stretch(darkness: np.ndarray, noise: float) -> np.ndarray:
    """Darkness scaled so the strong strokes reach 1: the level under which STRONG of the
    pixels that stand out of the paper's grain lie becomes full ink, stretched at most
    MAX_GAIN times (the grain's own tail is stretched too, and the network has learnt it)."""
    floor = max(NOISE_FLOOR * noise, MIN_CONTRAST / 255 / 2)
    standing = darkness[darkness > floor]
    level = float(np.quantile(standing, STRONG)) if standing.size >= 16 else 1.0
    gain = 1.0 / max(level, 1.0 / MAX_GAIN)
    return np.clip(darkness * gain, 0, 1).astype(np.float32)


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
    size = (max(1, round(gray.shape[1] * f)), max(1, round(gray.shape[0] * f)))
    small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA) if f < 1 else gray
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
    else:  # the median alone left a dim photo's grain peaks to the max filter (docs/log.md)
        level = cv2.GaussianBlur(smooth, (0, 0), PAPER_BLUR)
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
        paper = cv2.morphologyEx(level, cv2.MORPH_CLOSE, kernel, borderType=cv2.BORDER_REPLICATE)
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
