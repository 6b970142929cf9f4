"""Drawing the synthetic world (world.py) into frames: backgrounds, objects, the hand, the nuisances.

numpy + OpenCV only. Frames are BGR uint8 (H, W, 3), as cv2.VideoCapture returns them. Shapes are
anti-aliased polygons drawn with sub-pixel coordinates (cv2 `shift`), so slow motion is smooth.
A frame is a pure function of (video, frame index, width, height): textures come from the
background's seed, jitter and noise from the nuisance seed and the frame index, so frames can be
rendered in any order or in parallel. Resolution is free; colours are fixed per name (COLOUR_BGR).

Nuisances, applied in camera order after the scene is drawn: shake (a small random affine warp),
lighting (slow gain and tint drift), sensor noise (Gaussian), compression (a JPEG round trip).
A nuisance-only stretch raises one kind to a strong level over its frames (see world.Stretch).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import lru_cache

import cv2
import numpy as np

from edge_vljepa.data.world import HAND_SIZE, Background, Hand, Pose, Thing, Video

RENDER_SIZE = 128  # px: the world's frames (training, evaluation, test streams) are rendered at this size

COLOUR_BGR = {
    "red": (35, 35, 220), "orange": (0, 140, 255), "yellow": (30, 220, 240), "green": (60, 170, 40),
    "cyan": (220, 210, 40), "blue": (220, 80, 30), "purple": (170, 40, 130), "pink": (200, 120, 255),
}
SKIN_BGR, SKIN_EDGE_BGR = (138, 172, 224), (70, 95, 140)
EDGE_DARKEN = 0.5  # object outlines: the fill colour times this

_SHIFT = 4  # cv2 sub-pixel bits
_ONE = 1 << _SHIFT


def _circle(n: int = 48, r: float = 1.0) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _star(points: int = 5, inner: float = 0.45) -> np.ndarray:
    t = np.arange(2 * points) * math.pi / points - math.pi / 2
    r = np.where(np.arange(2 * points) % 2 == 0, 1.15, 1.15 * inner)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _heart(n: int = 40) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return np.stack([x, y + 2.5], axis=1) / 15.0


_ARM, _TIP = 0.33, 1.0  # cross: half width of an arm, reach
# Unit outlines (radius ~1, y down, pointing up); several contours fill even-odd (the ring's hole).
SHAPE_CONTOURS = {
    "circle": [_circle()],
    "square": [np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)], float) * 0.85],
    "triangle": [np.array([(0, -1.15), (1.0, 0.58), (-1.0, 0.58)], float)],
    "star": [_star()],
    "cross": [np.array([(-_ARM, -_TIP), (_ARM, -_TIP), (_ARM, -_ARM), (_TIP, -_ARM), (_TIP, _ARM),
                        (_ARM, _ARM), (_ARM, _TIP), (-_ARM, _TIP), (-_ARM, _ARM), (-_TIP, _ARM),
                        (-_TIP, -_ARM), (-_ARM, -_ARM)], float)],
    "heart": [_heart()],
    "ring": [_circle(), _circle(r=0.55)],
}


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(points * _ONE).astype(np.int32)


def _line_width(side: int) -> int:
    return max(1, round(side / 128))


def _draw_shape(img: np.ndarray, shape: str, colour: tuple, cx: float, cy: float, r: float,
                angle: float, edge: int) -> None:
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    rot = np.array([[c, s], [-s, c]]) * r  # row vectors: p @ rot rotates clockwise on screen
    contours = [_fixed(p @ rot + (cx, cy)) for p in SHAPE_CONTOURS[shape]]
    cv2.fillPoly(img, contours, colour, cv2.LINE_AA, _SHIFT)
    cv2.polylines(img, contours, True, tuple(EDGE_DARKEN * v for v in colour), edge, cv2.LINE_AA, _SHIFT)


def draw_object(img: np.ndarray, thing: Thing, pose: Pose) -> None:
    """Draw one object in place; a partly transparent one (fading) is blended over its bounding box."""
    if pose.alpha <= 0.0:
        return
    h, w = img.shape[:2]
    side = min(h, w)
    cx, cy, r = pose.x * w, pose.y * h, pose.radius * side
    colour, edge = COLOUR_BGR[thing.colour], _line_width(side)
    if pose.alpha >= 1.0:
        _draw_shape(img, thing.shape, colour, cx, cy, r, pose.angle, edge)
        return
    reach = 1.2 * r + edge + 1
    x0, y0 = max(0, int(cx - reach)), max(0, int(cy - reach))
    x1, y1 = min(w, int(cx + reach) + 1), min(h, int(cy + reach) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    roi = img[y0:y1, x0:x1]
    layer = roi.copy()
    _draw_shape(layer, thing.shape, colour, cx - x0, cy - y0, r, pose.angle, edge)
    cv2.addWeighted(layer, pose.alpha, roi, 1.0 - pose.alpha, 0.0, dst=roi)


# Hand parts in units of the palm half-width, palm centre at (0, 0), y down: each finger is
# (base x, length, fan-out angle in degrees); the thumb is (base, angle open, angle closed, length).
FINGERS = ((-0.62, 0.85, -10.0), (-0.2, 1.05, -3.0), (0.22, 1.0, 3.0), (0.62, 0.8, 10.0))
FINGER_BASE_Y, FINGER_WIDTH, FINGER_CURL = -0.6, 0.34, 0.45
THUMB = ((-0.7, 0.1), -55.0, -20.0, 0.95)
THUMB_WIDTH = 0.42
PALM_AXES = (0.95, 0.85)
FOREARM_DIRECTION, FOREARM_HALF_WIDTH = (0.35, 1.0), 0.8


def _ray(base: tuple[float, float], degrees: float, length: float) -> tuple[float, float]:
    """End of a segment from `base`, `degrees` clockwise from straight up."""
    a = math.radians(degrees)
    return base[0] + math.sin(a) * length, base[1] - math.cos(a) * length


def draw_hand(img: np.ndarray, hand: Hand) -> None:
    """A right hand reaching up from the bottom edge: forearm, palm, four fingers and a thumb.
    Closing the grip curls the fingers (shorter, no fan-out) and brings the thumb in."""
    h, w = img.shape[:2]
    side = min(h, w)
    s = HAND_SIZE * side
    px, py = hand.x * w, hand.y * h
    forearm = np.array(FOREARM_DIRECTION) / math.hypot(*FOREARM_DIRECTION)
    across = np.array([forearm[1], -forearm[0]]) * FOREARM_HALF_WIDTH * s
    far = forearm * 3 * side  # well past the bottom edge
    palm = np.array((px, py))
    arm = _fixed(np.array([palm + across, palm - across, palm - across + far, palm + across + far]))
    lines = []  # (start, end, width) of the fingers and the thumb, in pixels
    for dx, length, fan in FINGERS:
        base = (px + dx * s, py + FINGER_BASE_Y * s)
        tip = _ray(base, fan * (1.0 - hand.grip), length * (1.0 - FINGER_CURL * hand.grip) * s)
        lines.append((base, tip, FINGER_WIDTH * s))
    (bx, by), open_angle, closed_angle, length = THUMB
    base = (px + bx * s, py + by * s)
    lines.append((base, _ray(base, open_angle + (closed_angle - open_angle) * hand.grip, length * s),
                  THUMB_WIDTH * s))
    outline = _line_width(side)
    # Pass 1 draws the silhouette grown by the outline width in the edge colour, pass 2 the skin.
    for colour, grow in ((SKIN_EDGE_BGR, outline), (SKIN_BGR, 0)):
        cv2.fillPoly(img, [arm], colour, cv2.LINE_AA, _SHIFT)
        if grow:
            cv2.polylines(img, [arm], True, colour, 2 * grow, cv2.LINE_AA, _SHIFT)
        axes = tuple(round((a * s + grow) * _ONE) for a in PALM_AXES)
        cv2.ellipse(img, tuple(_fixed(palm)), axes, 0, 0, 360, colour, -1, cv2.LINE_AA, _SHIFT)
        for start, end_, width in lines:
            cv2.line(img, tuple(_fixed(np.array(start))), tuple(_fixed(np.array(end_))), colour,
                     max(1, round(width)) + 2 * grow, cv2.LINE_AA, _SHIFT)


# --- backgrounds -----------------------------------------------------------------------------------

def _muted(rng: np.random.Generator, value: tuple[float, float] = (0.45, 0.75)) -> np.ndarray:
    """A random low-saturation BGR colour, float in 0..255."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(0.08, 0.3) * 255, rng.uniform(*value) * 255]]])
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Value noise in [-1, 1] with about `cells` features across the frame."""
    small = rng.uniform(-1.0, 1.0, size=(cells + 1, cells + 1)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


@lru_cache(maxsize=32)
def background(kind: str, seed: int, width: int, height: int) -> np.ndarray:
    """The (read-only) background image of a scene: plain, gradient, wood, tiles, carpet or stripes.
    Muted colours, so that the saturated objects stand out on every one."""
    rng = np.random.default_rng(seed)
    h, w = height, width
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base, other = _muted(rng), _muted(rng)
    if kind == "plain":
        img = np.broadcast_to(base, (h, w, 3))
    elif kind == "gradient":
        t = (yy / h)[..., None]
        img = base * (1.0 - t) + other * t
    elif kind == "wood":
        brown = 0.3 * base + 0.7 * np.float32((70, 110, 150))
        grain = np.sin(yy / h * rng.uniform(25, 45) + 6.0 * _smooth_noise(rng, h, w, 3))
        img = brown * (1.0 + 0.1 * grain + 0.05 * _smooth_noise(rng, h, w, 12))[..., None]
    elif kind == "tiles":
        n = int(rng.integers(3, 6))
        u, v = xx * n / w, yy * n / h
        shade = rng.uniform(0.9, 1.1, size=(n, n)).astype(np.float32)[v.astype(int), u.astype(int)]
        grout = np.minimum(u % 1.0, v % 1.0) < 0.04
        img = base * np.where(grout, 0.7, shade)[..., None]
    elif kind == "carpet":
        shade = 1.0 + 0.12 * _smooth_noise(rng, h, w, max(8, w // 4)) + 0.06 * _smooth_noise(rng, h, w, 6)
        img = base * shade[..., None]
    elif kind == "stripes":
        period = rng.uniform(0.12, 0.25) * w
        band = ((xx + yy * rng.uniform(-1, 1)) / period % 1.0 < 0.5)[..., None]
        img = np.where(band, base, 0.75 * base + 0.25 * other)
    else:
        raise ValueError(f"unknown background {kind!r}")
    vignette = 1.0 - 0.36 * (((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2)
    out = np.clip(img * vignette[..., None], 0, 255).astype(np.uint8)
    out.flags.writeable = False
    return out


# --- nuisances -------------------------------------------------------------------------------------

@lru_cache(maxsize=32)
def _drift(seed: int) -> np.ndarray:
    """Frequencies (Hz) and phases of one video's lighting drift (row 0) and shake jitter (rows 1-3)."""
    rng = np.random.default_rng(seed)
    lighting = [rng.uniform(1 / 30, 1 / 10), rng.uniform(0, 2 * math.pi)]
    shake = [[rng.uniform(1.0, 4.0), rng.uniform(0, 2 * math.pi)] for _ in range(3)]
    return np.array([lighting, *shake])


def nuisance_levels(video: Video, frame: int) -> dict[str, float]:
    """Strength of each nuisance kind at `frame`: the video's mild level, or a stretch's strong one.
    lighting is the gain offset from 1 (signed), the others as in world.Nuisance; 0 means off."""
    n = video.nuisance
    (f_light, p_light), *_ = _drift(n.seed)
    t = frame / video.fps
    levels = {"lighting": n.lighting * math.sin(2 * math.pi * f_light * t + p_light),
              "shake": n.shake, "noise": n.noise, "compression": n.compression}
    for stretch in video.stretches:
        if stretch.start_frame <= frame < stretch.end_frame:
            if stretch.kind == "lighting":
                levels["lighting"] += stretch.strength
            elif stretch.kind == "compression":
                levels["compression"] = min(levels["compression"] or 100.0, stretch.strength)
            else:
                levels[stretch.kind] = max(levels[stretch.kind], stretch.strength)
    return levels


def apply_nuisances(img: np.ndarray, video: Video, frame: int) -> np.ndarray:
    """Camera-side corruption of a clean frame: shake, lighting, sensor noise, compression."""
    levels = nuisance_levels(video, frame)
    h, w = img.shape[:2]
    t = frame / video.fps
    drift = _drift(video.nuisance.seed)
    if levels["shake"]:
        jitter = [math.sin(2 * math.pi * f * t + p) for f, p in drift[1:]]
        amplitude = levels["shake"] * min(h, w)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), jitter[2] * levels["shake"] * 60.0, 1.0)
        m[:, 2] += (jitter[0] * amplitude, jitter[1] * amplitude)
        img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    if levels["lighting"] or levels["noise"]:
        # The mild drift also tints (per-channel phases); a stretch changes brightness only.
        f_light, p_light = drift[0]
        phases = p_light + 2.0 * np.arange(3)
        tint = 1.0 + 0.3 * video.nuisance.lighting * np.sin(2 * math.pi * f_light * t + phases)
        out = img.astype(np.float32) * ((1.0 + levels["lighting"]) * tint).astype(np.float32)
        if levels["noise"]:
            rng = np.random.default_rng([video.nuisance.seed, frame])
            out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(levels["noise"])
        img = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    if levels["compression"]:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(levels["compression"])])
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return img


# --- frames ----------------------------------------------------------------------------------------

def render_clean(video: Video, frame: int, width: int = RENDER_SIZE, height: int = RENDER_SIZE) -> np.ndarray:
    """The scene at `frame` without nuisances."""
    segment = video.segment_at(frame)
    bg: Background = segment.background
    img = background(bg.kind, bg.seed, width, height).copy()
    objects, hand = segment.state_at(frame)
    for thing, pose in objects:
        draw_object(img, thing, pose)
    if hand is not None:
        draw_hand(img, hand)
    return img


def render_frame(video: Video, frame: int, width: int = RENDER_SIZE, height: int = RENDER_SIZE) -> np.ndarray:
    """Frame `frame` of the video as the camera sees it: BGR uint8 (height, width, 3)."""
    if not 0 <= frame < video.num_frames:
        raise IndexError(f"frame {frame} outside the video (0..{video.num_frames - 1})")
    return apply_nuisances(render_clean(video, frame, width, height), video, frame)


def render_frames(video: Video, width: int = RENDER_SIZE, height: int = RENDER_SIZE) -> Iterator[np.ndarray]:
    """All frames in order; see render_frame."""
    for frame in range(video.num_frames):
        yield render_frame(video, frame, width, height)


def render_video(video: Video, width: int = RENDER_SIZE, height: int = RENDER_SIZE) -> np.ndarray:
    """All frames as one array (T, H, W, 3) BGR uint8, for short clips held in memory."""
    return np.stack(list(render_frames(video, width, height)))
