"""The word lists of the tiny world, shared by the corpus generator and the gold judge.

Valences are in [-1, 1]. The positive and negative adjective lists mirror each
other (same count, same total magnitude) so that a review drawn with a neutral
mood has an expected gold score of 0. Taught in notebooks/02_reward_model.ipynb.
"""

POSITIVE = {
    "excellent": 0.9,
    "brilliant": 0.9,
    "superb": 0.9,
    "outstanding": 0.9,
    "wonderful": 0.9,
    "amazing": 0.9,
    "fantastic": 0.9,
    "masterful": 0.9,
    "stunning": 0.8,
    "great": 0.8,
    "thrilling": 0.7,
    "powerful": 0.7,
    "beautiful": 0.7,
    "gripping": 0.7,
    "moving": 0.7,
    "delightful": 0.7,
    "charming": 0.6,
    "clever": 0.6,
    "engaging": 0.6,
    "enjoyable": 0.6,
    "good": 0.6,
    "memorable": 0.6,
    "touching": 0.6,
    "heartfelt": 0.6,
    "witty": 0.6,
    "elegant": 0.6,
    "fun": 0.5,
    "funny": 0.5,
    "solid": 0.5,
    "fresh": 0.5,
    "smart": 0.5,
    "vivid": 0.5,
    "nice": 0.4,
    "pleasant": 0.4,
    "likeable": 0.4,
    "tight": 0.4,
    "decent": 0.3,
    "fine": 0.3,
    "competent": 0.3,
    "watchable": 0.2,
}

NEGATIVE = {
    "terrible": -0.9,
    "awful": -0.9,
    "dreadful": -0.9,
    "horrible": -0.9,
    "atrocious": -0.9,
    "abysmal": -0.9,
    "unbearable": -0.9,
    "disastrous": -0.9,
    "painful": -0.8,
    "dire": -0.8,
    "pointless": -0.7,
    "lifeless": -0.7,
    "boring": -0.7,
    "tedious": -0.7,
    "dull": -0.7,
    "ugly": -0.7,
    "annoying": -0.6,
    "lazy": -0.6,
    "wooden": -0.6,
    "poor": -0.6,
    "bad": -0.6,
    "cheap": -0.6,
    "shallow": -0.6,
    "stale": -0.6,
    "clumsy": -0.6,
    "messy": -0.5,
    "bland": -0.5,
    "forgettable": -0.5,
    "confusing": -0.5,
    "flat": -0.5,
    "weak": -0.5,
    "cliched": -0.5,
    "silly": -0.4,
    "predictable": -0.4,
    "stiff": -0.4,
    "mediocre": -0.4,
    "overlong": -0.3,
    "uneven": -0.3,
    "slow": -0.3,
    "sloppy": -0.2,
}

# Verbs of liking, used as "i loved the plot"; they carry valence like adjectives.
LIKING_VERBS = {
    "loved": 0.8,
    "adored": 0.9,
    "enjoyed": 0.6,
    "liked": 0.5,
    "admired": 0.5,
    "hated": -0.8,
    "loathed": -0.9,
    "disliked": -0.6,
    "resented": -0.5,
    "regretted": -0.5,
}

# Other sentiment-bearing words of the verdict sentences.
VERDICT_WORDS = {"recommend": 0.6, "waste": -0.6, "masterpiece": 0.9, "mess": -0.9}

VALENCE = {**POSITIVE, **NEGATIVE, **LIKING_VERBS, **VERDICT_WORDS}

# Multipliers applied to the next sentiment word ("a bit" and "a little" are bigrams).
INTENSIFIERS = {
    "very": 1.5,
    "really": 1.4,
    "extremely": 1.8,
    "incredibly": 1.8,
    "truly": 1.5,
    "so": 1.4,
    "quite": 1.2,
    "pretty": 1.2,
    "rather": 1.1,
    "fairly": 0.8,
    "somewhat": 0.7,
    "slightly": 0.5,
    "mildly": 0.5,
    "a bit": 0.5,
    "a little": 0.6,
}

NEGATORS = {"not", "never", "hardly", "barely"}
