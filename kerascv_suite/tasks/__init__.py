"""Tasks as explicit objects: what each kind of model trains on and is scored by.

`get_task(name)` returns the `Task` of a task name; `task_of(model)` the task a registered
model belongs to; `load_config(**options)` resolves a training config for whatever task the
model belongs to (defaults < recipe < `--config` YAML < options), and `load_run_config`
the saved config of a run folder.

Example:
    >>> from kerascv_suite.tasks import get_task, load_config
    >>> from kerascv_suite.training.runner import run
    >>> config = load_config(model="faster_rcnn", epochs=1)
    >>> run(get_task(config.task), config)

Importing this package imports neither Keras nor TensorFlow.
"""

from __future__ import annotations

from kerascv_suite.constants import TASKS
from kerascv_suite.tasks import config as configs
from kerascv_suite.tasks.base import Evaluation, Task, TaskData
from kerascv_suite.tasks.classification import ClassificationTask, ClassifierConfig
from kerascv_suite.tasks.config import NO_RECIPE, TrainConfig, list_recipes
from kerascv_suite.tasks.detection import DetectionTask, DetectorConfig
from kerascv_suite.tasks.instance_segmentation import (InstanceSegmentationTask,
                                                       InstanceSegmenterConfig)
from kerascv_suite.tasks.keypoints import KeypointConfig, KeypointTask
from kerascv_suite.tasks.segmentation import SegmentationTask, SegmenterConfig

_TASKS = {task.name: task for task in (ClassificationTask(), DetectionTask(),
                                       InstanceSegmentationTask(), SegmentationTask(),
                                       KeypointTask())}
assert set(_TASKS) == set(TASKS), "every task name has a Task"


def get_task(name) -> Task:
    """The `Task` called `name` (one of `TASKS`)."""
    if name not in _TASKS:
        raise ValueError(f"task must be one of {TASKS}. Received: task={name!r}")
    return _TASKS[name]


def task_of(model) -> str:
    """The task of the registered model `model` (registry lookup; nothing is built)."""
    import kerascv_suite.models  # noqa: F401  (registers the families)
    from kerascv_suite.models.registry import get_spec

    return get_spec(model).task


def load_config(path=None, *, task=None, **overrides) -> TrainConfig:
    """A training config for `overrides["model"]`'s task (or `task`'s default model).

    Args:
        path: a `--config` YAML or None.
        task: the task when no model is given (the task's default model is used).
        **overrides: option values; None means "not given".
    """
    model = overrides.get("model")
    if model is None and path:
        model = configs.read_yaml(path, _union_config(path)).get("model")
    if model is not None:
        task = task_of(model)
    task = task or "classification"
    config_class = get_task(task).config_class
    check_options(config_class, task, model, overrides)
    return configs.load_config(config_class, path, **overrides)


def check_options(config_class, task, model, options):
    """Options given (not None) that `task`'s config has no field for are an error naming
    the tasks they apply to."""
    fields = set(config_class.__dataclass_fields__)
    wrong = sorted(k for k, v in options.items() if v is not None and k not in fields)
    if wrong:
        owners = sorted({t.name for t in _TASKS.values() for k in wrong
                         if k in t.config_class.__dataclass_fields__})
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in wrong)
        raise ValueError(f"{flags} apply to {' / '.join(owners) or 'no'} models; "
                         f"{model or 'the model'} is a {task} model. Received: {flags}")


def load_run_config(run_dir, **overrides) -> TrainConfig:
    """The saved config of a run folder (any task), with `overrides` applied."""
    task = configs.saved_task(run_dir) or "classification"
    config_class = get_task(task).config_class
    check_options(config_class, task, None, overrides)
    return configs.load_run_config(config_class, run_dir, **overrides)


def _union_config(path):
    """The config class whose fields include every key of the YAML at `path` (a YAML for
    any task can be read to find its model)."""
    import yaml

    with open(path, encoding="utf-8") as f:
        values = yaml.safe_load(f) or {}
    for task in _TASKS.values():
        fields = set(task.config_class.__dataclass_fields__)
        if isinstance(values, dict) and set(values) <= fields:
            return task.config_class
    return TrainConfig


__all__ = ["TASKS", "Task", "TaskData", "Evaluation", "TrainConfig", "ClassifierConfig",
           "DetectorConfig", "InstanceSegmenterConfig", "SegmenterConfig", "KeypointConfig",
           "get_task", "task_of",
           "load_config", "load_run_config", "list_recipes", "NO_RECIPE"]
