# ruff: noqa: RUF001  (the bank holds real text: dashes and multiplication signs)
"""The hand-written bank behind semcache's labelled pairs and sample logs.

Each family is a question with slots; one assignment of its slots is an *intent* (a group of
equivalent requests). Paraphrase templates of one intent are equivalent to each other; the same
template with one slot changed is a hard negative of the slot's kind (changed number, swapped entity,
different unit, ...); ``contrasts`` keep the slots but change the meaning with a word or a negation.

The labelling rule: a pair is *equivalent* when the cached answer to the candidate is a correct and
appropriate answer to the query, so a question in another language is not equivalent to its
translation (the answer would come back in the wrong language).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Family:
    name: str
    domain: str
    paraphrases: list[str]
    slots: list[dict[str, Any]] = field(default_factory=lambda: [{}])
    kinds: dict[str, str] = field(default_factory=dict)
    """Slot name → the hard-negative kind of changing it (default ``swapped-entity``)."""
    contrasts: list[tuple[str, str]] = field(default_factory=list)
    answer: str = ""
    lang: str = "en"
    xling: str | None = None
    """Families with the same ``xling`` hold translations of each other (same slot order)."""


def _mul(a: int, b: int) -> dict[str, Any]:
    return {"a": a, "b": b, "r": a * b}


FAMILIES: list[Family] = [
    # --- support ------------------------------------------------------------------------------
    Family(
        "account-field",
        "support",
        [
            "How do I change my {item}?",
            "How can I update my {item}?",
            "What's the process for changing the {item} on my account?",
            "I want to change my {item}. How do I do that?",
            "Where do I go to update my {item}?",
            "change {item} how",
        ],
        [
            {"item": x}
            for x in [
                "password",
                "email address",
                "phone number",
                "billing address",
                "username",
                "display name",
                "profile picture",
                "time zone",
            ]
        ],
        contrasts=[
            ("Why can't I change my {item}?", "word-change"),
            ("Who can see my {item}?", "word-change"),
        ],
        answer="Open Settings → Account, choose '{item}', enter the new value and confirm.",
    ),
    Family(
        "cancel-order",
        "support",
        [
            "Can I cancel my order after it has shipped?",
            "Is it possible to cancel an order once it's been shipped?",
            "My order already shipped. Can I still cancel it?",
            "cancel order after shipping possible?",
            "Once my package is on its way, can the order still be cancelled?",
        ],
        contrasts=[
            ("Can I cancel my order before it has shipped?", "word-change"),
            ("Can I change the delivery address after my order has shipped?", "word-change"),
            ("Can I return my order after it has been delivered?", "word-change"),
        ],
        answer="Once an order has shipped it can no longer be cancelled; you can return it instead.",
    ),
    Family(
        "refund-time",
        "support",
        [
            "How long does a refund to my {method} take?",
            "How many days until a refund shows up on my {method}?",
            "When will I get my refund back on my {method}?",
            "refund to {method} - how long does it take?",
        ],
        [
            {"method": x}
            for x in ["credit card", "PayPal account", "bank account", "gift card", "debit card"]
        ],
        contrasts=[("Why was my refund to my {method} declined?", "word-change")],
        answer="Refunds to your {method} usually arrive within 5–10 business days.",
    ),
    Family(
        "ship-country",
        "support",
        [
            "Do you ship to {country}?",
            "Can I get my order delivered to {country}?",
            "Is shipping to {country} available?",
            "Do you offer delivery in {country}?",
            "Do you deliver orders to {country}?",
        ],
        [
            {"country": x}
            for x in [
                "Canada",
                "Mexico",
                "Japan",
                "Brazil",
                "Australia",
                "Germany",
                "India",
                "South Africa",
                "Norway",
            ]
        ],
        contrasts=[("How much does shipping to {country} cost?", "word-change")],
        answer="Yes, we ship to {country}; delivery takes 7–14 days.",
    ),
    Family(
        "free-shipping",
        "support",
        [
            "Is shipping free on orders over ${n}?",
            "Do orders above ${n} get free shipping?",
            "If I spend more than ${n}, is delivery free?",
            "free shipping over ${n}?",
        ],
        [{"n": n} for n in [25, 35, 50, 75, 100]],
        kinds={"n": "changed-number"},
        contrasts=[("Is shipping free on orders under ${n}?", "word-change")],
        answer="Orders over ${n} ship free within the country.",
    ),
    Family(
        "switch-plan",
        "support",
        [
            "How do I switch from the {a} plan to the {b} plan?",
            "I'd like to move my subscription from {a} to {b}. How?",
            "What are the steps to change my plan from {a} to {b}?",
            "switch plan {a} -> {b}",
        ],
        [
            {"a": a, "b": b}
            for a, b in [
                ("Basic", "Pro"),
                ("Pro", "Basic"),
                ("Pro", "Enterprise"),
                ("Enterprise", "Pro"),
                ("Free", "Basic"),
            ]
        ],
        kinds={"a": "swapped-entity", "b": "swapped-entity"},
        answer="Go to Billing → Plan, pick {b} and confirm; the change applies at once.",
    ),
    Family(
        "locked-account",
        "support",
        [
            "My account is locked after too many login attempts. What should I do?",
            "I got locked out of my account after typing the wrong password several times. Help?",
            "How do I unlock my account after too many failed logins?",
            "account locked because of failed login attempts, how to unlock",
        ],
        contrasts=[
            ("My account was suspended for a policy violation. What should I do?", "word-change"),
            ("How do I lock my account if my phone was stolen?", "word-change"),
        ],
        answer="Wait 15 minutes, then reset your password from the sign-in page.",
    ),
    Family(
        "invoice-month",
        "support",
        [
            "Where can I download my invoice for {month}?",
            "How do I get the {month} invoice?",
            "I need my invoice from {month}, where is it?",
            "download {month} invoice",
        ],
        [
            {"month": m}
            for m in ["January", "February", "March", "April", "July", "October", "December"]
        ],
        kinds={"month": "changed-number"},
        answer="Invoices are under Billing → History; pick {month} and click Download.",
    ),
    Family(
        "support-hours",
        "support",
        [
            "What are your customer support hours on {day}?",
            "When is customer service open on {day}?",
            "Is support available on {day}, and when?",
            "support hours {day}",
        ],
        [{"day": d} for d in ["Saturday", "Sunday", "Monday", "public holidays"]],
        answer="On {day} our support team answers from 9am to 5pm.",
    ),
    Family(
        "two-factor",
        "support",
        [
            "How do I turn on two-factor authentication?",
            "How can I enable 2FA on my account?",
            "Where do I activate two-factor authentication?",
            "Set up two-step verification: how?",
        ],
        contrasts=[
            ("How do I turn off two-factor authentication?", "negation"),
            ("How can I disable 2FA on my account?", "negation"),
            ("How do I turn on two-factor authentication for my whole team?", "word-change"),
        ],
        answer="Go to Settings → Security → Two-factor authentication and scan the QR code.",
    ),
    Family(
        "delete-account",
        "support",
        [
            "How do I delete my account?",
            "How can I permanently close my account?",
            "I want to remove my account for good. How?",
            "delete account",
        ],
        contrasts=[
            ("How do I deactivate my account temporarily?", "word-change"),
            ("How do I restore a deleted account?", "word-change"),
        ],
        answer="Settings → Account → Delete account. This cannot be undone.",
    ),
    # --- coding -------------------------------------------------------------------------------
    Family(
        "list-op",
        "coding",
        [
            "How do I {op} in {lang}?",
            "What's the best way to {op} in {lang}?",
            "{lang}: how to {op}?",
            "How can I {op} using {lang}?",
            "What is the idiomatic way to {op} in {lang}?",
        ],
        [
            {"op": op, "lang": lang}
            for op in [
                "reverse a list",
                "sort a list",
                "remove duplicates from a list",
                "flatten a nested list",
                "get the last element of a list",
            ]
            for lang in ["Python", "JavaScript", "Java"]
        ],
        kinds={"op": "word-change", "lang": "swapped-entity"},
        answer="In {lang}, to {op}: use the standard library's built-in for it.",
    ),
    Family(
        "convert-string",
        "coding",
        [
            "How do I convert a string to {type} in {lang}?",
            "In {lang}, how can I turn a string into {type}?",
            "{lang} convert string to {type}",
            "What's the way to parse a string as {type} in {lang}?",
        ],
        [
            {"type": t, "lang": lang}
            for t in ["an integer", "a float", "a date", "a list of characters"]
            for lang in ["Python", "JavaScript", "Go"]
        ],
        kinds={"type": "word-change", "lang": "swapped-entity"},
        answer="In {lang}, parse the string into {type} with the standard conversion function.",
    ),
    Family(
        "git-undo",
        "coding",
        [
            "How do I undo the last commit but keep the changes?",
            "git: revert my last commit without losing my changes",
            "How can I undo my most recent commit and keep the modified files?",
            "undo last git commit keep changes",
        ],
        contrasts=[
            ("How do I undo the last commit and discard the changes?", "word-change"),
            ("How do I undo the last pushed commit on the remote?", "word-change"),
            ("How do I undo the last two commits but keep the changes?", "changed-number"),
        ],
        answer="Run `git reset --soft HEAD~1`: the commit is undone and the changes stay staged.",
    ),
    Family(
        "git-branch",
        "coding",
        [
            "How do I delete a {where} branch in git?",
            "git: remove a {where} branch",
            "What's the command to delete a {where} git branch?",
            "How can I get rid of a {where} branch with git?",
        ],
        [{"where": w} for w in ["local", "remote"]],
        kinds={"where": "word-change"},
        contrasts=[("How do I rename a {where} branch in git?", "word-change")],
        answer="For a {where} branch: `git branch -d name` or `git push origin --delete name`.",
    ),
    Family(
        "sql-top",
        "coding",
        [
            "How do I select the top {n} rows in {db}?",
            "{db}: query for the first {n} rows",
            "How can I limit a query to {n} rows in {db}?",
            "What's the syntax to return only {n} rows in {db}?",
        ],
        [{"n": n, "db": db} for n in [5, 10, 100] for db in ["PostgreSQL", "MySQL", "SQL Server"]],
        kinds={"n": "changed-number", "db": "swapped-entity"},
        contrasts=[("How do I select the last {n} rows in {db}?", "word-change")],
        answer="In {db}: add LIMIT {n} (or TOP {n} in SQL Server) to the query.",
    ),
    Family(
        "docker-remove",
        "coding",
        [
            "How do I remove all {what} in Docker?",
            "Docker: delete all {what}",
            "What command removes all {what} in Docker?",
            "clean up all {what} docker",
        ],
        [
            {"what": w}
            for w in [
                "stopped containers",
                "running containers",
                "unused images",
                "dangling volumes",
            ]
        ],
        kinds={"what": "word-change"},
        contrasts=[("How do I list all {what} in Docker?", "word-change")],
        answer="Use the matching `docker ... prune` command for {what}.",
    ),
    Family(
        "regex",
        "coding",
        [
            "Write a regex that matches {thing}.",
            "What regular expression matches {thing}?",
            "I need a regex pattern for {thing}.",
            "regex for {thing}",
        ],
        [
            {"thing": t}
            for t in [
                "email addresses",
                "US phone numbers",
                "IPv4 addresses",
                "dates in YYYY-MM-DD format",
                "hex color codes",
                "URLs",
            ]
        ],
        answer="A pattern for {thing}: see below, anchored with ^ and $.",
    ),
    Family(
        "complexity",
        "coding",
        [
            "What is the time complexity of {algo}?",
            "What's the Big-O running time of {algo}?",
            "How fast is {algo} in Big-O terms?",
            "time complexity {algo}",
        ],
        [
            {"algo": a}
            for a in [
                "binary search",
                "merge sort",
                "quicksort in the worst case",
                "quicksort on average",
                "inserting into a hash table",
                "heap sort",
            ]
        ],
        kinds={"algo": "word-change"},
        contrasts=[("What is the space complexity of {algo}?", "word-change")],
        answer="The time complexity of {algo} is given below with a short proof sketch.",
    ),
    Family(
        "python-error",
        "coding",
        [
            "What does the Python error '{err}' mean?",
            "Python says '{err}'. What's wrong?",
            "How do I fix '{err}' in Python?",
            "got {err} in python, why?",
        ],
        [
            {"err": e}
            for e in [
                "IndexError: list index out of range",
                "KeyError",
                "TypeError: 'NoneType' object is not subscriptable",
                "RecursionError: maximum recursion depth exceeded",
                "ZeroDivisionError: division by zero",
            ]
        ],
        answer="'{err}' means ... Fix it by checking the value before using it.",
    ),
    # --- facts --------------------------------------------------------------------------------
    Family(
        "capital",
        "facts",
        [
            "What is the capital of {country}?",
            "What's {country}'s capital city?",
            "Which city is the capital of {country}?",
            "capital of {country}?",
            "Name the capital of {country}.",
        ],
        [
            {"country": c}
            for c in [
                "France",
                "Germany",
                "Japan",
                "Brazil",
                "Canada",
                "Australia",
                "Italy",
                "Spain",
                "Egypt",
                "Kenya",
                "Turkey",
                "Vietnam",
            ]
        ],
        contrasts=[
            ("What is the largest city in {country}?", "word-change"),
            ("What was the capital of {country} before the current one?", "word-change"),
        ],
        answer="The capital of {country} is given below.",
    ),
    Family(
        "author",
        "facts",
        [
            "Who wrote {book}?",
            "Who is the author of {book}?",
            "{book} was written by whom?",
            "Which author wrote {book}?",
        ],
        [
            {"book": b}
            for b in [
                "Pride and Prejudice",
                "One Hundred Years of Solitude",
                "1984",
                "The Great Gatsby",
                "Crime and Punishment",
                "Moby-Dick",
                "The Little Prince",
            ]
        ],
        contrasts=[
            ("When was {book} published?", "word-change"),
            ("Who translated {book} into English?", "word-change"),
        ],
        answer="{book} was written by the author named below.",
    ),
    Family(
        "discovered",
        "facts",
        [
            "Who discovered {x}?",
            "Who is credited with discovering {x}?",
            "Which scientist discovered {x}?",
            "{x} was discovered by whom?",
        ],
        [
            {"x": x}
            for x in [
                "penicillin",
                "radium",
                "the electron",
                "X-rays",
                "insulin",
                "the structure of DNA",
            ]
        ],
        contrasts=[("When was {x} discovered?", "word-change")],
        answer="{x} was discovered by the scientist named below.",
    ),
    Family(
        "event-year",
        "facts",
        [
            "In what year did {event}?",
            "When did {event}?",
            "What year did {event}?",
            "year {event}?",
        ],
        [
            {"event": e}
            for e in [
                "the Berlin Wall fall",
                "World War I start",
                "World War I end",
                "humans first land on the Moon",
                "the Titanic sink",
                "the French Revolution begin",
            ]
        ],
        answer="{event}: the year is given below.",
    ),
    Family(
        "distance-body",
        "facts",
        [
            "How far is {body} from the Earth?",
            "What's the distance between the Earth and {body}?",
            "How many kilometers is it from the Earth to {body}?",
            "distance earth to {body}",
        ],
        [{"body": b} for b in ["the Moon", "the Sun", "Mars", "Jupiter"]],
        answer="{body} is, on average, the distance given below from the Earth.",
    ),
    Family(
        "height",
        "facts",
        [
            "How tall is {landmark}?",
            "What is the height of {landmark}?",
            "How high is {landmark} in meters?",
            "{landmark} height?",
        ],
        [
            {"landmark": x}
            for x in [
                "the Eiffel Tower",
                "Mount Everest",
                "the Burj Khalifa",
                "the Statue of Liberty",
                "Big Ben",
            ]
        ],
        contrasts=[("How old is {landmark}?", "word-change")],
        answer="{landmark} is the height given below.",
    ),
    Family(
        "boiling",
        "facts",
        [
            "What is the boiling point of water at sea level in {unit}?",
            "At what temperature in {unit} does water boil at sea level?",
            "Water boils at how many degrees {unit} at sea level?",
        ],
        [{"unit": u} for u in ["Celsius", "Fahrenheit", "Kelvin"]],
        kinds={"unit": "different-unit"},
        contrasts=[
            ("What is the freezing point of water at sea level in {unit}?", "word-change"),
            ("What is the boiling point of water on Mount Everest in {unit}?", "word-change"),
        ],
        answer="Water boils at sea level at the temperature in {unit} given below.",
    ),
    Family(
        "element",
        "facts",
        [
            "What is the chemical symbol for {el}?",
            "What's the symbol of {el} on the periodic table?",
            "Which chemical symbol stands for {el}?",
            "chemical symbol {el}",
        ],
        [{"el": e} for e in ["gold", "silver", "iron", "sodium", "potassium", "lead", "tin"]],
        contrasts=[
            ("What is the atomic number of {el}?", "word-change"),
            ("What is the melting point of {el}?", "word-change"),
        ],
        answer="The chemical symbol for {el} is given below.",
    ),
    Family(
        "lifespan",
        "facts",
        [
            "How long do {animal} live?",
            "What is the average lifespan of {animal}?",
            "How many years do {animal} usually live?",
            "{animal} life expectancy",
        ],
        [{"animal": a} for a in ["cats", "dogs", "elephants", "parrots", "horses", "goldfish"]],
        contrasts=[
            ("How much do {animal} weigh?", "word-change"),
            ("How long are {animal} pregnant?", "word-change"),
        ],
        answer="{animal} usually live for the number of years given below.",
    ),
    Family(
        "negation-list",
        "facts",
        [
            "Which {set} {verb} {prop}?",
            "List the {set} that {verb} {prop}.",
            "Tell me which {set} {verb} {prop}.",
        ],
        [
            {
                "set": "planets in the solar system",
                "verb": "have",
                "neg": "do not have",
                "prop": "rings",
            },
            {"set": "EU countries", "verb": "use", "neg": "do not use", "prop": "the euro"},
            {"set": "fruits", "verb": "are", "neg": "are not", "prop": "safe for dogs to eat"},
            {"set": "mammals", "verb": "lay", "neg": "do not lay", "prop": "eggs"},
            {
                "set": "US states",
                "verb": "have",
                "neg": "do not have",
                "prop": "a state income tax",
            },
        ],
        contrasts=[
            ("Which {set} {neg} {prop}?", "negation"),
            ("List the {set} that {neg} {prop}.", "negation"),
        ],
        answer="The {set} that {verb} {prop} are listed below.",
    ),
    Family(
        "pregnancy-safe",
        "health",
        [
            "Which {x} are safe during pregnancy?",
            "What {x} can I safely use while pregnant?",
            "List {x} that are OK to take when pregnant.",
            "safe {x} during pregnancy",
        ],
        [
            {"x": x}
            for x in [
                "painkillers",
                "cold medicines",
                "antibiotics",
                "skincare ingredients",
                "cheeses",
            ]
        ],
        contrasts=[
            ("Which {x} are not safe during pregnancy?", "negation"),
            ("Which {x} should I avoid while pregnant?", "negation"),
            ("Which {x} are safe while breastfeeding?", "word-change"),
        ],
        answer="These {x} are generally considered safe during pregnancy: ...",
    ),
    Family(
        "vegan",
        "food",
        [
            "Is {food} vegan?",
            "Does {food} count as vegan?",
            "Can vegans eat {food}?",
            "{food} vegan or not?",
        ],
        [
            {"food": f}
            for f in ["honey", "gelatin", "dark chocolate", "sourdough bread", "wine", "tofu"]
        ],
        contrasts=[
            ("Is {food} vegetarian?", "word-change"),
            ("Is {food} gluten-free?", "word-change"),
            ("Why is {food} not vegan?", "negation"),
        ],
        answer="Whether {food} is vegan is explained below.",
    ),
    # --- math ---------------------------------------------------------------------------------
    Family(
        "multiply",
        "math",
        [
            "What is {a} times {b}?",
            "Calculate {a} × {b}.",
            "What's {a} multiplied by {b}?",
            "{a}*{b} = ?",
            "What do you get if you multiply {a} by {b}?",
            "What is {b} times {a}?",
        ],
        [
            _mul(a, b)
            for a, b in [
                (17, 23),
                (12, 15),
                (48, 6),
                (125, 8),
                (31, 29),
                (64, 12),
                (7, 13),
                (250, 4),
            ]
        ],
        kinds={"a": "changed-number", "b": "changed-number"},
        contrasts=[
            ("What is {a} plus {b}?", "word-change"),
            ("What is {a} divided by {b}?", "word-change"),
        ],
        answer="{a} × {b} = {r}",
    ),
    Family(
        "percent",
        "math",
        [
            "What is {p}% of {n}?",
            "Calculate {p} percent of {n}.",
            "How much is {p}% of {n}?",
            "{p} percent of {n} = ?",
        ],
        [
            {"p": p, "n": n, "r": p * n / 100}
            for p, n in [(15, 80), (20, 150), (7, 300), (35, 60), (12, 250), (60, 45)]
        ],
        kinds={"p": "changed-number", "n": "changed-number"},
        contrasts=[
            ("What is {n} increased by {p}%?", "word-change"),
            ("What is {n} decreased by {p}%?", "word-change"),
        ],
        answer="{p}% of {n} is {r:g}.",
    ),
    Family(
        "linear",
        "math",
        [
            "Solve for x: {a}x + {b} = {c}",
            "Find x if {a}x + {b} = {c}.",
            "What value of x satisfies {a}x + {b} = {c}?",
            "solve {a}x+{b}={c}",
        ],
        [
            {"a": a, "b": b, "c": c, "r": (c - b) / a}
            for a, b, c in [(3, 5, 20), (2, 7, 19), (5, 1, 26), (4, 9, 41), (6, 3, 33)]
        ],
        kinds={"a": "changed-number", "b": "changed-number", "c": "changed-number"},
        contrasts=[("Solve for x: {a}x - {b} = {c}", "changed-sign")],
        answer="x = {r:g}",
    ),
    Family(
        "root",
        "math",
        [
            "What is the square root of {n}?",
            "Calculate the square root of {n}.",
            "sqrt({n}) = ?",
            "What number squared gives {n}?",
        ],
        [{"n": n} for n in [144, 169, 225, 256, 400, 625, 729]],
        kinds={"n": "changed-number"},
        contrasts=[
            ("What is the cube root of {n}?", "word-change"),
            ("What is {n} squared?", "word-change"),
        ],
        answer="The square root of {n} is given below.",
    ),
    Family(
        "derivative",
        "math",
        [
            "What is the derivative of {f}?",
            "Differentiate {f}.",
            "Find d/dx of {f}.",
            "derivative of {f} with respect to x",
        ],
        [{"f": f} for f in ["x^2", "x^3", "sin(x)", "cos(x)", "e^x", "ln(x)", "x*e^x"]],
        kinds={"f": "changed-number"},
        contrasts=[
            ("What is the integral of {f}?", "word-change"),
            ("What is the second derivative of {f}?", "word-change"),
        ],
        answer="d/dx {f} is given below.",
    ),
    Family(
        "circle",
        "math",
        [
            "What is the area of a circle with a radius of {r} cm?",
            "Calculate the area of a circle whose radius is {r} cm.",
            "A circle has radius {r} cm. What is its area?",
            "area of circle radius {r}cm",
        ],
        [{"r": r} for r in [3, 5, 7, 10, 12]],
        kinds={"r": "changed-number"},
        contrasts=[
            ("What is the area of a circle with a diameter of {r} cm?", "word-change"),
            ("What is the circumference of a circle with a radius of {r} cm?", "word-change"),
        ],
        answer="Area = π × {r}² cm².",
    ),
    Family(
        "compound",
        "math",
        [
            "If I invest ${p} at {r}% annual interest compounded yearly, how much will I have after "
            "{y} years?",
            "How much does ${p} grow to in {y} years at {r}% interest compounded annually?",
            "Compound interest: ${p}, {r}% per year, {y} years. Final amount?",
        ],
        [
            {"p": p, "r": r, "y": y}
            for p, r, y in [(1000, 5, 10), (5000, 3, 5), (2000, 7, 20), (10000, 4, 15)]
        ],
        kinds={"p": "changed-number", "r": "changed-number", "y": "changed-number"},
        contrasts=[
            (
                "If I invest ${p} at {r}% simple interest, how much will I have after {y} years?",
                "word-change",
            )
        ],
        answer="${p} × (1 + {r}/100)^{y}, computed below.",
    ),
    # --- units --------------------------------------------------------------------------------
    Family(
        "convert",
        "units",
        [
            "Convert {n} {u1} to {u2}.",
            "How many {u2} is {n} {u1}?",
            "What is {n} {u1} in {u2}?",
            "{n} {u1} to {u2}?",
            "{n} {u1} equals how many {u2}?",
        ],
        [
            {"n": n, "u1": u1, "u2": u2}
            for n, u1, u2 in [
                (5, "miles", "kilometers"),
                (5, "kilometers", "miles"),
                (10, "miles", "kilometers"),
                (5, "miles", "meters"),
                (150, "pounds", "kilograms"),
                (150, "kilograms", "pounds"),
                (100, "degrees Fahrenheit", "degrees Celsius"),
                (100, "degrees Celsius", "degrees Fahrenheit"),
                (12, "inches", "centimeters"),
                (12, "feet", "centimeters"),
                (3, "gallons", "liters"),
                (3, "quarts", "liters"),
                (6, "feet", "meters"),
                (60, "miles per hour", "kilometers per hour"),
            ]
        ],
        kinds={"n": "changed-number", "u1": "different-unit", "u2": "different-unit"},
        answer="{n} {u1} is the number of {u2} given below.",
    ),
    Family(
        "kitchen-units",
        "units",
        [
            "How many {small} are in a {big}?",
            "How many {small} make one {big}?",
            "One {big} equals how many {small}?",
            "{small} in a {big}",
        ],
        [
            {"small": s, "big": b}
            for s, b in [
                ("teaspoons", "tablespoon"),
                ("tablespoons", "cup"),
                ("cups", "quart"),
                ("ounces", "pound"),
                ("grams", "kilogram"),
                ("milliliters", "cup"),
            ]
        ],
        kinds={"small": "different-unit", "big": "different-unit"},
        answer="There are the number of {small} given below in a {big}.",
    ),
    # --- health, food, travel -----------------------------------------------------------------
    Family(
        "drug-alcohol",
        "health",
        [
            "Can I drink alcohol while taking {drug}?",
            "Is it safe to drink alcohol on {drug}?",
            "Is it OK to have a beer while I'm taking {drug}?",
            "alcohol and {drug}, is that safe?",
        ],
        [
            {"drug": d}
            for d in ["ibuprofen", "amoxicillin", "metformin", "acetaminophen", "sertraline"]
        ],
        contrasts=[
            ("Can I drink coffee while taking {drug}?", "word-change"),
            ("Can I stop taking {drug} if I feel better?", "word-change"),
        ],
        answer="Ask your pharmacist; in general, alcohol with {drug} is discussed below.",
    ),
    Family(
        "stretch",
        "health",
        [
            "Should I stretch before running?",
            "Is stretching before a run a good idea?",
            "Do I need to stretch before I go running?",
            "stretching before running yes or no",
        ],
        contrasts=[
            ("Should I stretch after running?", "word-change"),
            ("Should I eat before running?", "word-change"),
            ("Should I not stretch before running?", "negation"),
        ],
        answer="A short dynamic warm-up before running is better than static stretching.",
    ),
    Family(
        "cholesterol",
        "health",
        [
            "What foods should I eat to lower my cholesterol?",
            "Which foods help reduce cholesterol?",
            "What should I eat to bring my cholesterol down?",
            "diet to lower cholesterol",
        ],
        contrasts=[
            ("What foods should I avoid to lower my cholesterol?", "word-change"),
            ("What foods should I eat to lower my blood pressure?", "swapped-entity"),
            ("What foods raise cholesterol?", "word-change"),
        ],
        answer="Oats, beans, nuts, fatty fish and olive oil help lower cholesterol.",
    ),
    Family(
        "visa",
        "travel",
        [
            "Do I need a visa to travel from {a} to {b}?",
            "Is a visa required for citizens of {a} visiting {b}?",
            "As a citizen of {a}, do I need a visa for {b}?",
            "visa {a} to {b}?",
        ],
        [
            {"a": a, "b": b}
            for a, b in [
                ("the US", "Japan"),
                ("Japan", "the US"),
                ("India", "Germany"),
                ("Germany", "India"),
                ("Brazil", "Canada"),
                ("Canada", "Brazil"),
            ]
        ],
        kinds={"a": "swapped-entity", "b": "swapped-entity"},
        answer="Citizens of {a} visiting {b}: the visa rules are below.",
    ),
    Family(
        "best-time",
        "travel",
        [
            "What is the best time of year to visit {place}?",
            "When is the best season to go to {place}?",
            "What month should I visit {place}?",
            "best time to travel to {place}",
        ],
        [{"place": p} for p in ["Iceland", "Thailand", "Peru", "New Zealand", "Morocco", "Kyoto"]],
        contrasts=[
            ("What is the worst time of year to visit {place}?", "word-change"),
            ("What is the cheapest time of year to fly to {place}?", "word-change"),
        ],
        answer="The best time to visit {place} is described below.",
    ),
    Family(
        "egg",
        "food",
        [
            "How long should I boil an egg for a {done} yolk?",
            "How many minutes do I boil an egg to get a {done} yolk?",
            "Boiling time for a {done}-yolk egg?",
            "egg with {done} yolk, how many minutes",
        ],
        [{"done": d} for d in ["runny", "jammy", "firm"]],
        kinds={"done": "word-change"},
        answer="For a {done} yolk, boil the egg for the minutes given below.",
    ),
    Family(
        "substitute",
        "food",
        [
            "Can I substitute {a} for {b} in baking?",
            "Can I use {a} instead of {b} when baking?",
            "Is it OK to replace {b} with {a} in a cake?",
            "{a} instead of {b} in baking?",
        ],
        [
            {"a": a, "b": b}
            for a, b in [
                ("butter", "oil"),
                ("oil", "butter"),
                ("honey", "sugar"),
                ("sugar", "honey"),
                ("baking soda", "baking powder"),
            ]
        ],
        kinds={"a": "swapped-entity", "b": "swapped-entity"},
        answer="Yes, {a} can stand in for {b}; adjust the quantities as below.",
    ),
    Family(
        "store-food",
        "food",
        [
            "How long does {food} last in the fridge?",
            "How many days can I keep {food} refrigerated?",
            "How long can {food} stay in the fridge?",
            "{food} fridge shelf life",
        ],
        [
            {"food": f}
            for f in [
                "cooked rice",
                "raw chicken",
                "cooked chicken",
                "opened milk",
                "a hard-boiled egg",
            ]
        ],
        contrasts=[("How long does {food} last in the freezer?", "word-change")],
        answer="{food} keeps in the fridge for the days given below.",
    ),
]

# --- multilingual: the same questions in several languages ------------------------------------

_PASSWORD = {
    "en": (
        [
            "How do I change my password?",
            "How can I change my password?",
            "Where do I change the password of my account?",
        ],
        ["How do I change my email address?"],
    ),
    "es": (
        [
            "¿Cómo cambio mi contraseña?",
            "¿Cómo puedo cambiar mi contraseña?",
            "¿Dónde se cambia la contraseña de mi cuenta?",
            "Quiero cambiar mi contraseña, ¿cómo lo hago?",
        ],
        ["¿Cómo cambio mi correo electrónico?", "¿Cómo recupero mi contraseña olvidada?"],
    ),
    "fr": (
        [
            "Comment changer mon mot de passe ?",
            "Comment puis-je modifier mon mot de passe ?",
            "Où puis-je changer le mot de passe de mon compte ?",
        ],
        ["Comment changer mon adresse e-mail ?", "Comment récupérer mon mot de passe oublié ?"],
    ),
    "de": (
        [
            "Wie ändere ich mein Passwort?",
            "Wie kann ich mein Passwort ändern?",
            "Wo kann ich das Passwort meines Kontos ändern?",
        ],
        ["Wie ändere ich meine E-Mail-Adresse?", "Wie setze ich ein vergessenes Passwort zurück?"],
    ),
    "pt": (
        [
            "Como altero minha senha?",
            "Como posso mudar minha senha?",
            "Onde eu troco a senha da minha conta?",
        ],
        ["Como altero meu endereço de e-mail?"],
    ),
    "it": (
        [
            "Come cambio la mia password?",
            "Come posso modificare la mia password?",
            "Dove si cambia la password del mio account?",
        ],
        ["Come cambio il mio indirizzo email?"],
    ),
}

_REFUND = {
    "en": (
        [
            "How long does a refund take?",
            "How long until I get my refund?",
            "When will my refund arrive?",
        ],
        ["How long does delivery take?"],
    ),
    "es": (
        [
            "¿Cuánto tarda un reembolso?",
            "¿Cuánto tiempo tarda en llegar mi reembolso?",
            "¿Cuándo recibiré mi reembolso?",
        ],
        ["¿Cuánto tarda el envío?", "¿Por qué rechazaron mi reembolso?"],
    ),
    "fr": (
        [
            "Combien de temps prend un remboursement ?",
            "Dans combien de temps vais-je être remboursé ?",
            "Quand vais-je recevoir mon remboursement ?",
        ],
        ["Combien de temps prend la livraison ?"],
    ),
    "de": (
        [
            "Wie lange dauert eine Rückerstattung?",
            "Wann bekomme ich mein Geld zurück?",
            "Wie lange muss ich auf meine Erstattung warten?",
        ],
        ["Wie lange dauert der Versand?"],
    ),
    "pt": (
        ["Quanto tempo demora um reembolso?", "Quando vou receber meu reembolso?"],
        ["Quanto tempo demora a entrega?"],
    ),
}

_CAPITALS = [  # (en, es, fr, de, it)
    ("France", "Francia", "de la France", "Frankreich", "della Francia"),
    ("Japan", "Japón", "du Japon", "Japan", "del Giappone"),
    ("Brazil", "Brasil", "du Brésil", "Brasilien", "del Brasile"),
    ("Canada", "Canadá", "du Canada", "Kanada", "del Canada"),
    ("Egypt", "Egipto", "de l'Égypte", "Ägypten", "dell'Egitto"),
]

_CAPITAL_TEMPLATES = {
    "en": (
        0,
        ["What is the capital of {c}?", "Which city is the capital of {c}?"],
        ["What is the largest city in {c}?"],
    ),
    "es": (
        1,
        ["¿Cuál es la capital de {c}?", "¿Qué ciudad es la capital de {c}?", "capital de {c}"],
        ["¿Cuál es la ciudad más grande de {c}?"],
    ),
    "fr": (
        2,
        ["Quelle est la capitale {c} ?", "Quelle ville est la capitale {c} ?"],
        ["Quelle est la plus grande ville {c} ?"],
    ),
    "de": (
        3,
        [
            "Was ist die Hauptstadt von {c}?",
            "Welche Stadt ist die Hauptstadt von {c}?",
            "Hauptstadt von {c}?",
        ],
        ["Was ist die größte Stadt in {c}?"],
    ),
    "it": (
        4,
        ["Qual è la capitale {c}?", "Quale città è la capitale {c}?"],
        ["Qual è la città più grande {c}?"],
    ),
}

_MULTIPLY = {
    "en": ["What is {a} times {b}?", "Calculate {a} times {b}."],
    "es": [
        "¿Cuánto es {a} por {b}?",
        "Calcula {a} por {b}.",
        "¿Cuál es el resultado de {a} por {b}?",
    ],
    "fr": [
        "Combien font {a} fois {b} ?",
        "Calcule {a} fois {b}.",
        "Quel est le produit de {a} et {b} ?",
    ],
    "de": ["Was ist {a} mal {b}?", "Berechne {a} mal {b}.", "Wie viel ist {a} mal {b}?"],
    "pt": ["Quanto é {a} vezes {b}?", "Calcule {a} vezes {b}."],
}

_MUL_NUMBERS = [(17, 23), (12, 15), (48, 6), (31, 29)]


def _multilingual() -> list[Family]:
    out: list[Family] = []
    for topic, table in (("password", _PASSWORD), ("refund", _REFUND)):
        for lang, (paraphrases, negatives) in table.items():
            out.append(
                Family(
                    f"{topic}-{lang}",
                    "multilingual",
                    paraphrases,
                    lang=lang,
                    xling=topic,
                    contrasts=[(n, "swapped-entity") for n in negatives],
                    answer=f"[{lang}] {paraphrases[0]}",
                )
            )
    for lang, (col, paraphrases, negatives) in _CAPITAL_TEMPLATES.items():
        out.append(
            Family(
                f"capital-{lang}",
                "multilingual",
                paraphrases,
                [{"c": row[col]} for row in _CAPITALS],
                lang=lang,
                xling="capital",
                contrasts=[(n, "word-change") for n in negatives],
                answer=f"[{lang}] {{c}}",
            )
        )
    for lang, paraphrases in _MULTIPLY.items():
        out.append(
            Family(
                f"multiply-{lang}",
                "multilingual",
                paraphrases,
                [_mul(a, b) for a, b in _MUL_NUMBERS],
                lang=lang,
                xling="multiply",
                kinds={"a": "changed-number", "b": "changed-number", "r": "changed-number"},
                answer="{a} × {b} = {r}",
            )
        )
    return out


FAMILIES += _multilingual()
