"""Text rules for promotional spam: contact details and solicitation phrasing in OCR'd text.

A marketplace photo that carries a phone number, a web address, an e-mail address, a messaging
handle or "customer support" phrasing routes buyers off the platform: each such rule can flag an
upload on its own. Rules are registered by name in :data:`RULES` (``moderate.ocr.rules`` lists
the ones in force) and evaluated by :func:`evaluate_rules` on the lines an OCR engine read.

Every rule sees normalised text (:func:`normalize_text`): NFKC (full-width and styled letters to
ASCII), format characters removed, Cyrillic/Greek look-alikes mapped to Latin, case folded, the
usual obfuscations undone (``(dot)``, ``[at]``, ``name dot com``, ``site . com``, letter O or l
inside digit runs). Benign text that shares the shapes (prices such as ``$19.99``, opening hours,
dates, years, street numbers, brand names, "50% OFF") must not fire; ``tests/moderation/test_rules.py``
holds positives and such negatives for every rule.

Rules: ``phone``, ``url``, ``email``, ``handle`` (``@name``, messenger ids and links),
``support_phrase`` ("customer support", "helpline", "refund desk"), ``call_to_action``
("call now", "DM to order", "WhatsApp us"), and two weaker lexicons that are not meant to flag on
their own in most markets: ``promo_phrase`` ("order now", "promo code") and ``money_scheme``
("earn $500/day", "fast loans").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from modops.moderation.ocr import TextLine

__all__ = ["RULES", "RuleHit", "RulesVerdict", "TextRule", "check_rules", "evaluate_rules", "normalize_text"]

# --------------------------------------------------------------------------- normalisation

# Latin look-alikes NFKC leaves alone (Unicode confusables.txt, the letters spammers use).
_CONFUSABLES = str.maketrans(
    {
        **dict.fromkeys("аАɑα", "a"),
        **dict.fromkeys("вВβ", "b"),
        **dict.fromkeys("сСϲ", "c"),
        **dict.fromkeys("еЕεЁё", "e"),
        **dict.fromkeys("һН", "h"),
        **dict.fromkeys("іІıι", "i"),
        **dict.fromkeys("јЈ", "j"),
        **dict.fromkeys("кКκ", "k"),
        **dict.fromkeys("мМ", "m"),
        **dict.fromkeys("пη", "n"),
        **dict.fromkeys("оОοΟσ", "o"),
        **dict.fromkeys("рРρΡ", "p"),
        **dict.fromkeys("ѕЅ", "s"),
        **dict.fromkeys("тТτΤ", "t"),
        **dict.fromkeys("υ", "u"),
        **dict.fromkeys("νѵ", "v"),
        **dict.fromkeys("ԝѡ", "w"),
        **dict.fromkeys("хХχΧ", "x"),
        **dict.fromkeys("уУγΥ", "y"),
        **dict.fromkeys("ΖΖ", "z"),
        **dict.fromkeys("。｡﹒․", "."),
        **dict.fromkeys("＠﹫", "@"),
        **dict.fromkeys("‐‑‒–—―−", "-"),
    }
)

# Common top-level domains. "Weak" ones are also English words or abbreviations ("in", "me",
# "us", "a.m."), so a bare name.<weak> counts only with a path or a second label (co.uk).
_STRONG_TLDS = (
    "com|net|org|info|biz|xyz|top|club|online|site|shop|store|vip|ru|cn|io|ly|tk|ml|ga|cf|gq|cc|icu|buzz|live|"
    "link|click|win|bid|loan|work|app|pw|su|ua|kz|asia|mobi|pro|fun|space|website|email|today|life|world|"
    "ws|tv|gg|xxx|ooo|sbs|cfd|rest|quest|monster|uk|de|fr|nl|es|pl|br|au|ca|eu|jp|kr|vn|ph|ng|ke|pk|za"
)
_WEAK_TLDS = "me|to|us|in|it|at|is|be|so|co|ai|my|no|am|pm|do|id|la|st|cx|im|sh|tw|hk"
_TLD = rf"(?:{_STRONG_TLDS}|{_WEAK_TLDS})"

_OBFUSCATED_DOT = re.compile(r"\s*[(\[{<]\s*(?:dot|\.)\s*[)\]}>]\s*")
_OBFUSCATED_AT = re.compile(r"\s*[(\[{<]\s*(?:at|@)\s*[)\]}>]\s*")
_SPOKEN_DOT = re.compile(rf"\s+dot\s+(?={_TLD}(?![a-z]))")  # "site dot com"; "polka dot dress" stays
_SPACED_DOT = re.compile(r"(?<=[a-z0-9])\s+\.\s*(?=[a-z0-9])")  # "site . com"; "Est. 1998" (space after only) stays
_DIGIT_LOOKALIKE = re.compile(r"(?:(?<=\d)|(?<=\d[\s\-.]))[oil|](?=[oil|]*[\s\-.]?\d)")


def normalize_text(text: str) -> str:
    """The form every rule matches: NFKC, no format characters, Latin look-alikes, case folded, de-obfuscated.

    ``"Ｗｈａｔｓ Αpp: +1 8OO 555 O199"`` -> ``"whats app: +1 800 555 0199"``;
    ``"deals (dot) shop"`` -> ``"deals.shop"``; ``"joe [at] mail dot com"`` -> ``"joe@mail.com"``.
    """
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")  # zero-width joiners, soft hyphens
    text = text.casefold().translate(_CONFUSABLES)  # casefold first: the table lists lower-case look-alikes
    text = _OBFUSCATED_DOT.sub(".", text)
    text = _OBFUSCATED_AT.sub("@", text)
    text = _SPOKEN_DOT.sub(".", text)
    text = _SPACED_DOT.sub(".", text)
    # Letter o, i, l or | between digits is a zero or a one ("8OO-555-O199"), applied until stable.
    previous = None
    while previous != text:
        previous, text = text, _DIGIT_LOOKALIKE.sub(lambda m: "0" if m.group() == "o" else "1", text)
    return re.sub(r"\s+", " ", text).strip()


# --------------------------------------------------------------------------- rules

Finder = Callable[[str], list[str]]


@dataclass(frozen=True)
class TextRule:
    """A named text rule.

    Attributes:
        name: The key in :data:`RULES`.
        description: What it catches (for documentation and reviewers).
        find: Normalised text -> the snippets that fired (empty when none).
    """

    name: str
    description: str
    find: Finder


def _regex_finder(*patterns: str) -> Finder:
    """A finder that returns every match of any of ``patterns`` (verbose, case already folded)."""
    compiled = [re.compile(p, re.VERBOSE) for p in patterns]

    def find(text: str) -> list[str]:
        return [m.group().strip() for rx in compiled for m in rx.finditer(text)]

    return find


# Phone numbers: a run of digits with the usual separators, judged by what surrounds it.
_PHONE_RUN = re.compile(r"(?<![\d$€£¥])(?:\+|\b00)?\s?\(?\d[\d\s\-.()]{5,24}\d(?!\d)(?!\s?%)")
_PHONE_WORDS = re.compile(
    r"(?:tel|phone|ph|call|text|txt|sms|whats\s?app|wa|viber|signal|telegram|mob|mobile|cell|hot\s?line|help\s?line"
    r"|contact|ring|☎|📞|📱)\W{0,3}$"
)
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")
_PRICE_TOKEN = re.compile(r"^\(?\d+[.,]\d{2}\)?$")


def _find_phones(text: str) -> list[str]:
    """Phone numbers: international (+44..., 0044...), after a phone word (tel, call, WhatsApp), or grouped.

    Grouped means 9 to 15 digits in 2 to 6 groups of 2 to 6 digits (the first may be 1 digit:
    "1-800-..."), as national numbers are written; dates, price lists and bare long digit runs
    (barcodes, order numbers) do not count unless a phone word or a "+" precedes them.
    """
    found = []
    for m in _PHONE_RUN.finditer(text):
        run = m.group().strip()
        digits = re.sub(r"\D", "", run)
        if not 7 <= len(digits) <= 15 or _DATE.fullmatch(run.strip("()")):
            continue
        tokens = run.split()
        if len(tokens) > 1 and any(_PRICE_TOKEN.match(t) for t in tokens):
            continue  # "4.50 5.50 6.50": a price list
        international = re.match(r"(?:\+|00)\s?\(?[1-9]", run) is not None and len(digits) >= 8
        keyword = _PHONE_WORDS.search(text[max(0, m.start() - 24) : m.start()]) is not None
        groups = [g for g in re.split(r"[\s\-.()]+", run.lstrip("+")) if g]
        grouped = (
            len(digits) >= 9
            and 2 <= len(groups) <= 6
            and all(2 <= len(g) <= 6 for g in groups[1:])
            and len(groups[0]) <= 6
        )
        if international or keyword or grouped:
            found.append(run)
    return found


_L, _R = r"(?<![a-z0-9])", r"(?![a-z])"  # word edges that tolerate OCR's dropped spaces ("helpline24/7")

_URL = _regex_finder(
    r"\b(?:https?|hxxps?)://\S+",
    r"\bw{3}\.?\s?[a-z0-9][a-z0-9-]{1,}(?:\.[a-z0-9-]+)*",  # OCR often drops the dot after www
    rf"""(?<![a-z0-9@._-])[a-z0-9](?:[a-z0-9-]{{0,61}}[a-z0-9])   # a name of 2+ characters
         (?:\.[a-z0-9-]{{1,63}})*                                  # more labels
         \.(?:(?:{_STRONG_TLDS})(?![a-z0-9])(?:/[^\s]*)?           # a strong TLD, optional path
            |(?:{_WEAK_TLDS})(?:/[^\s]+|\.(?:{_TLD})(?![a-z])))    # a weak one needs a path or a 2nd label
    """,
)
_EMAIL = _regex_finder(
    rf"[a-z0-9][a-z0-9._%+-]*\s*(?:@|\s+at\s+)\s*[a-z0-9-]+(?:\.[a-z0-9-]+)*\.{_TLD}(?![a-z])",
)
_UNAMBIGUOUS_APPS = r"telegram|whats\s?app|we\s?chat|weixin|viber|kik|snapchat|instagram|discord|skype|imo"
_SHORT_APPS = r"tg|wa|wx|vx|ig|insta|snap|sc|line|line\s?id|signal|fb|session|threema"
_STRICT_ID = r"(?:@\s*[a-z0-9_.]{3,}|\+\s*\d[\d\s\-()]{5,}\d)"  # @name or +number: an id even without a colon
_ANY_ID = rf"(?:{_STRICT_ID}|\d[\d\s\-()]{{5,}}\d|[a-z0-9_.\-]{{3,}})"
_HANDLE = _regex_finder(
    r"(?<![a-z0-9._%+-])@(?=[a-z0-9_.]*[a-z])[a-z0-9_][a-z0-9_.]{2,29}",  # @name, not an e-mail address
    # An unambiguous app name with an id after it; a bare word after it only when it holds a digit.
    rf"{_L}(?:{_UNAMBIGUOUS_APPS})\s*(?:id|no\.?|number|num)?\s*(?:[:=]\s*{_ANY_ID}|{_STRICT_ID}|[a-z0-9_.\-]*\d[a-z0-9_.\-]*)",
    # Short names ("tg", "wa", "ig", "line", "signal") are English words or letters: a colon, @ or + must follow.
    rf"{_L}(?:{_SHORT_APPS})\s*(?:id)?\s*(?:[:=]\s*{_ANY_ID}|{_STRICT_ID})",
    r"\b(?:t\.?me|telegram\.me|wa\.me|m\.me|line\.me|instagram\.com|snapchat\.com/add|u\.wechat\.com)/\S+",
)
_SUPPORT = _regex_finder(
    rf"{_L}(?:customer|client|tech(?:nical)?|account)\s*(?:support|service|care|help\s?desk){_R}",
    rf"{_L}(?:help|hot)\s*(?:line|desk){_R}",
    rf"{_L}support\s*(?:24\s*/\s*7|24\s*h|line|team|number|desk){_R}",
    rf"{_L}24\s*/\s*7\s*(?:support|service|help){_R}",
    rf"{_L}refunds?\s*(?:desk|dept|department|line|support|cent(?:er|re)|help|team){_R}",
    rf"{_L}call\s*cent(?:er|re){_R}",
)
_CONTACT_VERBS = r"call|text|txt|sms|dm|pm|inbox|message|msg|whats\s?app|telegram|contact|ring|ping"
_CALL_TO_ACTION = _regex_finder(
    rf"{_L}(?:{_CONTACT_VERBS})\s*(?:us|me|now|today|anytime|24\s*/\s*7){_R}",
    rf"{_L}(?:{_CONTACT_VERBS})\s*(?:us\s*|me\s*)?(?:to|for)\s*(?:order|buy|book|price|prices|details|info|more){_R}",
    rf"{_L}(?:order|buy|book|chat)\s*(?:via|on|through|by)\s*(?:whats\s?app|telegram|wechat|signal|dm|inbox|text|sms){_R}",
    rf"{_L}scan\s*(?:to|&|and)\s*(?:chat|contact|order|earn|join){_R}",
)
_PROMO = _regex_finder(
    rf"{_L}(?:order|buy|shop|book)\s*(?:now|today){_R}",
    rf"{_L}limited\s*(?:time\s*)?(?:offer|deal|stock){_R}",
    rf"{_L}act\s*now{_R}",
    rf"{_L}(?:promo|coupon|discount|voucher|referral)\s*code{_R}",
    rf"{_L}use\s*code\s*:?\s*[a-z0-9]{{3,}}",
    rf"{_L}(?:wholesale|bulk)\s*(?:price|prices|only|available|orders?)?{_R}",
    rf"{_L}100\s*%\s*(?:original|genuine|authentic){_R}",
)
_MONEY = _regex_finder(
    rf"{_L}(?:earn|make)\s*\$?\s*\d[\d,.]*\s*(?:k\s*)?(?:\$|usd|dollars?|eur|€|£)?\s*(?:/|per|a|an|every)\s*"
    rf"(?:day|daily|week|hour|hr|month){_R}",
    rf"{_L}(?:make|earn)\s*money\s*(?:fast|online|from\s*home|now){_R}",
    rf"{_L}(?:work|earn)\s*from\s*home{_R}",
    rf"{_L}(?:fast|quick|instant|easy|payday)\s*(?:cash\s*)?loans?{_R}",
    rf"{_L}loans?\s*(?:fast|now|today|approved|instant){_R}",
    rf"{_L}(?:double|guaranteed)\s*(?:your\s*)?(?:money|bitcoin|btc|crypto|profit|returns?){_R}",
)

#: Text rules by name (``moderate.ocr.rules``).
RULES: dict[str, TextRule] = {
    rule.name: rule
    for rule in (
        TextRule("phone", "phone numbers: international, after a phone word, or written in groups", _find_phones),
        TextRule("url", "web addresses: http(s)://, www., bare domains, link shorteners", _URL),
        TextRule("email", "e-mail addresses, also written with (at) / dot", _EMAIL),
        TextRule("handle", "@handles, messenger ids (WhatsApp: ..., tg: @...) and messenger links (t.me/...)", _HANDLE),
        TextRule("support_phrase", "customer support / service / care, helpline, hotline, refund desk", _SUPPORT),
        TextRule("call_to_action", "call / text / DM / WhatsApp us, DM to order, scan to chat", _CALL_TO_ACTION),
        TextRule("promo_phrase", "order now, limited offer, promo code, wholesale (weak alone)", _PROMO),
        TextRule("money_scheme", "earn $N a day, make money fast, fast loans, double your crypto", _MONEY),
    )
}


def check_rules(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` as a tuple, after checking each is in :data:`RULES`.

    Raises:
        ValueError: Naming the unknown rules and listing the known ones.
    """
    if isinstance(names, str):
        raise ValueError(f"rules must be a list of rule names, got the string {names!r}; known: {sorted(RULES)}")
    unknown = [n for n in names if n not in RULES]
    if unknown:
        raise ValueError(f"unknown text rules {unknown}; known rules: {sorted(RULES)}")
    return tuple(names)


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class RuleHit:
    """One rule firing.

    Attributes:
        rule: The rule's name.
        match: The normalised snippet that fired (``"+1 (855) 555-4406"``).
        text: The OCR text it fired in, as read (two lines joined by a space when a label and its
            value were read as separate lines, e.g. ``"WhatsApp:"`` and ``"+1 433 555 4545"``).
        score: The OCR confidence of that text (the lower of two lines), in [0, 1].
    """

    rule: str
    match: str
    text: str
    score: float


@dataclass(frozen=True)
class RulesVerdict:
    """What the text rules said about one image.

    Attributes:
        flag: True when any rule in force fired.
        hits: Every firing (single lines first, then pairs of lines); empty when none.
    """

    flag: bool
    hits: tuple[RuleHit, ...]

    @property
    def fired(self) -> tuple[str, ...]:
        """Names of the rules that fired, sorted, each once."""
        return tuple(sorted({h.rule for h in self.hits}))

    @property
    def reasons(self) -> tuple[str, ...]:
        """One human-readable reason per hit, for the decision record (``"phone: '+44 7700 900123'"``)."""
        return tuple(f"{h.rule}: {h.match!r}" for h in self.hits)


def evaluate_rules(lines: Sequence[TextLine], *, rules: Sequence[str], min_confidence: float = 0.6) -> RulesVerdict:
    """Run the named text rules over an image's OCR lines.

    Each line is matched alone, and each pair of consecutive lines joined by a space (OCR often
    splits a label from its value: ``"tg:"`` / ``"@deals"``); a pair counts only for snippets
    neither line gives alone.

    Args:
        lines: The image's lines, in reading order.
        rules: Names in :data:`RULES`; any one firing flags the image. Empty: never flags.
        min_confidence: Lines the OCR read with a lower score (in [0, 1]) are ignored.

    Returns:
        A :class:`RulesVerdict` (hits deduplicated by rule and snippet).

    Raises:
        ValueError: On an unknown rule name (listing the known ones) or ``min_confidence`` outside [0, 1].
    """
    names = check_rules(rules)
    if not 0 <= min_confidence <= 1:
        raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
    kept = [line for line in lines if line.score >= min_confidence and line.text.strip()]
    units = [(line.text, line.score) for line in kept]
    units += [(f"{a.text} {b.text}", min(a.score, b.score)) for a, b in zip(kept, kept[1:], strict=False)]
    hits: dict[tuple[str, str], RuleHit] = {}
    for text, score in units:
        normalised = normalize_text(text)
        for name in names:
            for match in RULES[name].find(normalised):
                hits.setdefault((name, match), RuleHit(name, match, text, float(score)))
    found = tuple(h for h in hits.values() if not _inside_longer(h, hits))
    return RulesVerdict(flag=bool(found), hits=found)


def _inside_longer(hit: RuleHit, hits: dict[tuple[str, str], RuleHit]) -> bool:
    """Whether a longer snippet of the same rule contains this one ("@deals" inside "tg: @deals")."""
    return any(rule == hit.rule and match != hit.match and hit.match in match for rule, match in hits)
