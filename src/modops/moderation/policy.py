"""The policy pipeline: what happens to one upload, step by step, each step leaving its reasons.

Steps run in the order ``moderate.steps`` names them (a registry, :data:`STEPS`):

- ``profile``: an upload from a closed profile is discarded;
- ``banks``: a perceptual-hash match in the known-spam bank discards the upload (a re-upload of
  removed spam); a match in the allow bank allows it (a restored false flag is not flagged again);
- ``stage1``: the first model at high-recall thresholds (``moderate.stage1``); only the
  categories it flags go on;
- ``stage2``: the precision stage: the predictor's final scores (a cascade's combined
  probabilities, where the cascade's second model re-scores what its first stage routed) against
  the model's operating thresholds; a score from ``moderate.block_at`` blocks;
- ``ocr_rules``: on what stage 1 flagged, OCR reads the text and the rules (phone numbers, URLs,
  handles, support phrasing) can flag promotional spam on their own;
- ``people``: a people signal where a detector is configured (:data:`PEOPLE_SIGNALS`; the
  documented seam: none ships, because no detector weights can be bundled).

Context: every threshold is multiplied by the business category's factor (``moderate.context``;
below 1 is stricter). The outcome: ``discarded`` or ``allowed`` when a step ends the pipeline,
else ``blocked`` if a score reached ``block_at``, ``pending_review`` if anything flagged (hidden
until a reviewer decides), ``allowed`` otherwise.

Every signal is computed lazily and at most once (:class:`Case`), so an upload the bank discards
never costs a forward pass, and OCR (about a second per image on 2 cores) runs only on what stage
1 flagged. Nothing here does I/O: the service injects the signals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, Literal, Protocol

from modops.config import ModerateConfig

__all__ = [
    "Decision",
    "DecisionName",
    "ModelScores",
    "BankHit",
    "Reason",
    "Case",
    "STEPS",
    "PEOPLE_SIGNALS",
    "PeopleSignal",
    "decide",
    "check_steps",
    "scores_dict",
]

DecisionName = Literal["allowed", "pending_review", "blocked", "discarded"]


@dataclass(frozen=True)
class Reason:
    """One step's finding, as the API returns it and the review page shows it.

    Attributes:
        step: The policy step (``banks``, ``stage1``, ``stage2``, ``ocr_rules``, ...).
        code: What it found (``known_spam``, ``flagged``, ``cleared``, ``text_rule``, ...).
        detail: A sentence for people.
        category: The violating category concerned, if any.
        value: The score, distance or fraction it compared, if any.
        threshold: What ``value`` was compared with, if anything.
    """

    step: str
    code: str
    detail: str
    category: str | None = None
    value: float | None = None
    threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class ModelScores:
    """The model's view of one upload.

    Attributes:
        stage1: Per-category probabilities of the first network (the single model's, or the
            cascade's stage 1), in [0, 1].
        final: The predictor's final per-category probabilities (a cascade's combination).
        thresholds: The model's operating (precision-tuned) thresholds per category.
        version: The registered model version that scored it.
        cascade: True when the model is a cascade (stage 2 is a second network).
    """

    stage1: dict[str, float]
    final: dict[str, float]
    thresholds: dict[str, float]
    version: str
    cascade: bool = False


@dataclass(frozen=True)
class BankHit:
    """The nearest bank entry within the distance threshold: its key and Hamming distance in bits."""

    key: str
    distance: int


@dataclass(frozen=True)
class Decision:
    """The policy's outcome for one upload."""

    decision: DecisionName
    reasons: tuple[Reason, ...]
    scores: dict[str, float] = field(default_factory=dict)
    model_version: str | None = None

    def reasons_json(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.reasons]


class PeopleSignal(Protocol):
    """The seam for a people detector: the probability, in [0, 1], that an image shows people.

    Yelp routes images with people to stricter inappropriate-content checks. A detector (e.g. a
    torchvision detection model from a local weights file) registers here by name; the
    ``people`` step then flags ``categories`` when the probability reaches ``threshold`` and the
    model's own score for them reaches half their stage-2 threshold.
    """

    categories: tuple[str, ...]
    threshold: float

    def __call__(self, image: Any) -> float: ...  # noqa: ANN401 - a PIL image


#: People detectors by name (``moderate.people``). ``none``: no detector (nothing bundles weights).
PEOPLE_SIGNALS: dict[str, Callable[[], PeopleSignal | None]] = {"none": lambda: None}


class Case:
    """One upload as the policy sees it: its context plus lazily computed signals.

    Args:
        uploader_id: Who uploaded it.
        business_category: The business it was uploaded to (context thresholds).
        closed: ``() -> bool``: is the uploader's profile closed.
        spam_match / allow_match: ``() -> BankHit | None``: nearest entry of each bank.
        scores: ``() -> ModelScores``: the model's scores.
        text: ``() -> (lines, coverage)``: OCR text lines and the fraction of the image area
            covered by text; lines are objects with ``text`` and ``score``.
        rules: ``(lines) -> verdict`` with ``flag`` and ``hits`` (see :mod:`modops.moderation.rules`).
        people: A :class:`PeopleSignal` applied to ``image`` or None.
    """

    def __init__(
        self,
        uploader_id: str,
        business_category: str,
        *,
        closed: Callable[[], bool],
        spam_match: Callable[[], BankHit | None],
        allow_match: Callable[[], BankHit | None],
        scores: Callable[[], ModelScores],
        text: Callable[[], tuple[list, float]],
        rules: Callable[[list], Any],
        image: Any = None,  # noqa: ANN401 - a PIL image, for the people signal
        people: PeopleSignal | None = None,
    ) -> None:
        self.uploader_id, self.business_category = uploader_id, business_category
        self._closed, self._spam, self._allow = closed, spam_match, allow_match
        self._scores, self._text, self._rules = scores, text, rules
        self.image, self.people = image, people

    @cached_property
    def closed(self) -> bool:
        return self._closed()

    @cached_property
    def spam_match(self) -> BankHit | None:
        return self._spam()

    @cached_property
    def allow_match(self) -> BankHit | None:
        return self._allow()

    @cached_property
    def scores(self) -> ModelScores:
        return self._scores()

    @cached_property
    def text(self) -> tuple[list, float]:
        return self._text()

    def rules(self, lines: list) -> Any:  # noqa: ANN401 - a RulesVerdict
        return self._rules(lines)


@dataclass
class _State:
    """What the steps found so far."""

    reasons: list[Reason] = field(default_factory=list)
    terminal: DecisionName | None = None
    flagged: dict[str, float] = field(default_factory=dict)  # stage 1's categories -> stage-1 score
    violations: dict[str, float] = field(default_factory=dict)  # category -> score that decided it
    block: bool = False


Step = Callable[[Case, ModerateConfig, _State], None]


def _profile(case: Case, cfg: ModerateConfig, state: _State) -> None:
    if case.closed:
        state.reasons.append(Reason("profile", "profile_closed", f"uploader {case.uploader_id!r}'s profile is closed"))
        state.terminal = "discarded"


def _banks(case: Case, cfg: ModerateConfig, state: _State) -> None:
    limit = float(cfg.banks.max_distance)
    if (hit := case.spam_match) is not None:
        detail = f"matches removed spam {hit.key} ({hit.distance} bits apart): a re-upload"
        state.reasons.append(Reason("banks", "known_spam", detail, value=hit.distance, threshold=limit))
        state.terminal = "discarded"
    elif (hit := case.allow_match) is not None:
        detail = f"matches allow-listed image {hit.key} ({hit.distance} bits apart): restored by a reviewer before"
        state.reasons.append(Reason("banks", "allow_listed", detail, value=hit.distance, threshold=limit))
        state.terminal = "allowed"


def _context_reason(case: Case, cfg: ModerateConfig, state: _State) -> float:
    factor = cfg.context_factor(case.business_category)
    if factor != 1.0 and not any(r.code == "context" for r in state.reasons):
        detail = f"business category {case.business_category!r}: thresholds x{factor:g}"
        state.reasons.append(Reason("context", "context", detail, value=factor))
    return factor


def _stage1(case: Case, cfg: ModerateConfig, state: _State) -> None:
    factor = _context_reason(case, cfg, state)
    scores = case.scores.stage1
    for category, score in scores.items():
        threshold = min(1.0, cfg.stage1_threshold(category) * factor)
        if score >= threshold:
            state.flagged[category] = score
            detail = f"stage 1 flags {category}: {score:.3f} >= {threshold:.3f}"
            state.reasons.append(Reason("stage1", "flagged", detail, category, score, threshold))
    if not state.flagged and scores:
        top = max(scores, key=scores.__getitem__)
        detail = f"below every stage-1 threshold (highest: {top} {scores[top]:.3f})"
        state.reasons.append(Reason("stage1", "cleared", detail, top, scores[top]))


def _stage2(case: Case, cfg: ModerateConfig, state: _State) -> None:
    if not state.flagged:
        return
    factor = _context_reason(case, cfg, state)
    model = case.scores
    which = "the cascade's combined score" if model.cascade else "the model's score"
    for category in state.flagged:
        score = model.final.get(category, 0.0)
        threshold = min(1.0, model.thresholds.get(category, 0.5) * factor)
        if score >= threshold:
            state.violations[category] = score
            blocked = score >= cfg.block_at
            state.block |= blocked
            code = "blocked" if blocked else "flagged"
            detail = f"stage 2 confirms {category}: {which} {score:.3f} >= {threshold:.3f}"
            state.reasons.append(Reason("stage2", code, detail, category, score, threshold))
        else:
            detail = f"stage 2 clears {category}: {which} {score:.3f} < {threshold:.3f}"
            state.reasons.append(Reason("stage2", "cleared", detail, category, score, threshold))


def _ocr_rules(case: Case, cfg: ModerateConfig, state: _State) -> None:
    if not state.flagged or cfg.ocr.engine == "none":
        return
    lines, coverage = case.text
    verdict = case.rules(lines)
    if not verdict.flag:
        return
    category = "promo_spam" if "promo_spam" in case.scores.final else next(iter(case.scores.final), None)
    for hit in verdict.hits:
        detail = f"text rule {hit.rule!r} matched {hit.match!r} (text covers {coverage:.1%} of the image)"
        state.reasons.append(Reason("ocr_rules", "text_rule", detail, category, round(coverage, 4)))
    if category is not None:
        state.violations.setdefault(category, case.scores.final.get(category, 0.0))


def _people(case: Case, cfg: ModerateConfig, state: _State) -> None:
    signal = case.people
    if signal is None:
        return
    p = float(signal(case.image))
    if p < signal.threshold:
        return
    factor = cfg.context_factor(case.business_category)
    for category in signal.categories:
        score = case.scores.final.get(category, 0.0)
        threshold = case.scores.thresholds.get(category, 0.5) * factor / 2
        if score >= threshold:
            state.violations.setdefault(category, score)
            detail = f"people in the image ({p:.2f}) and {category} {score:.3f} >= {threshold:.3f}"
            state.reasons.append(Reason("people", "flagged", detail, category, score, threshold))


#: The policy's steps by name (``moderate.steps`` orders them).
STEPS: dict[str, Step] = {
    "profile": _profile,
    "banks": _banks,
    "stage1": _stage1,
    "stage2": _stage2,
    "ocr_rules": _ocr_rules,
    "people": _people,
}


def check_steps(cfg: ModerateConfig) -> None:
    """Refuse unknown step or people-signal names, and a stage 2 without a stage 1 before it."""
    unknown = [s for s in cfg.steps if s not in STEPS]
    if unknown:
        raise ValueError(f"moderate.steps: unknown step(s) {unknown}; known: {sorted(STEPS)}")
    if cfg.people not in PEOPLE_SIGNALS:
        raise ValueError(f"moderate.people: unknown people signal {cfg.people!r}; known: {sorted(PEOPLE_SIGNALS)}")
    for later in ("stage2", "ocr_rules"):
        if later in cfg.steps and "stage1" not in cfg.steps[: cfg.steps.index(later)]:
            raise ValueError(f"moderate.steps: {later!r} acts on what stage 1 flags: put 'stage1' before it")


def _scores_of(case: Case, state: _State) -> tuple[dict[str, float], str | None]:
    """The scores to report: only when the model ran (a bank or profile decision skips it)."""
    if "scores" not in case.__dict__:
        return {}, None
    return dict(case.scores.final), case.scores.version


def decide(case: Case, cfg: ModerateConfig) -> Decision:
    """Run the configured steps on ``case``; the decision with every step's reasons."""
    check_steps(cfg)
    state = _State()
    for name in cfg.steps:
        STEPS[name](case, cfg, state)
        if state.terminal is not None:
            break
    scores, version = _scores_of(case, state)
    if state.terminal is not None:
        outcome: DecisionName = state.terminal
    elif state.block:
        outcome = "blocked"
    elif state.violations:
        outcome = "pending_review"
    else:
        outcome = "allowed"
    return Decision(outcome, tuple(state.reasons), scores, version)


def scores_dict(classes: tuple[str, ...], probs: Mapping[int, float] | Any) -> dict[str, float]:  # noqa: ANN401
    """Per-category scores from a probability row [C] (the negative class, index 0, left out)."""
    return {c: round(float(probs[i]), 6) for i, c in enumerate(classes) if i > 0}
