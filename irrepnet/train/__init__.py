"""Training: one loop for every model (:class:`Trainer`), its config, checkpoints and normalisation."""

from .api import load_trained, make_trainer, spec_from_meta, task_meta, train_registered  # noqa: F401
from .checkpoint import CheckpointError, load_checkpoint, save_atomic  # noqa: F401
from .config import TrainConfig, read_run_config, read_toml, train_config  # noqa: F401
from .device import pick_device  # noqa: F401
from .loop import Trainer, TrainingInterrupted, TrainResult, split_validation  # noqa: F401
from .normalization import NormalizedModel, fit_scales  # noqa: F401
