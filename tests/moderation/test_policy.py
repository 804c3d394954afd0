"""The policy pipeline on hand-made signals: each step's reasons, the order, lazy signals, context."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from modops.config import ModerateConfig, parse_section
from modops.moderation.policy import BankHit, Case, ModelScores, check_steps, decide


@dataclass(frozen=True)
class Hit:
    rule: str
    match: str


@dataclass(frozen=True)
class Verdict:
    flag: bool
    hits: tuple[Hit, ...] = ()


class Calls:
    """Counts each signal's computations (signals are lazy and computed at most once)."""

    def __init__(self) -> None:
        self.n: dict[str, int] = {}

    def __call__(self, name: str, value):  # noqa: ANN001, ANN204
        def fn(*_args):  # noqa: ANN002, ANN202
            self.n[name] = self.n.get(name, 0) + 1
            return value

        return fn


def scores(stage1: dict, final: dict | None = None, *, thresholds: dict | None = None) -> ModelScores:
    final = final or stage1
    return ModelScores(stage1, final, thresholds or {c: 0.5 for c in final}, version="3")


def case(
    calls: Calls,
    *,
    model: ModelScores | None = None,
    spam: BankHit | None = None,
    allow: BankHit | None = None,
    closed: bool = False,
    verdict: Verdict = Verdict(False),
    category: str = "restaurants",
) -> Case:
    model = model or scores({"promo_spam": 0.01, "weapon": 0.02})
    return Case(
        "u1",
        category,
        closed=calls("closed", closed),
        spam_match=calls("spam", spam),
        allow_match=calls("allow", allow),
        scores=calls("scores", model),
        text=calls("text", ([], 0.0)),
        rules=calls("rules", verdict),
    )


CFG = ModerateConfig()


def test_clean_upload_is_allowed_without_ocr() -> None:
    calls = Calls()
    d = decide(case(calls), CFG)
    assert d.decision == "allowed"
    assert [r.code for r in d.reasons] == ["cleared"]
    assert d.scores == {"promo_spam": 0.01, "weapon": 0.02} and d.model_version == "3"
    assert "text" not in calls.n, "OCR runs only on what stage 1 flags"
    assert calls.n["scores"] == 1, "the model is asked once"


def test_known_spam_is_discarded_before_the_model_runs() -> None:
    calls = Calls()
    d = decide(case(calls, spam=BankHit("up-7", 12)), CFG)
    assert d.decision == "discarded"
    assert d.reasons[0].code == "known_spam" and d.reasons[0].value == 12
    assert "up-7" in d.reasons[0].detail
    assert "scores" not in calls.n and d.scores == {} and d.model_version is None


def test_allow_bank_allows_a_restored_image_even_when_the_model_flags_it() -> None:
    d = decide(case(Calls(), allow=BankHit("up-9", 3), model=scores({"promo_spam": 0.99})), CFG)
    assert d.decision == "allowed" and d.reasons[0].code == "allow_listed"


def test_closed_profile_discards() -> None:
    calls = Calls()
    d = decide(case(calls, closed=True, spam=BankHit("x", 0)), CFG)
    assert d.decision == "discarded" and d.reasons[0].code == "profile_closed"
    assert "spam" not in calls.n


def test_stage1_flags_stage2_confirms_pending_review() -> None:
    model = scores({"promo_spam": 0.3, "weapon": 0.05}, {"promo_spam": 0.7, "weapon": 0.01})
    d = decide(case(Calls(), model=model), CFG)
    assert d.decision == "pending_review"
    codes = [(r.step, r.code, r.category) for r in d.reasons]
    assert ("stage1", "flagged", "promo_spam") in codes
    assert ("stage2", "flagged", "promo_spam") in codes
    assert not any(c == "weapon" for _, _, c in codes), "weapon 0.05 is below stage 1's 0.1"


def test_stage2_clears_a_stage1_flag() -> None:
    model = scores({"promo_spam": 0.3}, {"promo_spam": 0.2})
    d = decide(case(Calls(), model=model), CFG)
    assert d.decision == "allowed"
    assert [(r.step, r.code) for r in d.reasons] == [("stage1", "flagged"), ("stage2", "cleared")]


def test_block_at_blocks() -> None:
    model = scores({"weapon": 0.999})
    assert decide(case(Calls(), model=model), CFG).decision == "blocked"
    assert decide(case(Calls(), model=model), CFG.model_copy(update={"block_at": 1.1})).decision == "pending_review"


def test_ocr_rules_flag_what_the_model_clears() -> None:
    model = scores({"promo_spam": 0.2}, {"promo_spam": 0.2})
    verdict = Verdict(True, (Hit("phone", "+1 800 555 0199"),))
    calls = Calls()
    d = decide(case(calls, model=model, verdict=verdict), CFG)
    assert d.decision == "pending_review"
    rule = [r for r in d.reasons if r.step == "ocr_rules"]
    assert rule and rule[0].category == "promo_spam" and "+1 800 555 0199" in rule[0].detail
    assert calls.n["text"] == 1


def test_ocr_off_never_reads() -> None:
    calls = Calls()
    cfg = parse_section(ModerateConfig, {"ocr": {"engine": "none"}}, name="moderate")
    decide(case(calls, model=scores({"promo_spam": 0.2}), verdict=Verdict(True, (Hit("url", "x.biz"),))), cfg)
    assert "text" not in calls.n


def test_context_makes_a_category_stricter() -> None:
    model = scores({"weapon": 0.35}, {"weapon": 0.35})
    assert decide(case(Calls(), model=model), CFG).decision == "allowed"  # 0.35 < 0.5
    strict = parse_section(ModerateConfig, {"context": {"kids": 0.6}}, name="moderate")
    d = decide(case(Calls(), model=model, category="kids"), strict)
    assert d.decision == "pending_review"  # 0.35 >= 0.5 * 0.6
    assert any(r.code == "context" and r.value == 0.6 for r in d.reasons)


def test_steps_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown step"):
        check_steps(parse_section(ModerateConfig, {"steps": ["banks", "stag1"]}, name="moderate"))
    with pytest.raises(ValueError, match="put 'stage1' before"):
        check_steps(parse_section(ModerateConfig, {"steps": ["stage2", "stage1"]}, name="moderate"))


def test_config_rejects_bad_values() -> None:
    from modops.config import ConfigError

    with pytest.raises((ConfigError, ValueError)):
        parse_section(ModerateConfig, {"model": "newest"}, name="moderate")
    with pytest.raises((ConfigError, ValueError)):
        parse_section(ModerateConfig, {"context": {"kids": 0}}, name="moderate")
