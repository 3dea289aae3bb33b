"""Seeing grounded answers: points and tracks drawn on images and videos, and an HTML viewer.

    from molmo2 import viz
    viz.render("clip.mp4", result, "annotated.mp4")    # or .gif, or .html (the viewer)
    viz.render("dogs.jpg", result, "dogs-points.png")
    viz.write_viewer("answer.html", "clip.mp4", result)

``render`` picks the output by suffix (table in its docstring). The pieces: ``Overlay`` decides which
markers are on screen at a time or on an image (``molmo2.viz.draw``), ``draw_image`` / ``draw_frame``
draw them on one picture, ``save_png`` / ``save_gif`` / ``save_mp4`` write pictures you drew yourself
(``molmo2.viz.writers``), ``write_viewer`` writes the self-contained page (``molmo2.viz.viewer``).

Needs Pillow (and PyAV for videos), never torch.
"""

from molmo2.viz.draw import (
    PALETTE,
    Marker,
    Overlay,
    Style,
    color_for,
    default_interval,
    draw_frame,
    draw_image,
    draw_markers,
)
from molmo2.viz.viewer import write_viewer
from molmo2.viz.writers import render, save_gif, save_mp4, save_png

__all__ = [
    "PALETTE",
    "Marker",
    "Overlay",
    "Style",
    "color_for",
    "default_interval",
    "draw_frame",
    "draw_image",
    "draw_markers",
    "render",
    "save_gif",
    "save_mp4",
    "save_png",
    "write_viewer",
]
