"""Deterministic responses built from IFEval's real prompts: for each instruction one that
follows it and one that breaks it, the follower wrapped in chatty first/last lines (which
only the loose rule forgives), and generic answers. Written from what each instruction
asks, not from any checker's code, so they test the checkers rather than mirror them.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from evalfleet.tasks.ifeval import Prompt

# English sentences without commas, digits, single-letter words, asterisks or dashes.
SENTENCES = (
    "The river runs quietly past the old stone mill.",
    "Children played near the fountain until sunset.",
    "Our team finished the project ahead of schedule.",
    "The bakery on the corner sells fresh bread every morning.",
    "Many travelers visit the mountains during the summer months.",
    "She opened the window to let the cool breeze inside.",
    "The museum keeps its oldest paintings in the north wing.",
    "We walked along the beach and collected smooth shells.",
    "Good planning makes long journeys much easier.",
    "The garden was full of roses and tall sunflowers.",
    "He repaired the bicycle with tools from the shed.",
    "The library stays open late on weekdays.",
    "Farmers harvest the wheat before the autumn rains arrive.",
    "Our neighbors invited us to dinner on the weekend.",
    "The train arrived at the station right on time.",
    "Birds gathered on the roof as the storm approached.",
    "The teacher explained the lesson with simple examples.",
    "Fresh snow covered the village overnight.",
    "They painted the fence white to match the house.",
    "The concert hall was quiet before the music began.",
)
WORDS = [
    "river",
    "stone",
    "mill",
    "garden",
    "window",
    "bread",
    "morning",
    "summer",
    "travel",
    "mountain",
    "breeze",
    "museum",
    "north",
    "wing",
    "beach",
    "shell",
    "plan",
    "journey",
    "rose",
    "tool",
    "shed",
    "library",
    "harvest",
    "wheat",
    "autumn",
    "rain",
    "dinner",
    "train",
    "station",
    "roof",
    "storm",
    "lesson",
    "snow",
    "village",
    "fence",
    "house",
    "music",
    "hall",
    "quiet",
    "bright",
    "calm",
    "gentle",
    "green",
    "blue",
    "warm",
    "cold",
    "swift",
    "slow",
    "happy",
    "brave",
    "kind",
    "proud",
    "humble",
    "duty",
    "forty",
    "zulu",
    "kyoto",
    "blur",
    "hymn",
    "lynx",
    "myth",
    "rhythm",
]
CAPS = ("NASA", "USA", "UNESCO", "BBC", "NATO", "FIFA")
# Two or three sentences in each language the prompts ask for (written for these tests).
LANGUAGE_TEXTS: dict[str, str] = json.loads(
    Path(__file__).with_name("language_texts.json").read_text(encoding="utf-8")
)


class Writer:
    """Builds text for one prompt; `avoid` holds patterns no filler may match."""

    def __init__(self, seed: int, avoid: Iterable[str] = ()) -> None:
        self.rng = random.Random(seed)
        self.avoid = [a for a in avoid if a]

    def _clean(self, text: str) -> bool:
        return not any(re.search(re.escape(a), text, re.IGNORECASE) for a in self.avoid)

    def sentences(self, count: int) -> list[str]:
        pool = [s for s in SENTENCES if self._clean(s)]
        if not pool:  # every sentence has an avoided pattern: build some from clean words
            return [self.words(8).capitalize() + "." for _ in range(count)]
        return [self.rng.choice(pool) for _ in range(count)]

    def body(self, count: int = 3) -> str:
        return " ".join(self.sentences(count))

    def words(self, count: int) -> str:
        pool = [w for w in WORDS if self._clean(w)]
        return " ".join(self.rng.choice(pool) for _ in range(count))

    def word_text(self, count: int) -> str:
        """Exactly `count` words in sentences of up to ten."""
        chunks = []
        while count > 0:
            size = min(10, count)
            chunks.append(self.words(size).capitalize() + ".")
            count -= size
        return " ".join(chunks)


def _needed(relation: str, threshold: int, follow: bool) -> int:
    """How many of something to write so that "relation threshold" holds (or not)."""
    at_least = relation != "less than"
    return threshold if at_least == follow else max(threshold - 1, 0)


def build(prompt: Prompt, index: int, follow: bool) -> str:
    """A response that follows (or breaks) the prompt's `index`-th instruction."""
    instruction, args = prompt.instruction_ids[index], prompt.kwargs[index]
    kind = instruction.split(":")[1]
    return _BUILDERS[kind](prompt, args, follow, prompt.key * 31 + index)


def _keywords(p: Prompt, a: Mapping[str, Any], follow: bool, seed: int) -> str:
    w = Writer(seed, a["keywords"])
    extra = " ".join(f"We also discussed {k}." for k in a["keywords"]) if follow else ""
    return f"{w.body()} {extra}".strip()


def _frequency(p: Prompt, a: Mapping[str, Any], follow: bool, seed: int) -> str:
    w = Writer(seed, [a["keyword"]])
    n = _needed(a["relation"], a["frequency"], follow)
    mentions = " ".join(f"Think of {a['keyword']} again." for _ in range(n))
    return f"{w.body()} {mentions}".strip()


def _forbidden(p: Prompt, a: Mapping[str, Any], follow: bool, seed: int) -> str:
    w = Writer(seed, a["forbidden_words"])
    return w.body() if follow else f"{w.body()} It is about {a['forbidden_words'][-1]} today."


def _letters(p: Prompt, a: Mapping[str, Any], follow: bool, seed: int) -> str:
    letter = a["letter"].lower()
    w = Writer(seed, [letter])
    n = _needed(a["let_relation"], a["let_frequency"], follow)
    return f"{w.word_text(12)} {letter * n}".strip()


def _language(p: Prompt, a: Mapping[str, Any], follow: bool, seed: int) -> str:
    return LANGUAGE_TEXTS[a["language"]] if follow else Writer(seed).body(4)


def _sentences(p: Prompt, a: Mapping[str, Any], follow: bool, seed: int) -> str:
    return Writer(seed).body(_needed(a["relation"], a["num_sentences"], follow) or 1)


def _paragraphs(p: Prompt, a: Mapping[str, Any], follow: bool, seed: int) -> str:
    w = Writer(seed)
    n = a["num_paragraphs"] + (0 if follow else 1)
    return "\n***\n".join(w.body(2) for _ in range(n))


def _words(p: Prompt, a: Mapping[str, Any], follow: bool, seed: int) -> str:
    return Writer(seed).word_text(_needed(a["relation"], a["num_words"], follow) or 1)


def _first_word(p: Prompt, a: Mapping[str, Any], follow: bool, seed: int) -> str:
    w = Writer(seed)
    first = a["first_word"].capitalize() if follow else "Meanwhile"
    paragraphs = [w.body(2) for _ in range(a["num_paragraphs"])]
    paragraphs[a["nth_paragraph"] - 1] = f"{first} {w.body(1).lower()}"
    return "\n\n".join(paragraphs)


def _placeholders(p: Prompt, a: Mapping[str, Any], follow: bool, seed: int) -> str:
    n = a["num_placeholders"] - (0 if follow else 1)
    return f"{Writer(seed).body()} " + " ".join(f"[field {i}]" for i in range(n))


def _postscript(p: Prompt, a: Mapping[str, Any], follow: bool, seed: int) -> str:
    w = Writer(seed)
    return f"{w.body()}\n\n{a['postscript_marker']} {w.body(1)}" if follow else w.body(4)


def _bullets(p: Prompt, a: Mapping[str, Any], follow: bool, seed: int) -> str:
    w = Writer(seed)
    n = a["num_bullets"] + (0 if follow else 1)
    return w.body(1) + "\n\n" + "\n".join(f"* {w.body(1)}" for _ in range(n))


def _constrained(p: Prompt, a: Mapping[str, Any], follow: bool, seed: int) -> str:
    w = Writer(seed)
    choice = ("My answer is yes.", "My answer is no.", "My answer is maybe.")[seed % 3]
    return f"{w.body(1)} {choice}" if follow else f"{w.body(1)} My answer is probably."


def _highlights(p: Prompt, a: Mapping[str, Any], follow: bool, seed: int) -> str:
    w = Writer(seed)
    n = a["num_highlights"] - (0 if follow else 1)
    return w.body(1) + " " + " ".join(f"*{w.words(3)}*" for _ in range(n))


def _sections(p: Prompt, a: Mapping[str, Any], follow: bool, seed: int) -> str:
    w = Writer(seed, [a["section_spliter"]])
    n = a["num_sections"] - (0 if follow else 1)
    return "\n\n".join(f"{a['section_spliter']} {i}\n{w.body(2)}" for i in range(1, n + 1))


def _json(p: Prompt, a: Mapping[str, Any], follow: bool, seed: int) -> str:
    w = Writer(seed)
    if follow:
        return "```json\n" + json.dumps({"answer": w.body(2)}, indent=2) + "\n```"
    return "{" + w.body(2) + "}"


def _title(p: Prompt, a: Mapping[str, Any], follow: bool, seed: int) -> str:
    w = Writer(seed)
    return f"<<{w.words(3).title()}>>\n\n{w.body()}" if follow else f"<<>>\n\n{w.body()}"


def _two(p: Prompt, a: Mapping[str, Any], follow: bool, seed: int) -> str:
    w = Writer(seed)
    first = w.body(2)
    second = w.body(2) if follow else first
    while follow and second == first:
        second = w.body(2)
    return f"{first}\n******\n{second}"


def _repeat(p: Prompt, a: Mapping[str, Any], follow: bool, seed: int) -> str:
    w = Writer(seed)
    repeated = a["prompt_to_repeat"]
    return f"{repeated}\n\n{w.body()}" if follow else f"{w.body()}\n\n{repeated}"


def _end(p: Prompt, a: Mapping[str, Any], follow: bool, seed: int) -> str:
    w = Writer(seed)
    phrase = a["end_phrase"]
    return f"{w.body()} {phrase}" if follow else f"{phrase} {w.body()}"


def _quotation(p: Prompt, a: Mapping[str, Any], follow: bool, seed: int) -> str:
    body = Writer(seed).body()
    return f'"{body}"' if follow else f'"{body}'


def _capital_words(p: Prompt, a: Mapping[str, Any], follow: bool, seed: int) -> str:
    n = _needed(a["capital_relation"], a["capital_frequency"], follow)
    caps = " ".join(CAPS[i % len(CAPS)] for i in range(n))
    return f"{Writer(seed).body()} {caps}".strip()


def _upper(p: Prompt, a: Mapping[str, Any], follow: bool, seed: int) -> str:
    body = Writer(seed).body(4)
    return body.upper() if follow else body


def _lower(p: Prompt, a: Mapping[str, Any], follow: bool, seed: int) -> str:
    body = Writer(seed).body(4)
    return body.lower() if follow else body


def _no_comma(p: Prompt, a: Mapping[str, Any], follow: bool, seed: int) -> str:
    body = Writer(seed).body()
    return body if follow else f"Well, {body}"


_BUILDERS = {
    "existence": _keywords,
    "frequency": _frequency,
    "forbidden_words": _forbidden,
    "letter_frequency": _letters,
    "response_language": _language,
    "number_sentences": _sentences,
    "number_paragraphs": _paragraphs,
    "number_words": _words,
    "nth_paragraph_first_word": _first_word,
    "number_placeholders": _placeholders,
    "postscript": _postscript,
    "number_bullet_lists": _bullets,
    "constrained_response": _constrained,
    "number_highlighted_sections": _highlights,
    "multiple_sections": _sections,
    "json_format": _json,
    "title": _title,
    "two_responses": _two,
    "repeat_prompt": _repeat,
    "end_checker": _end,
    "quotation": _quotation,
    "capital_word_frequency": _capital_words,
    "english_capital": _upper,
    "english_lowercase": _lower,
    "no_comma": _no_comma,
}


def chatty(response: str) -> str:
    """The response between a greeting line and a sign-off line, with a bold label."""
    return f"Sure, here is my **answer**:\n{response}\nHope this helps!"


def generic(prompt: Prompt) -> list[str]:
    """Answers written without regard to the instructions."""
    w = Writer(prompt.key)
    languages = sorted(LANGUAGE_TEXTS)
    answers = [
        f"# Answer\n\nHere is a response, written with care. {w.body(2)}\n\n"
        f"* {w.body(1)}\n* {w.body(1)}\n\n**Important:** {w.body(3)}\n\nP.S. Thanks!",
        LANGUAGE_TEXTS[languages[prompt.key % len(languages)]],
    ]
    if prompt.key % 7 == 0:
        answers.append("   ")
    return answers


def pairs(prompts: Iterable[Prompt]) -> list[tuple[Prompt, str]]:
    """Every (prompt, response) pair the agreement test scores."""
    out = []
    for prompt in prompts:
        for index in range(len(prompt.instruction_ids)):
            following = build(prompt, index, follow=True)
            out.append((prompt, following))
            out.append((prompt, build(prompt, index, follow=False)))
            out.append((prompt, chatty(following)))
        out.extend((prompt, answer) for answer in generic(prompt))
    return out
