"""Text rules for promotional spam: positives, benign look-alikes, obfuscations, the registry."""

from __future__ import annotations

import pytest

from modops.moderation.ocr import TextLine
from modops.moderation.rules import RULES, check_rules, evaluate_rules, normalize_text

BOX = ((0.0, 0.0), (10.0, 0.0), (10.0, 5.0), (0.0, 5.0))


def fired(*texts: str, rule: str, score: float = 1.0) -> bool:
    """Whether ``rule`` fires on an image whose OCR read ``texts`` (one line each)."""
    return evaluate_rules([TextLine(t, score, BOX) for t in texts], rules=[rule], min_confidence=0.6).flag


# Text that real, clean business photos carry: prices, hours, dates, years, addresses, brands, menus.
BENIGN = (
    "$19.99",
    "Bagel $7.49",
    "Soup 4.50 Latte 3.50 Tea 2.95",
    "SALE 20%",
    "50% OFF",
    "2 for 1",
    "Open 9-18",
    "Mon-Fri 9:00-18:00",
    "9 a.m. - 5 p.m.",
    "Since 2004",
    "Est. 1998",
    "2024-11-05",
    "05.11.2024",
    "123 Main St, Springfield 62704",
    "EAN 5901234123457",
    "ISBN 978-3-16-148410-0",
    "Order #4839201745",
    "Oak&Co",
    "Bistro 21",
    "Nordic Brew",
    "Fresh daily. Shop online",
    "Pick up in store",
    "polka dot dress",
    "meet us at the market",
    "Follow us on Instagram",
    "2 @ $5",
    "Thank you!",
    "Free parking",
    "Gift cards",
    "Grand opening",
)

POSITIVES = {
    "phone": (
        "CALL 1-877-555-4654",
        "+44 7700 900123",
        "+447700900108",
        "0044 20 7946 0000",
        "(555) 123-4567",
        "Tel: 0431 555 5942",
        "WhatsApp: +1 433 555 4545",
        "06 12 34 56 78",
        "CALL1-806-555-4390",  # OCR dropped the space
    ),
    "url": (
        "www.vip-outlet.info",
        "https://deals.example/x",
        "bit.ly/gift11x",
        "cheap-watches.shop",
        "wwwcheap.store",  # OCR dropped the dot after www
        "replicas.co.uk",
    ),
    "email": ("john.doe@gmail.com", "orders@bistro21.co.uk", "joe (at) mail (dot) com", "sales at deals dot com"),
    "handle": (
        "@cash_21",
        "tg: @cheap86",
        "t.me/deals_4",
        "wa.me/15551234567",
        "WeChat ID: deals888",
        "Instagram: bistro_deals",
        "snapchat @dealz",
        "signal +44 7700 912345",
    ),
    "support_phrase": ("CUSTOMER SUPPORT 24/7", "HELPLINE24/7", "customer service", "Refund desk", "Tech support"),
    "call_to_action": ("CALL NOW", "DM TO ORDER", "Text us", "WhatsApp me", "message for price", "scan to chat"),
    "promo_phrase": ("ORDER NOW", "Limited time offer", "use code SAVE20", "promo code", "100% original"),
    "money_scheme": ("EARN $500/DAY", "make money online", "fast cash loans", "work from home", "double your bitcoin"),
}


@pytest.mark.parametrize(("rule", "text"), [(r, t) for r, texts in POSITIVES.items() for t in texts])
def test_rule_fires_on_its_positives(rule: str, text: str) -> None:
    assert fired(text, rule=rule)


@pytest.mark.parametrize("text", BENIGN)
def test_no_rule_fires_on_benign_text(text: str) -> None:
    verdict = evaluate_rules([TextLine(text, 1.0, BOX)], rules=list(RULES), min_confidence=0.6)
    assert not verdict.flag, verdict.reasons
    assert verdict.hits == ()


def test_the_registry_holds_a_positive_case_for_every_rule() -> None:
    assert set(POSITIVES) == set(RULES)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Ｗｈａｔｓ Αpp: +1 8OO 555 O199", "whats app: +1 800 555 0199"),  # full-width, Greek Alpha, O for 0
        ("сheap-deals.сom", "cheap-deals.com"),  # Cyrillic es
        ("wh\u200batsapp", "whatsapp"),  # zero-width space
        ("deals (dot) shop", "deals.shop"),
        ("deals [.] shop", "deals.shop"),
        ("site . com", "site.com"),
        ("shop dot com", "shop.com"),
        ("joe [at] mail", "joe@mail"),
        ("polka dot dress", "polka dot dress"),  # "dot" before a non-TLD stays
        ("Est. 1998", "est. 1998"),  # a full stop before a space stays
        ("1 liter", "1 liter"),
    ],
)
def test_normalize_text_undoes_obfuscation(raw: str, normalised: str) -> None:
    assert normalize_text(raw) == normalised


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("８００-５５５-０１９９ call", "phone"),
        ("call 8OO-555-O199", "phone"),
        ("whatsapp: 5 5 5 1 2 3 4 5 6 7", "phone"),  # spaces inside the digits
        ("deals (dot) shop", "url"),
        ("cheap-deals.сom", "url"),
        ("joe [at] mail dot com", "email"),
        ("ＣＵＳＴＯＭＥＲ　ＳＵＰＰＯＲＴ", "support_phrase"),
        ("tg: @dea\u200bls", "handle"),
    ],
)
def test_obfuscated_contacts_still_fire(text: str, rule: str) -> None:
    assert fired(text, rule=rule)


def test_a_label_and_its_value_on_separate_lines_fire_together() -> None:
    assert not fired("WeChat:", rule="handle")
    assert not fired("deals888", rule="handle")
    assert fired("WeChat:", "deals888", rule="handle")
    verdict = evaluate_rules(
        [TextLine("tg:", 0.9, BOX), TextLine("@cheap86", 0.8, BOX)], rules=["handle"], min_confidence=0.6
    )
    assert [(h.match, h.text, h.score) for h in verdict.hits] == [("tg: @cheap86", "tg: @cheap86", 0.8)]


def test_verdict_names_the_rules_and_the_text() -> None:
    lines = [
        TextLine("BEST PRICE", 0.99, BOX),
        TextLine("CALL 1-877-555-4654", 0.97, BOX),
        TextLine("@cash_21", 1, BOX),
    ]
    verdict = evaluate_rules(lines, rules=["phone", "handle", "url"], min_confidence=0.6)
    assert verdict.flag
    assert verdict.fired == ("handle", "phone")
    assert "phone: '1-877-555-4654'" in verdict.reasons
    assert {h.text for h in verdict.hits} == {"CALL 1-877-555-4654", "@cash_21"}


def test_only_the_rules_in_force_flag() -> None:
    lines = [TextLine("ORDER NOW", 1.0, BOX)]
    assert not evaluate_rules(lines, rules=["phone", "url"], min_confidence=0.6).flag
    assert evaluate_rules(lines, rules=["promo_phrase"], min_confidence=0.6).flag
    assert not evaluate_rules(lines, rules=[], min_confidence=0.0).flag


def test_lines_below_min_confidence_are_ignored() -> None:
    assert fired("+44 7700 900123", rule="phone", score=0.61)
    assert not fired("+44 7700 900123", rule="phone", score=0.59)


def test_unknown_rule_names_are_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown text rules \['fone'\].*'phone'"):
        evaluate_rules([], rules=["phone", "fone"], min_confidence=0.6)
    with pytest.raises(ValueError, match="list of rule names"):
        check_rules("phone")
    with pytest.raises(ValueError, match="min_confidence"):
        evaluate_rules([], rules=["phone"], min_confidence=1.5)
