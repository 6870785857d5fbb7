#!/usr/bin/env python3
"""Adds the given names and surnames of Faker's person providers to the
name lists (first_names.txt, surnames.txt), as described in README.md.

Usage (the lists are rewritten in place, sorted, one lower-case name a
line; a name already there stays):

    pip download --no-deps faker==40.63.0 -d /tmp/faker
    unzip -q /tmp/faker/faker-40.63.0-py3-none-any.whl -d /tmp/faker/src
    python3 add_faker_names.py /tmp/faker/src /usr/share/dict/american-english

The second argument is an English word list (Debian's `wamerican`): a new
name that is also a lower-case word there (`patience`, `lucky`) is left
out, except the few in KEEP.
"""

import importlib
import pathlib
import re
import sys

# Locales: the countries a contact center serves (US, GB, IE, DE, FR, ES,
# IT, NL, IN, MX, BR) and the origins most common among their callers
# (Pakistan, Nigeria, Vietnam, Japan and China in romanized form, Poland,
# Turkey). Faker has no Philippine person provider; Filipino names are
# mostly Spanish and English ones, covered by es_MX, es_ES and en_US.
LOCALES = [
    "en_US", "en_GB", "en_IE", "ga_IE", "de_DE", "de_AT", "de_CH", "fr_FR",
    "es_ES", "it_IT", "nl_NL", "en_IN", "es_MX", "pt_BR", "en_PK", "en_NG",
    "vi_VN", "ja_JP", "zh_CN", "pl_PL", "tr_TR",
]

# New names that are also English words but far more often names.
KEEP = {"amir", "emir", "josh", "meg", "phoebe"}

LATIN = re.compile(r"^[a-zà-öø-ÿā-ž'-]+$")


def names(src, attr_prefixes):
    sys.path.insert(0, src)
    out = set()
    for loc in LOCALES:
        provider = importlib.import_module(f"faker.providers.person.{loc}").Provider
        for attr in dir(provider):
            if not attr.startswith(attr_prefixes):
                continue
            value = getattr(provider, attr)
            if not isinstance(value, (tuple, list, dict)):
                continue
            for name in value:
                name = name.strip().lower() if isinstance(name, str) else ""
                if len(name) >= 2 and " " not in name and LATIN.match(name):
                    out.add(name)
    return out


def main():
    src, dictionary = sys.argv[1], sys.argv[2]
    words = {
        w.strip()
        for w in open(dictionary, encoding="utf-8")
        if re.fullmatch(r"[a-z]+", w.strip())
    }
    here = pathlib.Path(__file__).parent
    for file, prefixes in [
        ("first_names.txt", ("first_name", "first_romanized_name")),
        ("surnames.txt", ("last_name", "last_romanized_name")),
    ]:
        path = here / file
        have = set(path.read_text(encoding="utf-8").split())
        new = {n for n in names(src, prefixes) if n not in words or n in KEEP} - have
        path.write_text("\n".join(sorted(have | new)) + "\n", encoding="utf-8")
        print(f"{file}: {len(have)} + {len(new)} = {len(have | new)}")


if __name__ == "__main__":
    main()
