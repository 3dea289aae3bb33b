"""The user prompts of each grounded task, shared by training (templates) and inference (verbs).

The first template of each tuple is the canonical one: the pipeline's verbs ask with it, and the
trainer draws from the whole tuple, so a model trained here understands the verbs. Wording follows the
released SFT prompts (training.md §5.4: demo styles carry no ``style:`` prefix).
"""

from __future__ import annotations

POINT_PROMPTS = ("Point to the {label}.", "Point to all {label}.", "Locate every {label} by pointing.",
                 "Show me where the {label} are.", "Where are the {label}? Point to them.")
COUNT_PROMPTS = ("How many {label} are there?", "Count the {label}.", "How many {label} do you see?",
                 "Count every {label} and point to each one.")
TRACK_PROMPTS = ("Track the {label}.", "Track {label} in 2 FPS.", "Track every {label} through the video.",
                 "Follow the {label} and give their positions over time.")
CAPTION_PROMPTS = {"image": ("Describe this image.", "Write a detailed caption for this image.",
                             "What is in this picture? Describe it."),
                   "video": ("Describe this video.", "Write a detailed caption for this video.",
                             "Describe what happens in this video.")}
