"""Train a GHN over many architectures (``ghnctl train``): one step, the loop, the run directory.

One step (spec section 5): the meta-batch of M architectures is split into shards; each shard
has its own architectures and its own batch of images. For every architecture the GHN predicts all
parameters with gradients (``GHN.predict_tensors``), the images run through it
(``functional_call``), and the loss is ``(sum_m CE_m + lambda * sum_m sum_p ||p||_F) / M``. A
process computes the shards of its rank (``shard % world_size == rank``); gradients are summed
over processes, so N processes compute exactly what one process computes with N shards (up to
float summation order). Everything random is derived from (seed, step, shard) or (seed, epoch),
never from the order of calls, so ``--resume`` continues exactly.

The run directory holds ``ghn.safetensors`` (loadable by ``ghnctl predict --ghn``), ``state.safetensors``
(exact resume), ``metrics.csv`` and ``config.json``; only rank 0 writes.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from torch.func import functional_call
from torch.utils.data import DataLoader, Sampler

from ghnctl.errors import GhnctlError
from ghnctl.ghn import GHN, GhnConfig, save_ghn
from ghnctl.ghn.decoding import decode_parameters, write_parameters
from ghnctl.training import amp as amp_mod
from ghnctl.training import dist
from ghnctl.training.arch_pool import ArchPool
from ghnctl.training.arch_specs import expand_specs, expand_weighted_specs
from ghnctl.training.data import DataBundle
from ghnctl.training.evaluate import evaluate, logits_of
from ghnctl.training.loaders import EpochSampler, EvalView, TrainView, collate
from ghnctl.training.optim import build_scheduler, default_warmup
from ghnctl.training.seeding import eval_subset
from ghnctl.training.state import Position, TrainingParts, load_state, read_state, save_state
from ghnctl.training.train_config import TrainConfig
from ghnctl.training.transforms import Normalizer

STATE_FORMAT = "ghnctl-train-state/1"
GHN_FILE, STATE_FILE, METRICS_FILE, CONFIG_FILE = "ghn.safetensors", "state.safetensors", "metrics.csv", "config.json"
METRIC_COLUMNS = ("step", "epoch", "loss", "ce", "reg", "acc", "lr", "grad_norm", "images_per_s", "archs_per_s",
                  "zero_shot_mean", "zero_shot_median", "zero_shot_max", "seconds")
# Settings that may differ on --resume: they do not change what is computed.
RESUME_FREE = frozenset({"device", "workers", "eval_every", "save_every", "save_minutes", "eval_images", "eval_n"})


class TrainingError(GhnctlError):
    """Training cannot go on (a non-finite loss, an inconsistent resume, ...)."""


# --------------------------------------------------------------------------------------------------
# Events for the CLI (the engine never prints)

@dataclass
class TrainStarted:
    total_steps: int
    start_step: int
    pool: int
    eval_archs: int
    ghn_params: int
    world_size: int
    shards: int
    eval_seen: tuple[str, ...] = ()  # evaluation architectures that are also trained on: not zero-shot


@dataclass
class StepDone:
    step: int
    total_steps: int
    metrics: dict[str, float]


@dataclass
class EvalDone:
    step: int
    accuracies: dict[str, float]  # spec -> zero-shot top-1 (%)


@dataclass
class CheckpointSaved:
    step: int
    path: Path


@dataclass
class TrainResult:
    out: Path
    steps: int
    stopped: bool
    ghn: GHN
    last: dict[str, float] = field(default_factory=dict)


Events = Callable[[object], None]


# --------------------------------------------------------------------------------------------------
# Data: per step, one batch per shard


class ShardBatches(Sampler):
    """Batches of ``(position, sample_seed)`` keys: for every step of an epoch, one batch per local shard.

    The epoch's order comes from ``EpochSampler`` (a function of (seed, epoch) only); step t uses
    its positions ``[t*B*S, (t+1)*B*S)`` and shard s of them ``[s*B, (s+1)*B)``.
    """

    def __init__(self, n: int, batch_size: int, shards: int, local_shards: list[int], seed: int) -> None:
        self.order = EpochSampler(n, batch_size * shards, seed)
        self.batch_size = batch_size
        self.shards = shards
        self.local_shards = local_shards
        self.steps_per_epoch = self.order.n_used // (batch_size * shards)  # full steps only
        self.start_step = 0

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.order.set_epoch(epoch, 0)
        self.start_step = start_step

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_step) * len(self.local_shards)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        keys = list(self.order)
        per_step = self.batch_size * self.shards
        for step in range(self.start_step, self.steps_per_epoch):
            block = keys[step * per_step: (step + 1) * per_step]
            for s in self.local_shards:
                yield block[s * self.batch_size: (s + 1) * self.batch_size]


# --------------------------------------------------------------------------------------------------
# The run


class _Run:
    """Everything one training run holds; ``train_ghn`` drives it."""

    def __init__(self, config: TrainConfig, bundle: DataBundle, out: Path, device: torch.device) -> None:
        self.config = config
        self.bundle = bundle
        self.out = out
        self.device = device
        self.rank, self.world = dist.rank(), dist.world_size()
        self.shards = config.shards or self.world
        if self.shards % self.world or config.meta_batch % self.shards:
            raise TrainingError(f"{self.shards} shard(s) cannot be spread over {self.world} process(es) with "
                                f"a meta-batch of {config.meta_batch}",
                                hint="use a meta-batch that is a multiple of the number of processes")
        self.local_shards = [s for s in range(self.shards) if s % self.world == self.rank]
        image_size = bundle.info.image_size
        self.ghn_config = GhnConfig(max_shape=config.max_shape(image_size), num_classes=bundle.num_classes,
                                    hid=config.hid, layers=0 if config.ghn2 else config.layers, heads=config.heads,
                                    is_ghn2=config.ghn2, weight_norm=True, ve=True, layernorm=True)
        torch.manual_seed(config.seed)  # the GHN's initial weights; the same on every rank
        self.ghn = GHN.from_config(self.ghn_config).init_for_training(
            torch.Generator().manual_seed(config.seed)).to(device).train()
        self.ghn.requires_grad_(True)
        self.optimizer = torch.optim.AdamW(self.ghn.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.batches = ShardBatches(len(bundle.train), config.batch_size, self.shards, self.local_shards, config.seed)
        if self.batches.steps_per_epoch < 1:
            raise TrainingError(f"{len(bundle.train)} training images make no full step of "
                                f"{config.batch_size} x {self.shards} images",
                                hint="lower --batch-size or add images")
        self.total_steps = config.steps or config.epochs * self.batches.steps_per_epoch
        warmup = config.warmup_steps if config.warmup_steps is not None else default_warmup(self.total_steps)
        self.scheduler = build_scheduler(self.optimizer, self.total_steps, warmup)
        self.amp_dtype = amp_mod.resolve_amp_dtype(device, config.amp, config.amp_dtype)
        self.scaler = amp_mod.make_grad_scaler(device, self.amp_dtype)
        specs, weights = expand_weighted_specs(config.archs, config.pool)
        self.pool = ArchPool(specs, num_classes=bundle.num_classes, weights=weights,
                             image_size=image_size, ghn_config=self.ghn_config, device=device, seed=config.seed)
        eval_specs = expand_specs([config.eval_archs], config.eval_n) if config.eval_n else []
        trained = set(specs)
        self.eval_seen = tuple(spec for spec in eval_specs if spec in trained)
        self.eval_pool = ArchPool(eval_specs, num_classes=bundle.num_classes, image_size=image_size,
                                  ghn_config=self.ghn_config, device=device, seed=config.seed + 1) \
            if eval_specs else None
        self.normalizer = Normalizer(bundle.info.mean, bundle.info.std, device)
        self.position = Position()

    @property
    def parts(self) -> TrainingParts:
        return TrainingParts(self.ghn, self.optimizer, self.scheduler, self.scaler)

    # ----------------------------------------------------------------------------------------------
    def loader(self, epoch: int, start_step: int) -> DataLoader:
        self.batches.set_epoch(epoch, start_step)
        workers = self.config.workers or 0
        return DataLoader(TrainView(self.bundle.train, self.bundle.train_transform), batch_sampler=self.batches,
                          num_workers=workers, collate_fn=collate, persistent_workers=False,
                          pin_memory=self.device.type == "cuda")

    def step(self, step: int, shard_batches: list[Any]) -> dict[str, float]:
        """One optimiser step over this rank's shards; returns the step's metrics (all ranks agree)."""
        config = self.config
        m_global = config.meta_batch
        per_shard = m_global // self.shards
        self.optimizer.zero_grad(set_to_none=True)
        sums = {"ce": 0.0, "reg": 0.0, "correct": 0.0, "seen": 0.0}
        for shard, batch in zip(self.local_shards, shard_batches):
            if batch.images is None:
                continue
            x = self.normalizer(batch.images.to(self.device, non_blocking=True))
            y = batch.targets.to(self.device, non_blocking=True)
            archs = [self.pool.get(i) for i in self.pool.draw(per_shard, step, shard)]
            predicted = decode_parameters(self.ghn, [a.plan for a in archs])  # with gradients
            # Each net is run and back-propagated down to its predicted tensors at once, so only one
            # net's activations are alive at a time; the GHN's part of the graph, shared by the
            # shard's nets, is then back-propagated once. The gradients are those of one backward
            # of (sum_m loss_m) / M, bit for bit: the loss-side nodes run before any GHN node there
            # too, and each predicted tensor receives the same two terms (net, regulariser).
            # The metrics stay on the device until the shard is done: one synchronisation per shard.
            roots: list[torch.Tensor] = []
            root_grads: list[torch.Tensor] = []
            stats: list[torch.Tensor] = []
            for arch, tensors in zip(archs, predicted):
                with amp_mod.autocast(self.device, self.amp_dtype):
                    logits = logits_of(functional_call(arch.model, tensors, (x,)))
                ce = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
                values = list(tensors.values())
                reg = torch.stack(torch._foreach_norm(values)).sum()  # = sum of t.norm(), one call
                loss = (ce + config.regulariser * reg) / m_global
                stats.append(torch.stack((ce.detach(), reg.detach(), loss.detach(),
                                          (logits.argmax(1) == y).sum().float())).double())
                grads = torch.autograd.grad(self.scaler.scale(loss) if self.scaler is not None else loss, values,
                                            allow_unused=True)
                roots.extend(v for v, g in zip(values, grads) if g is not None)
                root_grads.extend(g for g in grads if g is not None)
            finite = True
            for ce_value, reg_value, loss_value, correct in torch.stack(stats).tolist():  # float32 values, exact
                sums["ce"] += ce_value
                sums["reg"] += reg_value
                sums["correct"] += correct
                sums["seen"] += len(y)
                finite = finite and math.isfinite(loss_value)
            if not finite:
                sums["ce"] = math.nan  # every rank learns it below and stops together (no optimiser step)
                break
            if roots:
                torch.autograd.backward(roots, root_grads)
        totals = self._sum_over_ranks(sums)
        if not math.isfinite(totals["ce"]):
            raise TrainingError(f"the loss became NaN or infinite at step {step + 1}; training stopped and the "
                                f"last good checkpoint is kept", hint="lower --lr or --grad-clip, or try --no-amp")
        grad_norm = self._sync_and_step()
        return {"loss": (totals["ce"] + config.regulariser * totals["reg"]) / m_global,
                "ce": totals["ce"] / m_global, "reg": totals["reg"] / m_global,
                "acc": 100.0 * totals["correct"] / max(1.0, totals["seen"]),
                "lr": self.optimizer.param_groups[0]["lr"], "grad_norm": grad_norm}

    def _sum_over_ranks(self, sums: dict[str, float]) -> dict[str, float]:
        if self.world == 1:
            return sums
        mean = dist.all_reduce_scalars(sums)
        return {k: v * self.world for k, v in mean.items()}

    def _sync_and_step(self) -> float:
        params = [p for p in self.ghn.parameters()]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        if self.world > 1:  # one flat all-reduce (sum: every rank's loss is already divided by M)
            flat = torch.cat([g.reshape(-1) for g in grads])
            torch_dist.all_reduce(flat, op=torch_dist.ReduceOp.SUM)
            offset = 0
            for p, g in zip(params, grads):
                p.grad = flat[offset: offset + g.numel()].view_as(p).clone()
                offset += g.numel()
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip if self.config.grad_clip > 0 else math.inf)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        return float(norm)

    # ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def zero_shot(self) -> dict[str, float]:
        """Top-1 (%) of each held-out architecture with predicted parameters, BN batch statistics."""
        if self.eval_pool is None:
            return {}
        n = min(self.config.eval_images, len(self.bundle.val))
        # A uniform draw, not the first n: the validation split is stored class by class.
        subset = torch.utils.data.Subset(EvalView(self.bundle.val, self.bundle.eval_transform),
                                         eval_subset(len(self.bundle.val), n, self.bundle.info.split_seed))
        loader = DataLoader(subset, batch_size=256, shuffle=False, collate_fn=collate)
        accuracies = {}
        was = self.ghn.training
        self.ghn.eval()
        try:
            for index in range(len(self.eval_pool)):
                arch = self.eval_pool.get(index)
                write_parameters(arch.model, decode_parameters(self.ghn, [arch.plan])[0])
                result = evaluate(arch.model, loader, device=self.device, normalizer=self.normalizer,
                                  batch_stats=True, amp_dtype=self.amp_dtype)
                accuracies[arch.spec] = result.accuracy if result.accuracy is not None else math.nan
        finally:
            self.ghn.train(was)
        return accuracies

    # ----------------------------------------------------------------------------------------------
    def save(self, history: list[dict[str, Any]]) -> None:
        if self.rank != 0:
            return
        save_ghn(self.out / GHN_FILE, {k: v.detach().cpu() for k, v in self.ghn.state_dict().items()},
                 self.ghn_config, force=True, trained_image_size=self.bundle.info.image_size)
        save_state(self.out / STATE_FILE, self.parts, self.position, format=STATE_FORMAT,
                   fields={"config": self.config.to_dict(), "data": self.bundle.config.to_dict(),
                           "ghn_config": self.ghn_config.to_dict(), "history": history[-1000:]})


def train_ghn(config: TrainConfig, bundle: DataBundle, out: Path, *, device: torch.device,
              resume: bool = False, on_event: Events | None = None,
              should_stop: Callable[[], bool] | None = None) -> TrainResult:
    """Train a GHN; write the run directory ``out`` (rank 0); return when done or stopped.

    With ``resume`` the state in ``out`` is loaded first and the run continues exactly where it was
    saved. ``should_stop`` is polled after every step (e.g. Ctrl-C): the state is then saved.
    """
    emit = on_event or (lambda event: None)
    run = _Run(config, bundle, out, device)
    history: list[dict[str, Any]] = []
    if resume:
        loaded = load_state(out / STATE_FILE, run.parts, format=STATE_FORMAT)
        run.position = loaded.position
        history = list(loaded.fields.get("history", []))
    if run.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG_FILE).write_text(json.dumps({"train": config.to_dict(), "data": bundle.config.to_dict(),
                                                   "ghn": run.ghn_config.to_dict()}, indent=2) + "\n")
        _trim_metrics(out / METRICS_FILE, run.position.global_step)
    emit(TrainStarted(run.total_steps, run.position.global_step, len(run.pool),
                      len(run.eval_pool) if run.eval_pool else 0, run.ghn.num_parameters(), run.world, run.shards,
                      run.eval_seen))
    stopped = _loop(run, history, emit, should_stop or (lambda: False))
    return TrainResult(out, run.position.global_step, stopped, run.ghn, history[-1] if history else {})


def _loop(run: _Run, history: list[dict[str, Any]], emit: Events, should_stop: Callable[[], bool]) -> bool:
    config, steps_per_epoch = run.config, run.batches.steps_per_epoch
    step = run.position.global_step
    started = last_save = time.perf_counter()
    while step < run.total_steps:
        epoch = step // steps_per_epoch + 1
        first = step % steps_per_epoch
        batches = iter(run.loader(epoch, first))
        for in_epoch in range(first, steps_per_epoch):
            if step >= run.total_steps:
                break
            t0 = time.perf_counter()
            shard_batches = [next(batches) for _ in run.local_shards]
            metrics = run.step(step, shard_batches)
            step += 1
            run.position = Position(epoch, in_epoch + 1, step)
            seconds = time.perf_counter() - t0
            # Images through the architectures per second: each of the M nets sees its shard's batch.
            metrics.update(step=step, epoch=epoch, images_per_s=config.batch_size * config.meta_batch / seconds,
                           archs_per_s=config.meta_batch / seconds, seconds=time.perf_counter() - started)
            if config.eval_n and (step % config.eval_every == 0 or step == run.total_steps):
                accuracies = run.zero_shot() if run.rank == 0 else {}
                if accuracies:
                    values = list(accuracies.values())
                    metrics.update(zero_shot_mean=statistics.fmean(values),
                                   zero_shot_median=statistics.median(values), zero_shot_max=max(values))
                    emit(EvalDone(step, accuracies))
                dist.barrier()
            history.append(metrics)
            if run.rank == 0:
                _append_metrics(run.out / METRICS_FILE, metrics)
            emit(StepDone(step, run.total_steps, metrics))
            stop = should_stop()
            overdue = time.perf_counter() - last_save > 60 * config.save_minutes
            if step % config.save_every == 0 or step == run.total_steps or stop or overdue:
                run.save(history)
                last_save = time.perf_counter()
                emit(CheckpointSaved(step, run.out / STATE_FILE))
            if stop:
                return True
    return False


def _append_metrics(path: Path, metrics: dict[str, Any]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({k: metrics.get(k, "") for k in METRIC_COLUMNS})


def _trim_metrics(path: Path, last_step: int) -> None:
    """Drop rows after the resumed step (they were logged after the checkpoint the run restarts from)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("step") and int(float(r["step"])) <= last_step]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def saved_config(out: Path) -> tuple[TrainConfig, dict[str, Any]]:
    """The TrainConfig and data settings of the run saved in ``out`` (for ``--resume``)."""
    path = out / STATE_FILE
    if not path.is_file():
        raise TrainingError(f"no training state in {str(out)!r} to resume", hint="start the run without --resume")
    _, fields_ = read_state(path, format=STATE_FORMAT)
    return TrainConfig.from_dict(fields_["config"]), dict(fields_["data"])
