#!/usr/bin/env python3
"""Extracts the peers' own test vectors into the files `cargo xtask eval-peers` reads.

Run against checkouts of the pinned commits (see README.md beside this file):

    python3 xtask/peers/extract.py gitleaks GITLEAKS_CHECKOUT > monitor-pii/tests/peers/gitleaks.jsonl
    python3 xtask/peers/extract.py presidio PRESIDIO_CHECKOUT > monitor-pii/tests/peers/presidio.jsonl

gitleaks: every string literal that stands whole as an element of a rule's
`tps` or `fps` list, or as the secret given to `GenerateSampleSecrets`
(vectors built from random secrets at run time are left out), with the
rule's id. Presidio: every `pytest.mark.parametrize` case of the
recognizer tests for the types the detector claims, with the expected
spans and, where given, the expected score range.
"""
import ast
import json
import pathlib
import random
import re
import sys

try:
    import re._parser as sre_parse
    from re._constants import (ANY, BRANCH, CATEGORY, CATEGORY_DIGIT, CATEGORY_WORD, IN, LITERAL,
                               MAX_REPEAT, MIN_REPEAT, NEGATE, RANGE, SUBPATTERN, AT, MAXREPEAT)
except ImportError:  # Python < 3.11
    import sre_parse
    from sre_constants import (ANY, BRANCH, CATEGORY, CATEGORY_DIGIT, CATEGORY_WORD, IN, LITERAL,
                               MAX_REPEAT, MIN_REPEAT, NEGATE, RANGE, SUBPATTERN, AT, MAXREPEAT)

# Fixed, so the vectors drawn from a rule's secret pattern are the same on every run.
RNG = random.Random(20261204)
WORD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"


def sample(pattern):
    """One string the regex `pattern` matches: the shortest repeat counts, random characters."""
    def gen(parsed):
        out = []
        for op, av in parsed:
            if op == LITERAL:
                out.append(chr(av))
            elif op == ANY:
                out.append(RNG.choice(WORD))
            elif op == IN:
                chars = []
                for iop, iav in av:
                    if iop == LITERAL:
                        chars.append(chr(iav))
                    elif iop == RANGE:
                        chars.extend(chr(c) for c in range(iav[0], iav[1] + 1))
                    elif iop == CATEGORY:
                        chars.extend("0123456789" if iav == CATEGORY_DIGIT else WORD)
                    elif iop == NEGATE:
                        return None
                out.append(RNG.choice(chars))
            elif op in (MAX_REPEAT, MIN_REPEAT):
                lo, hi, sub = av
                n = lo if hi != MAXREPEAT else max(lo, 1)
                for _ in range(n):
                    piece = gen(sub)
                    if piece is None:
                        return None
                    out.append(piece)
            elif op == SUBPATTERN:
                piece = gen(av[-1])
                if piece is None:
                    return None
                out.append(piece)
            elif op == BRANCH:
                piece = gen(av[1][0])
                if piece is None:
                    return None
                out.append(piece)
            elif op == CATEGORY:
                out.append(RNG.choice("0123456789" if av == CATEGORY_DIGIT else WORD))
            elif op == AT:
                continue
            else:
                return None
        return "".join(out)
    return gen(sre_parse.parse(pattern))


SIZED = {
    "utils.Numeric": "[0-9]{%s}",
    "utils.Hex": "[a-f0-9]{%s}",
    "utils.AlphaNumeric": "[a-z0-9]{%s}",
    "utils.AlphaNumericExtendedShort": "[a-z0-9_-]{%s}",
    "utils.AlphaNumericExtended": "[a-z0-9=_-]{%s}",
    "utils.AlphaNumericExtendedLong": "[a-z0-9/=_+-]{%s}",
}


def evaluate(tokens):
    """A sum of string literals and `secrets.NewSecret(...)` draws, or None."""
    out, i = [], 0
    while i < len(tokens):
        t = tokens[i]
        if t[:1] in ('"', "`"):
            out.append(go_literal(t))
            i += 1
        elif t == "secrets.NewSecret" and tokens[i + 1 : i + 2] == ["("]:
            arg = tokens[i + 2]
            if arg in SIZED and tokens[i + 3] == "(" and tokens[i + 5 : i + 7] == [")", ")"]:
                pattern = SIZED[arg] % go_literal(tokens[i + 4])
                i += 7
            elif arg == "utils.Hex8_4_4_4_12" and tokens[i + 3 : i + 6] == ["(", ")", ")"]:
                pattern = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
                i += 6
            elif arg[:1] in ('"', "`") and tokens[i + 3] == ")":
                pattern = go_literal(arg)
                i += 4
            else:
                return None
            drawn = sample(pattern) if pattern else None
            if drawn is None:
                return None
            out.append(drawn)
        else:
            return None
        if i < len(tokens):
            if tokens[i] != "+":
                return None
            i += 1
    if any(o is None for o in out):
        return None
    return "".join(out)


def go_literal(tok):
    if tok.startswith("`"):
        return tok[1:-1]
    # A Go interpreted string reads as a JSON string for the escapes used in tests.
    try:
        return json.loads(tok)
    except json.JSONDecodeError:
        return None


TOKEN = re.compile(r'//[^\n]*|/\*.*?\*/|`[^`]*`|"(?:\\.|[^"\\\n])*"|[()\[\]{},+]|[^\s()\[\]{},+"`/]+|/', re.S)


def elements(src, start):
    """The elements (token lists) of the bracketed list opening at `start`."""
    depth, items, cur = 0, [], []
    for m in TOKEN.finditer(src, start):
        t = m.group(0)
        if t.startswith("//") or t.startswith("/*"):
            continue
        if t in "([{":
            depth += 1
            if depth == 1:
                continue
        elif t in ")]}":
            depth -= 1
            if depth == 0:
                if cur:
                    items.append(cur)
                return items
        elif t == "," and depth == 1:
            items.append(cur)
            cur = []
            continue
        cur.append(t)
    return items


def gitleaks(root):
    rules = pathlib.Path(root, "cmd/generate/config/rules")
    seen = set()
    for path in sorted(rules.glob("*.go")):
        src = path.read_text()
        for func in re.split(r"\nfunc ", src)[1:]:
            rid = re.search(r'RuleID:\s*"([^"]+)"', func)
            if not rid:
                continue
            rid = rid.group(1)
            for m in re.finditer(r"\b(tps|fps)\s*(?::=|=)\s*(\[\]string\{|append\(\w+,|utils\.GenerateSampleSecrets\()", func):
                kind = "tp" if m.group(1) == "tps" else "fp"
                opener = m.group(2)
                start = m.start(2) + opener.index("(") if opener.startswith("append") else m.end() - 1
                items = elements(func, start)
                if opener.startswith("append"):
                    items = items[1:] if items and items[0] == [m.group(1)] else items
                    # `append(tps, utils.GenerateSampleSecrets(...)...)`
                if opener.startswith("utils.Generate"):
                    items = [["utils.GenerateSampleSecrets", "("] + items[0] + [","] + items[1] + [")"]] if len(items) == 2 else []
                for it in items:
                    secret_only = False
                    if it[:2] == ["utils.GenerateSampleSecrets", "("]:
                        # (identifier, secret) -> the secret assigned to a name.
                        inner = it[2:]
                        if inner[-1:] == ["..."]:
                            inner = inner[:-1]
                        if inner[-1:] != [")"] or len(inner) < 4 or inner[1] != ",":
                            continue
                        ident = go_literal(inner[0]) or "secret"
                        value = evaluate(inner[2:-1])
                        text = value and f'{ident}Token = "{value}"'
                        secret_only = True
                    else:
                        text = evaluate(it)
                    if text and (rid, kind, text) not in seen:
                        seen.add((rid, kind, text))
                        print(json.dumps({"source": "gitleaks", "rule": rid, "kind": kind, "text": text,
                                          "sample": secret_only}))


PRESIDIO = {
    "test_credit_card_recognizer.py": "CREDIT_CARD",
    "test_email_recognizer.py": "EMAIL_ADDRESS",
    "test_iban_recognizer.py": "IBAN_CODE",
    "test_ip_recognizer.py": "IP_ADDRESS",
    "test_phone_recognizer.py": "PHONE_NUMBER",
    "test_us_ssn_recognizer.py": "US_SSN",
    "test_aba_routing_recognizer.py": "US_BANK_ROUTING",
    "test_us_itin_recognizer.py": "US_ITIN",
}


def presidio(root):
    tests = pathlib.Path(root, "presidio-analyzer/tests")
    for name, kind in PRESIDIO.items():
        tree = ast.parse(tests.joinpath(name).read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef):
                continue
            for dec in node.decorator_list:
                if not (isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "parametrize"):
                    continue
                fields = [f.strip() for f in ast.literal_eval(dec.args[0]).split(",")]
                fields = [{"iban": "text", "expected_res": "expected_positions"}.get(f, f) for f in fields]
                if "text" not in fields or "expected_positions" not in fields:
                    continue
                for case in dec.args[1].elts:
                    try:
                        values = dict(zip(fields, ast.literal_eval(case)))
                    except ValueError:
                        continue  # built by a helper at run time
                    text = values["text"]
                    if not isinstance(text, str):
                        continue
                    spans = [list(p) for p in values["expected_positions"]]
                    ranges = values.get("expected_score_ranges") or ()
                    scores = values.get("expected_scores") or ()
                    strong = []
                    for i, _ in enumerate(spans):
                        hi = None
                        if i < len(ranges):
                            hi = ranges[i][1]
                        elif i < len(scores):
                            hi = scores[i]
                        # A score range below one half marks the recognizer's guess, not its claim.
                        strong.append(hi is None or hi == "max" or float(hi) >= 0.5)
                    print(json.dumps({"source": "presidio", "test": name, "type": kind, "text": text,
                                      "spans": spans, "strong": strong}, ensure_ascii=False))


if __name__ == "__main__":
    {"gitleaks": gitleaks, "presidio": presidio}[sys.argv[1]](sys.argv[2])
