"""The rules of the ToyAV world (docs/TOYAV.md, "The world") as named constants, and its prompts.

The clip format and the prompt vocabulary (each colour and shape with its look and sound) live in
ccl_core/toyav/clip.py, since generation needs them at run time; they are re-exported here so that
`world` stays the one name the generator and the metrics read.

Everything the generator draws and everything the metrics measure refers to these names, so the
world is defined in one place (this module and clip.py, each fact once). Where those rules leave a free choice (gravity, the drop
height, the geometry convention, the noise convention), the choice is made and documented here.

Geometry convention: continuous pixel coordinates with the centre of pixel (row i, column j) at
(x=j, y=i), so the picture spans [-0.5, 63.5] on both axes and y grows downwards. The floor is
y = 63 (the centre of the last row); the walls are x = 0 and x = 63, mirroring it. An object
touching a wall or the floor is therefore still entirely inside the picture.
"""

from ccl_core.toyav.clip import (  # noqa: F401  (re-exported: the world's format and vocabulary)
    BACKGROUND, CIRCLE_RADIUS, COLOURS, DURATION_S, FPS, FRAME_SIZE, MOTIONS, NUM_FRAMES, NUM_SAMPLES, PROMPTS,
    SAMPLE_RATE, SHAPES, SQUARE_SIDE, TRIANGLE_HEIGHT, TRIANGLE_SIDE, Colour, Shape)

# Noise level as the RMS of the noise samples relative to a full-scale amplitude of 1.0
# (not relative to a full-scale sine): -50 dBFS means a standard deviation of 10 ** (-50 / 20).
NOISE_DBFS = -50.0
NOISE_RMS = 10.0 ** (NOISE_DBFS / 20.0)

# Walls and floor (see the geometry convention above).
FLOOR_Y = 63.0
LEFT_WALL_X = 0.0
RIGHT_WALL_X = 63.0

# Motions.
GRAVITY_PX_S2 = 400.0  # our choice: 2 to 5 bounces per clip from the drop heights below
DROP_HEIGHT_MIN_PX = 20.0  # our choice; the maximum drop starts with the object's top at y = 0
RESTITUTION_RANGE = (0.70, 0.95)
# Our choice: drops whose bounces inside the clip would fly shorter than this are redrawn, so
# every bounce spans at least 4 frames and is visible as its own extremum of the track.
MIN_FLIGHT_S = 0.25
SLIDE_SPEED_RANGE_PX_S = (40.0, 90.0)
BLINK_ON_RANGE_S = (0.2, 0.6)
BLINK_OFF_RANGE_S = (0.15, 0.5)

# Events within this many frames of either end cannot be timed from the picture (the sub-frame
# fit needs two frames on each side of a contact), so the metrics ignore sound onsets there and
# the generator redraws clips with no event between them.
TIMED_MARGIN_FRAMES = 2

# Sounds.
IMPACT_ATTACK_S = 0.002  # linear rise to the peak
IMPACT_DECAY_TAU_S = 0.060  # exponential decay after the peak
IMPACT_LENGTH_S = 0.150  # the burst is cut here
IMPACT_PEAK = 0.5
BLINK_AMPLITUDE = 0.3
BLINK_FADE_S = 0.005  # linear fade in after appearance and out before disappearance
HARMONIC_LIMIT_HZ = 7_500.0  # non-sine timbres keep only partials below this


def make_prompt(colour: str, shape: str, motion: str) -> str:
    """The prompt of a clip, after checking every word belongs to the world."""
    _check_word(colour, COLOURS, "colour")
    _check_word(shape, SHAPES, "shape")
    _check_word(motion, MOTIONS, "motion")
    return f"a {colour} {shape} {motion}"


def parse_prompt(prompt: str) -> tuple[str, str, str]:
    """Split `a {colour} {shape} {motion}` into its three words (case and spacing ignored)."""
    words = prompt.strip().rstrip(".").lower().split()
    if len(words) != 4 or words[0] != "a":
        raise ValueError(
            f"ToyAV prompt {prompt!r} is not of the form 'a {{colour}} {{shape}} {{motion}}', "
            f"e.g. {PROMPTS[0]!r}"
        )
    _, colour, shape, motion = words
    _check_word(colour, COLOURS, "colour")
    _check_word(shape, SHAPES, "shape")
    _check_word(motion, MOTIONS, "motion")
    return colour, shape, motion


def _check_word(word: str, valid, kind: str) -> None:
    if word not in valid:
        raise ValueError(f"unknown ToyAV {kind} {word!r}; valid {kind}s: {', '.join(valid)}")
