"""Text that reads on a coloured background: WCAG 2 relative luminance and contrast ratio, used by the overlay
video's tags and the plots' cell labels alike."""

from __future__ import annotations


def luminance(rgb) -> float:
    """WCAG relative luminance of an sRGB colour with 0..1 channels (0 black .. 1 white)."""

    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(float(c)) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a, b) -> float:
    """WCAG contrast ratio of two colours (1 .. 21; AA asks 4.5 for text)."""
    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def black_text_on(rgb) -> bool:
    """Whether black text contrasts more than white on `rgb` (0..1 channels)."""
    return contrast((0, 0, 0), rgb) >= contrast((1, 1, 1), rgb)
