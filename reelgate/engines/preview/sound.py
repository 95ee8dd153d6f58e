"""Procedural stereo sound keyed on the prompt's words: shaped noise, tones and hits.

Each sound word adds a layer (rain adds hiss and drops, fireworks add thumps and crackle, …);
a prompt without sound words gets a soft ambient pad, so a track is never silent. Multi-shot
renders get a short whoosh at every cut. Everything comes from one seeded generator, so the
same request gives the same samples.

The whole track is synthesised at once: at most 15 s of stereo float32 (under 6 MB), and
spectral noise shaping needs the whole signal anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from reelgate.engines.mediaio import AUDIO_RATE
from reelgate.engines.preview.words import contains_any

F64 = npt.NDArray[np.float64]
Rng = np.random.Generator


class Layer(StrEnum):
    RAIN = "rain"
    WIND = "wind"
    STREET = "street"
    FIREWORKS = "fireworks"
    MUSIC = "music"
    FOOTSTEPS = "footsteps"
    WATER = "water"
    BIRDS = "birds"
    FIRE = "fire"
    THUNDER = "thunder"
    CROWD = "crowd"
    AMBIENT = "ambient"


#: The words that ask for each layer. A word may ask for several ("storm": rain, wind, thunder).
LAYER_WORDS: dict[Layer, tuple[str, ...]] = {
    Layer.RAIN: ("rain", "rains", "raining", "rainy", "drizzle", "storm", "downpour"),
    Layer.WIND: ("wind", "windy", "breeze", "gust", "gusts", "storm", "blizzard"),
    Layer.STREET: (
        "street",
        "streets",
        "city",
        "traffic",
        "car",
        "cars",
        "road",
        "downtown",
        "urban",
    ),
    Layer.FIREWORKS: ("fireworks", "firework", "explosion", "explosions", "celebration"),
    Layer.MUSIC: (
        "music",
        "song",
        "melody",
        "piano",
        "guitar",
        "dance",
        "dancing",
        "concert",
        "band",
    ),
    Layer.FOOTSTEPS: (
        "footsteps",
        "footstep",
        "steps",
        "walk",
        "walks",
        "walking",
        "running",
        "runs",
    ),
    Layer.WATER: (
        "ocean",
        "sea",
        "waves",
        "wave",
        "beach",
        "river",
        "stream",
        "water",
        "waterfall",
    ),
    Layer.BIRDS: ("birds", "bird", "forest", "birdsong", "chirping", "morning"),
    Layer.FIRE: ("fire", "campfire", "fireplace", "flames", "crackling", "burning"),
    Layer.THUNDER: ("thunder", "storm", "lightning", "thunderstorm"),
    Layer.CROWD: (
        "crowd",
        "people",
        "market",
        "cafe",
        "party",
        "festival",
        "chatter",
        "audience",
    ),
}


def sound_layers(prompt: str) -> list[Layer]:
    """The layers a prompt asks for; the ambient pad when it names none."""
    found = [layer for layer, words in LAYER_WORDS.items() if contains_any(prompt, words)]
    return found or [Layer.AMBIENT]


def synthesize(
    prompt: str, seconds: float, seed: int, cuts: Sequence[float] = ()
) -> npt.NDArray[np.float32]:
    """A stereo track, shape (2, round(seconds * AUDIO_RATE)), peak 0.8, never silent.

    ``cuts`` are times (seconds) of hard cuts, each marked with a whoosh.
    """
    n = round(seconds * AUDIO_RATE)
    rng = np.random.default_rng(seed)
    mix = np.zeros((2, n))
    for layer in sound_layers(prompt):
        sound = _LAYERS[layer](rng, n)
        mix += sound / max(_rms(sound), 1e-9) * 0.2
    for at in cuts:
        _add(mix, _whoosh(rng), round(at * AUDIO_RATE) - AUDIO_RATE // 10, pan=0.0)
    fade = min(n // 2, AUDIO_RATE // 50)
    ramp = np.linspace(0.0, 1.0, fade)
    mix[:, :fade] *= ramp
    mix[:, n - fade :] *= ramp[::-1]
    peak = float(np.abs(mix).max())
    return (mix * (0.8 / peak if peak > 0 else 1.0)).astype(np.float32)


# --- building blocks -------------------------------------------------------------------------


def _rms(x: F64) -> float:
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


def _noise(rng: Rng, n: int, low: float, high: float, tilt: float = 0.0) -> F64:
    """White noise shaped in the frequency domain: a soft band from ``low`` to ``high`` Hz,
    tilted by ``f ** -tilt`` (1 = pink, 2 = brown), scaled to unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / AUDIO_RATE)
    freqs[0] = freqs[1] if n > 1 else 1.0
    band = 1 / (1 + (low / freqs) ** 4) / (1 + (freqs / high) ** 4)
    shaped = np.fft.irfft(spectrum * band * freqs**-tilt, n)
    return shaped / max(_rms(shaped), 1e-12)


def _stereo(
    rng: Rng, n: int, low: float, high: float, tilt: float = 0.0, width: float = 0.5
) -> F64:
    """Two noise channels that share ``1 - width`` of their signal."""
    common = _noise(rng, n, low, high, tilt)
    return np.stack(
        [common * (1 - width) + _noise(rng, n, low, high, tilt) * width for _ in range(2)]
    )


def _slow(rng: Rng, n: int, hz: float, depth: float) -> F64:
    """A smooth random envelope around 1 that changes about ``hz`` times a second."""
    points = max(2, int(n / AUDIO_RATE * hz) + 2)
    knots = 1 + depth * rng.uniform(-1, 1, points)
    return np.interp(np.linspace(0, points - 1, n), np.arange(points), knots)


def _decay(seconds: float, tau: float) -> F64:
    t = np.arange(int(seconds * AUDIO_RATE)) / AUDIO_RATE
    return np.exp(-t / tau)


def _tone(hz: float, seconds: float, harmonics: Sequence[float] = (1.0,)) -> F64:
    t = np.arange(int(seconds * AUDIO_RATE)) / AUDIO_RATE
    out = np.zeros_like(t)
    for k, amplitude in enumerate(harmonics):
        out += amplitude * np.sin(2 * np.pi * hz * (k + 1) * t)
    return out


def _add(mix: F64, sound: F64, start: int, pan: float) -> None:
    """Mix a mono ``sound`` into ``mix`` at sample ``start``, panned (-1 left .. 1 right)."""
    begin, end = max(0, start), min(mix.shape[1], start + sound.size)
    if begin >= end:
        return
    part = sound[begin - start : end - start]
    mix[0, begin:end] += part * np.sqrt((1 - pan) / 2)
    mix[1, begin:end] += part * np.sqrt((1 + pan) / 2)


def _events(
    rng: Rng, n: int, per_second: float, sound: Callable[[], F64], spread: float = 1.0
) -> F64:
    """Sounds scattered at random times, about ``per_second`` of them a second."""
    out = np.zeros((2, n))
    count = max(1, int(n / AUDIO_RATE * per_second))
    for start in np.sort(rng.integers(0, max(1, n), count)):
        _add(out, sound(), int(start), pan=float(rng.uniform(-spread, spread)))
    return out


def _whoosh(rng: Rng) -> F64:
    length = int(0.35 * AUDIO_RATE)
    swell: F64 = np.sin(np.linspace(0, np.pi, length)) ** 2
    return _noise(rng, length, 300, 3000, tilt=1.0) * swell * 0.6


# --- layers ----------------------------------------------------------------------------------


def _rain(rng: Rng, n: int) -> F64:
    hiss = _stereo(rng, n, 1200, 9000, width=0.8)

    def drop() -> F64:
        hz = float(rng.uniform(1800, 4200))
        return _tone(hz, 0.03) * _decay(0.03, 0.006) * 3

    return hiss + _events(rng, n, 25, drop)


def _wind(rng: Rng, n: int) -> F64:
    gusts = _slow(rng, n, 0.4, 0.8)
    sway = _slow(rng, n, 0.25, 0.6) - 1
    air = _noise(rng, n, 90, 900, tilt=1.0) * gusts
    return np.stack([air * (1 - 0.5 * sway), air * (1 + 0.5 * sway)])


def _street(rng: Rng, n: int) -> F64:
    rumble = _stereo(rng, n, 35, 400, tilt=1.0, width=0.3)

    def car() -> F64:
        length = int(2.5 * AUDIO_RATE)
        passing: F64 = np.sin(np.linspace(0, np.pi, length)) ** 2
        return _noise(rng, length, 80, 1500, tilt=1.0) * passing * 2

    def horn() -> F64:
        return (_tone(392, 0.3, (1, 0.5, 0.3)) + _tone(494, 0.3, (1, 0.5))) * _decay(0.3, 0.2)

    return rumble + _events(rng, n, 0.4, car) + _events(rng, n, 0.15, horn, spread=0.6)


def _fireworks(rng: Rng, n: int) -> F64:
    def burst() -> F64:
        thump = _tone(float(rng.uniform(45, 70)), 0.5) * _decay(0.5, 0.12) * 2
        crackle = _noise(rng, int(0.9 * AUDIO_RATE), 1500, 7000) * _decay(0.9, 0.25)
        sparkle = (rng.uniform(size=crackle.size) > 0.985) * rng.uniform(-1.5, 1.5, crackle.size)
        out = np.zeros(crackle.size)
        out[: thump.size] += thump
        out += crackle * 0.5 + sparkle * _decay(0.9, 0.35)
        return out

    return _events(rng, n, 0.9, burst, spread=0.8) + 0.05 * _stereo(rng, n, 50, 300, tilt=1.0)


def _music(rng: Rng, n: int) -> F64:
    # I-V-vi-IV in A major, two seconds a chord, plus a soft pulse on the beat.
    chords = (
        (220.0, 277.18, 329.63),
        (164.81, 207.65, 246.94),
        (185.0, 220.0, 277.18),
        (146.83, 185.0, 220.0),
    )
    out = np.zeros((2, n))
    chord_len = 2 * AUDIO_RATE
    for k, start in enumerate(range(0, n, chord_len)):
        for v, hz in enumerate(chords[k % len(chords)]):
            note = _tone(hz, 2.0, (1, 0.35, 0.15)) * _decay(2.0, 1.2)
            _add(out, note, start, pan=(v - 1) * 0.5)
    beat = int(AUDIO_RATE * 60 / 100)
    for start in range(0, n, beat):
        _add(out, _tone(55, 0.2) * _decay(0.2, 0.05) * 2, start, pan=0.0)
    return out


def _footsteps(rng: Rng, n: int) -> F64:
    out = np.zeros((2, n))
    step = int(0.5 * AUDIO_RATE)
    for k, start in enumerate(range(int(0.1 * AUDIO_RATE), n, step)):
        thud = _noise(rng, int(0.09 * AUDIO_RATE), 70, 400) * _decay(0.09, 0.02)
        heel = _noise(rng, int(0.03 * AUDIO_RATE), 1500, 5000) * _decay(0.03, 0.005) * 0.5
        thud[: heel.size] += heel
        _add(out, thud, start + int(rng.integers(0, AUDIO_RATE // 50)), pan=-0.4 if k % 2 else 0.4)
    return out + 0.02 * _stereo(rng, n, 100, 2000)


def _water(rng: Rng, n: int) -> F64:
    t = np.arange(n) / AUDIO_RATE
    swell = 0.55 + 0.45 * np.sin(2 * np.pi * t / 6.0 + rng.uniform(0, 2 * np.pi)) ** 2
    return _stereo(rng, n, 150, 2500, tilt=0.5, width=0.7) * swell


def _birds(rng: Rng, n: int) -> F64:
    def chirp() -> F64:
        length = int(0.08 * AUDIO_RATE)
        start_hz, end_hz = rng.uniform(2500, 4500), rng.uniform(3000, 6000)
        phase = 2 * np.pi * np.cumsum(np.linspace(start_hz, end_hz, length)) / AUDIO_RATE
        return np.sin(phase) * np.sin(np.linspace(0, np.pi, length))

    return _events(rng, n, 5, chirp, spread=0.9) + 0.05 * _stereo(rng, n, 200, 3000)


def _fire(rng: Rng, n: int) -> F64:
    roar = _stereo(rng, n, 60, 500, tilt=1.0) * 0.5

    def pop() -> F64:
        return _noise(rng, int(0.015 * AUDIO_RATE), 800, 8000) * _decay(0.015, 0.003) * 4

    return roar + _events(rng, n, 12, pop, spread=0.5)


def _thunder(rng: Rng, n: int) -> F64:
    def clap() -> F64:
        length = int(2.5 * AUDIO_RATE)
        return (
            _noise(rng, length, 25, 250, tilt=1.0)
            * _decay(2.5, 0.7)
            * _slow(rng, length, 6, 0.6)
            * 3
        )

    return _events(rng, n, 0.25, clap, spread=0.5) + 0.05 * _stereo(rng, n, 30, 200, tilt=1.0)


def _crowd(rng: Rng, n: int) -> F64:
    syllables = _slow(rng, n, 8, 0.9)
    return _stereo(rng, n, 250, 3000, width=0.7) * syllables


def _ambient(rng: Rng, n: int) -> F64:
    t = np.arange(n) / AUDIO_RATE
    root = float(rng.choice([196.0, 220.0, 246.94]))
    pad = np.zeros(n)
    for ratio, rate in ((1.0, 0.13), (1.25, 0.17), (1.5, 0.11), (2.0, 0.07)):
        pad += np.sin(2 * np.pi * root * ratio * t) * (0.6 + 0.4 * np.sin(2 * np.pi * rate * t))
    room = _stereo(rng, n, 80, 1500, tilt=1.0) * 0.15
    return np.stack([pad, np.roll(pad, AUDIO_RATE // 100)]) * 0.3 + room


_LAYERS: dict[Layer, Callable[[Rng, int], F64]] = {
    Layer.RAIN: _rain,
    Layer.WIND: _wind,
    Layer.STREET: _street,
    Layer.FIREWORKS: _fireworks,
    Layer.MUSIC: _music,
    Layer.FOOTSTEPS: _footsteps,
    Layer.WATER: _water,
    Layer.BIRDS: _birds,
    Layer.FIRE: _fire,
    Layer.THUNDER: _thunder,
    Layer.CROWD: _crowd,
    Layer.AMBIENT: _ambient,
}
