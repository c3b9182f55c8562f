"""The palette in pulseboard.css, checked from the CSS itself: text contrast, and tones that survive colour blindness."""

import re
from itertools import combinations

import pytest

from tests.processes import BASE_DIR

CSS = (BASE_DIR / "static" / "dashboard" / "pulseboard.css").read_text()
# Machado, Oliveira & Fernandes (2009), severity 1.0, applied to linear RGB.
SIMULATIONS = {
    "deuteranopia": ((0.367322, 0.860646, -0.227968), (0.280085, 0.672501, 0.047413), (-0.011820, 0.042940, 0.968881)),
    "protanopia": ((0.152286, 1.052583, -0.204868), (0.114503, 0.786281, 0.099216), (-0.003882, -0.048116, 1.051998)),
}


def palettes() -> dict[str, dict[str, str]]:
    """Each block that defines colours (:root, .wall-page), its custom properties with var() resolved."""
    found = {}
    for selector, body in re.findall(r"(:root|\.wall-page)\s*\{([^}]*)\}", CSS):
        values = found.setdefault(selector, dict(found.get(":root", {})))
        values.update(re.findall(r"(--[\w-]+)\s*:\s*([^;]+);", body))
    for values in found.values():
        for name, value in values.items():
            while match := re.fullmatch(r"var\((--[\w-]+)\)", value.strip()):
                value = values[match.group(1)]
            values[name] = value.strip()
    return found


def rgb(color: str) -> tuple[float, float, float]:
    color = color.lstrip("#")
    color = "".join(c * 2 for c in color) if len(color) == 3 else color
    return tuple(int(color[i : i + 2], 16) / 255 for i in (0, 2, 4))


def linear(channel: float) -> float:
    return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4


def luminance(color) -> float:
    red, green, blue = (linear(c) for c in (rgb(color) if isinstance(color, str) else color))
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(one: str, other: str) -> float:
    light, dark = sorted([luminance(one), luminance(other)], reverse=True)
    return (light + 0.05) / (dark + 0.05)


def lab(linear_rgb) -> tuple[float, float, float]:
    red, green, blue = linear_rgb
    xyz = (
        (0.4124 * red + 0.3576 * green + 0.1805 * blue) / 0.9505,
        0.2126 * red + 0.7152 * green + 0.0722 * blue,
        (0.0193 * red + 0.1192 * green + 0.9505 * blue) / 1.089,
    )
    f = [t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in xyz]
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def seen_with(color: str, simulation) -> tuple[float, float, float]:
    channels = [linear(c) for c in rgb(color)]
    return tuple(min(1.0, max(0.0, sum(m * c for m, c in zip(row, channels, strict=True)))) for row in simulation)


PAIRS = [
    (block, name[: -len("-fg")], values[name], values[name[: -len("-fg")] + "-bg"])
    for block, values in palettes().items()
    for name in values
    if name.endswith("-fg") and name[: -len("-fg")] + "-bg" in values
]


def test_the_palette_names_its_pairs():
    names = {name for _, name, _, _ in PAIRS}
    assert {"--text", "--muted", "--link", "--tone-bad", "--tone-warn", "--tone-ok", "--wall-text", "--wall-muted"} <= names


@pytest.mark.parametrize("block,name,fg,bg", PAIRS, ids=[f"{block} {name}" for block, name, _, _ in PAIRS])
def test_every_text_colour_meets_wcag_aa_on_its_background(block, name, fg, bg):
    assert contrast(fg, bg) >= 4.5, f"{name}: {fg} on {bg} is {contrast(fg, bg):.2f}:1"


@pytest.mark.parametrize("simulation", SIMULATIONS)
def test_failed_passed_and_warning_tones_stay_apart_under_red_green_colour_blindness(simulation):
    tones = palettes()[":root"]
    seen = {tone: lab(seen_with(tones[f"--tone-{tone}-bg"], SIMULATIONS[simulation])) for tone in ("bad", "ok", "warn")}
    for one, other in combinations(seen, 2):
        distance = sum((a - b) ** 2 for a, b in zip(seen[one], seen[other], strict=True)) ** 0.5
        assert distance >= 20, f"{one} and {other} look alike under {simulation} (ΔE {distance:.0f})"
