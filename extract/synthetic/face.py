"""A drawn, shaded face that acts an emotion: the video half of the synthetic corpus.

The face carries mainly valence (smile vs frown, knit brows); arousal moves the eyes and
brows at a smaller gain, so emotions of similar valence differ only subtly and the face
alone is an imperfect 8-class cue.  Expressions build up and fade with per-clip strength
and timing; the head moves a little, the light changes and the sensor adds noise.  The
face is shaded (radial fall-off, dark eye sockets, nose shadow) so that OpenCV's Haar
frontal-face cascade finds it.  Sensor noise is uniform (std 1.5-4 grey levels), which is
several times cheaper to draw than Gaussian noise at 720p.

Geometry is written in *face units*: the origin is the face centre, one unit is the half
height of the face ellipse and y grows downwards.  Each frame draws the moving parts (eyes,
brows, mouth) onto a pre-shaded head sprite, which one affine warp (head pose) places in
the frame.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from ..labels import VALENCE_AROUSAL

SMALL_VIDEO = dict(width=160, height=120, fps=15.0)
RAVDESS_VIDEO = dict(width=1280, height=720, fps=30.0)

# Sprite extent in face units: hair above the face, neck down to the frame bottom.
SPRITE_LEFT, SPRITE_RIGHT, SPRITE_TOP, SPRITE_BOTTOM = -1.35, 1.35, -1.3, 2.2
SUBPIXEL_BITS = 4  # cv2 drawing ``shift``: coordinates in 1/16 pixel
ARC_T = np.linspace(-1.0, 1.0, 9)  # parameter of the drawn parabolic arcs
_ANGLES = np.linspace(0, 2 * np.pi, 16, endpoint=False)
CIRCLE = np.column_stack([np.cos(_ANGLES), np.sin(_ANGLES)])  # unit circle as a 16-gon

# Expression gains in face units per unit of (valence, arousal): valence drives the mouth
# and brow knit strongly, arousal the eye opening and brow raise weakly.
CORNER_LIFT = 0.11
MOUTH_WIDEN = 0.18
BROW_KNIT = 0.06
SMILE_SQUINT = 0.3
EYE_WIDEN = 0.3
BROW_RAISE = 0.04


@dataclass(frozen=True)
class FaceIdentity:
    """One actor's face: geometry in face units (see module docstring) and colours (BGR 0-255).

    Attributes
    ----------
    aspect : float
        Face half-width over half-height.
    eye_y, eye_dx, eye_w, eye_h : float
        Eye centre height, half the eye spacing, eye half-width and half-height.
    brow_gap, brow_len : float
        Brow height above the eye centre, brow half-length.
    nose_y, nose_w : float
        Nose tip height and half-width.
    mouth_y, mouth_w, lip : float
        Mouth centre height, mouth half-width, lip thickness.
    hairline : float
        Height of the hairline.
    skin, hair, iris, backdrop : tuple of 3 float
        BGR colours.
    expressiveness : float
        Scale of this actor's expressions (1 = average).
    rest_valence : float
        Valence the face shows at rest (a habitual slight smile or frown).
    """

    aspect: float
    eye_y: float
    eye_dx: float
    eye_w: float
    eye_h: float
    brow_gap: float
    brow_len: float
    nose_y: float
    nose_w: float
    mouth_y: float
    mouth_w: float
    lip: float
    hairline: float
    skin: tuple
    hair: tuple
    iris: tuple
    backdrop: tuple
    expressiveness: float
    rest_valence: float


def sample_face(rng: np.random.Generator) -> FaceIdentity:
    """Draw one actor's face geometry, colours and expressiveness.

    Parameters
    ----------
    rng : np.random.Generator
        Source of randomness.

    Returns
    -------
    face : FaceIdentity
    """
    u = rng.uniform
    light_skin, dark_skin = np.array([165.0, 185.0, 220.0]), np.array([85.0, 110.0, 150.0])
    skin = light_skin + u(0, 1) * (dark_skin - light_skin) + rng.normal(0, 6, 3)
    red = u(1.1, 1.7)
    hair = u(15, 100) * np.array([1.0, 1.0 + (red - 1.0) * u(0.4, 0.7), red])
    iris = np.array([u(40, 120), u(50, 110), u(30, 90)])
    return FaceIdentity(
        aspect=u(0.72, 0.84),
        eye_y=u(-0.17, -0.08),
        eye_dx=u(0.27, 0.34),
        eye_w=u(0.11, 0.14),
        eye_h=u(0.05, 0.065),
        brow_gap=u(0.14, 0.2),
        brow_len=u(0.13, 0.17),
        nose_y=u(0.17, 0.26),
        nose_w=u(0.08, 0.11),
        mouth_y=u(0.43, 0.5),
        mouth_w=u(0.17, 0.23),
        lip=u(0.035, 0.055),
        hairline=u(-0.72, -0.55),
        skin=tuple(np.clip(skin, 0, 255)),
        hair=tuple(np.clip(hair, 0, 255)),
        iris=tuple(iris),
        backdrop=tuple(np.clip(u(200, 250) + rng.normal(0, 5, 3), 0, 255)),
        expressiveness=u(0.75, 1.25),
        rest_valence=rng.normal(0, 0.12),
    )


def render_face_clip(
    face: FaceIdentity,
    emotion: str,
    intensity: float,
    mouth_open: np.ndarray,
    rng: np.random.Generator,
    *,
    width: int = 160,
    height: int = 120,
) -> np.ndarray:
    """Render a clip of ``face`` acting ``emotion`` while it speaks.

    Parameters
    ----------
    face : FaceIdentity
        The actor (see :func:`sample_face`).
    emotion : str
        A key of :data:`extract.labels.VALENCE_AROUSAL`.
    intensity : float > 0
        1.0 = RAVDESS "normal", 2.0 = "strong".
    mouth_open : np.ndarray [shape=(n_frames,)]
        Mouth opening per video frame in [0, 1] (0 closed), e.g. the voice's envelope.
    rng : np.random.Generator
        Source of the clip's randomness (expression strength and timing, head motion,
        lighting, sensor noise).
    width, height : int
        Frame size in pixels.

    Returns
    -------
    frames : np.ndarray [shape=(n_frames, height, width, 3), dtype=uint8]
        BGR frames.
    """
    mouth_open = np.asarray(mouth_open, dtype=np.float64)
    if emotion not in VALENCE_AROUSAL:
        raise ValueError(f"emotion must be one of {sorted(VALENCE_AROUSAL)}, got {emotion!r}")
    if intensity <= 0:
        raise ValueError(f"intensity must be positive, got {intensity}")
    if mouth_open.ndim != 1 or mouth_open.size == 0:
        raise ValueError(f"mouth_open must be a non-empty 1-D array, got shape {mouth_open.shape}")
    if not np.all((mouth_open >= 0) & (mouth_open <= 1)):
        raise ValueError("mouth_open values must lie in [0, 1]")
    if width < 32 or height < 32:
        raise ValueError(f"frame size must be at least 32x32 pixels, got {width}x{height}")

    n_frames = mouth_open.size
    time = np.linspace(0.0, 1.0, n_frames)  # clip time, 0 = first frame, 1 = last
    valence, arousal = _expression_course(face, emotion, intensity, time, rng)
    pose = _head_pose(time, rng)
    gain, slope = _lighting(time, rng)
    noise_scale = rng.uniform(1.5, 4.0) * np.sqrt(12) / 256  # uniform noise, std 1.5-4 grey levels

    unit = rng.uniform(0.28, 0.33) * height  # pixels per face unit
    centre = (width * (0.5 + rng.normal(0, 0.02)), height * rng.uniform(0.45, 0.5))
    backdrop = _backdrop(face, centre, unit, width, height, slope)
    sprite, alpha = _head_sprite(face, unit, centre[0], width, slope)

    frames = np.empty((n_frames, height, width, 3), dtype=np.uint8)
    for i in range(n_frames):
        head = sprite.copy()
        _draw_features(head, face, unit, valence[i], arousal[i], mouth_open[i])
        scene = cv2.convertScaleAbs(backdrop, alpha=gain[i])
        _composite(scene, head, alpha, centre, unit, pose[i], float(gain[i]))
        noise = rng.integers(0, 256, scene.shape, dtype=np.uint8)
        frames[i] = cv2.addWeighted(scene, 1.0, noise, noise_scale, -127.5 * noise_scale)
    return frames


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _expression_course(face, emotion, intensity, time, rng):
    """Per-frame (valence, arousal) the face shows: rest + strength * envelope * target."""
    valence, arousal = VALENCE_AROUSAL[emotion]
    # 1. Per-clip target with acting variability, and strength: actor x intensity x clip.
    valence += rng.normal(0, 0.12)
    arousal += rng.normal(0, 0.15)
    strength = face.expressiveness * (0.4 + 0.6 * intensity) * rng.uniform(0.55, 1.35)
    # 2. Envelope: build up from onset, hold, fade towards a residual by the end.
    onset, rise = rng.uniform(0.0, 0.3), rng.uniform(0.1, 0.3)
    release, fall = rng.uniform(0.6, 0.85), rng.uniform(0.1, 0.3)
    residual = rng.uniform(0.2, 0.6)
    envelope = _smoothstep((time - onset) / rise) * (
        1.0 - (1.0 - residual) * _smoothstep((time - release) / fall)
    )
    # 3. Faces saturate: keep the shown values within +-1.5.
    shown_valence = face.rest_valence + strength * envelope * valence
    return np.clip(shown_valence, -1.5, 1.5), np.clip(strength * envelope * arousal, -1.5, 1.5)


def _head_pose(time, rng):
    """Small smooth head motion: (n, 4) = dx, dy (face units), roll (degrees), scale."""
    amplitude = np.array([0.06, 0.04, 3.0, 0.025])
    freq = rng.uniform(0.3, 2.5, size=(3, 4))  # cycles per clip
    phase = rng.uniform(0, 2 * np.pi, size=(3, 4))
    waves = np.sin(2 * np.pi * freq * time[:, None, None] + phase).sum(axis=1) / np.sqrt(3)
    pose = amplitude * rng.uniform(0.5, 1.0, 4) * waves
    pose[:, 3] += 1.0
    return pose


def _lighting(time, rng):
    """Light of the clip: a drifting global gain per frame and a static left-right slope.

    The side light is baked into the backdrop and the head sprite (the head moves too little
    for it to matter); the gain scales whole frames.
    """
    drift = np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * time + rng.uniform(0, 2 * np.pi))
    gain = rng.uniform(0.82, 1.05) + rng.uniform(0.02, 0.08) * drift
    return gain, rng.uniform(-0.15, 0.15)


def _side_light(columns, width, slope):
    """Multiplier of the pixel values at frame ``columns``: 1 -/+ slope at the left/right edge."""
    return 1.0 + slope * (2.0 * np.asarray(columns) / (width - 1) - 1.0)


def _ellipse_inside(x, y, cx, cy, ax, ay, edge):
    """Soft (anti-aliased) inside-ellipse mask; ``edge`` = edge width in face units."""
    radius = np.sqrt(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2)
    return np.clip((1.0 - radius) * min(ax, ay) / edge + 0.5, 0.0, 1.0)


def _bump(x, y, cx, cy, sx, sy):
    return np.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))


def _head_sprite(face, unit, centre_x, width, slope):
    """The static, shaded head (hair, ears, face, neck), upright at ``unit`` pixels per face unit,
    lit by the side light as if centred at frame column ``centre_x``.

    Returns
    -------
    colour : np.ndarray [shape=(rows, cols, 3), dtype=uint8]
        BGR.
    alpha : np.ndarray [shape=(rows, cols), dtype=uint8]
        Opacity, 0 outside the head, 255 inside.
    """
    cols = int(np.ceil((SPRITE_RIGHT - SPRITE_LEFT) * unit))
    rows = int(np.ceil((SPRITE_BOTTOM - SPRITE_TOP) * unit))
    x = SPRITE_LEFT + (np.arange(cols) + 0.5) / unit
    y = SPRITE_TOP + (np.arange(rows)[:, None] + 0.5) / unit
    edge = 1.0 / unit
    f, a = face, face.aspect
    skin, hair = np.array(f.skin), np.array(f.hair)

    # 1. Masks of the parts, back to front.
    hair_back = _ellipse_inside(x, y, 0, -0.12, 1.07 * a, 1.05, edge) * (y < 0.1)
    neck = np.clip((0.5 * a - np.abs(x)) / edge + 0.5, 0, 1) * (y > 0.5)
    ears = np.maximum(
        _ellipse_inside(x, y, -0.97 * a, f.eye_y + 0.12, 0.1, 0.18, edge),
        _ellipse_inside(x, y, 0.97 * a, f.eye_y + 0.12, 0.1, 0.18, edge),
    )
    face_mask = _ellipse_inside(x, y, 0, 0, a, 1.0, edge)
    fringe = hair_back * np.clip((f.hairline + 0.06 * np.cos(3 * x) - y) / edge + 0.5, 0, 1)

    # 2. Shading of the face: radial fall-off, dark eye sockets, bright nose bridge with a
    #    side shadow, shadows under the nose, under the lower lip and along the jaw.
    shade = 1.05 - 0.3 * np.clip((x / a) ** 2 + y**2, 0, 1) ** 2
    for side in (-1, 1):
        shade -= 0.4 * _bump(x, y, side * f.eye_dx, f.eye_y - 0.03, 0.17, 0.11)
        shade -= 0.15 * _bump(x, y, side * 0.55 * a, 0.8, 0.3, 0.15)
    shade += 0.1 * _bump(x, y, 0, (f.eye_y + f.nose_y) / 2, 0.05, 0.15)
    shade -= 0.22 * _bump(x, y, 0.8 * f.nose_w, f.nose_y - 0.08, 0.035, 0.12)
    shade -= 0.3 * _bump(x, y, 0, f.nose_y + 0.05, 1.1 * f.nose_w, 0.03)
    shade -= 0.2 * _bump(x, y, 0, f.mouth_y + 0.15, 0.16, 0.04)

    # 3. Composite the parts into colour and alpha.
    colour = np.zeros((rows, cols, 3))
    alpha = np.zeros((rows, cols))
    for mask, paint in (
        (hair_back, hair),
        (neck, 0.75 * skin),
        (ears, 0.85 * skin),
        (face_mask, shade[..., None] * skin),
        (fringe, 1.15 * hair),
    ):
        mask = mask[..., None]
        colour = colour * (1 - mask) + mask * paint
        alpha = np.maximum(alpha, mask[..., 0])
    colour *= _side_light(centre_x + x * unit, width, slope)[:, None]
    colour = colour.round().clip(0, 255).astype(np.uint8)

    # 4. Static nose details: nostrils.
    for side in (-1, 1):
        _fill_ellipse(colour, unit, (side * 0.45 * f.nose_w, f.nose_y + 0.01), (0.032, 0.018), 0.45 * skin)
    return colour, (255 * alpha).round().astype(np.uint8)


def _backdrop(face, centre, unit, width, height, slope):
    """Studio backdrop with a vertical fall-off and the side light, and dark shoulders; uint8 BGR."""
    fall_off = np.linspace(1.0, 0.85, height)[:, None, None]
    light = fall_off * _side_light(np.arange(width), width, slope)[:, None]
    scene = (light * np.array(face.backdrop)).clip(0, 255).astype(np.uint8)
    centre_px = (int(centre[0]), int(centre[1] + 2.5 * unit))
    axes = (int(1.9 * unit), int(1.3 * unit))
    cv2.ellipse(scene, centre_px, axes, 0, 180, 360, (40, 38, 45), -1, cv2.LINE_AA)
    return scene


def _fixed_point(pixels):
    return np.round(np.asarray(pixels) * (1 << SUBPIXEL_BITS)).astype(np.int32)


def _points(xy, unit):
    """Face units -> sprite pixel coordinates in cv2 fixed point (``SUBPIXEL_BITS``)."""
    return _fixed_point((np.asarray(xy) - (SPRITE_LEFT, SPRITE_TOP)) * unit)


def _bgr(colour):
    return tuple(float(c) for c in colour)


def _fill_ellipse(image, unit, centre, axes, colour):
    centre, axes = tuple(_points(centre, unit)), tuple(_fixed_point(np.multiply(axes, unit)))
    cv2.ellipse(image, centre, axes, 0, 0, 360, _bgr(colour), -1, cv2.LINE_AA, SUBPIXEL_BITS)


def _fill_polygons(image, unit, polygons, colour):
    """Fill polygons given in face units, each [shape=(n, 2)], with one colour."""
    cv2.fillPoly(image, [_points(p, unit) for p in polygons], _bgr(colour), cv2.LINE_AA, SUBPIXEL_BITS)


def _arc(x_left, x_right, y_ends, y_middle):
    """Parabola through (x_left, y_ends), (middle, y_middle), (x_right, y_ends): (9, 2)."""
    x = (x_left + x_right) / 2 + ARC_T * (x_right - x_left) / 2
    return np.column_stack([x, y_middle + (y_ends - y_middle) * ARC_T**2])


def _band(curve, offset):
    """Polygon between a curve and the same curve shifted down by ``offset``."""
    return np.vstack([curve, curve[::-1] + (0.0, offset)])


def _draw_features(image, face, unit, valence, arousal, mouth_open):
    """Draw eyes, brows and mouth for one frame's expression onto the head sprite (in place)."""
    f = face
    skin = np.array(f.skin)
    dark = np.minimum(0.6 * np.array(f.hair), 0.35 * skin)
    positive, negative = max(valence, 0.0), max(-valence, 0.0)
    # 1. Eyes: arousal widens them, a smile narrows them from below.
    opening = np.clip(1.0 + EYE_WIDEN * arousal, 0.6, 1.4)
    upper = f.eye_h * opening
    lower = f.eye_h * np.clip(opening - SMILE_SQUINT * positive, 0.3, 1.6)
    iris_axes = np.array([0.6 * f.eye_w, min(0.6 * f.eye_w, 0.9 * (upper + 0.6 * lower))])
    eyes = [np.array([side * f.eye_dx, f.eye_y]) for side in (-1, 1)]
    tops = [_arc(cx - f.eye_w, cx + f.eye_w, cy, cy - 2 * upper) for cx, cy in eyes]
    bottoms = [_arc(cx - f.eye_w, cx + f.eye_w, cy, cy + 1.2 * lower) for cx, cy in eyes]
    irises = [e + (0, -0.3 * upper) + CIRCLE * iris_axes for e in eyes]
    pupils = [e + (0, -0.3 * upper) + 0.4 * CIRCLE * iris_axes for e in eyes]
    _fill_polygons(image, unit, [np.vstack([t, b[::-1]]) for t, b in zip(tops, bottoms)], 0.4 * skin + 50)
    _fill_polygons(image, unit, irises, f.iris)
    _fill_polygons(image, unit, pupils, (15, 15, 15))
    # 2. Brows: negative valence lowers and knits the inner ends, arousal raises both.
    knit, lift = BROW_KNIT * negative, BROW_RAISE * arousal
    thick = np.array([0.0, 0.055])
    brows = []
    for side in (-1, 1):
        inner_x = side * (f.eye_dx - 0.9 * f.brow_len + 0.4 * knit)
        inner = np.array([inner_x, f.eye_y - f.brow_gap + knit - lift])
        outer = np.array([side * (f.eye_dx + f.brow_len), f.eye_y - f.brow_gap + 0.03 - 0.5 * lift])
        middle = (inner + outer) / 2 + (0, -0.035 - 0.3 * lift)
        brows.append(np.vstack([inner - thick, middle - thick, outer - thick / 2, outer, middle, inner]))
    _fill_polygons(image, unit, brows + [_band(t, -0.045) for t in tops], dark)
    # 3. Mouth: valence lifts or drops the corners and widens it; speech opens it.
    half_width = f.mouth_w * (1.0 + MOUTH_WIDEN * np.clip(valence, -1, 1))
    corner_y = f.mouth_y - CORNER_LIFT * valence
    gap = 0.14 * mouth_open
    upper_inner = _arc(-half_width, half_width, corner_y, f.mouth_y - gap / 2)
    lower_inner = _arc(-half_width, half_width, corner_y, f.mouth_y + gap / 2)
    upper_outer = _arc(-half_width, half_width, corner_y, f.mouth_y - gap / 2 - f.lip)
    lower_outer = _arc(-half_width, half_width, corner_y, f.mouth_y + gap / 2 + 1.3 * f.lip)
    _fill_polygons(image, unit, [np.vstack([upper_outer, lower_outer[::-1]])], skin * (0.55, 0.55, 0.8))
    _fill_polygons(image, unit, [np.vstack([upper_inner, lower_inner[::-1]])], (35, 25, 45))
    if gap > 0.03:
        _fill_polygons(image, unit, [_band(upper_inner[2:-2], 0.35 * gap)], (200, 210, 215))
    _fill_polygons(image, unit, [_band(upper_inner, 0.015)], 0.3 * skin)


def _composite(scene, head, alpha, centre, unit, pose, gain):
    """Warp the head sprite (colour, alpha) by the pose and blend it, scaled by ``gain``, into ``scene``."""
    dx, dy, roll, scale = pose
    height, width = scene.shape[:2]
    # 1. Sprite pixel of the face centre, and where it lands in the frame.
    origin = (-SPRITE_LEFT * unit, -SPRITE_TOP * unit)
    target = (centre[0] + dx * unit, centre[1] + dy * unit)
    matrix = cv2.getRotationMatrix2D(origin, roll, scale)
    matrix[:, 2] += np.subtract(target, origin)
    # 2. Frame region the warped sprite covers; warp into that region only.
    rows, cols = head.shape[:2]
    corners = cv2.transform(np.array([[[0, 0], [cols, 0], [0, rows], [cols, rows]]], np.float64), matrix)[0]
    x0, y0 = np.maximum(np.floor(corners.min(axis=0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(corners.max(axis=0)).astype(int), (width, height))
    if x1 <= x0 or y1 <= y0:
        return
    matrix[:, 2] -= (x0, y0)
    size = (int(x1 - x0), int(y1 - y0))
    head = cv2.warpAffine(head, matrix, size, flags=cv2.INTER_LINEAR)
    cover = cv2.warpAffine(alpha, matrix, size, flags=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    # 3. Alpha blend: head * cover * gain + (already scaled) scene * (1 - cover).
    roi = scene[y0:y1, x0:x1]
    roi[:] = cv2.blendLinear(head, roi, cover * gain, 1.0 - cover)
