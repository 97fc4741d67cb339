"""What the embedded ToyAV model makes (docs/TOYAV.md): the clip format and the prompt vocabulary.

This is the part of the ToyAV world that generation needs at run time: the autoencoders read the
format, the text encoder reads the words. Each word's look and sound (a colour's RGB and pitch, a
shape's size and timbre) is defined here too, beside the word, since it is what a prompt promises.
The rest of the world's rules (motion physics, sound envelopes, noise) are research tooling in
ccl_lab/world.py, which re-exports these names.
"""

from dataclasses import dataclass
import math

# Clip format.
FRAME_SIZE = 64
FPS = 16
NUM_FRAMES = 32
SAMPLE_RATE = 16_000
NUM_SAMPLES = 32_000
DURATION_S = NUM_FRAMES / FPS  # 2.0 s, the same for both streams
BACKGROUND = (0.08, 0.08, 0.08)

# The prompt vocabulary: a {colour} {shape} {motion}.
MOTIONS = ("bouncing", "sliding", "blinking")


@dataclass(frozen=True)
class Colour:
    """An object colour and the pitch its sounds carry."""

    name: str
    rgb: tuple[float, float, float]
    pitch_hz: float


@dataclass(frozen=True)
class Shape:
    """An object shape, its extent around its bounding-box centre, and its sounds' timbre."""

    name: str
    timbre: str  # "sine", "square" or "triangle"
    half_width: float
    half_height: float


COLOURS = {
    c.name: c
    for c in (
        Colour("red", (0.90, 0.15, 0.15), 330.0),
        Colour("green", (0.15, 0.85, 0.20), 440.0),
        Colour("blue", (0.20, 0.35, 0.95), 587.33),
        Colour("yellow", (0.95, 0.85, 0.15), 784.0),
    )
}

CIRCLE_RADIUS = 7.0
SQUARE_SIDE = 14.0
TRIANGLE_SIDE = 16.0  # equilateral, apex up
TRIANGLE_HEIGHT = TRIANGLE_SIDE * math.sqrt(3.0) / 2.0

SHAPES = {
    s.name: s
    for s in (
        Shape("circle", "sine", CIRCLE_RADIUS, CIRCLE_RADIUS),
        Shape("square", "square", SQUARE_SIDE / 2, SQUARE_SIDE / 2),
        Shape("triangle", "triangle", TRIANGLE_SIDE / 2, TRIANGLE_HEIGHT / 2),
    )
}

PROMPTS = tuple(f"a {c} {s} {m}" for c in COLOURS for s in SHAPES for m in MOTIONS)
