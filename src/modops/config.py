"""Typed, frozen configuration: one model per ``params.yaml`` section, plus runtime settings.

``params.yaml`` holds one top-level key per DVC stage (``ingest``, ``validate``, ``cold_start``,
``split``, ``train``, ``evaluate``, ``gate``) and one shared key, ``labels``. Each section loads into a
frozen pydantic model that rejects unknown keys with a message saying how to fix them.

Runtime *settings* (where state lives, the MLflow tracking URI, the S3 endpoint) are not
params: they describe the deployment, not the experiment, so they come from the environment
(``MODOPS_*``) or a TOML settings file, and never change a DVC stage's outputs.
"""

from __future__ import annotations

import difflib
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "ConfigError",
    "OFFLINE_ENV",
    "LabelsConfig",
    "IngestConfig",
    "ValidateConfig",
    "SplitConfig",
    "AugmentConfig",
    "SupervisedConfig",
    "MeanTeacherConfig",
    "CombineConfig",
    "CascadeConfig",
    "TrainConfig",
    "NoiseConfig",
    "ColdStartConfig",
    "EvaluateConfig",
    "CategoryFloors",
    "GateConfig",
    "ScoreConfig",
    "SelectConfig",
    "DriftConfig",
    "WorkspaceConfig",
    "BankConfig",
    "OcrConfig",
    "ModerateConfig",
    "load_monitoring_file",
    "Settings",
    "load_params",
    "load_section",
    "load_settings",
]


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message says how to fix it."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LabelsConfig(_Section):
    """The label space shared by every stage.

    Attributes:
        negative: The label of acceptable content.
        categories: Violating categories, each scored one-vs-rest by the model.
    """

    negative: str = "clean"
    categories: tuple[str, ...] = ("promo_spam", "disgusting", "weapon")

    @model_validator(mode="after")
    def _distinct(self) -> LabelsConfig:
        names = (self.negative, *self.categories)
        if len(set(names)) != len(names):
            raise ValueError(f"labels must be distinct, got {list(names)}")
        if not self.categories:
            raise ValueError("labels.categories needs at least one violating category")
        return self

    @property
    def all(self) -> tuple[str, ...]:
        """Every label, negative first; the index is the model's class index."""
        return (self.negative, *self.categories)


class IngestConfig(_Section):
    """Ingestion limits; files outside them are quarantined with a reason.

    ``max_pixels``, ``max_bytes`` and ``allowed_formats`` are the decode limits
    (:meth:`decode_limits`): ingest records them in ``ingest_summary.json``, the train stage
    copies them into ``model.json``, and evaluation, batch scoring and the served model enforce
    them. (The trainers' own data loaders still decode with the ``DecodeLimits()`` defaults.)
    """

    source: str = "data/raw"
    labels_file: str = "labels.csv"
    reviewed_source: str = Field(
        default="data/reviewed",
        description="uploads reviewers labelled after scoring (modops relabel copies them here); joins the pool",
    )
    max_pixels: int = Field(default=40_000_000, gt=0)
    max_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    min_side: int = Field(default=8, gt=0)
    allowed_formats: tuple[str, ...] = Field(
        default=("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"),
        description="PIL format names whose decoders may run; every other format is quarantined unread",
    )
    workers: int = Field(default=0, ge=0, description="0 = one per CPU core")

    @model_validator(mode="after")
    def _known_formats(self) -> IngestConfig:
        from PIL import Image  # here, not at import: only a config that names formats pays for it

        Image.init()
        known = set(Image.OPEN) | set(Image.SAVE) | set(Image.MIME)
        if not self.allowed_formats:
            raise ValueError("ingest.allowed_formats needs at least one format, e.g. [JPEG, PNG]")
        for name in self.allowed_formats:
            if name.upper() not in known:
                close = difflib.get_close_matches(name.upper(), sorted(known), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ValueError(
                    f"ingest.allowed_formats: {name!r} is not a Pillow format; {hint}known: {sorted(known)}"
                )
        return self

    def decode_limits(self):  # noqa: ANN201 - modops.data.images.DecodeLimits, imported lazily
        """The caps every decode of an ingested image enforces (a :class:`modops.data.images.DecodeLimits`)."""
        from modops.data.images import DecodeLimits

        return DecodeLimits(max_pixels=self.max_pixels, max_bytes=self.max_bytes, allowed_formats=self.allowed_formats)


class ValidateConfig(_Section):
    """Bounds for the Great Expectations suite over the manifest."""

    min_width: int = Field(default=8, gt=0)
    max_width: int = Field(default=10_000, gt=0)
    min_height: int = Field(default=8, gt=0)
    max_height: int = Field(default=10_000, gt=0)
    min_rows: int = Field(default=1, ge=0)
    min_count_per_class: int = Field(default=1, ge=0)
    max_class_fraction: float = Field(default=1.0, gt=0, le=1)


class SplitConfig(_Section):
    """Duplicate-aware splitting: a stratified holdout frozen once, val chosen by a hash of each group.

    Only labels from ``eval_sources`` (by default those that came with uploads, a random
    sample) may enter val or the holdout: seed images and retrieval-confirmed candidates
    were picked *because* they look like violations, so measuring on them would flatter
    the model. They train only.
    """

    val_fraction: float = Field(default=0.15, gt=0, lt=1)
    holdout_fraction: float = Field(default=0.15, gt=0, lt=1)
    near_dup_max_distance: int = Field(default=4, ge=0, le=64)
    eval_sources: tuple[str, ...] = Field(
        default=("upload",),
        description="label sources whose images may enter val and holdout; the rest (seed, retrieval) train only",
    )
    seed: int = 42

    @model_validator(mode="after")
    def _fractions(self) -> SplitConfig:
        if self.val_fraction + self.holdout_fraction >= 0.9:
            raise ValueError("split.val_fraction + split.holdout_fraction must be < 0.9")
        return self


class AugmentConfig(_Section):
    """Train-time augmentation (the train transform preset); evaluation never augments.

    Attributes:
        hflip: Random horizontal flips.
        vflip: Random vertical flips (uploads are not always upright).
        rotate_degrees: Uniform random rotation in [-d, d] degrees; 180 = any angle.
        scale: Area range of the random resized crop, relative to the letterboxed image.
            Kept mild by default: violations are often small local patches that an
            aggressive crop removes while the label stays.
        color_jitter: Brightness, contrast and saturation jitter strength.
    """

    hflip: bool = True
    vflip: bool = False
    rotate_degrees: float = Field(default=0.0, ge=0, le=180)
    scale: tuple[float, float] = (0.75, 1.0)
    color_jitter: float = Field(default=0.2, ge=0, le=1)

    @model_validator(mode="after")
    def _scale(self) -> AugmentConfig:
        low, high = self.scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"augment.scale must satisfy 0 < low <= high <= 1, got {self.scale}")
        return self


class SamplingConfig(_Section):
    """How training draws its labelled images (``train.sampling``), on top of ``train.imbalance``.

    Attributes:
        priority: ``none`` draws images of a class uniformly; ``loss`` draws them in proportion
            to their recent training loss (:mod:`modops.training.sampling`), so hard negatives
            and hard positives come back more often. Class shares stay those of ``imbalance``.
        mix: Weight of the loss priority against the uniform draw, in [0, 1].
        max_ratio: Cap on an image's loss relative to its class's mean: bounds how often an
            image that never fits (often a wrong label) is repeated.
        decay: Weight of an image's previous loss in its running average, in [0, 1).
    """

    priority: Literal["none", "loss"] = "none"
    mix: float = Field(default=0.8, ge=0, le=1)
    max_ratio: float = Field(default=5.0, ge=1)
    decay: float = Field(default=0.5, ge=0, lt=1)


class LossPredictionConfig(_Section):
    """The loss-prediction head trained with the classifier (``train.loss_prediction``).

    It ranks unlabelled uploads by how wrong the model expects to be on them, for active
    learning (:mod:`modops.models.loss_head`, Yoo and Kweon 2019).

    Attributes:
        enabled: Attach and train the head (stage 1 of a cascade; the student of a mean teacher).
        weight: Weight of its ranking loss beside the classification loss (1.0 in the paper).
        margin: Margin of the pairwise ranking loss (1.0 in the paper).
        detach_after: Fraction of training after which the head no longer sends gradients into
            the backbone (0.6 in the paper); 0 = never shapes it, 1 = always does.
        hidden: Units of each stage branch (128 in the paper).
    """

    enabled: bool = False
    weight: float = Field(default=1.0, gt=0)
    margin: float = Field(default=1.0, gt=0)
    detach_after: float = Field(default=0.6, ge=0, le=1)
    hidden: int = Field(default=128, ge=1)


class WarmStartConfig(_Section):
    """Where a retraining starts (``train.warm_start``).

    A relabel round is selected by one registered model and labelled by reviewers; with
    ``init: round_model`` the next training fine-tunes that model on every label (the round's
    included) instead of learning everything again from ``train.pretrained``, so the round adds
    the new style to what the model already knew. The split's ``label_version.json`` records
    which model selected the latest round, so DVC retrains exactly when a new round arrives.
    Training without any relabel round in its labels starts from ``train.pretrained`` as usual.

    Attributes:
        init: ``none`` (always train from ``train.pretrained``) or ``round_model``.
        epochs: The fine-tuning schedule's epochs (replaces ``train.epochs`` when warm-starting).
        lr: Its peak learning rate (replaces ``train.lr``): lower than from scratch, so the
            first steps do not undo what the model knew.
    """

    init: Literal["none", "round_model"] = "none"
    epochs: int = Field(default=3, ge=1)
    lr: float = Field(default=1e-3, gt=0)


class SupervisedConfig(_Section):
    """The supervised trainer: one backbone, one loss (``train.supervised``).

    Attributes:
        loss: Registry name in :data:`modops.training.losses.LOSSES` (``cross_entropy``,
            ``ohem``).
        ohem_keep_fraction: With ``loss: ohem``, the hardest fraction of each batch kept.
        ohem_warmup_fraction: With ``loss: ohem``, the fraction of training on the full loss first.
    """

    loss: str = "cross_entropy"
    ohem_keep_fraction: float = Field(default=0.5, gt=0, le=1)
    ohem_warmup_fraction: float = Field(default=0.2, ge=0, lt=1)


class MeanTeacherConfig(_Section):
    """Mean teacher (Tarvainen and Valpola 2017) settings (``train.mean_teacher``).

    Attributes:
        consistency_weight: Final weight of the consistency loss (mean squared difference of
            student and teacher class probabilities, averaged over classes).
        rampup_fraction: Fraction of all steps over which that weight ramps up along
            ``exp(-5 (1 - t)^2)``; the teacher's EMA decay is ``rampup_ema_decay`` until then.
        ema_decay: Teacher decay after the ramp-up. The teacher averages over about
            ``1 / (1 - decay)`` steps, which must be well below the run's length: the paper's
            0.999 suits 100k-step runs; on a CPU run of a few thousand steps it would leave the
            teacher weighted towards its random start (0.999^600 = 0.55).
        rampup_ema_decay: Teacher decay during the ramp-up (a young student moves fast).
        unlabeled_batch_size: Unlabelled images per step (two augmented views each).
        max_unlabeled: Cap on the unlabelled pool drawn from (0 = all of it).
    """

    consistency_weight: float = Field(default=5.0, ge=0)
    rampup_fraction: float = Field(default=0.3, ge=0, le=1)
    ema_decay: float = Field(default=0.99, gt=0, lt=1)
    rampup_ema_decay: float = Field(default=0.95, gt=0, lt=1)
    unlabeled_batch_size: int = Field(default=64, ge=1)
    max_unlabeled: int = Field(default=0, ge=0)


class CombineConfig(_Section):
    """How a cascade combines its stages at inference (``train.ohem_cascade.combine``).

    Attributes:
        rule: Registry name in :data:`modops.models.predictor.COMBINERS` (``band``).
        categories: The categories stage 2 re-scores (a specialist, e.g. the category whose
            look-alikes stage 1 confuses); null = every category. Stage 2 then trains on the
            negatives and these categories only, and the others keep stage 1's scores.
        low, high: An image reaches stage 2 when any violating category's stage-1 score lies
            in ``[low, high]`` (the uncertainty band). ``low: null`` derives it from val after
            stage 1 trains: the highest score at which stage 1 still keeps ``route_recall`` of
            every category's val positives (Yelp's high-recall first stage), recorded in model.json.
        route_recall: Stage-1 val recall per category that the derived ``low`` keeps.
        fuse: How the two stages' probabilities are fused there: ``mean``, ``geometric``
            (renormalised), ``stage2`` (stage 2 decides alone).
    """

    rule: str = "band"
    categories: tuple[str, ...] | None = None
    low: float | None = Field(default=None, ge=0, le=1)
    route_recall: float = Field(default=0.98, gt=0, le=1)
    high: float = Field(default=1.0, ge=0, le=1)
    fuse: Literal["mean", "geometric", "stage2"] = "geometric"

    @model_validator(mode="after")
    def _band(self) -> CombineConfig:
        if self.low is not None and self.low > self.high:
            raise ValueError(f"combine.low ({self.low}) must not exceed combine.high ({self.high})")
        return self


class CascadeConfig(_Section):
    """OHEM cascade settings (``train.ohem_cascade``).

    Stage 1 is the shared ``train.backbone`` trained with online hard example mining; its
    highest-loss training samples plus a class-balanced sample train stage 2.

    Attributes:
        ohem_keep_fraction: Hardest fraction of each stage-1 batch that carries the loss.
        ohem_warmup_fraction: Fraction of stage-1 training on the full loss before OHEM starts.
        stage2_backbone: Stage-2 backbone (default: the stage-1 backbone).
        stage2_image_size: Stage-2 input side (default: the stage-1 size).
        stage2_augment: Stage-2 augmentation (default: ``train.augment``). The specialist sees
            a small, hard set many times over, so it can afford (and needs) stronger
            augmentation, such as any-angle rotation for objects that appear in any orientation.
        stage2_epochs: Stage-2 epochs.
        stage2_samples_per_epoch: Stage-2 draws per epoch (0 = its whole training set).
        mine_max_images: Training images scored by stage 1 to find the hard ones (0 = all);
            every labelled violation is always scored.
        hard_examples: Highest-loss training samples handed to stage 2.
        balanced_examples: Additional class-balanced samples for stage 2, so it still sees
            every class.
        combine: The inference rule.
    """

    ohem_keep_fraction: float = Field(default=0.5, gt=0, le=1)
    ohem_warmup_fraction: float = Field(default=0.2, ge=0, lt=1)
    stage2_backbone: str | None = None
    stage2_image_size: int | None = Field(default=None, ge=32, le=1024)
    stage2_augment: AugmentConfig | None = None
    stage2_epochs: int = Field(default=3, ge=1)
    stage2_samples_per_epoch: int = Field(default=0, ge=0)
    mine_max_images: int = Field(default=0, ge=0)
    hard_examples: int = Field(default=2000, ge=1)
    balanced_examples: int = Field(default=2000, ge=0)
    combine: CombineConfig = CombineConfig()


class TrainConfig(_Section):
    """Training of one candidate model; ``trainer`` and ``backbone`` are registry names.

    Shared keys live here; each trainer reads its own subsection (``supervised``,
    ``mean_teacher``, ``ohem_cascade``), and ``dvc.yaml`` depends on the active one only.

    ``source_weights`` draws the labels of some sources more often within their class (for
    example ``reviewer: 4``: a relabel round's few labels of a new spam style come up four times
    as often as an upload label, so one round moves the model); class shares are unchanged.
    """

    trainer: str = "supervised"
    backbone: str = "mobilenet_v2"
    pretrained: Literal["none", "imagenet", "path"] = "none"
    weights_path: str | None = None
    image_size: int | None = Field(default=None, ge=32, le=1024, description="None = the backbone's default")
    cbam: bool = False
    epochs: int = Field(default=3, ge=1)
    samples_per_epoch: int = Field(default=0, ge=0, description="0 = the whole train split")
    max_minutes: float | None = Field(
        default=None,
        gt=0,
        description="wall-clock cap on the training loops: epochs are shortened evenly to fit (None = no cap)",
    )
    batch_size: int = Field(default=64, ge=1)
    lr: float = Field(default=3e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    imbalance: Literal["balanced_sampler", "weighted_loss", "none"] = "balanced_sampler"
    max_positive_weight: float = Field(default=20.0, ge=1)
    augment: AugmentConfig = AugmentConfig()
    sampling: SamplingConfig = SamplingConfig()
    loss_prediction: LossPredictionConfig = LossPredictionConfig()
    warm_start: WarmStartConfig = WarmStartConfig()
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    workers: int = Field(default=1, ge=0, description="DataLoader worker processes; 0 = decode in the main process")
    seed: int = 0
    num_threads: int = Field(default=0, ge=0, description="0 = torch's default")
    source_weights: dict[str, float] = Field(
        default_factory=dict,
        description="sampling weight per label source (e.g. reviewer: 4), within each class; unlisted sources 1",
    )
    supervised: SupervisedConfig = SupervisedConfig()
    mean_teacher: MeanTeacherConfig = MeanTeacherConfig()
    ohem_cascade: CascadeConfig = CascadeConfig()

    @model_validator(mode="after")
    def _weights(self) -> TrainConfig:
        if self.pretrained == "path" and not self.weights_path:
            raise ValueError("train.pretrained is 'path' but train.weights_path is empty")
        from modops.data.labelstore import EVENT_SOURCES

        for name in self.source_weights:
            if name not in EVENT_SOURCES:
                close = difflib.get_close_matches(name, EVENT_SOURCES, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(
                    f"train.source_weights names unknown label source {name!r}{hint}; choose from {list(EVENT_SOURCES)}"
                )
        bad = {k: v for k, v in self.source_weights.items() if not v > 0}
        if bad:
            raise ValueError(f"train.source_weights must be > 0 (1 = as often as other labels), got {bad}")
        if self.source_weights and self.sampling.priority != "none":
            raise ValueError(
                "train.source_weights and train.sampling.priority: loss both set how often images are drawn; "
                "use one of them"
            )
        return self


class EvaluateConfig(_Section):
    """Holdout evaluation; thresholds are chosen on val to meet ``target_precision``.

    Attributes:
        target_precision: Val precision each category's threshold must reach.
        category_target_precision: Per-category overrides of ``target_precision`` (the
            operating point of a category whose model cannot yet reach the product's).
        batch_size: Images per forward pass.
        confidence: Level of the Wilson intervals on holdout precision and recall.
        workers: DataLoader worker processes for decoding (0 = in the main process).
        explain_examples: Grad-CAM examples per grid (top positives, false positives, false
            negatives of every category); 0 turns the grids off.
        review_recall: Val recall of the review threshold: images scoring between it and the
            (precision) threshold go to human review; the review load is reported with it.
    """

    target_precision: float = Field(default=0.95, gt=0, le=1)
    review_recall: float = Field(default=0.98, gt=0, le=1)
    category_target_precision: dict[str, float] = Field(default_factory=dict)
    batch_size: int = Field(default=256, ge=1)
    confidence: float = Field(default=0.95, gt=0, lt=1)
    workers: int = Field(default=1, ge=0)

    @model_validator(mode="after")
    def _targets(self) -> EvaluateConfig:
        bad = {c: t for c, t in self.category_target_precision.items() if not 0 < t <= 1}
        if bad:
            raise ValueError(f"category_target_precision values must be in (0, 1], got {bad}")
        return self

    def targets(self, categories: tuple[str, ...]) -> dict[str, float]:
        """Target precision per category: the override, else ``target_precision``."""
        unknown = sorted(set(self.category_target_precision) - set(categories))
        if unknown:
            raise ConfigError(
                f"evaluate.category_target_precision names unknown categories {unknown}; known: {list(categories)}"
            )
        return {c: self.category_target_precision.get(c, self.target_precision) for c in categories}

    explain_examples: int = Field(default=8, ge=0, le=64)


class ColdStartConfig(_Section):
    """Cold start by small-sample retrieval (the ``cold_start`` stage).

    Seed images are the labelled images whose label source is ``seed`` (5 to 20 per
    category, ingested with the uploads). The stage embeds the unlabelled pool, retrieves the
    nearest images to each category's seeds, exports them for confirmation, and imports the
    confirmations back into the label store as ``retrieval`` events.

    Attributes:
        per_category: Candidates retrieved per category (the confirmation budget).
        embedder: Registry name in :data:`modops.active.embed.EMBEDDERS`.
        backbone: Backbone of the embedder.
        image_size: Input side of the embedder.
        pretrained: Initial weights of the embedder: ``none``, ``imagenet`` or ``path``
            (``weights_path``). With ImageNet weights the ``pretrained`` embedder needs no training.
        weights_path: Local weights file for ``pretrained: path``.
        steps: Training steps of a trained embedder (``seed_contrast``).
        batch_size: Images per step or forward pass.
        pool_negatives: Unlabelled images the ``seed_contrast`` embedder treats as negatives
            (positives are rare, so a random unlabelled image is almost always clean).
        workers: DataLoader worker processes for decoding.
        reviewer: Who confirms the candidates: ``label_studio`` (a Label Studio export at
            ``confirmations``; none yet = nothing imported), ``none``, or ``demo_oracle``
            (the demo pool's ground truth stands in for reviewers).
        confirmations: Path of the reviewers' Label Studio JSON (or CSV) export.
        image_url_prefix: Prefix of image URLs in the Label Studio tasks.
        index: faiss index kind, ``flat`` or ``ivf`` (for million-image pools).
        seed: Random seed.
    """

    per_category: int = Field(default=200, ge=1)
    embedder: str = "seed_contrast"
    backbone: str = "cnn_small"
    pretrained: Literal["none", "imagenet", "path"] = "none"
    weights_path: str | None = None
    image_size: int = Field(default=96, ge=32, le=1024)
    steps: int = Field(default=300, ge=1)
    batch_size: int = Field(default=64, ge=1)
    pool_negatives: int = Field(default=5000, ge=0)
    workers: int = Field(default=1, ge=0)
    reviewer: str = "label_studio"
    confirmations: str | None = None
    image_url_prefix: str = "/data/local-files/?d="
    index: Literal["flat", "ivf"] = "flat"
    seed: int = 0


class NoiseConfig(_Section):
    """The noisy-label check before training (the ``noise`` stage; confident learning, cleanlab).

    Every labelled train and val image is embedded by a small network (an embedder of
    :data:`modops.active.embed.EMBEDDERS`, as in the cold start) and a multinomial logistic
    regression predicts its class out of fold (``folds``-fold, stratified); cleanlab's
    confident learning then flags the labels those predictions contradict.

    Attributes:
        enabled: Run the check (off: the stage writes an empty issue list).
        embedder: A key of :data:`modops.active.embed.EMBEDDERS` (``seed_contrast`` needs no weights).
        backbone, pretrained, weights_path, image_size, steps, batch_size, workers: The embedder's.
        folds: Folds of the out-of-fold predictions (classes with fewer members use fewer folds).
        filter_by: cleanlab's ``filter_by`` (``prune_by_noise_rate``, ``prune_by_class``, ``both``,
            ``confident_learning``, ``predicted_neq_given``).
        max_fraction: At most this fraction of any label's images is flagged (the lowest label
            quality first): a weak embedder must not flag most of a rare category.
        action: ``exclude`` drops flagged train images from training, ``downweight`` draws them
            ``weight`` times as often, ``flag`` only writes the review list. Val images are
            never changed (thresholds are chosen there): they go on the review list only.
        weight: The sampling weight of a flagged image under ``downweight`` (0 < weight < 1).
        seed: Seed of the embedder and the folds.
    """

    enabled: bool = True
    embedder: str = "seed_contrast"
    backbone: str = "cnn_small"
    pretrained: Literal["none", "imagenet", "path"] = "none"
    weights_path: str | None = None
    image_size: int = Field(default=64, ge=32, le=1024)
    steps: int = Field(default=150, ge=1)
    batch_size: int = Field(default=64, ge=1)
    workers: int = Field(default=1, ge=0)
    folds: int = Field(default=5, ge=2)
    filter_by: Literal["prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given"] = (
        "prune_by_noise_rate"
    )
    max_fraction: float = Field(default=0.1, gt=0, le=1)
    action: Literal["exclude", "downweight", "flag"] = "flag"
    weight: float = Field(default=0.2, gt=0, lt=1)
    seed: int = 0

    def embedder_config(self) -> ColdStartConfig:
        """The embedder's settings in the form :mod:`modops.active.embed` takes (no unlabelled negatives)."""
        return ColdStartConfig(
            embedder=self.embedder,
            backbone=self.backbone,
            pretrained=self.pretrained,
            weights_path=self.weights_path,
            image_size=self.image_size,
            steps=self.steps,
            batch_size=self.batch_size,
            pool_negatives=0,
            workers=self.workers,
            reviewer="none",
            seed=self.seed,
        )


class ScoreConfig(_Section):
    """Daily batch scoring of uploads with the champion (``modops score``, the scoring DAG).

    Attributes:
        source: Where a day's uploads are: a folder or ``s3://bucket/prefix``; ``{day}`` is
            replaced by the day (``YYYY-MM-DD``). The DAG reads it; ``modops score SOURCE`` overrides it.
        min_side: Shorter images are quarantined (``too_small``), as at ingest.
        batch_size: Images per forward pass.
        workers: DataLoader decoding workers (0 = in the main process).
        embedding_dims: Width of the embedding projection logged per image (for embedding drift).
        seed: Seed of that projection: keep it fixed, or the reference and days stop comparing.
        device: auto | cpu | cuda.
        precision: auto (bf16 autocast where the CPU has it, AMP on CUDA) | fp32 | bf16 | fp16.
        engine: The runtime of the forward pass, a key of :data:`modops.scoring.engines.ENGINES`:
            ``eager`` (PyTorch on ``device`` in ``precision``), ``onnx`` (ONNX Runtime on the
            CPU in fp32, whatever ``device`` and ``precision`` say) or ``compile``
            (``torch.compile``). An engine that cannot wrap the model falls back to ``eager``
            with a warning, so a day is still scored.
        engine_threads: Intra-op threads of the engine (None = its default: this process's
            CPUs for ONNX Runtime, torch's own setting otherwise).
    """

    source: str = "data/uploads/{day}"
    min_side: int = Field(default=8, ge=1)
    batch_size: int = Field(default=256, ge=1)
    workers: int = Field(default=1, ge=0)
    embedding_dims: int = Field(default=32, ge=2, le=512)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    # The keys of modops.scoring.engines.ENGINES, spelled out so that loading the config does not
    # import torch (tests/scoring/test_engines.py checks that the two agree).
    engine: Literal["eager", "onnx", "compile"] = "eager"
    engine_threads: int | None = Field(default=None, ge=1)

    def source_for(self, day: str) -> str:
        """The day's source: ``source`` with ``{day}`` filled in."""
        return self.source.replace("{day}", day)


class RelabelConfig(_Section):
    """A relabel round: who answers a selected batch and what happens next (``relabel``, dags/relabel.py).

    Attributes:
        reviewer: A key of :data:`modops.active.reviewers.REVIEWERS`: ``label_studio`` waits for
            the reviewers' export at ``export``; ``demo_oracle`` answers with a demo day's ground
            truth (the demo only); ``none`` exports the batch and imports nothing.
        export: Where the reviewers' Label Studio export (JSON, JSON_MIN or CSV) is dropped;
            ``{batch}`` is the batch folder (``relabel/day=D/model_version=V`` in the state
            folder), ``{day}`` the day.
        truth_source: ``demo_oracle`` only: the folder of the day's demo pool (its ``labels.csv``
            with ``true_label``); ``{day}`` is filled in.
        labels_file: The labels file inside ``truth_source``.
        retrain: Trigger the training DAG once a round's labels are in the label store (the
            gate decides whether the retrained model is promoted).
    """

    reviewer: str = "label_studio"
    export: str = "{batch}/export.json"
    truth_source: str | None = None
    labels_file: str = "labels.csv"
    retrain: bool = True

    def export_for(self, *, batch: Path, day: str) -> Path:
        """The export file of one batch."""
        return Path(self.export.replace("{batch}", str(batch)).replace("{day}", day))

    def truth_for(self, day: str) -> str | None:
        """The demo oracle's truth folder for ``day``, or None."""
        return self.truth_source.replace("{day}", day) if self.truth_source else None


class SelectConfig(_Section):
    """Active-learning selection of a scored day for review (``modops select``, the relabel round).

    Attributes:
        strategy: A key of :data:`modops.active.selection.SELECTORS` (``confidence_band``:
            the band ranked by predicted loss; ``loss``, ``entropy``, ``random``).
        budget: Images per round: what reviewers will label.
        low: Lower edge of the confidence band (``confidence_band``).
        high: Upper edge of the confidence band.
        diversity: Spread the batch over the embedding space (k-center greedy).
        pool_factor: Candidates per selected image that diversity chooses from.
        novelty_fraction: Share of the budget spent first on the day's images farthest from the
            reference (the version's holdout embeddings; core-set greedy), the rest by ``strategy``.
            Needs the drift check's reference (``modops drift`` writes it); without it, 0.
        seed: Seed of ``random``.
        image_url_prefix: Prefix of the image URLs in the Label Studio tasks (local files storage).
    """

    strategy: str = "confidence_band"
    budget: int = Field(default=200, ge=1)
    low: float = Field(default=0.2, ge=0, lt=1)
    high: float = Field(default=0.8, gt=0, le=1)
    diversity: bool = True
    pool_factor: int = Field(default=4, ge=1)
    novelty_fraction: float = Field(default=0.0, ge=0, le=1)
    seed: int = 0
    image_url_prefix: str = "/data/local-files/?d="

    @model_validator(mode="after")
    def _band(self) -> SelectConfig:
        if self.low >= self.high:
            raise ValueError(f"select.low must be below select.high, got [{self.low}, {self.high}]")
        return self


class EmbeddingDriftCheck(_Section):
    """Embedding drift (Evidently ``EmbeddingsDrift``) on the logged embedding projection.

    Attributes:
        method: ``model`` (a domain classifier's ROC AUC, drift above the threshold), ``distance``
            (euclidean distance of the means), ``ratio`` (share of drifted components) or ``mmd``.
        threshold: The method's drift threshold (Evidently's defaults: model 0.55, distance 0.2,
            ratio 0.2, mmd 0.015).
        pca_components: Components kept before the check (null = all).
        max_rows: Rows sampled from each side (fixed seed): ``mmd`` is all-pairs.
    """

    method: Literal["model", "distance", "ratio", "mmd"] = "model"
    threshold: float = Field(default=0.55, gt=0)
    pca_components: int | None = Field(default=None, ge=1)
    max_rows: int = Field(default=5000, ge=50)


class ColumnDriftCheck(_Section):
    """Per-column distribution drift (Evidently ``ValueDrift``): the test's status decides.

    Attributes:
        method: An Evidently stattest name (``wasserstein``, ``ks``, ``psi``, ``jensenshannon``, ...).
        threshold: Its threshold (a distance for distance methods, a p-value for tests).
    """

    method: str = "wasserstein"
    threshold: float = Field(default=0.1, gt=0)


class FlagRateCheck(_Section):
    """The change of a category's flag rate against the reference's.

    Fires when the two-proportion z-test's p-value is below ``alpha`` *and* the rate moved by a
    factor of at least ``max_ratio`` (up or down) *and* by at least ``min_abs_change``: a big,
    significant move, not the wobble of a rare category on a small day.
    """

    alpha: float = Field(default=0.001, gt=0, lt=1)
    max_ratio: float = Field(default=2.0, gt=1)
    min_abs_change: float = Field(default=0.01, ge=0, le=1)


class QualityCheck(_Section):
    """Data quality of a scored day.

    Attributes:
        min_rows: Fewer scored images than this fires (uploads dried up, or a broken source).
        max_quarantine_rate: Share of the day's files quarantined (unreadable, oversized, ...).
        max_missing_share: Share of missing values in the scored rows' scores and properties.
    """

    min_rows: int = Field(default=30, ge=1)
    max_quarantine_rate: float = Field(default=0.05, ge=0, le=1)
    max_missing_share: float = Field(default=0.0, ge=0, le=1)


class DriftConfig(_Section):
    """Alert thresholds of drift monitoring (``monitoring/drift.yaml``).

    A scored day is compared with the reference (the champion's scores on the holdout); the
    day drifts when any check fires.
    """

    embedding: EmbeddingDriftCheck = EmbeddingDriftCheck()
    scores: ColumnDriftCheck = ColumnDriftCheck()
    properties: ColumnDriftCheck = ColumnDriftCheck()
    property_columns: tuple[str, ...] = ("width", "height", "aspect_ratio", "brightness", "file_bytes")
    categorical_properties: ColumnDriftCheck = ColumnDriftCheck(method="jensenshannon", threshold=0.1)
    categorical_property_columns: tuple[str, ...] = ("format",)
    flag_rate: FlagRateCheck = FlagRateCheck()
    quality: QualityCheck = QualityCheck()
    seed: int = 0


class PanelValue(_Section):
    """One series of a dashboard panel: an Evidently metric, filtered by its labels."""

    metric: str
    labels: dict[str, str] = Field(default_factory=dict)
    legend: str | None = None


class PanelConfig(_Section):
    """A panel of the Evidently project's dashboard."""

    title: str
    kind: Literal["line", "counter", "bar", "text"] = "line"
    description: str | None = None
    size: Literal["full", "half"] = "full"
    tab: str = "Drift"
    values: tuple[PanelValue, ...] = ()


class WorkspaceConfig(_Section):
    """The Evidently project each scored day is added to (``monitoring/workspace.yaml``)."""

    project: str = "modops drift"
    description: str = "Daily drift of uploads scored by the champion, against its holdout scores."
    panels: tuple[PanelConfig, ...] = ()


def load_monitoring_file(path: str | Path, model: type[S]) -> S:
    """Load a monitoring YAML file (``monitoring/drift.yaml``, ``monitoring/workspace.yaml``) into ``model``."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"monitoring config not found: {p} (the repository keeps it under monitoring/)")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{p} must hold a mapping, got {type(raw).__name__}")
    return parse_section(model, raw, name=p.name)


class CategoryFloors(_Section):
    """One category's own promotion floors (unset ones fall back to the gate's global floors)."""

    min_precision: float | None = Field(default=None, gt=0, le=1)
    min_recall: float | None = Field(default=None, ge=0, le=1)
    min_pr_auc: float | None = Field(default=None, ge=0, le=1)


class GateConfig(_Section):
    """Promotion floors; a candidate must meet every floor for every category.

    Attributes:
        min_precision, min_recall, min_pr_auc: Floors for every category (holdout, at the
            thresholds chosen on val).
        category_floors: Per-category overrides, e.g. a category whose model is still young
            may gate on a lower recall; a precision floor is never zero there, so a model that
            flags at chance can never pass.
        max_regression: Largest allowed drop of ``regression_metric`` against the champion.
        regression_metric: The metric compared with the champion on the same holdout.
        min_support: Fewest holdout positives a category needs; below it the gate fails with
            "not enough evidence" (0 turns the check off).
        decide_on: ``lower_bound`` judges floors on the Wilson lower bounds (the level is
            ``evaluate.confidence``) and the regression on the paired bootstrap's lower bound
            (non-inferiority must be shown); ``point`` judges point estimates. PR-AUC floors
            are judged on the point estimate (metrics.json has no interval for it).
        bootstrap_resamples: Paired bootstrap resamples of the champion comparison.
        confidence: Two-sided level of the paired bootstrap interval.
        seed: Seed of the paired bootstrap, so a verdict can be reproduced.
    """

    min_precision: float = Field(default=0.95, ge=0, le=1)
    min_recall: float = Field(default=0.94, ge=0, le=1)
    min_pr_auc: float = Field(default=0.0, ge=0, le=1)
    category_floors: dict[str, CategoryFloors] = Field(default_factory=dict)
    max_regression: float = Field(default=0.02, ge=0, le=1)
    regression_metric: Literal["pr_auc", "recall", "precision", "f1"] = "pr_auc"
    min_support: int = Field(default=20, ge=0)
    decide_on: Literal["point", "lower_bound"] = "lower_bound"
    bootstrap_resamples: int = Field(default=1000, ge=100)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    seed: int = 0

    def floors(self, category: str) -> tuple[float, float, float]:
        """``(min_precision, min_recall, min_pr_auc)`` for ``category``."""
        own = self.category_floors.get(category, CategoryFloors())
        return (
            self.min_precision if own.min_precision is None else own.min_precision,
            self.min_recall if own.min_recall is None else own.min_recall,
            self.min_pr_auc if own.min_pr_auc is None else own.min_pr_auc,
        )


class BankConfig(_Section):
    """The allow and known-spam banks: perceptual hashes matched by Hamming distance (``moderate.banks``).

    Attributes:
        method: A key of :data:`modops.moderation.hashbank.HASH_METHODS`. ``phash_stable``: phash
            whose unsure bits (flat, near-black, finely periodic pictures) follow the mean gray
            level, so copies of such pictures match too. Changing it makes the codes already in
            the banks incomparable: re-hash them (from their pictures) first.
        hash_size: Side of the hash grid: ``hash_size**2`` bits (16 -> 256 bits).
        max_distance: Largest Hamming distance (inclusive, in bits) at which an upload is the same
            picture as a bank entry (benchmarks/hashbank.py measures recall and false matches).
    """

    method: str = "phash_stable"
    hash_size: int = Field(default=16, ge=4, le=32)
    max_distance: int = Field(default=32, ge=0)


class OcrConfig(_Section):
    """OCR plus text rules for promotional spam (``moderate.ocr``).

    Attributes:
        engine: A key of :data:`modops.moderation.ocr.OCR_ENGINES` (``rapidocr``; ``none`` turns OCR off).
        rules: Keys of :data:`modops.moderation.rules.RULES` that flag an image on their own.
        min_confidence: Text lines the OCR read with less confidence are ignored.
        max_side: Images are downscaled to this longest side (pixels) before OCR (speed).
            OCR runs only on what stage 1 flagged (about a second per image on 2 cores).
        threads: OCR threads.
    """

    engine: str = "rapidocr"
    rules: tuple[str, ...] = ("phone", "url", "email", "handle", "support_phrase", "call_to_action")
    min_confidence: float = Field(default=0.6, ge=0, le=1)
    max_side: int = Field(default=960, ge=32)
    threads: int = Field(default=2, ge=1)


class ModerateConfig(_Section):
    """The moderation service's policy (``modops serve``): banks, two stages, OCR rules, context.

    Attributes:
        model: ``champion`` (reloaded when the alias moves), ``latest`` (the newest registered
            version: for a registry whose gate refused every candidate) or a version number.
        reload_seconds: How often the registry is asked whether the model moved.
        steps: The policy's steps in order, keys of :data:`modops.moderation.policy.STEPS`.
        stage1: High-recall thresholds of stage 1 per category (``default`` for the others):
            only what reaches one continues to stage 2.
        block_at: A stage-2 score from which an upload is blocked outright (still reviewable)
            instead of queued; above 1 blocks nothing.
        context: Threshold multipliers by business category (below 1 = stricter: a kids' toy
            shop flags at 0.6x the usual thresholds); categories not listed use 1.
        people: A key of :data:`modops.moderation.policy.PEOPLE_SIGNALS` (``none``: no detector).
        banks: :class:`BankConfig`.
        ocr: :class:`OcrConfig`.
    """

    model: str = "champion"
    reload_seconds: float = Field(default=30.0, gt=0)
    steps: tuple[str, ...] = ("profile", "banks", "stage1", "stage2", "ocr_rules", "people")
    stage1: dict[str, float] = Field(default_factory=lambda: {"default": 0.1})
    block_at: float = Field(default=0.99, ge=0)
    context: dict[str, float] = Field(default_factory=dict)
    people: str = "none"
    banks: BankConfig = BankConfig()
    ocr: OcrConfig = OcrConfig()

    @model_validator(mode="after")
    def _check(self) -> ModerateConfig:
        bad = {k: v for k, v in {**self.stage1, **self.context}.items() if not 0 < v <= 10}
        if bad:
            raise ValueError(f"moderate.stage1 and moderate.context values must be in (0, 10], got {bad}")
        if self.model not in ("champion", "latest") and not self.model.isdigit():
            raise ValueError(f"moderate.model must be champion, latest or a version number, got {self.model!r}")
        return self

    def stage1_threshold(self, category: str) -> float:
        """Stage 1's threshold for ``category`` (``default`` when not listed)."""
        return self.stage1.get(category, self.stage1.get("default", 0.1))

    def context_factor(self, business_category: str) -> float:
        """The threshold multiplier of a business category (1 when not listed)."""
        return self.context.get(business_category, 1.0)


_SECTIONS: dict[str, type[_Section]] = {
    "labels": LabelsConfig,
    "ingest": IngestConfig,
    "validate": ValidateConfig,
    "split": SplitConfig,
    "cold_start": ColdStartConfig,
    "noise": NoiseConfig,
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
    "gate": GateConfig,
    "score": ScoreConfig,
    "select": SelectConfig,
    "relabel": RelabelConfig,
    "moderate": ModerateConfig,
}

S = TypeVar("S", bound=_Section)


def load_params(path: str | Path) -> dict[str, Any]:
    """Read ``params.yaml`` as a plain mapping, with a clear error when it is malformed."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"params file not found: {p}. Pass --params PATH or run from the repo root.")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{p} must be a mapping of stage names to sections, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_SECTIONS))
    if unknown:
        raise ConfigError(_unknown_message(p.name, "top level", unknown, list(_SECTIONS)))
    return data


def load_section(params: dict[str, Any] | str | Path, name: str) -> Any:
    """Load one section of ``params.yaml`` into its frozen config model.

    Args:
        params: The parsed params mapping, or the path of ``params.yaml``.
        name: A section name such as ``"train"``.

    Returns:
        The frozen config; missing keys take the documented defaults.

    Raises:
        ConfigError: On unknown keys (with a suggestion) or invalid values.
    """
    if name not in _SECTIONS:
        raise ConfigError(_unknown_message("params", "section", [name], list(_SECTIONS)))
    data = params if isinstance(params, dict) else load_params(params)
    raw = data.get(name) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"params section '{name}' must be a mapping, got {type(raw).__name__}")
    return parse_section(_SECTIONS[name], raw, name=name)


def parse_section(model: type[S], raw: dict[str, Any], *, name: str) -> S:
    """Validate ``raw`` against ``model``, turning pydantic errors into a fix-it message.

    Unknown keys are reported with a suggestion at any depth (``train.mean_teacher.emadecay``).
    """
    _check_keys(model, raw, where=name)
    try:
        return model(**raw)
    except ValidationError as exc:
        lines = [f"params section '{name}' is invalid:"]
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "(section)"
            lines.append(f"  - {name}.{loc}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("\n".join(lines)) from None


def _section_type(annotation: Any) -> type[_Section] | None:
    """The config section class of a field typed ``Section`` or ``Section | None``, else None."""
    candidates = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else ()
    for candidate in (annotation, *candidates):
        if isinstance(candidate, type) and issubclass(candidate, _Section):
            return candidate
    return None


def _mapping_section_type(annotation: Any) -> type[_Section] | None:
    """The section class of the values of a ``dict[str, Section]`` field, else None."""
    if typing.get_origin(annotation) is dict:
        value = typing.get_args(annotation)[1]
        if isinstance(value, type) and issubclass(value, _Section):
            return value
    return None


def _check_keys(model: type[BaseModel], raw: dict[str, Any], *, where: str) -> None:
    allowed = list(model.model_fields)
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ConfigError(_unknown_message(f"params section '{where}'", "key", unknown, allowed))
    for key, value in raw.items():
        annotation = model.model_fields[key].annotation
        values_type = _mapping_section_type(annotation)
        if values_type is not None and isinstance(value, dict):
            for name, item in value.items():
                if isinstance(item, dict):
                    _check_keys(values_type, item, where=f"{where}.{key}.{name}")
            continue
        sub = _section_type(annotation)
        if sub is not None and value is not None:
            if not isinstance(value, dict):
                raise ConfigError(f"params section '{where}.{key}' must be a mapping, got {type(value).__name__}")
            _check_keys(sub, value, where=f"{where}.{key}")


def _unknown_message(where: str, what: str, unknown: list[str], allowed: list[str]) -> str:
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        parts.append(f"'{key}'{hint}")
    return f"{where}: unknown {what} {', '.join(parts)}. Allowed: {', '.join(sorted(allowed))}. Remove or rename it."


class Settings(_Section):
    """Deployment settings, read from ``MODOPS_*`` variables or a TOML settings file.

    Attributes:
        state_dir: Folder for runtime state (Airflow home, MLflow database and artifacts).
        tracking_uri: MLflow tracking URI; defaults to SQLite inside ``state_dir``.
        artifact_root: Where MLflow stores artifacts; a local folder or ``s3://`` URI.
        s3_endpoint_url: Endpoint for S3-compatible storage (MinIO, moto); None = AWS.
        model_name: Registered model name in the MLflow registry.
        experiment: MLflow experiment name.
        dvc_remote: The DVC remote that pipeline outputs and the golden holdout are published
            to: a folder or ``s3://bucket/prefix``; defaults to ``dvc-remote`` in ``state_dir``.
        alert_webhook_url: Where on-call alerts (drift, failed DAG tasks) are posted as
            Slack-compatible JSON; None records them in the state folder only.
        review_db_url: The moderation service's review queue (SQLAlchemy URL, e.g.
            ``postgresql+psycopg://user@host/db``); defaults to SQLite in ``state_dir``.
    """

    state_dir: Path = Path(".modops")
    tracking_uri: str | None = None
    artifact_root: str | None = None
    s3_endpoint_url: str | None = None
    model_name: str = "modops-moderation"
    alert_webhook_url: str | None = None
    experiment: str = "modops"
    dvc_remote: str | None = None
    review_db_url: str | None = None

    @property
    def resolved_review_db_url(self) -> str:
        """The review queue's SQLAlchemy URL; defaults to SQLite inside ``state_dir``."""
        return self.review_db_url or f"sqlite:///{(self.state_dir / 'moderation' / 'review.db').resolve()}"

    @property
    def moderation_dir(self) -> Path:
        """The service's uploaded images (content-addressed) and its other local state."""
        return (self.state_dir / "moderation").resolve()

    @property
    def resolved_tracking_uri(self) -> str:
        if self.tracking_uri:
            return self.tracking_uri
        return f"sqlite:///{(self.state_dir / 'mlflow.db').resolve()}"

    @property
    def resolved_artifact_root(self) -> str:
        if self.artifact_root:
            return self.artifact_root
        return (self.state_dir / "mlartifacts").resolve().as_uri()

    @property
    def resolved_dvc_remote(self) -> str:
        return self.dvc_remote or str((self.state_dir / "dvc-remote").resolve())

    @property
    def dashboard_dir(self) -> Path:
        return (self.state_dir / "dashboard").resolve()

    @property
    def airflow_home(self) -> Path:
        return (self.state_dir / "airflow").resolve()

    @property
    def prediction_log_dir(self) -> Path:
        """The prediction log: one partition per scored day and model version."""
        return (self.state_dir / "predictions").resolve()

    @property
    def model_cache_dir(self) -> Path:
        """Registered model folders downloaded for scoring, one per version."""
        return (self.state_dir / "models").resolve()

    @property
    def monitoring_dir(self) -> Path:
        """Drift reports, verdicts and the Evidently workspace."""
        return (self.state_dir / "monitoring").resolve()


#: Environment that keeps the tools modops drives offline and quiet (no network here, and
#: no telemetry in production either). Used for our own process and for subprocesses.
OFFLINE_ENV: dict[str, str] = {
    "MLFLOW_DISABLE_TELEMETRY": "true",  # mlflow/environment_variables.py
    "DO_NOT_TRACK": "true",  # honoured by mlflow/telemetry/utils.py and other tools
    "DVC_NO_ANALYTICS": "true",  # dvc/env.py, dvc/analytics.py
    "GX_ANALYTICS_ENABLED": "False",  # great_expectations (inert in 1.24, states intent)
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}

_ENV_PREFIX = "MODOPS_"


def load_settings(env: dict[str, str] | None = None, *, settings_file: str | Path | None = None) -> Settings:
    """Build :class:`Settings`: file values first, then ``MODOPS_*`` environment variables.

    Args:
        env: Environment to read (defaults to ``os.environ``).
        settings_file: TOML file with a ``[modops]`` table; defaults to ``$MODOPS_SETTINGS_FILE``
            or ``modops.toml`` in the working directory when that exists.
    """
    env = dict(os.environ if env is None else env)
    values: dict[str, Any] = {}
    path = settings_file or env.get(f"{_ENV_PREFIX}SETTINGS_FILE")
    if path is None and Path("modops.toml").is_file():
        path = "modops.toml"
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"settings file not found: {p} (from MODOPS_SETTINGS_FILE or argument)")
        try:
            values.update(tomllib.loads(p.read_text()).get("modops", {}))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"settings file {p} is not valid TOML: {exc}") from exc
    for field in Settings.model_fields:
        key = f"{_ENV_PREFIX}{field.upper()}"
        if env.get(key):
            values[field] = env[key]
    return parse_section(Settings, values, name="settings")
