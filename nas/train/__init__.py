"""Training: the supernet (sandwich rule, in-place distillation) or one architecture, its data, its
checkpoints, its processes under ``torchrun``, and evaluating subnets on a validation split.

>>> from nas.train import train, load_checkpoint, evaluate_subnet
"""

from supernet import recalibrate_bn

from .checkpoint import FORMAT, VERSION, Checkpoint, adapt_arch, load_checkpoint, read_weights
from .data import Data, Loader, load_data, synthetic_data
from .distributed import Processes
from .evaluation import calibration_batches, correct_predictions, evaluate, evaluate_subnet
from .interrupt import TrainingInterrupted
from .settings import DATA_DEFAULTS, RESUME_MAY_CHANGE, TrainSettings
from .trainer import Trainer, train

__all__ = [
    "train",
    "Trainer",
    "TrainingInterrupted",
    "TrainSettings",
    "DATA_DEFAULTS",
    "RESUME_MAY_CHANGE",
    "Checkpoint",
    "load_checkpoint",
    "read_weights",
    "adapt_arch",
    "FORMAT",
    "VERSION",
    "Processes",
    "evaluate",
    "correct_predictions",
    "evaluate_subnet",
    "calibration_batches",
    "recalibrate_bn",
    "Data",
    "Loader",
    "load_data",
    "synthetic_data",
]
