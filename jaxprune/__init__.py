"""jaxprune: learning very sparse graph convolutional networks for skeleton-based recognition.

The public API, re-exported from the modules that define it.
"""

from jaxprune.alignment import kl_alignment, total_alignment
from jaxprune.models.compact import CompactGCN, compact, compact_apply, compact_flops, compact_size, to_bcoo
from jaxprune.models.compact_mlp import CompactMLP, compact_mlp, compact_mlp_apply, mlp_size
from jaxprune.config import SettingError, override, settings
from jaxprune.data.arrays import load_npz, save_npz
from jaxprune.data.augment import AugmentConfig, augment
from jaxprune.data.dataset import SkeletonDataset
from jaxprune.data.errors import DataError
from jaxprune.data.features import FeatureConfig, chunk_positions, fit_scale, node_features
from jaxprune.data.fpha import load_fpha
from jaxprune.data.sbu import load_sbu
from jaxprune.data.synthetic import make_synthetic
from jaxprune.datasets import DATASETS, load_dataset
from jaxprune.presets import PRESETS, preset_settings
from jaxprune.graphs import FPHA_BONES, SBU_BONES, adjacency, normalized_adjacency
from jaxprune.losses import accuracy, cross_entropy
from jaxprune.evaluate import evaluate_masks, rate_rows
from jaxprune.models.export import load_compact, save_compact
from jaxprune.masks.allocation import layer_rates
from jaxprune.masks.bandstop import BandStopMask, apply_masks, band_stop, hard_band_stop, sigma_schedule
from jaxprune.masks.counts import sparsity
from jaxprune.masks.ctf import CoarseToFineMask
from jaxprune.methods import METHODS, REGISTRY, kernels, make_pruner, pruner_arrays, register, restore_pruner
from jaxprune.methods.config import PruneConfig
from jaxprune.methods.ctf import CoarseToFine
from jaxprune.methods.mrmp import MultiRate
from jaxprune.methods.optax_wrap import PrunedState, with_pruning
from jaxprune.methods.wrap import pruned_loss
from jaxprune.model_io import load_model, save_model
from jaxprune.models.flops import count_params, gcn_flops
from jaxprune.models.gcn import GCNConfig, ModelConfig, prunable
from jaxprune.models import gcn
from jaxprune.optim import make_optimizer, scale_by_loss_trend
from jaxprune.priors import (Gaussian, Laplace, Uniform, Weibull, layer_priors, make_prior,
                             threshold_for_rate, thresholds_for_rate)
from jaxprune.hosts import initialize_distributed
from jaxprune.parallel import data_mesh
from jaxprune.run_config import RunConfig
from jaxprune.run_folder import RunExistsError
from jaxprune.runner import resume, run, train_fold
from jaxprune.serving import evaluate_run, export_run
from jaxprune.task.loss import skeleton_loss
from jaxprune.train import TrainConfig, TrainState, fit, init_state, make_epoch
from jaxprune.weight_average import averaged_params, params_ema

__version__ = "0.2.0"
