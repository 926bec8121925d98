"""Who a mail to many goes to: a segment's rules, checked, and said as SQL conditions on the subscriber.

Every rule is optional and all of them must hold. The same rules serve a saved segment, a digest to one, the
subscriber list's filters and the console's count, so a reader is in a segment by one definition everywhere.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import and_, not_, or_, select, union
from sqlalchemy.orm import Session

from ..models import Click, Consent, LeadMagnet, Open, Subscriber, utcnow

# The consent's form as stored, and the names a person may use for several of them: the three ways of
# embedding the signup in the blog (the HTML snippet, the iframe of /embed, embed.js) are "embed".
FORMS = ("snippet", "iframe", "script", "api", "import", "resubscribe")
FORM_GROUPS = {"embed": ("snippet", "iframe", "script")}
PREFERENCES = ("every", "monthly")
RANGES = ("signed_up", "confirmed")
MAX_DAYS = 36500
# The rules as a query string gives them (the subscriber list's filters, the console's segment form):
# ?magnet=handbook&magnet=course (any of them), ?form=, ?page=: lists; the rest one value each.
LISTS = {"magnet": "magnets", "form": "forms", "page": "pages"}
BOOLEANS = {"true": True, "false": False}


class RuleError(ValueError):
    """A segment's rules that cannot be read; `field` names the rule ("rules.magnets")."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


def checked(session: Session, rules: object) -> dict:
    """The rules as stored: known keys only, each of its type, magnets that exist; RuleError says what is wrong."""
    if not isinstance(rules, dict):
        raise RuleError('"rules" must be an object, e.g. {"magnets": ["handbook"], "engaged_within_days": 90}',
                        "rules")
    unknown = sorted(set(rules) - {"magnets", "forms", "pages", *RANGES, "imported", "engaged_within_days",
                                   "engaged", "preference"})
    if unknown:
        raise RuleError(f"unknown rule {unknown[0]!r}: the rules are magnets, forms, pages, signed_up, confirmed, "
                        "imported, engaged_within_days, engaged and preference", f"rules.{unknown[0]}")
    kept = {key: _strings(rules, key) for key in ("magnets", "forms", "pages") if rules.get(key) is not None}
    _known_magnets(session, kept.get("magnets", []))
    for form in kept.get("forms", []):
        if form not in FORMS and form not in FORM_GROUPS:
            raise RuleError(f"form {form!r} is not one of {', '.join((*FORM_GROUPS, *FORMS))}", "rules.forms")
    for key in RANGES:
        if rules.get(key) is not None:
            kept[key] = _range(rules[key], key)
    for key in ("imported", "engaged"):
        if rules.get(key) is not None:
            if not isinstance(rules[key], bool):
                raise RuleError(f'"{key}" must be true or false', f"rules.{key}")
            kept[key] = rules[key]
    days = rules.get("engaged_within_days")
    if days is not None:
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_DAYS:
            raise RuleError(f'"engaged_within_days" must be a whole number of days, 1 to {MAX_DAYS}',
                            "rules.engaged_within_days")
        kept["engaged_within_days"] = days
    if rules.get("preference") is not None:
        if rules["preference"] not in PREFERENCES:
            raise RuleError('"preference" must be "every" or "monthly"', "rules.preference")
        kept["preference"] = rules["preference"]
    return kept


def _strings(rules: dict, key: str) -> list[str]:
    value = rules[key]
    if not (isinstance(value, list) and value and all(isinstance(v, str) and v.strip() and len(v) <= 2000
                                                       for v in value)):
        raise RuleError(f'"{key}" must be a list of one or more strings', f"rules.{key}")
    return list(dict.fromkeys(v.strip() for v in value))


def _known_magnets(session: Session, slugs: list[str]) -> None:
    known = set(session.scalars(select(LeadMagnet.slug).where(LeadMagnet.slug.in_(slugs)))) if slugs else set()
    missing = [slug for slug in slugs if slug not in known]
    if missing:
        raise RuleError(f"there is no lead magnet {missing[0]!r}: use a slug from the console's Lead magnets page",
                        "rules.magnets")


def _range(value: object, key: str) -> dict:
    if not isinstance(value, dict) or not value or set(value) - {"from", "to"}:
        raise RuleError(f'"{key}" must be {{"from": date, "to": date}} (either may be left out)', f"rules.{key}")
    kept = {}
    for end, moment in value.items():
        if moment is None:
            continue
        try:
            read_moment(moment, end)
        except (TypeError, ValueError):
            raise RuleError(f'"{key}.{end}" must be an ISO 8601 date (2026-01-31) or date and time with an '
                            f"offset, not {moment!r}", f"rules.{key}") from None
        kept[end] = moment
    return kept


def read_moment(value: str, end: str) -> datetime:
    """An ISO date or date-time as UTC; a bare date "to" means up to the end of that day."""
    if not isinstance(value, str):
        raise TypeError(value)
    if len(value) == 10:
        day = date.fromisoformat(value)
        return datetime.combine(day + timedelta(days=1 if end == "to" else 0), time(), timezone.utc)
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("a date and time needs its offset")
    return moment.astimezone(timezone.utc)


def from_query(session: Session, args) -> dict:
    """The rules a query string gives (?magnet=handbook&engaged_within_days=30), checked; RuleError names the
    parameter."""
    rules: dict = {key: args.getlist(name) for name, key in LISTS.items() if any(args.getlist(name))}
    for key in RANGES:
        ends = {end: args[f"{key}_{end}"] for end in ("from", "to") if args.get(f"{key}_{end}")}
        if ends:
            rules[key] = ends
    for name in ("imported", "engaged"):
        if args.get(name):
            if args[name] not in BOOLEANS:
                raise RuleError(f"?{name}= must be true or false", name)
            rules[name] = BOOLEANS[args[name]]
    if args.get("engaged_within_days"):
        days = args["engaged_within_days"]
        rules["engaged_within_days"] = int(days) if days.isascii() and days.isdigit() and len(days) <= 6 else days
    if args.get("preference"):
        rules["preference"] = args["preference"]
    try:
        return checked(session, rules)
    except RuleError as exc:
        key = exc.field.removeprefix("rules.")
        raise RuleError(str(exc), next((name for name, listed in LISTS.items() if listed == key), key)) from None


def conditions(rules: dict | None, now: datetime | None = None) -> list:
    """The rules as conditions on Subscriber, for any statement that reads the subscriber table."""
    rules, now = rules or {}, now or utcnow()
    found = []
    if rules.get("magnets"):
        found.append(took_magnet(rules["magnets"]))
    if rules.get("forms"):
        forms = {name for form in rules["forms"] for name in FORM_GROUPS.get(form, (form,))}
        found.append(_consented(Consent.form.in_(sorted(forms))))
    if rules.get("pages"):
        found.append(_consented(Consent.source_url.in_(rules["pages"])))
    for key, column in (("signed_up", Subscriber.created_at), ("confirmed", Subscriber.confirmed_at)):
        for end, value in rules.get(key, {}).items():
            moment = read_moment(value, end)
            found.append(column >= moment if end == "from" else column < moment)
    if rules.get("imported") is not None:
        found.append(Subscriber.imported.is_(rules["imported"]))
    if rules.get("engaged") is not None or rules.get("engaged_within_days") is not None:
        found.append(engaged_since(now - timedelta(days=rules["engaged_within_days"])
                                   if rules.get("engaged_within_days") else None, rules.get("engaged", True)))
    if rules.get("preference"):
        found.append(Subscriber.digest_frequency == rules["preference"])
    return found


def took_magnet(slugs: list[str]):
    """Took one of these magnets: confirmed a signup for it, or asked for it while confirmed (as the welcome
    sequence counts a magnet taken: a confirmed reader is not asked to confirm again)."""
    return _consented(Consent.magnet_id.in_(select(LeadMagnet.id).where(LeadMagnet.slug.in_(slugs))),
                      or_(Consent.confirmed_at.is_not(None), Consent.requested_at >= Subscriber.confirmed_at))


def _consented(*where):
    return select(Consent.id).where(Consent.subscriber_id == Subscriber.id, *where).exists()


def engaged_since(since: datetime | None, engaged: bool = True):
    """A person's click or open (not a scanner's or an image proxy's) since `since` or ever; or, not `engaged`,
    neither.

    Said so that PostgreSQL joins once against the readers who engaged (IN a UNION, a hash), or makes two
    anti-joins: an OR of two EXISTS would be looked up reader by reader.
    """
    def recent(table):
        return select(table.subscriber_id).where(table.human.is_(True), *([table.at >= since] if since else []))
    if engaged:
        return Subscriber.id.in_(union(recent(Click), recent(Open)))
    return and_(*(not_(recent(table).where(table.subscriber_id == Subscriber.id).exists()) for table in (Click, Open)))


def describe(rules: dict | None) -> str:
    """The rules in a line of words, for the console."""
    if not rules:
        return "everyone"
    said = []
    if rules.get("magnets"):
        said.append("took " + " or ".join(rules["magnets"]))
    if rules.get("forms"):
        said.append("signed up by " + " or ".join(rules["forms"]))
    if rules.get("pages"):
        said.append("signed up on " + " or ".join(rules["pages"]))
    for key, words in (("signed_up", "signed up"), ("confirmed", "confirmed")):
        if rules.get(key):
            said.append(f"{words} " + " ".join(f"{end} {value}" for end, value in rules[key].items()))
    if rules.get("imported") is not None:
        said.append("imported" if rules["imported"] else "not imported")
    if rules.get("engaged") is not None or rules.get("engaged_within_days"):
        within = f" in the last {rules['engaged_within_days']} days" if rules.get("engaged_within_days") else ""
        said.append(("engaged" if rules.get("engaged", True) else "not engaged") + within)
    if rules.get("preference"):
        said.append(f"{rules['preference']} digest")
    return ", ".join(said)

