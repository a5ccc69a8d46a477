"""Train an image classifier end to end: data, model, fit with checkpoints, MLflow, test.

Example:
    >>> from kerascv_suite.pipelines.train_classifier import TrainConfig, run
    >>> result = run(TrainConfig.from_yaml(None, model="lenet5", epochs=3))
    >>> result.test_metrics["test_accuracy"]

Config precedence (lowest to highest): the dataclass defaults, the model's default recipe
(`recipes/<model>_<data>.yaml`, then `recipes/<model>.yaml`), the user's `--config` YAML,
then explicit overrides (the CLI's options). The resolved config is saved as
`config.yaml` in the run folder and logged to MLflow.

This module imports neither Keras nor TensorFlow at import time: the CLI reads the config
before `--backend` has set `KERAS_BACKEND`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import yaml

from kerascv_suite.training.errors import TrackingUnavailable, TrainingDiverged

RECIPES_DIR = Path(__file__).parent / "recipes"
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")  # kerascv_suite.training.optim.OPTIMIZERS
SCHEDULES = ("constant", "cosine", "step", "warmup_cosine")
FORMATS = ("folders", "voc", "coco", "yolo", "masks")
BACKENDS = ("tensorflow", "jax", "torch")
DISTRIBUTE_MODES = ("mirrored", "multi_worker", "data_parallel", "auto")


@dataclasses.dataclass
class TrainConfig:
    """Everything a classification training run depends on.

    Attributes:
        model: registry name (e.g. `"lenet5"`, `"resnet50"`).
        data: `"digits"` (built in) or a dataset folder.
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
        augment: augmentation preset for training (`"classification"`) or None.
        augment_options: overrides of the preset's `AugmentConfig` fields.
        mixed_precision: bfloat16 compute on CPU, float16 with loss scaling on GPU.
        seed: seeds weights, shuffling and augmentation.
        backend: Keras backend; must be set before Keras is imported (the CLI does it).
        early_stopping: stop after this many epochs without improving `monitor`.
        monitor: metric that selects `best.keras` and drives early stopping.
        run_dir: the run folder (None: `project/name`, numbered if it exists).
        project: parent folder of run folders.
        name: run folder name (None: the model name).
        weights: pretrained `.keras` file, weights file or MLflow model URI to fine-tune.
        freeze: `"backbone"`, a layer count, or `"until:LAYER"` (phase 1 of fine-tuning).
        head_epochs: epochs of phase 1 (None: half the epochs when `freeze` is set, else 0).
        finetune_lr_factor: learning-rate factor of phase 2 (everything unfrozen).
        distribute: distribution mode (see `kerascv_suite.training.distribute`) or None.
        tracking_uri: MLflow store (None: `MLFLOW_TRACKING_URI` or MLflow's default).
        experiment: MLflow experiment name.
        register: registered model name for the trained model, or None.
        alias: alias to point at the registered version (e.g. `"champion"`).
        workers: data loader worker processes (None: every core; 0: in-process).
        recipe: the default recipe that was applied (filled in by `load_config`).
    """

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
    mixed_precision: bool = False
    seed: int = 0
    backend: str | None = None
    early_stopping: int | None = None
    monitor: str = "val_accuracy"
    run_dir: str | None = None
    project: str = "runs/train"
    name: str | None = None
    weights: str | None = None
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

    def __post_init__(self):
        for field, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES)):
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

    @property
    def phase1_epochs(self) -> int:
        """Epochs trained with the `freeze` spec applied (0: single phase, nothing frozen)."""
        if self.freeze is None:
            return 0
        if self.head_epochs is None:
            return max(1, self.epochs // 2)
        return min(int(self.head_epochs), self.epochs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, path=None, **overrides) -> TrainConfig:
        """Alias of `load_config`: recipe defaults < YAML at `path` < non-None overrides."""
        return load_config(path, **overrides)


def _read_yaml(path, config_cls=None) -> dict:
    with open(path, encoding="utf-8") as f:
        values = yaml.safe_load(f) or {}
    if not isinstance(values, dict):
        raise ValueError(f"A config YAML must be a mapping of option names. Received: {path}")
    known = {f.name for f in dataclasses.fields(config_cls or TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"Unknown options {unknown} in {path}. Known options: "
                         f"{sorted(known)}")
    return values


def default_recipe(model, data) -> Path | None:
    """`recipes/<model>_<data>.yaml` or `recipes/<model>.yaml`, if one exists."""
    data_name = Path(str(data)).name
    for name in (f"{model}_{data_name}.yaml", f"{model}.yaml"):
        if (RECIPES_DIR / name).is_file():
            return RECIPES_DIR / name
    return None


def load_config(path=None, *, config_cls=None, **overrides) -> TrainConfig:
    """Resolves a `TrainConfig`: defaults < model recipe < YAML at `path` < overrides.

    Overrides that are None mean "not given" and do not override anything. `config_cls`
    (default `TrainConfig`) lets other pipelines resolve their subclass the same way.
    """
    config_cls = config_cls or TrainConfig
    user = _read_yaml(path, config_cls) if path else {}
    given = {k: v for k, v in overrides.items() if v is not None}
    model = given.get("model", user.get("model", config_cls.model))
    data = given.get("data", user.get("data", config_cls.data))
    values = {}
    recipe = default_recipe(model, data)
    if recipe is not None:
        values.update(_read_yaml(recipe, config_cls))
        values["recipe"] = recipe.name
    values.update(user)
    values.update(given)
    values["model"], values["data"] = model, data
    return config_cls(**values)


def load_run_config(run_dir, *, config_cls=None, **overrides) -> TrainConfig:
    """The saved config of a run folder (for `--resume`), with `overrides` applied."""
    config_cls = config_cls or TrainConfig
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} has no config.yaml; is it a run folder? "
                                f"Received: run_dir={str(run_dir)!r}")
    values = _read_yaml(path, config_cls)
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["run_dir"] = str(run_dir)
    return config_cls(**values)


def task_entry_points(config_cls, project, module_name):
    """`(load_config, load_run_config, resolve_resume_dir, run)` of a task pipeline whose
    config class is `config_cls` and whose module (`module_name`) supplies the steps of
    `run` (see `run`'s `steps`): what `apps/train_cmd.run_training` calls.

    Example (in pipelines/train_segmenter.py):
        >>> load_config, load_run_config, resolve_resume_dir, run = task_entry_points(
        ...     SegmenterConfig, "runs/segment", __name__)
    """
    import functools
    import sys

    def task_load_config(path=None, **overrides):
        """Defaults < `recipes/<model>_<data>.yaml` < YAML at `path` < non-None overrides."""
        return load_config(path, config_cls=config_cls, **overrides)

    def task_load_run_config(run_dir, **overrides):
        """The saved config of a run folder (for `--resume`), with `overrides` applied."""
        return load_run_config(run_dir, config_cls=config_cls, **overrides)

    def task_run(config, *, resume=False, log=print):
        """Trains, scores the test split, logs to MLflow and (optionally) registers; see
        `train_classifier.run` for the run folder, resume and error contract."""
        return run(config, resume=resume, log=log, steps=sys.modules[module_name])

    return (task_load_config, task_load_run_config,
            functools.partial(resolve_resume_dir, project=project), task_run)


@dataclasses.dataclass
class TrainResult:
    """What a finished run produced."""

    run_dir: Path
    mlflow_run_id: str
    epochs_trained: int
    history: list
    test_metrics: dict
    model_uri: str | None
    registered_version: str | None = None
    stopped_early: bool = False
    seconds: float = 0.0
    chief: bool = True  # False: a non-chief worker, whose run folder was scratch (removed)


def resolve_resume_dir(resume, project="runs/train") -> Path:
    """`--resume` value -> run folder: `"latest"` is the newest resumable run of `project`."""
    from kerascv_suite.training.state import latest_run_dir

    if resume in (None, "", "latest"):
        return latest_run_dir(project)
    path = Path(resume)
    if not (path / "config.yaml").is_file():
        raise FileNotFoundError(f"{resume} is not a run folder (no config.yaml). "
                                f"Received: resume={str(resume)!r}")
    return path


def check_backend(backend):
    """Sets `KERAS_BACKEND`, or fails if Keras already runs another backend."""
    import sys

    if backend is None:
        return
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != backend:
            raise RuntimeError(
                f"Keras was already imported with backend {keras.backend.backend()!r}; "
                f"start a new process to use {backend!r}. Received: backend={backend!r}"
            )
        return
    os.environ["KERAS_BACKEND"] = backend


def _worker_scratch(config, resume, log):
    """A non-chief worker of multi-worker training writes nothing the user sees: it trains
    in a scratch copy of the run folder, with a scratch MLflow store and no registration,
    while the chief (TF_CONFIG's chief, or worker 0) writes the real run."""
    import shutil
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="kcv-worker-"))
    if resume and config.run_dir and Path(config.run_dir).is_dir():
        shutil.copytree(config.run_dir, scratch, dirs_exist_ok=True)
    log(f"Non-chief worker: writing to scratch {scratch}; the chief writes the run.")
    return dataclasses.replace(config, run_dir=str(scratch),
                               tracking_uri=f"sqlite:///{scratch / 'mlflow.db'}",
                               register=None, alias=None)


def run(config: TrainConfig, *, resume=False, log=print, steps=None) -> TrainResult:
    """Trains, evaluates on the test split, logs to MLflow and (optionally) registers.

    Args:
        config: the resolved `TrainConfig`.
        resume: continue the run in `config.run_dir` from its last finished epoch, with the
            same MLflow run.
        log: where progress messages go (the CLI passes `click.echo`).
        steps: the task's `load_data`, `prepare_model` and `finalize` (any object with
            them, e.g. a module), and optionally `epoch_callbacks(config, data, run_dir,
            tracker)` returning Keras callbacks that run before each epoch's checkpoint
            (metrics they write into `logs` are monitored, saved and logged); None uses
            this module's (classification).

    Returns:
        A `TrainResult`.

    Raises:
        TrackingUnavailable: the MLflow store does not answer (raised before training).
        TrainingDiverged: the loss became NaN/inf; `checkpoints/last.keras` is the last good
            epoch.
        FileExistsError: a new run aimed at a folder that already holds a run.
    """
    import sys
    import time

    steps = steps or sys.modules[__name__]
    check_backend(config.backend)
    from kerascv_suite.training import state as run_state
    from kerascv_suite.training.distribute import distribution_scope, make_distribution
    from kerascv_suite.training.tracking import Tracker

    start = time.monotonic()
    # Before any other TensorFlow op: multi-worker collectives are set up at creation.
    dist = make_distribution(config.distribute)
    if not dist.is_chief:
        config = _worker_scratch(config, resume, log)
    run_dir = Path(config.run_dir) if config.run_dir else run_state.next_run_dir(
        config.project, config.name or config.model)
    config.run_dir = str(run_dir)
    state = run_state.RunState.load(run_dir)
    if not dist.is_chief:
        state.mlflow_run_id = None  # the chief's run lives in the chief's store
    if not resume and (state.epoch > 0 or state.mlflow_run_id):
        raise FileExistsError(f"{run_dir} already holds a run; resume it with --resume "
                              f"{run_dir}, or choose another --run-dir.")
    if resume and state.finished and state.epoch >= config.epochs:
        raise ValueError(f"{run_dir} already finished {state.epoch} epochs; nothing to resume.")
    # Probe the tracking store first: a dead server must not cost a training run.
    tracker = Tracker(config.tracking_uri, config.experiment)
    log(f"Run folder: {run_dir}  (MLflow store: {tracker.tracking_uri})")

    import keras

    if config.mixed_precision:
        keras.mixed_precision.set_global_policy(_mixed_precision_policy())
    keras.utils.set_random_seed(config.seed)
    data = steps.load_data(config)
    log(f"Data: {data.describe()}")
    run_dir.mkdir(parents=True, exist_ok=True)
    run_state.atomic_write_text(run_dir / "config.yaml", config.to_yaml())

    try:
        with distribution_scope(dist):
            model, second_phase = steps.prepare_model(config, data, state, run_dir, log)
            tracker.start(run_id=state.mlflow_run_id, run_name=run_dir.name)
            if state.mlflow_run_id is None:
                tracker.log_params(config.to_dict())
                tracker.log_system_info()
                state.mlflow_run_id = tracker.run_id
                state.save(run_dir)
            else:
                tracker.log_missing_epochs(state.history)
                log(f"Resuming {run_dir} after epoch {state.epoch} "
                    f"(MLflow run {state.mlflow_run_id}).")
            from kerascv_suite.training.engine import fit

            data.train_loader.set_epoch(state.epoch)
            # A task may add per-epoch work (validation mAP, sample overlays); it runs
            # before the checkpoint callback, so its metrics reach results.csv and MLflow.
            extra = steps.epoch_callbacks(config, data, run_dir, tracker) \
                if hasattr(steps, "epoch_callbacks") else ()
            outcome = fit(model, data.train, val_data=data.val, epochs=config.epochs,
                          run_dir=run_dir, state=state, second_phase=second_phase,
                          monitor=data.monitor(config.monitor),
                          mode="min" if config.monitor.endswith("loss") else "max",
                          patience=config.early_stopping,
                          on_epoch=tracker.log_epoch, callbacks=extra)
            if outcome == "early_stopped":
                log(f"Early stopping after epoch {state.epoch}: no improvement of "
                    f"{config.monitor} in {config.early_stopping} epochs.")
        # Outside the distribution scope: under MirroredStrategy, Keras' predict_on_batch
        # returns each row once per replica, which would skew the test metrics. Only the
        # chief reports: another worker's weights are the same, its folder is scratch.
        final = steps.finalize(config, data, state, run_dir, tracker, log) if dist.is_chief \
            else {"test_metrics": {}, "model_uri": None, "registered_version": None}
        state.finished = True
        state.save(run_dir)
        tracker.end("FINISHED")
    except BaseException as e:
        # A diverged run failed; anything else (Ctrl-C, kill, errors) may be resumed.
        tracker.end("FAILED" if isinstance(e, TrainingDiverged) else "KILLED")
        raise
    finally:
        data.close()
        if not dist.is_chief:
            import shutil

            shutil.rmtree(run_dir, ignore_errors=True)
    return TrainResult(
        run_dir=run_dir,
        mlflow_run_id=state.mlflow_run_id,
        epochs_trained=state.epoch,
        history=state.history,
        test_metrics=final["test_metrics"],
        model_uri=final["model_uri"],
        registered_version=final["registered_version"],
        stopped_early=state.early_stopped,
        seconds=time.monotonic() - start,
        chief=dist.is_chief,
    )


# === Steps of `run` ===


def _mixed_precision_policy():
    import keras

    # float16 needs a GPU to pay off; bfloat16 is what CPUs (AVX512-BF16/AMX) accelerate.
    on_gpu = any(d.startswith(("gpu", "cuda")) for d in _device_names(keras.backend.backend()))
    return "mixed_float16" if on_gpu else "mixed_bfloat16"


def _device_names(backend):
    if backend == "jax":
        import jax

        return [d.platform for d in jax.devices()]
    if backend == "torch":
        import torch

        return ["cuda"] if torch.cuda.is_available() else ["cpu"]
    import tensorflow as tf

    return ["gpu" for _ in tf.config.list_physical_devices("GPU")] or ["cpu"]


class _View:
    """Some entries of a dataset (folders without split sub-folders)."""

    def __init__(self, dataset, indices=None):
        self.dataset = dataset
        self.indices = None if indices is None else [int(i) for i in indices]
        self.class_names = dataset.class_names
        self.task = dataset.task
        self.skipped = dataset.skipped

    @property
    def num_classes(self):
        return len(self.class_names)

    def __len__(self):
        return len(self.dataset) if self.indices is None else len(self.indices)

    def __getitem__(self, index):
        return self.dataset[index if self.indices is None else self.indices[index]]


def _split_indices(count, seed, fractions=(0.8, 0.1, 0.1)):
    import numpy as np

    order = np.random.default_rng(seed).permutation(count)
    n_val = max(1, round(count * fractions[1]))
    n_test = max(1, round(count * fractions[2]))
    return order[n_val + n_test:], order[:n_val], order[n_val:n_val + n_test]


def open_splits(config, channels):
    """The train, val and test datasets of `config.data`.

    `digits` has a fixed split. A folder dataset (`--format folders`, the default) uses its
    `train/`, `val/` (or `valid/`) and `test/` sub-folders when they exist; otherwise a
    seeded 80/10/10 split of the whole folder.
    """
    if config.data == "digits":
        from kerascv_suite.data.builtin.digits import load_digits

        return load_digits("train"), load_digits("val"), load_digits("test")
    root = Path(config.data)
    if not root.is_dir():
        raise FileNotFoundError(f"--data must be 'digits' or a dataset folder. "
                                f"Received: data={config.data!r}")
    fmt = config.format or "folders"
    if fmt != "folders":
        raise ValueError(f"Classification trains on class folders (--format folders); {fmt} "
                         f"datasets carry boxes or masks (see train-detector / "
                         f"train-segmenter). Received: format={fmt!r}")
    from kerascv_suite.data.formats.folders import read_folders

    if (root / "train").is_dir():
        train = read_folders(root, "train", channels=channels)
        names = train.class_names
        val_name = next((s for s in ("val", "valid", "validation") if (root / s).is_dir()), None)
        val = read_folders(root, val_name, class_names=names, channels=channels) \
            if val_name else None
        test = read_folders(root, "test", class_names=names, channels=channels) \
            if (root / "test").is_dir() else val
        return train, val, test
    full = read_folders(root, channels=channels)
    train, val, test = _split_indices(len(full), config.seed)
    return _View(full, train), _View(full, val), _View(full, test)


@dataclasses.dataclass
class ClassifierData:
    """Loaders and `model.fit`-ready datasets of the three splits."""

    train_loader: Any
    val_loader: Any
    test_loader: Any
    train: Any
    val: Any
    class_names: list
    input_shape: tuple

    def describe(self):
        sizes = ", ".join(f"{name} {len(loader.dataset)}" for name, loader in
                          (("train", self.train_loader), ("val", self.val_loader),
                           ("test", self.test_loader)) if loader is not None)
        return (f"{len(self.class_names)} classes, {sizes} images, input "
                f"{'x'.join(map(str, self.input_shape))}")

    def monitor(self, name):
        """`name`, or its training-set twin when there is no validation split."""
        return name if self.val_loader is not None else name.removeprefix("val_")

    def test_batches(self):
        for batch in self.test_loader.iter_epoch(0):
            yield batch["images"], batch["labels"]

    def close(self):
        for loader in (self.train_loader, self.val_loader, self.test_loader):
            if loader is not None:
                loader.close()


def reference_input_shape(spec) -> tuple:
    """The input shape a registered model is built with by default (see ModelSpec)."""
    return spec.input_shape


def load_data(config) -> ClassifierData:
    """Opens the splits and wraps them in parallel `DataLoader`s (augmenting the train one).

    Images keep the model's channel count from reading on (folders are read with it; digits
    are 1-channel), so grayscale batches reach a 1-channel model as they are.
    """
    from kerascv_suite.data import DataLoader, build_augmenter
    from kerascv_suite.models.registry import get_spec

    reference = reference_input_shape(get_spec(config.model))
    channels = reference[2] if len(reference) == 3 else 3
    size = (config.image_size, config.image_size) if config.image_size else reference[:2]
    train, val, test = open_splits(config, channels)
    if config.augment:
        train_aug = build_augmenter(config.augment, image_size=size,
                                    **(config.augment_options or {}))
    else:
        train_aug = build_augmenter("classification_eval", image_size=size)
    eval_aug = build_augmenter("classification_eval", image_size=size)
    train_loader = DataLoader(train, config.batch_size, augment=train_aug, shuffle=True,
                              seed=config.seed, num_workers=config.workers)
    val_loader = DataLoader(val, config.batch_size, augment=eval_aug, shuffle=False,
                            seed=config.seed, num_workers=config.workers) if val else None
    test_loader = DataLoader(test or val, config.batch_size, augment=eval_aug, shuffle=False,
                             seed=config.seed, num_workers=0)
    return ClassifierData(
        train_loader=train_loader,
        val_loader=val_loader,
        test_loader=test_loader,
        train=_fit_dataset(train_loader, channels),
        val=_fit_dataset(val_loader, channels) if val_loader else None,
        class_names=list(train.class_names),
        input_shape=(*size, channels),
    )


def _fit_dataset(loader, channels, y="labels"):
    """The loader's `(images, y)` tf.data pipeline with its length declared, so Keras
    shows the number of steps from the first epoch and knows when an epoch ends.

    `channels` is the model's input channel count. Data with more channels (RGB images for
    a 1-channel model, as the segmentation pipeline may read) keeps the first `channels`;
    data with fewer is an error.
    """
    import tensorflow as tf

    ds = loader.as_tf_dataset(x="images", y=y)
    data_channels = loader.element_spec()["images"][0][-1]
    if data_channels < channels:
        raise ValueError(f"The model takes {channels}-channel images but the data has "
                         f"{data_channels}. Received: data with {data_channels} channels")
    if data_channels > channels:
        ds = ds.map(lambda images, targets: (images[..., :channels], targets))
    return ds.apply(tf.data.experimental.assert_cardinality(len(loader)))


def _schedule(config, lr, epochs, steps_per_epoch):
    from kerascv_suite.training.optim import make_schedule

    return make_schedule(
        config.schedule, lr, epochs * steps_per_epoch,
        warmup_steps=config.warmup_epochs * steps_per_epoch,
        step_every=(config.step_epochs or 0) * steps_per_epoch or None,
    )


def _phase_schedule(config, phase, steps_per_epoch):
    """The learning rate (schedule) of fine-tuning phase `phase` (1, or 2 after unfreezing)
    over the config's epochs, as `prepare_model` compiles it."""
    phase1 = config.phase1_epochs
    if phase == 2 and 0 < phase1 < config.epochs:
        return _schedule(config, config.lr * config.finetune_lr_factor,
                         config.epochs - phase1, steps_per_epoch)
    return _schedule(config, config.lr, phase1 or config.epochs, steps_per_epoch)


def compile_model(model, config, lr, epochs, steps_per_epoch,
                  loss="sparse_categorical_crossentropy", metrics=None):
    """Compiles with the config's optimizer and a schedule spanning `epochs`; `metrics`
    None means accuracy (and top-5 beyond 5 classes)."""
    import keras

    from kerascv_suite.training.optim import make_optimizer

    schedule = _schedule(config, lr, epochs, steps_per_epoch)
    optimizer = make_optimizer(config.optimizer, schedule, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    if metrics is None:
        metrics = ["accuracy"]
        if model.output_shape[-1] > 5:
            metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(5, name="top5_accuracy"))
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)


def prepare_model(config, data, state, run_dir, log=print, *, compile_fn=None,
                  build_overrides=None):
    """The model to train: the resumed checkpoint, a fine-tuning model, or a fresh build.

    `compile_fn(model, config, lr, epochs, steps_per_epoch)` (default `compile_model`) and
    `build_overrides` (extra builder arguments of a fresh build) let other tasks reuse it.

    Returns:
        `(model, second_phase)` for `kerascv_suite.training.fit`.
    """
    import keras

    import kerascv_suite.layers  # noqa: F401  (registers custom layers for loading)
    from kerascv_suite.models.registry import build
    from kerascv_suite.training import finetune
    from kerascv_suite.training.state import LAST, checkpoint_dir

    compile_fn = compile_fn or compile_model
    steps = len(data.train_loader)
    phase1 = config.phase1_epochs
    last = checkpoint_dir(run_dir) / LAST
    if state.epoch > 0 and last.is_file():
        model = keras.saving.load_model(last)
        # The schedule spans the config's epochs: a finished run extended with
        # `--resume --epochs N` goes on over the new total instead of at a decayed-to-zero
        # rate (with unchanged epochs this is the saved schedule).
        model.optimizer.learning_rate = _phase_schedule(config, state.phase, steps)
    else:
        num_classes = len(data.class_names)
        transferred = None
        if config.weights:
            model, transferred = finetune.build_finetune_model(
                config.model, config.weights, num_classes, data.input_shape)
            log(f"Fine-tuning: {len(transferred)} layers loaded from {config.weights}; "
                f"new head for {num_classes} classes.")
        else:
            model = build(config.model, num_classes=num_classes, input_shape=data.input_shape,
                          **(build_overrides or {}))
        if config.mixed_precision and model.outputs[0].dtype != "float32":
            # Keras' mixed-precision guide: keep the outputs float32 so the loss, metrics
            # (top-k needs float32 on TensorFlow) and softmax are computed at full precision.
            outputs = keras.layers.Activation("linear", dtype="float32",
                                              name="output_float32")(model.outputs[0])
            model = keras.Model(model.inputs, outputs, name=model.name)
        if config.freeze is not None:
            frozen = finetune.apply_freeze(model, config.freeze, transferred)
            log(f"Phase 1 ({phase1} epochs): {len(frozen)} layers frozen ({config.freeze}).")
        compile_fn(model, config, config.lr, phase1 or config.epochs, steps)
    second_phase = None
    if 0 < phase1 < config.epochs:
        def unfreeze(model):
            finetune.unfreeze_all(model)
            lr = config.lr * config.finetune_lr_factor
            compile_fn(model, config, lr, config.epochs - phase1, steps)
            log(f"Phase 2: all layers trainable, lr {lr:g}.")

        second_phase = (phase1, unfreeze)
    return model, second_phase


def finalize(config, data, state, run_dir, tracker, log=print):
    """Evaluates the best checkpoint on the test split, writes and logs the report and the
    model, and registers it when asked."""
    import keras

    from kerascv_suite.training.report import classification_metrics, predict_batches, \
        write_report
    from kerascv_suite.training.state import BEST, LAST, checkpoint_dir

    folder = checkpoint_dir(run_dir)
    best = folder / BEST if (folder / BEST).is_file() else folder / LAST
    model = keras.saving.load_model(best)
    probabilities, labels, images = predict_batches(model, data.test_batches())
    test_metrics = classification_metrics(probabilities, labels)
    tracker.log_metrics(test_metrics)
    log("Test: " + ", ".join(f"{k} {v:.4f}" for k, v in test_metrics.items())
        + f" ({len(labels)} images, {best.name})")
    paths = write_report(Path(run_dir) / "plots", history=state.history,
                         probabilities=probabilities, labels=labels, images=images,
                         class_names=data.class_names, model=model)
    for path in paths:
        tracker.log_artifact(path, "report")
    tracker.log_artifact(Path(run_dir) / "config.yaml")
    tracker.log_artifact(Path(run_dir) / "results.csv")
    model_uri = tracker.log_model(model, images[:4], probabilities[:4])
    version = None
    if config.register:
        version = tracker.register(model_uri, config.register, config.alias)
        alias = f" (alias @{config.alias})" if config.alias else ""
        log(f"Registered {config.register} version {version}{alias}.")
    return {"test_metrics": test_metrics, "model_uri": model_uri, "registered_version": version}
