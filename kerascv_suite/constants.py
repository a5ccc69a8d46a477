"""Names shared across the library, defined once.

`TASKS` are the kinds of prediction the library knows: the model registry files each
builder under one of them, and a `Dataset`'s `task` is the subset its samples carry
labels for. Importing this module imports nothing else (it is read by the data layer,
which stays free of Keras).
"""

TASKS = ("classification", "detection", "instance_segmentation", "segmentation", "keypoints")
