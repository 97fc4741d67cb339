"""Procedural ToyAV clips: a continuous-time trajectory, sampled into frames and into sound.

Every event (floor or wall contact, appearance) is solved analytically in continuous time. The
picture samples the trajectory at the frame instants t = k / FPS; each sound starts at the exact
event time (synthesised on t - t0, so it is placed to a fraction of a sample). Sound and picture
are thus tied by physics, and synchrony can be measured against known truth.
"""

from dataclasses import dataclass
from itertools import count
from typing import Iterator, Sequence

import numpy as np

from . import world as w

SUBCOLUMNS = 16  # sub-columns per pixel for the antialiased coverage


@dataclass(frozen=True)
class Bouncing:
    """Dropped from rest at t = 0, bouncing on the floor with a fixed restitution."""

    x: float
    drop: float  # height of the first fall, px
    restitution: float
    half_height: float
    contacts: np.ndarray  # floor contact times inside the clip, s
    rebound_speeds: np.ndarray  # upward speed just after each contact, px/s
    duration: float = w.DURATION_S  # the clip's length, s

    @classmethod
    def sample(cls, rng: np.random.Generator, shape: w.Shape, duration: float = w.DURATION_S) -> "Bouncing":
        """Draw until every bounce that starts inside the clip lasts at least MIN_FLIGHT_S (over a
        long clip this keeps the lively drops: the bounces of a low one die out early)."""
        g = w.GRAVITY_PX_S2
        while True:
            x = rng.uniform(w.LEFT_WALL_X + shape.half_width, w.RIGHT_WALL_X - shape.half_width)
            drop = rng.uniform(w.DROP_HEIGHT_MIN_PX, w.FLOOR_Y - 2.0 * shape.half_height)
            restitution = rng.uniform(*w.RESTITUTION_RANGE)
            contact, speed = np.sqrt(2.0 * drop / g), np.sqrt(2.0 * g * drop)
            contacts, speeds = [], []
            while contact < duration and 2.0 * speed * restitution / g >= w.MIN_FLIGHT_S:
                speed *= restitution
                contacts.append(contact)
                speeds.append(speed)
                contact += 2.0 * speed / g
            if contact >= duration:  # no flight inside the clip was too short
                return cls(x, drop, restitution, shape.half_height, np.array(contacts),
                           np.array(speeds), duration)

    @property
    def events(self) -> np.ndarray:
        return self.contacts

    def centre(self, t: np.ndarray) -> np.ndarray:
        """Bounding-box centre [len(t), 2] (x, y) at continuous times t."""
        t = np.asarray(t, dtype=np.float64)
        k = np.searchsorted(self.contacts, t, side="right") - 1
        flying = k >= 0
        since = t - np.where(flying, self.contacts[np.maximum(k, 0)], 0.0)
        start = np.where(flying, w.FLOOR_Y, w.FLOOR_Y - self.drop)
        up = np.where(flying, self.rebound_speeds[np.maximum(k, 0)], 0.0)
        bottom = start - up * since + 0.5 * w.GRAVITY_PX_S2 * since**2
        return np.stack([np.full_like(t, self.x), bottom - self.half_height], axis=-1)

    def visible(self, t: np.ndarray) -> np.ndarray:
        return np.ones(np.shape(t), dtype=bool)


@dataclass(frozen=True)
class Sliding:
    """Constant horizontal speed, reflected by the left and right walls, at a fixed height."""

    y: float
    speed: float  # signed, px/s
    start: float  # distance of the left edge from its left-contact position at t = 0, px
    half_width: float
    duration: float = w.DURATION_S

    @classmethod
    def sample(cls, rng: np.random.Generator, shape: w.Shape, duration: float = w.DURATION_S) -> "Sliding":
        y = rng.uniform(shape.half_height, w.FLOOR_Y - shape.half_height)
        speed = rng.uniform(*w.SLIDE_SPEED_RANGE_PX_S) * rng.choice([-1.0, 1.0])
        start = rng.uniform(0.0, cls._span(shape.half_width))
        return cls(y, speed, start, shape.half_width, duration)

    @staticmethod
    def _span(half_width: float) -> float:
        return w.RIGHT_WALL_X - w.LEFT_WALL_X - 2.0 * half_width

    @property
    def events(self) -> np.ndarray:
        """Times at which the unfolded path crosses a multiple of the span (a wall contact)."""
        span = self._span(self.half_width)
        ends = sorted([self.start, self.start + self.speed * self.duration])
        n = np.arange(np.ceil(ends[0] / span), np.floor(ends[1] / span) + 1)
        times = np.sort((n * span - self.start) / self.speed)
        return times[(times >= 0.0) & (times < self.duration)]

    def centre(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        span = self._span(self.half_width)
        unfolded = self.start + self.speed * t
        x = w.LEFT_WALL_X + self.half_width + span - np.abs(np.mod(unfolded, 2.0 * span) - span)
        return np.stack([x, np.full_like(t, self.y)], axis=-1)

    def visible(self, t: np.ndarray) -> np.ndarray:
        return np.ones(np.shape(t), dtype=bool)


@dataclass(frozen=True)
class Blinking:
    """A still object shown during alternating on and off spells of random length."""

    x: float
    y: float
    intervals: np.ndarray  # [n, 2] (appearance, disappearance) times, s; may start before 0
    duration: float = w.DURATION_S

    @classmethod
    def sample(cls, rng: np.random.Generator, shape: w.Shape, duration: float = w.DURATION_S) -> "Blinking":
        x = rng.uniform(w.LEFT_WALL_X + shape.half_width, w.RIGHT_WALL_X - shape.half_width)
        y = rng.uniform(shape.half_height, w.FLOOR_Y - shape.half_height)
        # Start one longest on+off cycle before the clip so that the state at t = 0 is random.
        t = -rng.uniform(0.0, w.BLINK_ON_RANGE_S[1] + w.BLINK_OFF_RANGE_S[1])
        on = bool(rng.integers(2))
        intervals = []
        while t < duration:
            length = rng.uniform(*(w.BLINK_ON_RANGE_S if on else w.BLINK_OFF_RANGE_S))
            if on:
                intervals.append((t, t + length))
            t, on = t + length, not on
        return cls(x, y, np.array(intervals).reshape(-1, 2), duration)

    @property
    def events(self) -> np.ndarray:
        starts = self.intervals[:, 0]
        return starts[(starts >= 0.0) & (starts < self.duration)]

    def centre(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        return np.stack([np.full_like(t, self.x), np.full_like(t, self.y)], axis=-1)

    def visible(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)[..., None]
        return np.any((t >= self.intervals[:, 0]) & (t < self.intervals[:, 1]), axis=-1)


MOTION_TYPES = {"bouncing": Bouncing, "sliding": Sliding, "blinking": Blinking}
Trajectory = Bouncing | Sliding | Blinking


@dataclass(frozen=True)
class Clip:
    """One ToyAV clip with its exact ground truth."""

    frames: np.ndarray  # [frames, 64, 64, 3] float32 in 0..1 (NUM_FRAMES for the world's 2 s clips)
    waveform: np.ndarray  # [samples] float32 (NUM_SAMPLES for 2 s)
    prompt: str
    colour: str
    shape: str
    motion: str
    events: tuple[float, ...]  # exact impact or appearance times in [0, the clip's duration), s
    blinks: tuple[tuple[float, float], ...]  # exact (appearance, disappearance) times; blinking only
    centroids: np.ndarray  # [frames, 2] (x, y) area centroid, px; NaN while invisible
    trajectory: Trajectory  # the continuous motion, for evaluating positions at any time


@dataclass(frozen=True)
class ClipBatch:
    """Clips stacked for training."""

    frames: np.ndarray  # [B, frames, 64, 64, 3] (NUM_FRAMES for 2 s)
    waveforms: np.ndarray  # [B, samples] (NUM_SAMPLES for 2 s)
    prompts: list[str]
    clips: list[Clip]


def clip_frames(seconds: float) -> int:
    """Frames of a clip of `seconds` (rounded to whole frames); an error for a clip too short to
    hold a timed event."""
    n_frames = round(seconds * w.FPS)
    if not n_frames > 2 * w.TIMED_MARGIN_FRAMES + 1:
        raise ValueError(f"a ToyAV clip must last over {(2 * w.TIMED_MARGIN_FRAMES + 1) / w.FPS:g} s "
                         f"(whole frames at {w.FPS} fps), got {seconds}")
    return n_frames


def generate_clip(seed: int, colour: str | None = None, shape: str | None = None,
                  motion: str | None = None, seconds: float = w.DURATION_S, samples: int | None = None) -> Clip:
    """A clip determined by `seed`; words left as None are drawn from the seed.

    `seconds` (rounded to whole frames) makes a clip of another length under the same rules: the
    ground truth for long clips. The world's 2 s clips draw exactly as before. `samples`: the
    waveform's length (default: the clip's duration); training data asks for whole audio latents,
    which can run a few ms past the picture (the sound goes on under the same rules).

    The words are always drawn, so fixing one keeps the rest of the draw: the same seed with
    another colour gives the same motion with another colour and pitch. Initial conditions are
    redrawn until an event falls where the picture can time it (TIMED_MARGIN_FRAMES from the
    ends), so every clip has at least one measurable event.
    """
    rng = np.random.default_rng(seed)
    drawn = [list(words)[rng.integers(len(words))] for words in (w.COLOURS, w.SHAPES, w.MOTIONS)]
    colour, shape, motion = (given or pick for given, pick in zip((colour, shape, motion), drawn))
    prompt = w.make_prompt(colour, shape, motion)
    shape_spec, colour_spec = w.SHAPES[shape], w.COLOURS[colour]

    n_frames = clip_frames(seconds)
    duration = n_frames / w.FPS
    timed = (w.TIMED_MARGIN_FRAMES / w.FPS, (n_frames - 1 - w.TIMED_MARGIN_FRAMES) / w.FPS)
    while True:
        trajectory = MOTION_TYPES[motion].sample(rng, shape_spec, duration)
        if np.any((trajectory.events >= timed[0]) & (trajectory.events <= timed[1])):
            break

    times = np.arange(n_frames) / w.FPS
    centres, visible = trajectory.centre(times), trajectory.visible(times)
    frames = render(shape_spec, colour_spec.rgb, centres, visible)
    blinks = trajectory.intervals if isinstance(trajectory, Blinking) else np.zeros((0, 2))
    waveform = synthesize(trajectory.events, blinks, colour_spec.pitch_hz, shape_spec.timbre, rng,
                          round(duration * w.SAMPLE_RATE) if samples is None else samples)
    centroids = centres + np.array([0.0, _centroid_drop(shape_spec)])
    centroids[~visible] = np.nan
    return Clip(
        frames=frames,
        waveform=waveform,
        prompt=prompt,
        colour=colour,
        shape=shape,
        motion=motion,
        events=tuple(float(t) for t in trajectory.events),
        blinks=tuple((float(a), float(b)) for a, b in blinks),
        centroids=centroids,
        trajectory=trajectory,
    )


def generate_batch(seeds: Sequence[int], colour: str | None = None, shape: str | None = None,
                   motion: str | None = None, seconds: float = w.DURATION_S,
                   samples: int | None = None) -> ClipBatch:
    """Clips for the given seeds, all of `seconds` (and `samples`, generate_clip), with frames and
    waveforms stacked for a training step."""
    clips = [generate_clip(s, colour, shape, motion, seconds, samples) for s in seeds]
    return ClipBatch(
        frames=np.stack([c.frames for c in clips]),
        waveforms=np.stack([c.waveform for c in clips]),
        prompts=[c.prompt for c in clips],
        clips=clips,
    )


def iter_clips(base_seed: int, colour: str | None = None, shape: str | None = None,
               motion: str | None = None) -> Iterator[Clip]:
    """An endless deterministic stream; clip i uses a seed derived from (base_seed, i)."""
    for i in count():
        seed = int(np.random.SeedSequence([base_seed, i]).generate_state(1)[0])
        yield generate_clip(seed, colour, shape, motion)


def _centroid_drop(shape: w.Shape) -> float:
    """Area centroid below the bounding-box centre: a sixth of the height for the triangle."""
    return shape.half_height / 3.0 if shape.name == "triangle" else 0.0


def _column_extent(shape: w.Shape, dx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top and bottom of the shape's vertical section at offset dx (|dx| <= half_width)."""
    if shape.name == "circle":
        half = np.sqrt(np.maximum(shape.half_width**2 - dx**2, 0.0))
        return -half, half
    if shape.name == "square":
        return np.full_like(dx, -shape.half_height), np.full_like(dx, shape.half_height)
    # Triangle, apex up at dy = -half_height, base at dy = +half_height.
    top = shape.half_height * (2.0 * np.abs(dx) / shape.half_width - 1.0)
    return top, np.full_like(dx, shape.half_height)


def render(shape: w.Shape, rgb: tuple[float, float, float], centres: np.ndarray,
           visible: np.ndarray) -> np.ndarray:
    """Frames with the shape's pixel coverage blended over the background.

    Coverage is exact along y (each sub-column's vertical section is clipped to the pixel) and
    integrated over SUBCOLUMNS sub-columns along x, each weighted by its part inside the shape's
    horizontal extent; so axis-aligned edges are exact and the area centroid is kept to about a
    thousandth of a pixel, which the sub-frame timing of contacts relies on.
    """
    n = len(centres)
    reach = int(np.ceil(max(shape.half_width, shape.half_height))) + 1
    size = 2 * reach + 1  # window of pixels around the rounded centre
    corner = np.rint(centres).astype(int) - reach  # (column, row) of the window's first pixel
    offsets = (np.arange(SUBCOLUMNS) + 0.5) / SUBCOLUMNS - 0.5
    dx = corner[:, :1] + (np.arange(size)[:, None] + offsets).ravel() - centres[:, :1]
    half = 0.5 / SUBCOLUMNS
    inside = SUBCOLUMNS * np.clip(
        np.minimum(dx + half, shape.half_width) - np.maximum(dx - half, -shape.half_width), 0.0, None)
    top, bottom = _column_extent(shape, np.clip(dx, -shape.half_width, shape.half_width))
    rows = corner[:, 1:] + np.arange(size) - centres[:, 1:]  # row centres relative to the centre
    overlap = np.minimum(rows[:, :, None] + 0.5, bottom[:, None, :]) - np.maximum(
        rows[:, :, None] - 0.5, top[:, None, :])
    cover = (np.clip(overlap, 0.0, 1.0) * inside[:, None, :]).reshape(n, size, size, SUBCOLUMNS)
    cover = cover.mean(axis=-1) * visible[:, None, None]

    pad = w.FRAME_SIZE + 2 * size
    canvas = np.zeros((n, pad, pad))
    for k, (col, row) in enumerate(corner + size):
        canvas[k, row:row + size, col:col + size] = cover[k]
    cover = canvas[:, size:size + w.FRAME_SIZE, size:size + w.FRAME_SIZE, None]
    background = np.asarray(w.BACKGROUND)
    return (background + cover * (np.asarray(rgb) - background)).astype(np.float32)


def tone(tau: np.ndarray, pitch_hz: float, timbre: str) -> np.ndarray:
    """Unit-peak periodic wave starting at phase 0 at tau = 0; partials below HARMONIC_LIMIT_HZ."""
    if timbre == "sine":
        return np.sin(2.0 * np.pi * pitch_hz * tau)
    orders = np.arange(1, int(w.HARMONIC_LIMIT_HZ / pitch_hz) + 1, 2)
    orders = orders[orders * pitch_hz < w.HARMONIC_LIMIT_HZ]
    if timbre == "square":
        gains = 1.0 / orders
    else:  # triangle
        gains = (-1.0) ** ((orders - 1) // 2) / orders**2
    period = np.arange(4096) / (4096 * pitch_hz)
    peak = np.abs(np.sin(2.0 * np.pi * pitch_hz * np.outer(period, orders)) @ gains).max()
    return np.sin(2.0 * np.pi * pitch_hz * np.outer(tau, orders)) @ gains / peak


def impact_envelope(tau: np.ndarray) -> np.ndarray:
    """Linear attack to IMPACT_PEAK, then exponential decay; zero outside [0, IMPACT_LENGTH_S)."""
    rise = np.clip(tau / w.IMPACT_ATTACK_S, 0.0, 1.0)
    decay = np.exp(-np.maximum(tau - w.IMPACT_ATTACK_S, 0.0) / w.IMPACT_DECAY_TAU_S)
    return np.where((tau >= 0.0) & (tau < w.IMPACT_LENGTH_S), w.IMPACT_PEAK * rise * decay, 0.0)


def synthesize(events: np.ndarray, blinks: np.ndarray, pitch_hz: float, timbre: str,
               rng: np.random.Generator, samples: int = w.NUM_SAMPLES) -> np.ndarray:
    """The clip's sound: a steady tone over each blink, else a burst at each event, plus noise."""
    t = np.arange(samples) / w.SAMPLE_RATE
    wave = np.zeros(samples)
    if len(blinks):
        for on, off in blinks:
            span = slice(np.searchsorted(t, on), np.searchsorted(t, off))
            tau = t[span] - on
            fade = np.clip(np.minimum(tau, off - t[span]) / w.BLINK_FADE_S, 0.0, 1.0)
            wave[span] += w.BLINK_AMPLITUDE * fade * tone(tau, pitch_hz, timbre)
    else:
        for start in events:
            span = slice(np.searchsorted(t, start), np.searchsorted(t, start + w.IMPACT_LENGTH_S))
            tau = t[span] - start
            wave[span] += impact_envelope(tau) * tone(tau, pitch_hz, timbre)
    wave += rng.normal(0.0, w.NOISE_RMS, samples)
    return wave.astype(np.float32)
