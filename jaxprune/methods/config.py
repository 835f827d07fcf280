"""Pruning settings shared by the pruning methods (``RunConfig.prune``)."""

from __future__ import annotations

import dataclasses

# Rates at which every run is evaluated after training, besides the rates it trained at: the
# rate-fidelity grid of the MRMP issue (0.1 ... 0.9, then the very sparse end).
SERVE_RATES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99)


def check_curriculum(fraction: float) -> None:
    """ValueError naming prune.rate_curriculum unless 0 <= ``fraction`` < 1."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"prune setting rate_curriculum must be in [0, 1) (0: every rate from the start), "
                         f"got {fraction}")


def check_rates(name: str, rates) -> tuple[float, ...]:
    """``rates`` as a sorted tuple of distinct floats in [0, 1); a ValueError naming ``name`` else."""
    try:
        values = tuple(float(r) for r in rates)
    except (TypeError, ValueError):
        raise ValueError(f"prune setting {name} must be numbers in [0, 1), got {rates!r}") from None
    bad = [r for r in values if not 0.0 <= r < 1.0]       # also catches NaN
    if bad:
        raise ValueError(f"prune setting {name}: every rate must lie in [0, 1), got {bad}")
    return tuple(sorted(set(values)))


@dataclasses.dataclass(frozen=True)
class PruneConfig:
    """How a pruning method prunes.

    Attributes:
      rate: the target pruning rate of single-rate methods (srmp): fraction of prunable weights
        that are zero in the final network, in [0, 1).
      rates: the rates MRMP trains at together (one vmap over their thresholds), in [0, 1).
      eval_rates: rates evaluated after training besides the trained ones (methods that can
        serve any rate: mrmp, srmp); empty = only the trained rates.
      prior: the prior Q of the latent weights: gaussian, laplace, uniform or weibull.
      weibull_shape: shape k of the Weibull prior on |w|.
      kl_weight: λ, the weight of Σ_layers D_KL(P‖Q) in the loss.
      kl_ramp: λ grows geometrically by this factor over the steps after σ's annealing (the last
        1 − anneal_fraction of training), pulling the weights onto the prior once the masks are
        crisp; 1 (default) keeps λ constant.
      quantile_weight: weight of a rank-exact alignment term (``jaxprune.quantile_match``: each
        layer's sorted magnitudes against its prior's quantiles, a squared 2-Wasserstein
        distance in units of the prior's variance), 0 while σ anneals, then growing linearly to
        this value at the last step; 0 (default) = off, the KL alone.
      sigma_start, sigma_end: the band-stop steepness as σ·a (a = threshold): geometric from
        start (soft) to end (crisp) over the first ``anneal_fraction`` of the training steps,
        then held at end.
      kl_bins: bins of the soft histogram estimating P.
      kl_bandwidth: the soft histogram's kernel std, in bins.
      kl_resolution: positions per bin of the linear binning that computes the soft histogram
        (``jaxprune.alignment``; 128: masses within ~1e-6 of exact, about 8x faster than the
        kernel at each weight); 0 takes the kernel at each weight's own position (the only way
        before 2026-12-02).
      kl_shift: shift the histogram grid by a random fraction of a bin every step (an averaged
        shifted histogram; default on), so that weights cannot gather at fixed bin edges.
      kl_space: "weight" (default: equal-width bins in weight units), "quantile" (bins of equal
        prior mass) or "both" (their mean); see ``jaxprune.alignment.kl_alignment``.
      allocation: how a network rate r becomes per-layer rates: "erk" (default: small layers
        keep relatively more weights, so very high rates leave every layer alive) or "uniform"
        (every layer at r). See ``jaxprune.masks.allocation``.
      ctf_weight: λ of the CTF budget term λ·(kept fraction − (1 − rate))².
      ctf_shift: the CTF band-stop shift a, in units of each layer's initialisation std.
      ctf_factors: the CTF mask factors multiplied together, a subset of block, column, row,
        entry (default all four; "entry" alone is unstructured, "block,column,row" structured).
      ctf_blocks: the CTF block partition: "channels" (the FC layer's rows grouped by channel of
        the last graph convolution, across nodes) or "none".
      ctf_floor: the least soft kept fraction f of every prunable layer under CTF, held by a
        second term λ·Σ_ℓ (max(0, f − kept_ℓ) / f)² [ours; default 0.005, chosen by nested
        validation on the wide network]. Without it (0: the paper's global budget alone) the wide
        network at rate 0.99 lost its whole FC layer (13.9 % against 93.9 % with it); where no
        layer falls below f the term and its gradient are 0, so runs equal the paper's bit for
        bit (rate 0.95).
      scope: magnitude and gradual baselines: "layer" (every layer at the rate) or "global" (one
        magnitude threshold over all prunable layers).
      finetune_fraction: one-shot baselines (magnitude, structured, l1, group_lasso): the share of
        the training steps left for fine-tuning after pruning; gradual: the share after its
        schedule ends.
      gradual_updates: how many times the gradual baseline updates its mask.
      lottery_rounds: training rounds of the lottery baseline (pruned after each but the last).
      rewind_fraction: where in a round the lottery baseline rewinds to (share of the round).
      reg_weight: λ of the l1 / group_lasso penalty.
      regrow_every: set, rigl: optimizer steps between two drop-and-grow updates (ΔT).
      drop_fraction: set, rigl: the share of a layer's active weights dropped and regrown at the
        first update (α), decayed to 0 along a cosine.
      regrow_until: set, rigl: the share of the training steps after which the masks stay fixed.
      rate_jitter: in [0, 1] (default 1). 0 trains exactly ``rates`` every step. Above 0, each step draws
        rate k uniformly from this fraction of its stratum (the interval between the midpoints
        to its neighbours, in t = −log(1 − r) so the sparse end keeps its resolution): the
        shared weights then learn every rate in the span, not only the listed ones.
      split_batch: MRMP: each step's batch is split into K disjoint slices, one per rate, instead
        of every rate seeing the whole batch: all K rates every step for about the cost of one
        (the same samples per step as SRMP), each rate's gradient from B/K samples.
      distill_weight: MRMP: α of in-place distillation (0, the default: off). The rate keeping the
        most weights each step teaches the others inside the same vmap: each rate's loss gains
        α·T²·KL(teacher's softmax(z/T), with its gradient stopped ‖ its own); not with split_batch.
      distill_temperature: MRMP: the distillation's softmax temperature T.
      rates_per_step: MRMP: how many of the K rates each step trains (0, the default: all K).
        m < K draws m of them at random each step (METHOD.md §3's "subset per step" option), so
        a step costs about as much as an m-rate step: cheaper, with fewer updates per rate.
      rate_weights: MRMP: positive weights of the rates' losses, from the least sparse rate up;
        rates past the list weigh 1 (``loss_weights``). The step's loss is Σ_k w_k loss_k / Σ_k w_k
        instead of the plain mean over the K rates (empty, the default: equal weights). E.g. 4,2
        gives the two least sparse rates more of the shared weights' gradient, whatever the rates.
        Needs every rate every step (rates_per_step 0).
      rate_curriculum: MRMP: the share f of the training steps over which the rates join the
        loss, from the least to the most sparse (progressive shrinking of once-for-all networks,
        Cai et al. 2020; ``jaxprune.methods.rate_curriculum``): rate k of K joins at step
        f·T·k/(K − 1) and weighs 0 before it (0, the default: every rate from the start).
        With split_batch a rate not yet joined leaves its slice of the batch unused. With f at or
        above anneal_fraction the sparsest rate joins after σ's annealing, so it trains only on
        crisp masks. Needs every rate every step (rates_per_step 0).
      sandwich: MRMP, with rates_per_step m ≥ 2: every step trains the least and the most sparse
        rate and m − 2 of the others drawn at random (the sandwich rule of universally slimmable
        networks, Yu & Huang 2019); with distill_weight the least sparse one is then always the
        teacher.
    """

    rate: float = 0.9
    rates: tuple[float, ...] = (0.5, 0.7, 0.9, 0.95, 0.98, 0.99)
    eval_rates: tuple[float, ...] = SERVE_RATES
    prior: str = "gaussian"
    weibull_shape: float = 1.5
    kl_weight: float = 10.0
    kl_ramp: float = 1.0
    quantile_weight: float = 0.0
    sigma_start: float = 1.0
    sigma_end: float = 100.0
    anneal_fraction: float = 0.8
    kl_bins: int = 64
    kl_space: str = "weight"
    kl_bandwidth: float = 1.0
    kl_resolution: int = 128
    kl_shift: bool = True
    allocation: str = "erk"
    rate_jitter: float = 1.0
    rates_per_step: int = 0
    sandwich: bool = False
    rate_weights: tuple[float, ...] = ()
    rate_curriculum: float = 0.0
    split_batch: bool = False
    distill_weight: float = 0.0
    distill_temperature: float = 1.0
    ctf_weight: float = 100.0
    ctf_shift: float = 0.5
    ctf_factors: tuple[str, ...] = ("block", "column", "row", "entry")
    ctf_blocks: str = "channels"
    ctf_floor: float = 0.005
    scope: str = "layer"
    finetune_fraction: float = 0.5
    gradual_updates: int = 50
    lottery_rounds: int = 3
    rewind_fraction: float = 0.05
    reg_weight: float = 0.1
    regrow_every: int = 100
    drop_fraction: float = 0.3
    regrow_until: float = 0.75

    def __post_init__(self):
        check_rates("rate", [self.rate])
        if not self.rates:
            raise ValueError("prune setting rates is empty: give at least one rate, e.g. 0.5,0.9")
        object.__setattr__(self, "rates", check_rates("rates", self.rates))
        object.__setattr__(self, "eval_rates", check_rates("eval_rates", self.eval_rates))
        if not self.quantile_weight >= 0:
            raise ValueError(f"prune setting quantile_weight must be >= 0 (0: off), got {self.quantile_weight}")
        if not self.kl_ramp >= 1:
            raise ValueError(f"prune setting kl_ramp must be >= 1 (1: constant λ), got {self.kl_ramp}")
        if not self.kl_weight >= 0:
            raise ValueError(f"prune setting kl_weight must be >= 0, got {self.kl_weight}")
        if not 0 < self.sigma_start <= self.sigma_end:
            raise ValueError(f"prune settings sigma_start, sigma_end must satisfy 0 < start <= end, "
                             f"got {self.sigma_start}, {self.sigma_end}")
        if not 0 < self.anneal_fraction <= 1:
            raise ValueError(f"prune setting anneal_fraction must be in (0, 1], got {self.anneal_fraction}")
        if self.allocation not in ("uniform", "erk"):
            raise ValueError(f"prune setting allocation must be uniform or erk, got {self.allocation!r}")
        if not 0 <= self.rates_per_step <= len(self.rates):
            raise ValueError(f"prune setting rates_per_step must be in [0, {len(self.rates)}] (0: all of the "
                             f"{len(self.rates)} rates), got {self.rates_per_step}")
        if self.sandwich and not 2 <= self.rates_per_step < len(self.rates):
            raise ValueError(f"prune setting sandwich needs rates_per_step in [2, {len(self.rates) - 1}] (the "
                             f"least and most sparse of the {len(self.rates)} rates plus some between), "
                             f"got rates_per_step={self.rates_per_step}")
        if self.rate_weights:
            if len(self.rate_weights) > len(self.rates):
                raise ValueError(f"prune setting rate_weights has {len(self.rate_weights)} weights for the "
                                 f"{len(self.rates)} rates of rates ({','.join(f'{r:g}' for r in self.rates)}); "
                                 f"give at most one per rate, or none (--set prune.rate_weights=) for equal weights")
            if not all(0 < w < float("inf") for w in self.rate_weights):
                raise ValueError(f"prune setting rate_weights must be positive numbers, got "
                                 f"{','.join(f'{w:g}' for w in self.rate_weights)}")
            if self.rates_per_step:
                raise ValueError("prune settings rate_weights and rates_per_step: weights need every rate every "
                                 "step (rates_per_step=0)")
        check_curriculum(self.rate_curriculum)
        if self.rate_curriculum and self.rates_per_step:
            raise ValueError("prune settings rate_curriculum and rates_per_step: the curriculum needs every rate "
                             "every step (rates_per_step=0)")
        if not self.distill_weight >= 0:
            raise ValueError(f"prune setting distill_weight must be >= 0 (0: off), got {self.distill_weight}")
        if not self.distill_temperature > 0:
            raise ValueError(f"prune setting distill_temperature must be > 0, got {self.distill_temperature}")
        if self.distill_weight and self.split_batch:
            raise ValueError("prune settings distill_weight and split_batch: distillation needs every rate on the "
                             "same batch; turn one of them off (the wide preset turns split_batch on for mrmp: "
                             "--set prune.split_batch=false)")
        if not 0.0 <= self.rate_jitter <= 1.0:
            raise ValueError(f"prune setting rate_jitter must be in [0, 1], got {self.rate_jitter}")
        if self.kl_space not in ("quantile", "weight", "both"):
            raise ValueError(f"prune setting kl_space must be weight, quantile or both, got {self.kl_space!r}")
        if not self.kl_bandwidth > 0:
            raise ValueError(f"prune setting kl_bandwidth must be > 0, got {self.kl_bandwidth}")
        if not (self.kl_resolution == 0 or 8 <= self.kl_resolution <= 4096):
            raise ValueError(f"prune setting kl_resolution must be 0 or in 8 … 4096, got {self.kl_resolution}")
        if self.kl_bins < 4:
            raise ValueError(f"prune setting kl_bins must be >= 4, got {self.kl_bins}")
        if self.prior not in ("gaussian", "laplace", "uniform", "weibull"):
            raise ValueError(f"prune setting prior must be gaussian, laplace, uniform or weibull, "
                             f"got {self.prior!r}")
        if not self.ctf_weight >= 0:
            raise ValueError(f"prune setting ctf_weight must be >= 0, got {self.ctf_weight}")
        if not self.ctf_shift > 0:
            raise ValueError(f"prune setting ctf_shift must be > 0, got {self.ctf_shift}")
        factors = tuple(dict.fromkeys(self.ctf_factors))
        if not factors or any(f not in ("block", "column", "row", "entry") for f in factors):
            raise ValueError(f"prune setting ctf_factors must be a non-empty subset of block,column,row,entry, "
                             f"got {','.join(self.ctf_factors)!r}")
        object.__setattr__(self, "ctf_factors", factors)
        if not 0.0 <= self.ctf_floor < 1.0:
            raise ValueError(f"prune setting ctf_floor must be in [0, 1), got {self.ctf_floor}")
        if self.ctf_blocks not in ("channels", "none"):
            raise ValueError(f"prune setting ctf_blocks must be channels or none, got {self.ctf_blocks!r}")
        if self.scope not in ("layer", "global"):
            raise ValueError(f"prune setting scope must be layer or global, got {self.scope!r}")
        if not 0.0 < self.finetune_fraction < 1.0:
            raise ValueError(f"prune setting finetune_fraction must be in (0, 1), got {self.finetune_fraction}")
        if self.gradual_updates < 1:
            raise ValueError(f"prune setting gradual_updates must be >= 1, got {self.gradual_updates}")
        if self.lottery_rounds < 2:
            raise ValueError(f"prune setting lottery_rounds must be >= 2, got {self.lottery_rounds}")
        if not 0.0 <= self.rewind_fraction < 1.0:
            raise ValueError(f"prune setting rewind_fraction must be in [0, 1), got {self.rewind_fraction}")
        if not self.reg_weight >= 0:
            raise ValueError(f"prune setting reg_weight must be >= 0, got {self.reg_weight}")
        if self.regrow_every < 1:
            raise ValueError(f"prune setting regrow_every must be >= 1 (steps), got {self.regrow_every}")
        if not 0.0 < self.drop_fraction < 1.0:
            raise ValueError(f"prune setting drop_fraction must be in (0, 1), got {self.drop_fraction}")
        if not 0.0 < self.regrow_until <= 1.0:
            raise ValueError(f"prune setting regrow_until must be in (0, 1], got {self.regrow_until}")
        if not self.weibull_shape > 0:
            raise ValueError(f"prune setting weibull_shape must be > 0, got {self.weibull_shape}")

    def loss_weights(self) -> tuple[float, ...]:
        """MRMP's weight of each rate's loss, one per rate of ``rates`` (increasing): ``rate_weights``
        from the least sparse rate up, 1 past them; () when ``rate_weights`` is empty (the plain mean)."""
        if not self.rate_weights:
            return ()
        return tuple(float(w) for w in self.rate_weights) + (1.0,) * (len(self.rates) - len(self.rate_weights))
