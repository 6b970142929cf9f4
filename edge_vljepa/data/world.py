"""The synthetic video world as pure data: objects, actions, scenes, texts, nuisances and splits.

An egocentric-style toy world for training and evaluating the `default` model (VL-JEPA, arXiv
2512.10942, needs captions, labels and question/answer pairs for its Y-Encoder targets). A video --
a short clip or a long stream -- is a sequence of *segments*. In each segment one object, the
*subject*, does one action while the other objects stay still; a hand-like occluder enters from the
bottom edge for "pick_up" and "put_down". Everything the model must understand (captions from
paraphrase templates, a canonical label, questions with answers, segment boundaries) is derived
from the segment. Nuisances (lighting drift, camera shake, sensor noise, compression artefacts) are
sampled from an independent random stream, so switching them on or off never changes the meaning:
the segments of a video are identical with and without nuisances.

Conventions:
  geometry  x, y in frame fractions from the top-left corner; radius as a fraction of the shorter
            frame side. Rendering resolution is therefore free (render.py).
  time      frame f is shown at f / fps; a segment covers frames [start_frame, end_frame), and
            segments tile the video without gaps. Segment lengths are whole frames.
  seeds     a video is a pure function of (seed, kind, split, index, parameters), so clip 7 is the
            same clip whatever --count is.
  splits    the rules are the data below: HELD_OUT_COMBOS (subject colour x shape x action never in
            train, each set reserved for one split) and the `splits` of each caption template.

No drawing and no torch here: render.py turns a `Video` into frames, write.py into files.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import product

import numpy as np


class WorldError(ValueError):
    """Invalid sampling parameters; the message names the parameter and the valid values."""


SPLITS = ("train", "validation", "test")
COLOURS = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink")
SHAPES = ("circle", "square", "triangle", "star", "cross", "heart", "ring")
ROTATION_INVARIANT = frozenset({"circle", "ring"})  # "rotate" would be invisible on these
SIZES = ("small", "medium", "large")
SIZE_RADIUS = {"small": 0.08, "medium": 0.12, "large": 0.17}
BACKGROUNDS = ("plain", "gradient", "wood", "tiles", "carpet", "stripes")
NUISANCES = ("lighting", "shake", "noise", "compression")
DIRECTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}
COUNT_WORDS = ("one", "two", "three")
MAX_OBJECTS = len(COUNT_WORDS)

MARGIN = 0.02  # objects at rest keep this far from the frame edge
MIN_GAP = 0.04  # free space between objects placed at rest
MOVE_SPEED = (0.08, 0.15)  # frame fractions per second
ROTATE_SPEED = (30.0, 75.0)  # degrees per second, either sense
SCENE_CUT_PROB = 0.1  # streams: chance that a segment starts a new scene (background and objects)
HELD_OUT_FRACTION = 0.5  # validation/test clips: share whose subject combination is held out

# Hand occluder (frame fractions). HAND_SIZE is the palm's half width (render.py draws the hand in
# these units). The hand closes over its object from above: a held object's centre sits
# HAND_GRIP_OFFSET above the palm centre, mostly behind palm and fingers, so it leaves the frame with
# the hand. Out of view the palm centre rests at HAND_REST_Y. Phases are fractions of a pick_up
# segment (reach, grasp, withdraw); put_down runs them backwards.
HAND_SIZE = 0.095
HAND_GRIP_OFFSET = 0.3 * HAND_SIZE
HAND_REST_Y = 1.3
HAND_REACH_END, HAND_GRASP_END = 0.4, 0.55


@dataclass(frozen=True)
class Action:
    """One action and every phrase the text templates can use for it."""

    name: str
    s: str  # third person: "moves to the left"
    ing: str  # progressive: "moving to the left"
    alt_s: str  # synonym used only by held-out templates: "slides to the left"
    label: str  # short form in labels and answers: "moving left"
    max_seconds: float = math.inf  # slow visual change: longer segments would look like "stay_still"
    direction: str | None = None
    new_object: bool = False  # the subject enters the scene (appear, put_down)
    removes: bool = False  # the subject leaves the scene (disappear, pick_up)
    hand: bool = False


ACTIONS = {a.name: a for a in (
    Action("move_left", "moves to the left", "moving to the left", "slides to the left", "moving left",
           direction="left"),
    Action("move_right", "moves to the right", "moving to the right", "slides to the right", "moving right",
           direction="right"),
    Action("move_up", "moves up", "moving up", "drifts upwards", "moving up", direction="up"),
    Action("move_down", "moves down", "moving down", "drifts downwards", "moving down", direction="down"),
    Action("rotate", "rotates", "rotating", "spins around", "rotating"),
    Action("grow", "grows", "growing", "gets bigger", "growing", max_seconds=5.0),
    Action("shrink", "shrinks", "shrinking", "gets smaller", "shrinking", max_seconds=5.0),
    Action("appear", "appears", "appearing", "fades into view", "appearing", max_seconds=4.0,
           new_object=True),
    Action("disappear", "disappears", "disappearing", "fades away", "disappearing", max_seconds=4.0,
           removes=True),
    Action("stay_still", "stays still", "staying still", "does not move", "staying still"),
    Action("pick_up", "is picked up by a hand", "being picked up by a hand", "is lifted away by a hand",
           "being picked up", max_seconds=6.0, removes=True, hand=True),
    Action("put_down", "is put down by a hand", "being put down by a hand", "is set down by a hand",
           "being put down", max_seconds=6.0, new_object=True, hand=True),
)}

# --- split rules -----------------------------------------------------------------------------------

# Subject (colour, shape, action) combinations that never occur in train. Each set belongs to one split:
# that split may contain it, no other split does. Every colour, shape and action stays common in
# train; "stay_still" is never held out because every non-subject object stays still.
HELD_OUT_COMBOS = {
    "validation": frozenset({
        ("red", "square", "rotate"), ("green", "star", "shrink"), ("blue", "heart", "appear"),
        ("yellow", "ring", "pick_up"), ("purple", "triangle", "move_down"), ("orange", "cross", "move_right"),
        ("pink", "star", "grow"), ("cyan", "circle", "move_up"),
    }),
    "test": frozenset({
        ("red", "star", "move_left"), ("blue", "triangle", "rotate"), ("green", "heart", "grow"),
        ("yellow", "square", "shrink"), ("purple", "cross", "appear"), ("orange", "ring", "disappear"),
        ("pink", "circle", "pick_up"), ("cyan", "star", "put_down"), ("red", "heart", "move_up"),
        ("green", "triangle", "move_right"), ("blue", "square", "move_down"), ("yellow", "cross", "rotate"),
        ("purple", "circle", "grow"), ("orange", "triangle", "put_down"), ("pink", "square", "move_left"),
        ("cyan", "heart", "disappear"),
    }),
}


@dataclass(frozen=True)
class Template:
    """A caption paraphrase; `splits` are the splits whose annotations use it."""

    text: str
    splits: tuple[str, ...] = SPLITS


# Fields: colour, shape, size (at the segment start), count ("two objects"), s, ing, alt_s.
# Templates not used in train are the held-out paraphrases; the test ones also use the held-out verbs.
CAPTION_TEMPLATES = (
    Template("a {colour} {shape} {s}"),
    Template("the {colour} {shape} is {ing}"),
    Template("a {size} {colour} {shape} {s}"),
    Template("there is a {colour} {shape} {ing}"),
    Template("{count} in view, the {colour} {shape} {s}"),
    Template("you can see the {colour} {shape} {ing}", ("validation",)),
    Template("the {shape}, which is {colour}, {alt_s}", ("test",)),
    Template("a {size} {shape} in {colour} {alt_s}", ("test",)),
)
LABEL_TEMPLATE = "{colour} {shape} {label}"  # canonical short label, e.g. "red circle moving left"

# Discriminative questions about the subject, with the answer options (the closed answer set) of each.
# Colours and shapes are unique among the objects of a segment, so "the {shape}" names the subject.
QUESTION_TEMPLATES = {
    "colour": "what colour is the {shape}?",
    "shape": "what shape is the {colour} object?",
    "action": "what is the {colour} {shape} doing?",
    "direction": "which direction is the {colour} {shape} moving?",  # move actions only
    "count": "how many objects are there?",  # objects taking part in the segment; the hand is not one
    "size": "what size is the {colour} {shape}?",  # not asked for grow / shrink
}
ANSWER_OPTIONS = {
    "colour": COLOURS,
    "shape": SHAPES,
    "action": tuple(a.label for a in ACTIONS.values()),
    "direction": tuple(DIRECTIONS),
    "count": COUNT_WORDS,
    "size": SIZES,
}


def combo_allowed(split: str, colour: str, shape: str, action: str) -> bool:
    """Whether a subject combination may occur in `split` (never one held out for another split)."""
    return all((colour, shape, action) not in combos
               for owner, combos in HELD_OUT_COMBOS.items() if owner != split)


def world_classes() -> list[tuple[str, str, str]]:
    """Every (colour, shape, action) a clip can show: the classes of zero-shot classification."""
    return [(c, s, a) for c, s, a in product(COLOURS, SHAPES, ACTIONS)
            if not (a == "rotate" and s in ROTATION_INVARIANT)]


def world_labels() -> list[str]:
    """The canonical label of each class, e.g. 'red circle moving left' (assets/default/labels.txt)."""
    return [LABEL_TEMPLATE.format(colour=c, shape=s, label=ACTIONS[a].label) for c, s, a in world_classes()]


def is_held_out(colour: str, shape: str, action: str) -> bool:
    return any((colour, shape, action) in combos for combos in HELD_OUT_COMBOS.values())


def caption_templates(split: str) -> list[int]:
    """Indices into CAPTION_TEMPLATES that annotations of `split` use."""
    return [i for i, t in enumerate(CAPTION_TEMPLATES) if split in t.splits]


# --- texts -----------------------------------------------------------------------------------------

def _articles(text: str) -> str:
    return re.sub(r"\ba (?=[aeiou])", "an ", text)


def _fields(colour: str, shape: str, size: str, action: Action, count: int) -> dict[str, str]:
    return {"colour": colour, "shape": shape, "size": size, "s": action.s, "ing": action.ing,
            "alt_s": action.alt_s, "label": action.label,
            "count": f"{COUNT_WORDS[count - 1]} object{'s' if count > 1 else ''}"}


def _questions(fields: dict[str, str], action: Action, count: int) -> list[dict]:
    answers = {"colour": fields["colour"], "shape": fields["shape"], "action": action.label,
               "direction": action.direction, "count": COUNT_WORDS[count - 1], "size": fields["size"]}
    if action.name in ("grow", "shrink"):
        answers["size"] = None
    return [{"type": kind, "question": QUESTION_TEMPLATES[kind].format(**fields), "answer": answer,
             "options": list(ANSWER_OPTIONS[kind])}
            for kind, answer in answers.items() if answer is not None]


def words(text: str) -> list[str]:
    """The world's word tokenisation: lower-case words, with ',' and '?' as tokens of their own."""
    return re.findall(r"[a-z]+|[,?]", text.lower())


@lru_cache(maxsize=1)
def vocabulary() -> tuple[str, ...]:
    """Every token (see `words`) any caption, label, question or answer of the world can contain."""
    vocab: set[str] = set()
    for colour, shape, size, action, count in product(COLOURS, SHAPES, SIZES, ACTIONS.values(),
                                                      range(1, MAX_OBJECTS + 1)):
        fields = _fields(colour, shape, size, action, count)
        texts = [_articles(t.text.format(**fields)) for t in CAPTION_TEMPLATES]
        texts.append(LABEL_TEMPLATE.format(**fields))
        for q in _questions(fields, action, count):
            texts += [q["question"], *q["options"]]
        vocab.update(words(" ".join(texts)))
    return tuple(sorted(vocab))


# --- scene model -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Thing:
    """An object's identity: unique by colour and by shape within a scene."""

    colour: str
    shape: str


@dataclass(frozen=True)
class Pose:
    """Where and how an object is drawn; alpha is its opacity (fading in / out)."""

    x: float
    y: float
    radius: float
    angle: float = 0.0  # degrees, clockwise on screen
    alpha: float = 1.0

    def lerp(self, other: Pose, u: float) -> Pose:
        return Pose(*(a + (b - a) * u for a, b in zip(
            (self.x, self.y, self.radius, self.angle, self.alpha),
            (other.x, other.y, other.radius, other.angle, other.alpha), strict=True)))


@dataclass(frozen=True)
class Hand:
    """The occluder: palm centre (frame fractions; y > 1 is below the frame) and grip, 0 open .. 1 closed."""

    x: float
    y: float
    grip: float


@dataclass(frozen=True)
class SceneObject:
    """An object at rest: identity, size class and pose."""

    thing: Thing
    size: str
    pose: Pose


@dataclass(frozen=True)
class Background:
    kind: str
    seed: int


@dataclass(frozen=True)
class Segment:
    """One action of one subject over frames [start_frame, end_frame); `others` stay still."""

    start_frame: int
    end_frame: int
    action: str
    subject: Thing
    size: str  # the subject's size class at the start
    start: Pose  # subject pose at start_frame (for hand actions: where it rests on the surface)
    end: Pose  # subject pose at end_frame; the next segment of the scene continues from it
    others: tuple[SceneObject, ...]  # the still objects
    background: Background
    scene: int  # streams: index of the scene (a new background and objects) this segment belongs to

    @property
    def num_frames(self) -> int:
        return self.end_frame - self.start_frame

    @property
    def num_objects(self) -> int:
        return 1 + len(self.others)

    @property
    def held_out(self) -> bool:
        return is_held_out(self.subject.colour, self.subject.shape, self.action)

    def _text_fields(self) -> dict[str, str]:
        return _fields(self.subject.colour, self.subject.shape, self.size, ACTIONS[self.action],
                       self.num_objects)

    @property
    def label(self) -> str:
        return LABEL_TEMPLATE.format(**self._text_fields())

    def captions(self, split: str) -> list[dict]:
        """The captions `split` uses: text, template index, and whether the template is held out of train."""
        fields = self._text_fields()
        return [{"text": _articles(CAPTION_TEMPLATES[i].text.format(**fields)), "template": i,
                 "held_out": "train" not in CAPTION_TEMPLATES[i].splits} for i in caption_templates(split)]

    def questions(self) -> list[dict]:
        return _questions(self._text_fields(), ACTIONS[self.action], self.num_objects)

    def state_at(self, frame: int) -> tuple[list[tuple[Thing, Pose]], Hand | None]:
        """Objects (drawing order, subject last) and the hand, if in this segment, at `frame`."""
        u = (frame - self.start_frame) / self.num_frames
        action = ACTIONS[self.action]
        hand = None
        pose = self.start.lerp(self.end, u)
        if action.hand:
            # put_down is pick_up played backwards.
            reach, grip, holding = _hand_phase(u if self.action == "pick_up" else 1.0 - u)
            palm_y = HAND_REST_Y + (self.start.y + HAND_GRIP_OFFSET - HAND_REST_Y) * reach
            hand = Hand(self.start.x, palm_y, grip)
            if holding:
                pose = replace(self.start, y=palm_y - HAND_GRIP_OFFSET)
        return [(o.thing, o.pose) for o in self.others] + [(self.subject, pose)], hand


def _smooth(u: float) -> float:
    u = min(max(u, 0.0), 1.0)
    return u * u * (3.0 - 2.0 * u)


def _hand_phase(u: float) -> tuple[float, float, bool]:
    """pick_up at progress u: (how far the palm has reached towards the object, grip, holding it)."""
    if u < HAND_REACH_END:
        return _smooth(u / HAND_REACH_END), 0.0, False
    if u < HAND_GRASP_END:
        return 1.0, (u - HAND_REACH_END) / (HAND_GRASP_END - HAND_REACH_END), False
    return 1.0 - _smooth((u - HAND_GRASP_END) / (1.0 - HAND_GRASP_END)), 1.0, True


@dataclass(frozen=True)
class Nuisance:
    """Per-video nuisance parameters; 0 switches a kind off. None of them changes the meaning."""

    lighting: float = 0.0  # amplitude of the slow brightness drift: gain 1 +- lighting
    shake: float = 0.0  # camera jitter amplitude, fraction of the frame side
    noise: float = 0.0  # sensor noise standard deviation, 8-bit levels
    compression: float = 0.0  # JPEG quality of the compression artefacts
    seed: int = 0  # drift and jitter phases, per-frame noise

    @property
    def enabled(self) -> tuple[str, ...]:
        return tuple(kind for kind in NUISANCES if getattr(self, kind))


@dataclass(frozen=True)
class Stretch:
    """A nuisance-only stretch: one kind much stronger over frames [start_frame, end_frame), inside one
    segment, so the meaning is constant across it. Strength: lighting gain offset (signed), shake
    amplitude, noise std, or JPEG quality, in the units of `Nuisance`."""

    start_frame: int
    end_frame: int
    kind: str
    strength: float


# Mild per-video levels, and the strong levels of nuisance-only stretches.
NUISANCE_RANGES = {"lighting": (0.08, 0.2), "shake": (0.004, 0.012), "noise": (2.0, 6.0),
                   "compression": (30.0, 60.0)}
STRETCH_RANGES = {"lighting": (0.25, 0.4), "shake": (0.025, 0.045), "noise": (14.0, 24.0),
                  "compression": (10.0, 16.0)}
STRETCH_SECONDS = (1.5, 3.0)
STRETCH_GUARD_SECONDS = 1.0  # a stretch keeps this far from both boundaries of its segment


@dataclass(frozen=True)
class Video:
    """A clip or stream: what `render.py` draws and `write.py` annotates."""

    kind: str  # "clip" | "stream"
    split: str
    index: int
    seed: int
    fps: float
    segments: tuple[Segment, ...]
    nuisance: Nuisance
    stretches: tuple[Stretch, ...] = ()

    @property
    def num_frames(self) -> int:
        return self.segments[-1].end_frame

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    def segment_at(self, frame: int) -> Segment:
        for segment in self.segments:
            if frame < segment.end_frame:
                return segment
        raise IndexError(f"frame {frame} is past the end of the video ({self.num_frames} frames)")


# --- sampling --------------------------------------------------------------------------------------

def _rng_pair(seed: int, kind: str, split: str, index: int) -> tuple[np.random.Generator, ...]:
    """Independent generators for the world and for the nuisances of one video."""
    entropy = [seed, ("clip", "stream").index(kind), SPLITS.index(split), index]
    world, nuisance = np.random.SeedSequence(entropy).spawn(2)
    return np.random.default_rng(world), np.random.default_rng(nuisance)


def _combo(thing: Thing, action: str) -> tuple[str, str, str]:
    return thing.colour, thing.shape, action


def _choice(rng: np.random.Generator, items):
    items = list(items)
    return items[rng.integers(len(items))]


def _frame_range(lo: float, hi: float, fps: float) -> tuple[int, int]:
    """First and last whole number of frames lasting between lo and hi seconds (empty if first > last)."""
    return math.ceil(lo * fps - 1e-9), math.floor(hi * fps + 1e-9)


def _frames(rng: np.random.Generator, lo: float, hi: float, fps: float) -> int | None:
    """A random whole number of frames lasting between lo and hi seconds; None if there is none."""
    first, last = _frame_range(lo, hi, fps)
    return int(rng.integers(first, last + 1)) if first <= last else None


def _place(rng: np.random.Generator, radius: float, others: list[SceneObject]) -> Pose:
    """A resting pose inside the frame, clear of the other objects when possible."""
    lo, hi = radius + MARGIN, 1.0 - radius - MARGIN
    for _ in range(50):
        x, y = rng.uniform(lo, hi, size=2)
        if all(math.hypot(x - o.pose.x, y - o.pose.y) >= radius + o.pose.radius + MIN_GAP for o in others):
            break
    return Pose(float(x), float(y), radius, float(rng.uniform(0.0, 360.0)))


def _new_thing(rng: np.random.Generator, present: list[SceneObject],
               allowed=lambda thing: True) -> Thing | None:
    """A thing whose colour and shape differ from those present; None if no allowed one is left."""
    colours = {o.thing.colour for o in present}
    shapes = {o.thing.shape for o in present}
    things = [Thing(c, s) for c, s in product(COLOURS, SHAPES)
              if c not in colours and s not in shapes and allowed(Thing(c, s))]
    return _choice(rng, things) if things else None


def _new_object(rng: np.random.Generator, present: list[SceneObject], thing: Thing) -> SceneObject:
    size = _choice(rng, SIZES)
    return SceneObject(thing, size, _place(rng, SIZE_RADIUS[size], present))


def _new_scene(rng: np.random.Generator, count: int) -> tuple[Background, list[SceneObject]]:
    background = Background(_choice(rng, BACKGROUNDS), int(rng.integers(2**31)))
    objects: list[SceneObject] = []
    for _ in range(count):
        objects.append(_new_object(rng, objects, _new_thing(rng, objects)))
    return background, objects


def _fits(pose: Pose, radius: float) -> bool:
    return all(radius + MARGIN <= p <= 1.0 - radius - MARGIN for p in (pose.x, pose.y))


def _plan(rng: np.random.Generator, action: Action, subject: SceneObject, others: list[SceneObject],
          lo: float, hi: float, fps: float) -> tuple[int, Pose, Pose, str] | None:
    """Length in frames, start and end pose, and end size class of `subject` doing `action`, with the
    length in [lo, hi] seconds; None if the action is impossible here (no room, no size class left,
    the scene would become empty or overfull, a circle cannot visibly rotate)."""
    if (action.removes and not others) or (action.new_object and len(others) >= MAX_OBJECTS):
        return None
    if action.name == "rotate" and subject.thing.shape in ROTATION_INVARIANT:
        return None
    start, size = subject.pose, subject.size
    if action.direction:
        dx, dy = DIRECTIONS[action.direction]
        pos, step = (start.x, dx) if dx else (start.y, dy)
        room = (pos - start.radius - MARGIN) if step < 0 else (1.0 - start.radius - MARGIN - pos)
        n = _frames(rng, lo, min(hi, room / MOVE_SPEED[0]), fps)
        if n is None:
            return None
        distance = rng.uniform(MOVE_SPEED[0], min(MOVE_SPEED[1], room * fps / n)) * n / fps
        return n, start, replace(start, x=start.x + dx * distance, y=start.y + dy * distance), size
    n = _frames(rng, lo, min(hi, max(lo, action.max_seconds)), fps)
    if n is None:
        return None
    if action.name == "rotate":
        turn = rng.uniform(*ROTATE_SPEED) * n / fps * _choice(rng, (-1.0, 1.0))
        return n, start, replace(start, angle=start.angle + turn), size
    if action.name in ("grow", "shrink"):
        k = SIZES.index(size) + (1 if action.name == "grow" else -1)
        if not 0 <= k < len(SIZES) or not _fits(start, SIZE_RADIUS[SIZES[k]]):
            return None
        return n, start, replace(start, radius=SIZE_RADIUS[SIZES[k]]), SIZES[k]
    if action.name == "appear":
        return n, replace(start, alpha=0.0), start, size
    if action.name == "disappear":
        return n, start, replace(start, alpha=0.0), size
    return n, start, start, size  # stay_still, pick_up, put_down


def _segment(start_frame: int, action: Action, subject: SceneObject, plan, others: list[SceneObject],
             background: Background, scene: int) -> Segment:
    n, start, end, _ = plan
    return Segment(start_frame, start_frame + n, action.name, subject.thing, subject.size, start, end,
                   tuple(others), background, scene)


def _sample_nuisance(rng: np.random.Generator, kinds: tuple[str, ...] | None) -> Nuisance:
    """kinds None: each kind on with probability 1/2; else exactly these kinds on."""
    if kinds is None:
        kinds = tuple(k for k in NUISANCES if rng.random() < 0.5)
    levels = {k: float(rng.uniform(*NUISANCE_RANGES[k])) if k in kinds else 0.0 for k in NUISANCES}
    return Nuisance(**levels, seed=int(rng.integers(2**31)))


def _check_seconds(name: str, seconds: tuple[float, float], fps: float) -> None:
    lo, hi = seconds
    first, last = _frame_range(lo, hi, fps)
    if not 1.0 <= lo <= hi or first > last:
        raise WorldError(f"{name} must satisfy 1 <= min <= max and contain a whole number of frames at "
                         f"{fps:g} fps, got {lo:g} {hi:g}")


def _check(split: str, index: int, seed: int, fps: float, kinds: tuple[str, ...] | None) -> None:
    if split not in SPLITS:
        raise WorldError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    if index < 0 or seed < 0:
        raise WorldError(f"seed and index must be >= 0, got seed {seed}, index {index}")
    if not fps > 0:
        raise WorldError(f"fps must be > 0, got {fps:g}")
    unknown = set(kinds or ()) - set(NUISANCES)
    if unknown:
        raise WorldError(f"unknown nuisance {sorted(unknown)}; choose from: {', '.join(NUISANCES)}")


def sample_clip(split: str, index: int, seed: int = 0, seconds: tuple[float, float] = (2.0, 4.0),
                fps: float = 8.0, nuisance: tuple[str, ...] | None = None) -> Video:
    """A one-segment clip for classification and retrieval.

    Actions are balanced; in validation/test a HELD_OUT_FRACTION of clips has a subject combination
    held out for that split, the rest (and all of train) only combinations that no split holds out.
    "stay_still" clips show one object only, so that their label is unambiguous.
    nuisance: None samples each kind with probability 1/2; a tuple switches exactly those kinds on.
    """
    _check(split, index, seed, fps, nuisance)
    _check_seconds("seconds", seconds, fps)
    rng, nuisance_rng = _rng_pair(seed, "clip", split, index)
    if split in HELD_OUT_COMBOS and rng.random() < HELD_OUT_FRACTION:
        colour, shape, name = _choice(rng, sorted(HELD_OUT_COMBOS[split]))
        action, thing = ACTIONS[name], Thing(colour, shape)
    else:
        action = _choice(rng, ACTIONS.values())
        thing = _new_thing(rng, [], lambda t: not is_held_out(*_combo(t, action.name)) and not (
            action.name == "rotate" and t.shape in ROTATION_INVARIANT))
    for _ in range(100):
        num_others = 0 if action.name == "stay_still" else int(rng.integers(1 if action.removes else 0, 3))
        background, others = _new_scene(rng, 0)
        subject = _new_object(rng, others, thing)
        for _ in range(num_others):
            others.append(_new_object(rng, [subject, *others], _new_thing(rng, [subject, *others])))
        plan = _plan(rng, action, subject, others, *seconds, fps)
        if plan is not None:
            segment = _segment(0, action, subject, plan, others, background, scene=0)
            nuisance_spec = _sample_nuisance(nuisance_rng, nuisance)
            return Video("clip", split, index, seed, fps, (segment,), nuisance_spec)
    raise RuntimeError(f"could not lay out a {action.name} clip in {seconds} s")  # unreachable in practice


def sample_stream(split: str, index: int, seed: int = 0, minutes: float = 2.0,
                  segment_seconds: tuple[float, float] = (2.0, 10.0), fps: float = 8.0,
                  nuisance: tuple[str, ...] | None = None, stretch_prob: float = 0.25) -> Video:
    """A long egocentric stream: consecutive segments of one persistent scene (objects keep their
    place, size and presence from segment to segment), with a new scene now and then (SCENE_CUT_PROB).

    It lasts at least `minutes` (the last segment is complete). Each segment of at least
    STRETCH_SECONDS[1] + 2 * STRETCH_GUARD_SECONDS gets, with probability `stretch_prob`, one
    nuisance-only stretch of an enabled nuisance kind (none if the video has no kind enabled).
    """
    _check(split, index, seed, fps, nuisance)
    _check_seconds("segment_seconds", segment_seconds, fps)
    if not minutes > 0:
        raise WorldError(f"minutes must be > 0, got {minutes:g}")
    if not 0.0 <= stretch_prob <= 1.0:
        raise WorldError(f"stretch_prob must be in [0, 1], got {stretch_prob:g}")
    rng, nuisance_rng = _rng_pair(seed, "stream", split, index)
    total = math.ceil(minutes * 60.0 * fps)
    segments: list[Segment] = []
    scene = 0
    background, objects = _new_scene(rng, int(rng.integers(1, MAX_OBJECTS + 1)))
    while not segments or segments[-1].end_frame < total:
        if segments and rng.random() < SCENE_CUT_PROB:
            scene += 1
            background, objects = _new_scene(rng, int(rng.integers(1, MAX_OBJECTS + 1)))
        segment, objects = _next_segment(rng, split, objects, segment_seconds, fps,
                                         segments[-1].end_frame if segments else 0, background, scene)
        segments.append(segment)
    nuisance_spec = _sample_nuisance(nuisance_rng, nuisance)
    stretches = _sample_stretches(nuisance_rng, segments, nuisance_spec.enabled, stretch_prob, fps)
    return Video("stream", split, index, seed, fps, tuple(segments), nuisance_spec, stretches)


def _next_segment(rng: np.random.Generator, split: str, objects: list[SceneObject],
                  seconds: tuple[float, float], fps: float, start_frame: int, background: Background,
                  scene: int) -> tuple[Segment, list[SceneObject]]:
    """A feasible segment continuing the scene, and the objects after it. Actions are drawn uniformly
    among those still possible, then the subject; "stay_still" is always possible."""
    candidates = [(a, i) for a in ACTIONS.values() for i in ([None] if a.new_object else range(len(objects)))
                  if i is None or combo_allowed(split, *_combo(objects[i].thing, a.name))]
    while True:
        name = _choice(rng, sorted({a.name for a, _ in candidates}))
        picked = _choice(rng, [c for c in candidates if c[0].name == name])
        action, i = picked
        others = [o for j, o in enumerate(objects) if j != i]
        if i is None:
            thing = _new_thing(rng, others, lambda t, name=name: combo_allowed(split, *_combo(t, name)))
            subject = _new_object(rng, others, thing) if thing else None
        else:
            subject = objects[i]
        plan = _plan(rng, action, subject, others, *seconds, fps) if subject else None
        if plan is not None:
            break
        candidates.remove(picked)
    segment = _segment(start_frame, action, subject, plan, others, background, scene)
    _, _, end, size = plan
    if action.removes:
        return segment, others
    return segment, others + [SceneObject(subject.thing, size, replace(end, angle=end.angle % 360))]


def _sample_stretches(rng: np.random.Generator, segments: list[Segment], kinds: tuple[str, ...],
                      prob: float, fps: float) -> tuple[Stretch, ...]:
    stretches = []
    guard = round(STRETCH_GUARD_SECONDS * fps)
    for segment in segments:
        if not kinds or segment.num_frames < (STRETCH_SECONDS[1] + 2 * STRETCH_GUARD_SECONDS) * fps:
            continue
        if rng.random() >= prob:
            continue
        n = _frames(rng, *STRETCH_SECONDS, fps)
        start = int(rng.integers(segment.start_frame + guard, segment.end_frame - guard - n + 1))
        kind = _choice(rng, kinds)
        strength = float(rng.uniform(*STRETCH_RANGES[kind]))
        if kind == "lighting":
            strength *= _choice(rng, (-1.0, 1.0))
        stretches.append(Stretch(start, start + n, kind, strength))
    return tuple(stretches)


def annotation(video: Video) -> dict:
    """The JSON-ready annotation of a video (write.py adds the file name and the rendering size)."""
    nuisance = video.nuisance
    return {
        "kind": video.kind, "split": video.split, "index": video.index, "seed": video.seed,
        "fps": video.fps, "num_frames": video.num_frames, "duration": video.duration,
        "nuisance": {kind: {"enabled": bool(getattr(nuisance, kind)), "level": getattr(nuisance, kind)}
                     for kind in NUISANCES} | {"seed": nuisance.seed},
        "nuisance_stretches": [
            {"start": s.start_frame / video.fps, "end": s.end_frame / video.fps, "start_frame": s.start_frame,
             "end_frame": s.end_frame, "kind": s.kind, "strength": s.strength,
             "segment": video.segments.index(video.segment_at(s.start_frame))}
            for s in video.stretches],
        "segments": [_segment_annotation(i, s, video) for i, s in enumerate(video.segments)],
    }


def _pose(pose: Pose) -> dict:
    return {"x": round(pose.x, 4), "y": round(pose.y, 4), "radius": round(pose.radius, 4),
            "angle": round(pose.angle, 2), "alpha": round(pose.alpha, 3)}


def _segment_annotation(i: int, segment: Segment, video: Video) -> dict:
    thing = segment.subject
    return {
        "index": i, "start": segment.start_frame / video.fps, "end": segment.end_frame / video.fps,
        "start_frame": segment.start_frame, "end_frame": segment.end_frame, "scene": segment.scene,
        "background": segment.background.kind, "action": segment.action,
        "subject": {"colour": thing.colour, "shape": thing.shape, "size": segment.size,
                    "start": _pose(segment.start), "end": _pose(segment.end)},
        "others": [{"colour": o.thing.colour, "shape": o.thing.shape, "size": o.size, "pose": _pose(o.pose)}
                   for o in segment.others],
        "num_objects": segment.num_objects, "held_out_combo": segment.held_out, "label": segment.label,
        "captions": segment.captions(video.split), "questions": segment.questions(),
    }
