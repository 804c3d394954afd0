"""The moderation service's core: an upload in, a decision out; reviewers' actions into labels and banks.

:class:`ModerationService` ties the pieces together and is what the HTTP API
(:mod:`modops.moderation.app`) and the tests call:

- :meth:`ModerationService.submit`: safe decode (the same limits as ingest and the model),
  content-addressed storage of the bytes, the policy (:mod:`modops.moderation.policy`) with the
  hash banks, the model, OCR and the rules as its signals, and a row in the review store;
- :meth:`ModerationService.review` / :meth:`close_profile`: a reviewer's action on the store (one
  transaction with its audit row), then its consequences: a label event (``source: reviewer``) in
  the label store for the next relabel round, the image copied to ``ingest.reviewed_source`` so
  the pool holds it, and bank entries (removed spam -> known-spam bank; restored false flag ->
  allow bank).

The model comes from a :class:`ModelSource`: :class:`FixedModel` in tests, and in the service
:class:`RegistryModel`, which asks the MLflow registry at most every ``reload_seconds`` whether
``champion`` moved and swaps the predictor when it did.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from modops.config import LabelsConfig, ModerateConfig
from modops.data.images import DecodeLimits, QuarantineError, open_rgb_with_properties
from modops.models.predictor import Predictor
from modops.moderation.hashbank import HashBank, bank_codes, perceptual_hash
from modops.moderation.policy import PEOPLE_SIGNALS, BankHit, Case, Decision, ModelScores, check_steps, decide
from modops.moderation.store import Reviewer, ReviewStore, UploadRecord

__all__ = [
    "ModelSource",
    "FixedModel",
    "RegistryModel",
    "UploadRejected",
    "ModerationService",
    "model_scores",
]

log = logging.getLogger(__name__)

#: Prefix of the label-store batches the service's review decisions are appended as.
SERVICE_BATCH = "service"

# The HTTP status each quarantine reason maps to: too big is 413, not an image we decode is 415,
# and an image that is broken or too small is 422. Never a 500.
_STATUS = {
    "file_too_large": 413,
    "over_pixel_cap": 413,
    "decompression_bomb": 413,
    "not_an_image": 415,
    "unsupported_format": 415,
    "empty_file": 422,
}
_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif"}


class UploadRejected(ValueError):
    """An upload that cannot be moderated: ``status`` (4xx), a stable ``reason`` and a ``detail``."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.status, self.reason, self.detail = status, reason, detail


class ModelSource(Protocol):
    """Where the service's model comes from."""

    def current(self) -> tuple[str, Predictor]:
        """``(version, predictor)`` to score with now."""
        ...


@dataclass
class FixedModel:
    """One predictor that never changes (tests, a pinned version)."""

    version: str
    predictor: Predictor

    def current(self) -> tuple[str, Predictor]:
        return self.version, self.predictor


class RegistryModel:
    """The registered model ``name``: ``champion`` (followed as the alias moves), ``latest`` or a version.

    The registry is asked at most every ``reload_seconds``; a registry that cannot be read keeps
    the model being served (logged), so an MLflow outage does not stop moderation. Model folders
    are downloaded once per version into ``cache_dir``.
    """

    def __init__(self, name: str, *, which: str, cache_dir: Path, reload_seconds: float) -> None:
        self.name, self.which, self.cache_dir, self.reload_seconds = name, which, cache_dir, reload_seconds
        self._lock = threading.Lock()
        self._loaded: tuple[str, Predictor] | None = None
        self._checked = 0.0

    def _resolve_version(self) -> str:
        from modops.registry.errors import ModelNotRegistered
        from modops.registry.promotion import champion_version, latest_version

        if self.which.isdigit():
            return self.which
        if self.which == "latest":
            version = latest_version(self.name)
            if version is None:
                raise ModelNotRegistered(f"registered model '{self.name}' has no versions yet: run `make demo`")
            return str(version)
        champ = champion_version(self.name)
        if champ is None:
            raise ModelNotRegistered(
                f"registered model '{self.name}' has no champion: `modops champion` says why; promote a version "
                "(`modops promote N --reason ...`) or serve one explicitly (`modops serve --model latest|N`)"
            )
        return str(champ.version)

    def _load(self, version: str) -> Predictor:
        from modops.models.predictor import load_predictor
        from modops.registry.promotion import cached_model_dir

        return load_predictor(cached_model_dir(self.name, version, cache_dir=self.cache_dir))

    def current(self) -> tuple[str, Predictor]:
        with self._lock:
            due = time.monotonic() - self._checked >= self.reload_seconds
            if self._loaded is None or due:
                self._refresh()
            assert self._loaded is not None
            return self._loaded

    def _refresh(self) -> None:
        try:
            version = self._resolve_version()
            if self._loaded is None or self._loaded[0] != version:
                self._loaded = (version, self._load(version))
                log.info("serving %s version %s", self.name, version)
        except Exception:
            if self._loaded is None:
                raise
            log.exception("cannot read the registry; still serving version %s", self._loaded[0])
        self._checked = time.monotonic()


def model_scores(predictor: Predictor, image: Any, *, version: str) -> ModelScores:  # noqa: ANN401 - PIL image
    """Stage-1 and final per-category scores of one decoded RGB image.

    For a single model both are its probabilities; for a cascade, ``stage1`` is its first
    network's and ``final`` the combination (stage 2 re-scores what stage 1 routed to it).
    """
    spec = predictor.spec
    x = predictor.preset().tensor(image)[None]  # uint8 [1, 3, S, S]
    final = predictor.predict(x).probs[0]
    if spec.kind == "cascade":
        first = predictor.members[0].probs(x, spec=spec, runtime=predictor.runtime)[0].cpu().numpy()
    else:
        first = final

    def named(row: np.ndarray) -> dict[str, float]:
        return {c: round(float(row[i]), 6) for i, c in enumerate(spec.classes) if i > 0}

    thresholds = {c: float(spec.thresholds.get(c, 0.5)) for c in spec.classes[1:]}
    return ModelScores(named(first), named(final), thresholds, version, spec.kind == "cascade")


class ModerationService:
    """Moderation of uploads and the consequences of reviewers' actions.

    Args:
        cfg: ``params.yaml: moderate``.
        store: The review store (queue, reviewers, audit, bank entries).
        model: Where the model comes from.
        images_dir: Where uploaded bytes are kept, content-addressed (``ab/abcdef....jpg``).
        labels: The label space (``params.yaml: labels``).
        labels_dir: The label store that reviewers' decisions append to; None keeps them only in
            the review store's audit trail.
        reviewed_dir: ``ingest.reviewed_source``: decided images are copied there for the next
            ingest; None leaves them out of the pool.
        ocr: An OCR engine (``read(image) -> lines``) or None for ``moderate.ocr.engine``.
        limits: Decode limits for uploads; default: the model's own (its training data's).
    """

    def __init__(
        self,
        cfg: ModerateConfig,
        store: ReviewStore,
        *,
        model: ModelSource,
        images_dir: Path,
        labels: LabelsConfig,
        labels_dir: Path | None = None,
        reviewed_dir: str | None = None,
        ocr: Any = None,  # noqa: ANN401 - an OcrEngine
        limits: DecodeLimits | None = None,
    ) -> None:
        check_steps(cfg)
        self.cfg, self.store, self.model, self.labels = cfg, store, model, labels
        self.images_dir, self.labels_dir, self.reviewed_dir = Path(images_dir), labels_dir, reviewed_dir
        self._limits, self._ocr = limits, ocr
        self._people = PEOPLE_SIGNALS[cfg.people]()
        self._model_lock = threading.Lock()  # 2 cores: one forward pass at a time keeps latency flat
        self._labels_lock = threading.Lock()
        self.banks = {name: self._load_bank(name) for name in ("spam", "allow")}

    # -- uploads ---------------------------------------------------------------------------------

    @property
    def limits(self) -> DecodeLimits:
        """The decode limits every upload is held to."""
        if self._limits is not None:
            return self._limits
        return self.model.current()[1].spec.decode_limits

    @property
    def hash_scheme(self) -> str:
        """What makes the banks' codes, ``"method/hash_size"``; stored beside each code."""
        return f"{self.cfg.banks.method}/{self.cfg.banks.hash_size}"

    def _load_bank(self, name: str) -> HashBank:
        self._rehash_foreign(name)
        entries = self.store.bank_entries(name, scheme=self.hash_scheme)
        return HashBank.from_entries(entries, bits=self.cfg.banks.hash_size**2)

    def _rehash_foreign(self, name: str) -> None:
        """Re-hash, from their upload's picture, the entries a former hash scheme (or an unrecorded one) made.

        Their codes never compare with the current scheme's. An entry whose picture is gone stays
        out of the in-memory bank, with a warning naming it, until it is banked again.
        """
        foreign = self.store.foreign_bank_entries(name, scheme=self.hash_scheme)
        missing = []
        for key, upload_id, _scheme in foreign:
            code = self._codes_of(upload_id)
            if code is None:
                missing.append(key)
                continue
            self.store.rehash_bank_entry(name, key, code=code.tobytes(), scheme=self.hash_scheme)
        if foreign:
            log.warning(
                "%s bank: re-hashed %d of %d entries made by another hash scheme than %s%s",
                name,
                len(foreign) - len(missing),
                len(foreign),
                self.hash_scheme,
                f"; left out (their pictures are gone, ban them again): {missing}" if missing else "",
            )

    def _codes_of(self, upload_id: str | None) -> np.ndarray | None:
        record = self.store.get_upload(upload_id) if upload_id is not None else None
        if record is None:
            return None
        try:
            return self._bank_codes(record)
        except (FileNotFoundError, UploadRejected) as exc:
            log.warning("cannot re-hash the bank entry of upload %s: %s", upload_id, exc)
            return None

    def _bank_codes(self, record: UploadRecord) -> np.ndarray:
        """An upload's bank codes: its hash plus its light crops', so a cropped re-upload still matches."""
        image, _ = self.decode(self.image_file(record).read_bytes())
        return bank_codes(image, method=self.cfg.banks.method, hash_size=self.cfg.banks.hash_size)

    def _hash(self, image: Any) -> np.ndarray:  # noqa: ANN401
        return perceptual_hash(image, method=self.cfg.banks.method, hash_size=self.cfg.banks.hash_size)

    def decode(self, data: bytes) -> tuple[Any, str]:
        """``(RGB image, format)`` of upload bytes, or :class:`UploadRejected` with a 4xx status."""
        limits = self.limits
        if len(data) > limits.max_bytes:
            raise UploadRejected(413, "file_too_large", f"{len(data):,} bytes > the {limits.max_bytes:,}-byte limit")
        if not data:
            raise UploadRejected(422, "empty_file", "the image part is empty")
        try:
            image, props = open_rgb_with_properties(data, limits=limits, min_side=8)
        except QuarantineError as exc:
            raise UploadRejected(_STATUS.get(exc.reason, 422), exc.reason, exc.detail) from None
        return image, props.format

    def _keep(self, data: bytes, *, sha: str, fmt: str) -> str:
        rel = f"{sha[:2]}/{sha}{_EXTENSIONS.get(fmt.upper(), '.img')}"
        path = self.images_dir / rel
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return rel

    def _case(self, image: Any, *, uploader_id: str, business_category: str, code: np.ndarray) -> Case:  # noqa: ANN401
        def match(bank: str) -> Callable[[], BankHit | None]:
            def nearest() -> BankHit | None:
                found = self.banks[bank].match(code, max_distance=self.cfg.banks.max_distance)
                return BankHit(found[0].key, int(found[0].distance)) if found else None

            return nearest

        def scores() -> ModelScores:
            version, predictor = self.model.current()
            with self._model_lock:
                return model_scores(predictor, image, version=version)

        return Case(
            uploader_id,
            business_category,
            closed=lambda: self.store.profile_closed(uploader_id),
            spam_match=match("spam"),
            allow_match=match("allow"),
            scores=scores,
            text=lambda: self._read_text(image),
            rules=self._rules,
            image=image,
            people=self._people,
        )

    def _ocr_engine(self) -> Any:  # noqa: ANN401
        if self._ocr is None:
            from modops.moderation.ocr import create_ocr

            cfg = self.cfg.ocr
            self._ocr = create_ocr(cfg.engine, max_side=cfg.max_side, threads=cfg.threads)
        return self._ocr

    def _read_text(self, image: Any) -> tuple[list, float]:  # noqa: ANN401
        from modops.moderation.ocr import text_coverage

        lines = self._ocr_engine().read(image)
        return lines, text_coverage(lines, image.size)

    def _rules(self, lines: list) -> Any:  # noqa: ANN401
        from modops.moderation.rules import evaluate_rules

        return evaluate_rules(lines, rules=self.cfg.ocr.rules, min_confidence=self.cfg.ocr.min_confidence)

    def moderate(self, image: Any, *, uploader_id: str, business_category: str) -> Decision:  # noqa: ANN401
        """The policy's decision on a decoded image (no storage)."""
        code = self._hash(image)
        return decide(
            self._case(image, uploader_id=uploader_id, business_category=business_category, code=code), self.cfg
        )

    def submit(self, data: bytes, *, uploader_id: str, business_category: str) -> UploadRecord:
        """Moderate upload bytes and record them: the stored record with the decision and its reasons.

        Raises:
            UploadRejected: The bytes are not an image the service decodes (4xx status, reason).
        """
        image, fmt = self.decode(data)
        sha = hashlib.sha256(data).hexdigest()
        decision = self.moderate(image, uploader_id=uploader_id, business_category=business_category)
        rel = self._keep(data, sha=sha, fmt=fmt)
        return self.store.add_upload(
            uploader_id=uploader_id,
            business_category=business_category,
            sha256=sha,
            image_path=rel,
            decision=decision.decision,
            reasons=decision.reasons_json(),
            scores=decision.scores,
            model_version=decision.model_version,
        )

    def image_file(self, record: UploadRecord) -> Path:
        """The stored bytes of an upload (never outside ``images_dir``)."""
        root = self.images_dir.resolve()
        path = (root / record.image_path).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise FileNotFoundError(f"the image of upload {record.id} is missing from {root}")
        return path

    # -- reviewers -------------------------------------------------------------------------------

    def review(
        self, upload_id: str, *, action: str, reviewer: Reviewer, label: str | None = None, note: str = ""
    ) -> UploadRecord:
        """Apply a reviewer's action; then its label, pool copy and bank entry.

        ``approve`` and ``restore`` label the image ``labels.negative``; ``remove`` labels it
        ``label`` or, by default, the category the policy flagged with the highest score.

        Raises:
            ValueError: ``label`` is not a label of ``params.yaml: labels`` (or is the negative
                label on a removal).
            UnknownUpload / InvalidTransition: from the store.
        """
        before = self.store.get_upload(upload_id)
        chosen = self._label_for(before, action=action, label=label) if before is not None else None
        record = self.store.apply_review(upload_id, action=action, reviewer=reviewer, note=note)
        self._consequences(record, action=action, label=chosen, reviewer=reviewer)
        return record

    def _label_for(self, record: UploadRecord, *, action: str, label: str | None) -> str:
        if label is not None and label not in self.labels.all:
            raise ValueError(f"unknown label {label!r}: use one of {list(self.labels.all)}")
        if action != "remove":
            return self.labels.negative
        if label == self.labels.negative:
            raise ValueError(f"a removed upload violates a category: use one of {list(self.labels.categories)}")
        return label or _flagged_category(record, categories=self.labels.categories)

    def _consequences(self, record: UploadRecord, *, action: str, label: str | None, reviewer: Reviewer) -> None:
        code = self._bank_codes(record) if action in ("remove", "restore") else None
        if action == "remove":
            self._bank_put("spam", record, code=code, reviewer=reviewer)
            self._bank_drop("allow", record.id)
        elif action == "restore":
            self._bank_put("allow", record, code=code, reviewer=reviewer)
            self._bank_drop("spam", record.id)
        if label is not None:
            self._append_label(record, label=label, reviewer=reviewer)
            self._admit(record)

    def _bank_put(self, bank: str, record: UploadRecord, *, code: np.ndarray, reviewer: Reviewer) -> None:
        self.store.add_bank_entry(
            bank,
            key=record.id,
            code=code.tobytes(),
            scheme=self.hash_scheme,
            upload_id=record.id,
            added_by=reviewer.name,
        )
        self.banks[bank].add(record.id, code)

    def _bank_drop(self, bank: str, key: str) -> None:
        self.store.remove_bank_entry(bank, key)
        self.banks[bank].remove(key)

    def _append_label(self, record: UploadRecord, *, label: str, reviewer: Reviewer) -> None:
        if self.labels_dir is None:
            return
        from modops.data.labelstore import LabelStore, events_from_frame

        with self._labels_lock:
            store = LabelStore(self.labels_dir)
            events = events_from_frame(
                pd.DataFrame({"image_id": [record.sha256], "label": [label]}),
                source="reviewer",
                who=reviewer.name,
                when=pd.Timestamp.now(tz="UTC"),
                round=_next_round(store),
            )
            store.append(events, source_name=SERVICE_BATCH, allowed_labels=self.labels.all)

    def _admit(self, record: UploadRecord) -> None:
        if self.reviewed_dir is None:
            return
        from modops.data.reviewed import admit_reviewed

        summary = admit_reviewed(
            [record.sha256],
            [record.image_path],
            source=str(self.images_dir),
            dest=self.reviewed_dir,
            max_bytes=self.limits.max_bytes,
        )
        if summary.failed:
            log.warning("could not add upload %s to the pool: %s", record.id, summary.failed)

    def close_profile(self, uploader_id: str, *, reviewer: Reviewer, note: str = "") -> list[UploadRecord]:
        """Close a profile: every upload of it is removed and leaves the queue; later uploads are discarded.

        No labels and no bank entries: the content goes because of its uploader, not because each
        image was judged.
        """
        return self.store.close_profile(uploader_id, reviewer=reviewer, note=note)


def _flagged_category(record: UploadRecord, *, categories: tuple[str, ...]) -> str:
    """The category the policy flagged with the highest score, else the highest-scoring category."""
    flagged = [
        (r.get("value") or 0.0, r["category"])
        for r in record.reasons
        if r.get("category") in categories and r.get("code") in ("flagged", "blocked", "text_rule")
    ]
    if flagged:
        return max(flagged)[1]
    scored = {c: s for c, s in record.scores.items() if c in categories}
    return max(scored, key=scored.__getitem__) if scored else categories[0]


def _next_round(store: Any) -> int:  # noqa: ANN401 - a LabelStore
    """The round the service's decisions belong to: the one after the last round outside the service.

    Every decision in the service between two relabel rounds shares one round number, so the next
    retraining sees them as one round (the service's own batches are left out of the maximum).
    """
    import pyarrow.parquet as pq

    rounds = [
        pq.read_table(b.path, columns=["round"]).column("round").to_numpy()
        for b in store.batches()
        if not b.name.startswith(SERVICE_BATCH)
    ]
    latest = max((int(r.max()) for r in rounds if len(r)), default=0)
    return latest + 1
