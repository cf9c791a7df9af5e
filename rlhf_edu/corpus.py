"""A seedable generator of synthetic movie reviews: the text world of the ``tiny`` preset.

A review is an opening sentence, one to three opinion sentences of one to three clauses
joined by "and" / "but" / "although" / "while" (mixed sentiment is common), an optional
neutral filler sentence, and an optional verdict. Each review draws a mood in [-1, 1];
each opinion clause is positive with probability ``(1 + mood) / 2``, so the corpus is
balanced (mean gold score near 0) with a real spread. Opinion words come from
``lexicon`` with intensifiers ("very", "a bit") and negation ("not bad"); a sentiment
word is never used twice in one review (see rule 4 of ``judge``).

Taught in notebooks/02_reward_model.ipynb.
"""

from __future__ import annotations

import random

from ._checks import require_texts
from .lexicon import INTENSIFIERS, LIKING_VERBS, NEGATIVE, POSITIVE

SUBJECTS = [
    "the acting",
    "the plot",
    "the story",
    "the script",
    "the dialogue",
    "the ending",
    "the opening",
    "the cast",
    "the lead actor",
    "the lead actress",
    "the villain",
    "the hero",
    "the soundtrack",
    "the music",
    "the score",
    "the cinematography",
    "the camera work",
    "the editing",
    "the pacing",
    "the humor",
    "the special effects",
    "the costume design",
    "the production design",
    "the direction",
    "the director",
    "the writing",
    "the twist",
    "the romance",
    "the action",
    "the final act",
    "the first half",
    "the second half",
    "the sequel",
    "the visual style",
    "the lighting",
    "the makeup",
    "the sound design",
    "the supporting cast",
    "the premise",
    "the tone",
]
VERBS = ["was", "is", "felt", "seemed", "looked", "came across as", "turned out", "stayed"]
OPENERS = [
    "this movie",
    "this film",
    "honestly, this film",
    "i think this movie",
    "overall, the film",
    "to be fair, this picture",
    "in short, this movie",
    "well, this film",
]
OPENER_VERBS = ["was", "is", "felt", "seemed"]
CONNECTORS = ["and", "but", "although", "while", "yet"]
PLAUSIBLE_NEG = ["not", "never", "hardly"]

FILLER = {
    "when": [
        "on a sunday",
        "last night",
        "at home",
        "on a plane",
        "in the cinema",
        "on a rainy evening",
        "during the holidays",
        "after work",
        "at a festival",
        "on a long train ride",
        "in an empty theater",
        "on my laptop",
    ],
    "who": [
        "my sister",
        "my brother",
        "my parents",
        "a friend",
        "my kids",
        "my partner",
        "my roommate",
        "my grandmother",
        "some colleagues",
        "my neighbor",
        "my uncle",
        "a date",
    ],
    "source": [
        "a novel",
        "a true story",
        "a comic book",
        "a stage play",
        "a video game",
        "an old cartoon",
        "a short story",
        "a famous song",
        "a newspaper article",
    ],
    "place": [
        "paris",
        "london",
        "tokyo",
        "a small town",
        "outer space",
        "the desert",
        "new york",
        "a prison",
        "a high school",
        "a farm",
        "a hospital",
        "the jungle",
        "a submarine",
        "an island",
        "the mountains",
        "a castle",
    ],
    "topic": [
        "a family",
        "a detective",
        "two brothers",
        "a robot",
        "a heist",
        "a war",
        "a lost dog",
        "a chef",
        "a boxer",
        "a singer",
        "a teacher",
        "a pilot",
        "a ghost",
        "a wedding",
        "a road trip",
        "a chess player",
        "a scientist",
        "a spy",
        "a soldier",
        "twin sisters",
    ],
    "length": ["about two hours", "almost three hours", "ninety minutes", "under two hours"],
}
FILLER_TEMPLATES = [
    "i watched it {when} with {who}.",
    "it is based on {source}.",
    "the movie is set in {place}.",
    "it is about {topic} in {place}.",
    "it runs {length}.",
    "{who} picked it {when}.",
    "the story follows {topic}.",
]
POS_VERDICTS = ["i would recommend it.", "a real masterpiece.", "i would watch it again."]
NEG_VERDICTS = ["what a waste of time.", "a complete mess.", "i would not watch it again."]
NEUTRAL_VERDICTS = ["make up your own mind.", "that is all i have to say.", "see it if you like."]

# Intensifier use: most adjectives go bare.
_INTENSIFIER_WORDS = list(INTENSIFIERS)
P_INTENSIFIER = 0.35
P_NEGATION = 0.15


class _Review:
    """Draws one review; keeps track of the sentiment words already used."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.mood = rng.uniform(-1.0, 1.0)
        self.used: set[str] = set()

    def word(self, table: dict[str, float]) -> str:
        choices = [w for w in table if w not in self.used]
        w = self.rng.choice(choices)
        self.used.add(w)
        return w

    def polarity(self) -> bool:
        return self.rng.random() < (1.0 + self.mood) / 2.0

    def adjective_phrase(self) -> str:
        r = self.rng
        positive = self.polarity()
        negated = r.random() < P_NEGATION
        # "not bad" reads positive: pick the adjective of the opposite sign when negated.
        table = POSITIVE if positive != negated else NEGATIVE
        parts = []
        if negated:
            parts.append(r.choice(PLAUSIBLE_NEG))
        if r.random() < P_INTENSIFIER:
            parts.append(r.choice(_INTENSIFIER_WORDS))
        parts.append(self.word(table))
        return " ".join(parts)

    def clause(self) -> str:
        r = self.rng
        table = {
            w: v
            for w, v in LIKING_VERBS.items()
            if (v > 0) == self.polarity() and w not in self.used
        }
        if r.random() < 0.2 and table:
            return f"i {self.word(table)} {r.choice(SUBJECTS)}"
        return f"{r.choice(SUBJECTS)} {r.choice(VERBS)} {self.adjective_phrase()}"

    def sentence(self) -> str:
        r = self.rng
        n = r.choice([1, 1, 2, 2, 2, 3])
        text = self.clause()
        for _ in range(n - 1):
            conn = r.choice(CONNECTORS)
            text += ("," if conn != "and" else "") + f" {conn} {self.clause()}"
        return text + "."

    def opener(self) -> str:
        r = self.rng
        return f"{r.choice(OPENERS)} {r.choice(OPENER_VERBS)} {self.adjective_phrase()}."

    def filler(self) -> str:
        r = self.rng
        template = r.choice(FILLER_TEMPLATES)
        return template.format(**{k: r.choice(v) for k, v in FILLER.items()})

    def verdict(self) -> str:
        r = self.rng
        if abs(self.mood) < 0.2:
            return r.choice(NEUTRAL_VERDICTS)
        pool = POS_VERDICTS if self.polarity() else NEG_VERDICTS
        verdict = r.choice(pool)
        word = {"recommend", "masterpiece", "waste", "mess"} & set(verdict[:-1].split())
        if word & self.used:  # never repeat a sentiment word (judge rule 4)
            return r.choice(NEUTRAL_VERDICTS)
        self.used |= word
        return verdict

    def draw(self) -> str:
        r = self.rng
        sentences = [self.opener() if r.random() < 0.5 else self.sentence()]
        if r.random() < 0.5:
            sentences.insert(r.randint(0, 1), self.filler())
        for _ in range(r.choice([0, 1, 1, 2])):
            sentences.append(self.sentence())
        if r.random() < 0.4:
            sentences.append(self.verdict())
        return " ".join(sentences)


def generate_reviews(n: int = 20_000, seed: int = 0) -> list[str]:
    """Return ``n`` synthetic reviews, reproducibly from ``seed``.

    Taught in notebooks/02_reward_model.ipynb.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive int, got {n!r}")
    rng = random.Random(seed)
    return [_Review(rng).draw() for _ in range(n)]


def make_prompts(reviews: list[str], n_words: tuple[int, int] = (2, 4), seed: int = 0) -> list[str]:
    """Cut the first 2-4 words of each review into a prompt ("the plot was").

    ``reviews``: a non-empty list of strings; ``n_words``: ``(lo, hi)`` with ``1 <= lo <= hi``.
    Taught in notebooks/01_generating_text.ipynb.
    """
    reviews = require_texts("reviews", reviews)
    if not (
        isinstance(n_words, (tuple, list))
        and len(n_words) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) for n in n_words)
        and 1 <= n_words[0] <= n_words[1]
    ):
        raise ValueError(
            f"n_words: expected a pair (lo, hi) of ints, 1 <= lo <= hi, got {n_words!r}"
        )
    rng = random.Random(seed)
    lo, hi = n_words
    return [" ".join(r.split()[: rng.randint(lo, hi)]) for r in reviews]


def vocabulary(reviews: list[str]) -> set[str]:
    """Return the set of distinct words (without punctuation) in ``reviews``."""
    return {w.strip(".,!?") for r in reviews for w in r.split()} - {""}
