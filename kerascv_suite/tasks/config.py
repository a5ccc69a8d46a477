"""Training configs: the fields every task shares, and how a run's config is resolved.

Config precedence (lowest to highest): the task's dataclass defaults, the model's recipe
(`kerascv_suite/recipes/<model>_<data>.yaml`, then `<model>.yaml`), the user's `--config`
YAML, then explicit overrides (the CLI's options). `recipe="none"` skips the recipe. The
resolved config is saved as `config.yaml` in the run folder and logged to MLflow.

This module imports neither Keras nor TensorFlow: the CLI reads the config before
`--backend` has set `KERAS_BACKEND`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")  # kerascv_suite.training.optim.OPTIMIZERS
SCHEDULES = ("constant", "cosine", "step", "warmup_cosine")
FORMATS = ("folders", "voc", "coco", "yolo", "masks")
BACKENDS = ("tensorflow", "jax", "torch")
UNKNOWN_CLASS = ("error", "skip")  # kerascv_suite.data.formats.common.UNKNOWN_CLASS_POLICIES
DISTRIBUTE_MODES = ("mirrored", "multi_worker", "data_parallel", "auto")
NO_RECIPE = "none"
# Keys of a recipe that describe its registered model variant, not the training run.
VARIANT_KEYS = ("num_params",)


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run depends on (each task's config adds its own fields).

    Attributes:
        task: the task the model belongs to (filled in from the registry).
        model: registry name (e.g. `"lenet5"`, `"resnet50"`, `"faster_rcnn"`).
        data: a built-in set (`"digits"`, `"shapes"`) or a dataset folder.
        format: dataset format of a folder (None: detected).
        epochs: total epochs (both phases when fine-tuning).
        batch_size: samples per batch.
        image_size: square input side; None keeps the model's reference size.
        optimizer: one of `OPTIMIZERS`.
        lr: peak learning rate.
        momentum: SGD momentum.
        weight_decay: decoupled weight decay (None: the optimizer's default).
        schedule: one of `SCHEDULES`.
        warmup_epochs: linear warm-up of `"warmup_cosine"`.
        step_epochs: epochs between decays of `"step"` (None: a third of the run).
        augment: augmentation preset for training, or None.
        augment_options: overrides of the preset's `AugmentConfig` fields.
        model_options: builder arguments of a fresh model beyond the variant's.
        mixed_precision: bfloat16 compute on CPU, float16 with loss scaling on GPU.
        seed: seeds weights, shuffling and augmentation.
        backend: Keras backend; must be set before Keras is imported (the CLI does it).
        early_stopping: stop after this many epochs without improving `monitor`.
        monitor: metric that selects `best.keras` and drives early stopping.
        run_dir: the run folder (None: `project/name`, numbered if it exists).
        project: parent folder of run folders (None: the task's).
        name: run folder name (None: the model name).
        weights: pretrained `.keras` file, weights file or MLflow model URI to start from.
        backbone_weights: ImageNet weights of a fresh detector's or segmenter's VGG16 /
            ResNet-50 backbone: `"imagenet"`, a catalog entry (`vgg16.tv_in1k`) or a file
            (`kerascv_suite.weights.backbone`); passed to the builder in `model_options`,
            with the entry's preprocessing.
        freeze: `"backbone"`, a layer count, or `"until:LAYER"` (phase 1 of fine-tuning).
        head_epochs: epochs of phase 1 (None: half the epochs when `freeze` is set, else 0).
        finetune_lr_factor: learning-rate factor of phase 2 (everything unfrozen).
        distribute: distribution mode (see `kerascv_suite.training.distribute`) or None.
        tracking_uri: MLflow store (None: `MLFLOW_TRACKING_URI` or MLflow's default).
        experiment: MLflow experiment name (None: the task's).
        register: registered model name for the trained model, or None.
        alias: alias to point at the registered version (e.g. `"champion"`).
        workers: data loader worker processes (None: every core; 0: in-process).
        recipe: the recipe applied (its name, also the registered model variant it
            trains), `"none"` to train the registered paper model, or None (filled in by
            `load_config`).
        target: what a recipe declares it reaches, `{"metric": "test_ap50", "value": 0.8}`
            (checked by `benchmarks/recipes.py`; training does not use it).
        unknown_class: `"error"` (an annotated class missing from the class list stops the
            run, naming the file and entry) or `"skip"` (the object is dropped and counted);
            the CLI's `--unknown-class`.
        strict: any skipped or repaired entry (bad image, clipped or degenerate box,
            unknown class under `"skip"`) is an error naming the file and entry, and every
            image is decoded once before training; the CLI's `--strict`.
    """

    task: str | None = None
    model: str = "lenet5"
    data: str = "digits"
    format: str | None = None
    epochs: int = 10
    batch_size: int = 32
    image_size: int | None = None
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float | None = None
    schedule: str = "cosine"
    warmup_epochs: int = 0
    step_epochs: int | None = None
    augment: str | None = "classification"
    augment_options: dict = dataclasses.field(default_factory=dict)
    model_options: dict = dataclasses.field(default_factory=dict)
    mixed_precision: bool = False
    seed: int = 0
    backend: str | None = None
    early_stopping: int | None = None
    monitor: str = "val_accuracy"
    run_dir: str | None = None
    project: str = "runs/train"
    name: str | None = None
    weights: str | None = None
    backbone_weights: str | None = None
    freeze: str | None = None
    head_epochs: int | None = None
    finetune_lr_factor: float = 0.1
    distribute: str | None = None
    tracking_uri: str | None = None
    experiment: str = "kcv-train"
    register: str | None = None
    alias: str | None = None
    workers: int | None = None
    recipe: str | None = None
    target: dict = dataclasses.field(default_factory=dict)
    unknown_class: str = "error"
    strict: bool = False

    def __post_init__(self):
        for field, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                               ("unknown_class", UNKNOWN_CLASS)):
            if getattr(self, field) not in choices:
                raise ValueError(f"{field} must be one of {choices}. "
                                 f"Received: {field}={getattr(self, field)!r}")
        for field, choices in (("format", FORMATS), ("backend", BACKENDS),
                               ("distribute", DISTRIBUTE_MODES)):
            value = getattr(self, field)
            if value is not None and value not in choices:
                raise ValueError(f"{field} must be None or one of {choices}. "
                                 f"Received: {field}={value!r}")
        for field in ("epochs", "batch_size"):
            if int(getattr(self, field)) < 1:
                raise ValueError(f"{field} must be >= 1. Received: {field}={getattr(self, field)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive. Received: lr={self.lr}")
        if self.alias and not self.register:
            raise ValueError(f"alias needs register (a model name). Received: alias={self.alias!r}")
        if self.freeze is not None:
            self.freeze = str(self.freeze)
        self.model_options = dict(self.model_options or {})
        self.augment_options = dict(self.augment_options or {})
        if self.backbone_weights is not None:
            self.model_options = backbone_options(self)

    @property
    def phase1_epochs(self) -> int:
        """Epochs trained with the `freeze` spec applied (0: single phase, nothing frozen)."""
        if self.freeze is None:
            return 0
        if self.head_epochs is None:
            return max(1, self.epochs // 2)
        return min(int(self.head_epochs), self.epochs)

    @property
    def model_name(self) -> str:
        """The registry name to build: the recipe's variant when a recipe applies."""
        return self.recipe if self.recipe not in (None, NO_RECIPE) else self.model

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def backbone_options(config) -> dict:
    """`config.model_options` with `backbone_weights` and, for a catalog entry, the
    preprocessing its weights expect (unless the options set one)."""
    if config.task not in (None, "detection", "segmentation"):
        raise ValueError(f"--backbone-weights initializes the backbone of a detector or "
                         f"segmenter; {config.model} is a {config.task} model: use --weights "
                         f"imagenet. Received: backbone_weights={config.backbone_weights!r}")
    if config.weights:
        raise ValueError(f"--weights {config.weights} starts from a whole model; "
                         "--backbone-weights only initializes a fresh model's backbone: give "
                         f"one of them. Received: backbone_weights={config.backbone_weights!r}")
    from kerascv_suite.weights.backbone import expected_preprocessing

    options = {**config.model_options, "backbone_weights": config.backbone_weights}
    mode = expected_preprocessing(config.backbone_weights)
    if mode is not None:
        options.setdefault("preprocessing", mode)
    return options


def read_yaml(path, config_cls=TrainConfig, skip=()) -> dict:
    """The option mapping of a config YAML (less the keys in `skip`); unknown options are an
    error naming them."""
    with open(path, encoding="utf-8") as f:
        values = yaml.safe_load(f) or {}
    if not isinstance(values, dict):
        raise ValueError(f"A config YAML must be a mapping of option names. Received: {path}")
    values = {k: v for k, v in values.items() if k not in skip}
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"Unknown options {unknown} in {path} for {config_cls.__name__}. "
                         f"Known options: {sorted(known)}")
    return values


def recipe_path(name) -> Path:
    """`recipes/<name>.yaml` (error naming the known recipes when there is none)."""
    path = RECIPES_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
        raise ValueError(f"No recipe {name!r}; recipes: {known} or 'none'. "
                         f"Received: recipe={name!r}")
    return path


def default_recipe(model, data) -> str | None:
    """The recipe of `model` on `data`: `<model>_<data>` or `<model>`, if one exists."""
    data_name = Path(str(data)).name
    for name in (f"{model}_{data_name}", str(model)):
        if (RECIPES_DIR / f"{name}.yaml").is_file():
            return name
    return None


def list_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def load_config(config_cls, path=None, **overrides) -> TrainConfig:
    """Resolves a config of `config_cls`: defaults < recipe < YAML at `path` < overrides.

    Overrides that are None mean "not given". `recipe` (an override or in the YAML) picks a
    recipe by name, or `"none"` for no recipe; else the model's default recipe on the data
    applies (`default_recipe`).
    """
    user = read_yaml(path, config_cls) if path else {}
    given = {k: v for k, v in overrides.items() if v is not None}
    model = given.get("model", user.get("model", config_cls.model))
    data = given.get("data", user.get("data", config_cls.data))
    chosen = given.get("recipe", user.get("recipe"))
    recipe = default_recipe(model, data) if chosen is None else chosen
    values = {}
    if recipe not in (None, NO_RECIPE):
        recipe_values = read_yaml(recipe_path(recipe), config_cls, VARIANT_KEYS)
        recipe_model = recipe_values.pop("model", model)
        if recipe_model != model and recipe != model:
            raise ValueError(f"Recipe {recipe!r} trains {recipe_model!r}, not {model!r}. "
                             f"Received: model={model!r}, recipe={recipe!r}")
        values.update(recipe_values)
    values.update(user)
    values.update(given)
    values["model"], values["data"], values["recipe"] = model, data, recipe
    return config_cls(**values)


def load_run_config(config_cls, run_dir, **overrides) -> TrainConfig:
    """The saved config of a run folder (for `--resume`), with `overrides` applied."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} has no config.yaml; is it a run folder? "
                                f"Received: run_dir={str(run_dir)!r}")
    values = read_yaml(path, config_cls)
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["run_dir"] = str(run_dir)
    return config_cls(**values)


def saved_task(run_dir) -> str | None:
    """The `task` a run folder's config.yaml names (None for an unreadable one)."""
    path = Path(run_dir) / "config.yaml"
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    return values.get("task") if isinstance(values, dict) else None
