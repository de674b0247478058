#!/usr/bin/env python3
"""Deeply nested handlebars templates in every syntactic variant, as SQL for psql.

Each case is one `SELECT crm.render_template(...)` (or template_variables, or the
email_templates insert trigger), run as anon or a tenant. What matters is not the answer but
that the backend survives: the caller checks the postmaster did not restart. Usage:
deep_templates.py CASES SEED > cases.sql
"""
import random
import sys

OPENERS = [
    "{{#if a}}", "{{#each a}}", "{{#with a}}", "{{#unless a}}", "{{~#if a~}}", "{{~#each a}}",
    "{{#each a as |x i|}}", "{{#if (f (g a))}}", "{{#if a}}x{{else if b}}", "{{^a}}", "{{#a}}",
    "{{#if a}}{{else}}", "{{#>p}}", "{{#*inline \"p\"}}",
]
NOISE = [
    "\\{{", "\\\\{{", "\\{{#if a}}", "\\\\{{#if a}}", "{{!-- {{#if a}} --}}", "{{! {{#each a}} }}",
    "{{{{raw}}}}{{#if a}}{{{{/raw}}}}", "{{> partial}}", "{{x (f (g (h a)))}}", "{{a:YYYY}}",
    "(((", ")))", "{{~", "~}}", "{{", "}}", "{{{a}}}", "{{lookup a 'b'}}", "x", "\n",
]


def closer(opener):
    if opener.startswith("{{^") or opener == "{{#a}}":
        return "{{/a}}"
    name = opener.lstrip("{~#^*>").split()[0].rstrip("}~")
    return "{{/" + name + "}}"


def case(rng):
    depth = rng.choice([10, 63, 64, 65, 100, 1000, 5000, 20000, 40000])
    mix = [rng.choice(OPENERS) for _ in range(rng.randint(1, 3))]
    parts, closes = [], []
    for i in range(depth):
        o = mix[i % len(mix)]
        parts.append(o)
        if rng.random() < 0.02:
            parts.append(rng.choice(NOISE))
        closes.append(closer(o))
    if rng.random() < 0.3:  # unbalanced on purpose
        closes = closes[: rng.randint(0, len(closes))]
    body = "".join(parts) + "".join(reversed(closes))
    if rng.random() < 0.2:
        n = rng.choice([17, 100, 3000, 10000])
        body = "{{x " + "(f " * n + "a" + ")" * n + "}}" + body[:1000]
    return body[: 256 * 1024]


def lit(s):
    return "'" + s.replace("'", "''") + "'"


def main():
    cases, seed = int(sys.argv[1]), int(sys.argv[2])
    rng = random.Random(seed)
    print("\\set ON_ERROR_STOP 0")
    print("SET ROLE anon;")
    for i in range(cases):
        t = lit(case(rng))
        kind = i % 3
        if kind == 0:
            print(f"SELECT length(crm.render_template({t}, '{{\"a\": [1, [2, 3]], \"b\": true}}'));")
        elif kind == 1:
            print(f"SELECT crm.template_variables({t});")
        else:
            print(f"SELECT count(*) FROM crm._render_email_parts({t}, {t}, NULL, '{{\"a\": [1]}}');")
    print("RESET ROLE;")


main()
