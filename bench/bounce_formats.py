"""Bounce formats: what the classifier makes of each MTA's shape, as `mailer bounces process --recipient` reads it.

    .venv/bin/python bench/bounce_formats.py                   # the fixtures in tests/fixtures/bounces
    .venv/bin/python bench/bounce_formats.py --corpus DIR      # also flufl.bounce's own samples (its sdist's tests/)

Each fixture is addressed to a signed VERP address, read by the same parse() the command and `/webhooks/dsn` call,
and compared with what it must come to (tests/bounce_formats.py). With --corpus, every sample of flufl.bounce's
test data that its tests label (tests/test_detectors.py: permanent or temporary, with the failing addresses) is
read as if it had come to a VERP address: real bounces from many MTAs, anonymised by Mailman's authors.
Prints the tables as Markdown; exits 1 when a fixture is wrong.
"""
from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailer import create_app  # noqa: E402
from mailer.bounces import classify, dsn, verp  # noqa: E402
from mailer.bounces.events import HARD, SOFT  # noqa: E402
from tests.bounce_formats import FORMATS, NOT_A_FAILURE, sample  # noqa: E402


def kind_of(raw: bytes, recipient: str) -> tuple[str, str]:
    """(kind or 'nothing', detail or the reason) for one message that came to `recipient`."""
    try:
        report = dsn.parse(raw, recipient)
    except dsn.NotABounce as exc:
        return NOT_A_FAILURE, str(exc)
    return report.kind, report.detail


def fixtures(address: str) -> int:
    print("| MTA shape | fixture | expected | got | right |\n|---|---|---|---|---|")
    wrong = 0
    for name, shape, expected in FORMATS:
        got, _ = kind_of(sample(name, address), address)
        wrong += got != expected
        print(f"| {shape} | `{name}` | {expected} | {got} | {'yes' if got == expected else '**no**'} |")
    print(f"\n{len(FORMATS) - wrong} of {len(FORMATS)} fixtures right.")
    return wrong


def corpus(directory: Path, address: str) -> None:
    labels = _flufl_labels(directory / "test_detectors.py")
    rows, tally, by_rule = [], Counter(), 0
    for name, temporary in sorted(labels.items()):
        raw = (directory / "data" / name).read_bytes()
        got, detail = kind_of(raw, address)
        expected = SOFT if temporary else HARD
        tally[(expected, got)] += 1
        if got != expected:
            why = _by_rule(detail) if (expected, got) == (HARD, SOFT) else ""
            by_rule += bool(why)
            rows.append(f"| `{name}` | {expected} | {got} | {why} | {detail[:100].replace('|', '/')} |")
    hard = sum(n for (e, _), n in tally.items() if e == HARD)
    soft = sum(n for (e, _), n in tally.items() if e == SOFT)
    print(f"\nflufl.bounce samples: {hard} permanent, {soft} temporary.\n")
    print("| labelled | hard_bounce | soft_bounce | nothing |\n|---|---:|---:|---:|")
    for expected, total in ((HARD, hard), (SOFT, soft)):
        cells = " | ".join(str(tally[(expected, k)]) for k in (HARD, SOFT, NOT_A_FAILURE))
        print(f"| {expected} ({total}) | {cells} |")
    print(f"\npermanent failures hard: {tally[(HARD, HARD)] / hard:.1%}; "
          f"temporary failures soft: {tally[(SOFT, SOFT)] / soft:.1%}")
    rest = hard - by_rule
    print(f"leaving out the {by_rule} that the rules make soft on purpose (a full mailbox, or a server that "
          f"gave up on a 4.x.x): {tally[(HARD, HARD)]} of {rest} hard ({tally[(HARD, HARD)] / rest:.1%})")
    if rows:
        print("\n| sample | labelled | got | soft by rule | detail |\n|---|---|---|---|---|")
        print("\n".join(rows))


def _by_rule(detail: str) -> str:
    """Why a failure flufl.bounce calls permanent is soft here, when one of the documented rules says so."""
    if classify.MAILBOX_FULL.search(detail):
        return "full mailbox"
    codes = classify.ENHANCED.findall(detail)
    if codes and all(c[0] == "4" for c in codes):
        return "4.x.x, given up"
    return ""


def _flufl_labels(test_file: Path) -> dict[str, bool]:
    """{sample: temporary?} for the samples flufl.bounce's tests say fail, from its DETECTORS table."""
    tree = ast.parse(test_file.read_text())
    table = next(node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == "DETECTORS" for t in node.targets))
    labels = {}
    for _module, name, addresses, temporary in ast.literal_eval(table):
        if addresses:
            labels[name] = temporary
    return labels


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", type=Path, help="flufl.bounce's tests/ folder (with data/ and test_detectors.py)")
    args = p.parse_args(argv)
    app = create_app({"TESTING": True, "SECRET_KEY": "bench-bounce-formats", "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    with app.app_context():
        address = verp.envelope_sender(4242)
        wrong = fixtures(address)
        if args.corpus:
            corpus(args.corpus, address)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
