"""One response per IFEval prompt that follows all of its instructions at once.

Built from what the instructions ask: a layout (sections, `***` paragraphs, blank-line
paragraphs), the pieces some instructions need (title, bullets, highlights, placeholders,
keywords, postscript, end phrase, repeated request), then case and wrappers (quotes, JSON,
two answers). Counts (sentences, words) are met by trying body sizes and measuring with
evalfleet's own counters; whether the result really follows every instruction is judged
by Google's reference code in the agreement test, not by this module.

A few prompts contradict themselves (the request to repeat contains a forbidden word, or
the keyword it caps); `INFEASIBLE` lists them.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Iterator

from evalfleet.tasks.ifeval import Prompt, text

from .responses import CAPS, LANGUAGE_TEXTS, SENTENCES, WORDS

INFEASIBLE = {
    374: "the request to repeat contains the forbidden 'youngins' and 'damn'",
    3369: "the request to repeat contains 'right' twice, which must appear less than twice",
    3371: "the request to repeat contains the forbidden 'economy', 'demand' and 'supply'",
    1627: "the request to repeat contains a comma, and commas are not allowed",
    3718: "the request to repeat contains a comma, and commas are not allowed",
}


def _matches(pattern: str, value: str) -> bool:
    try:
        return re.search(pattern, value, re.IGNORECASE) is not None
    except re.error:
        return pattern.lower() in value.lower()


class Plan:
    def __init__(self, prompt: Prompt) -> None:
        self.prompt = prompt
        self.rng = random.Random(prompt.key)
        self.args: dict[str, list[dict]] = {}
        for instruction, args in zip(prompt.instruction_ids, prompt.kwargs, strict=True):
            self.args.setdefault(instruction.split(":")[1], []).append(dict(args))
        self.avoid: list[str] = []
        for args in self.args.get("forbidden_words", []):
            self.avoid += [rf"\b{w}\b" for w in args["forbidden_words"]]
        for args in self.args.get("frequency", []):
            self.avoid.append(args["keyword"].strip())
        for args in self.args.get("letter_frequency", []):
            if args["let_relation"] == "less than":
                self.avoid.append(re.escape(args["letter"].lower()))
        self.sentences = self._range("number_sentences", "num_sentences", "relation")
        self.words = self._range("number_words", "num_words", "relation")
        self.capitals = self._range(
            "capital_word_frequency", "capital_frequency", "capital_relation"
        )
        self.language = self.one("response_language", {}).get("language")
        self.pool = self._pool()

    def one(self, kind: str, default: dict | None = None) -> dict | None:
        found = self.args.get(kind)
        return found[0] if found else default

    def _range(self, kind: str, count: str, relation: str) -> tuple[int, int]:
        low, high = 0, 10**6
        for args in self.args.get(kind, []):
            if args[relation] == "less than":
                high = min(high, args[count] - 1)
            else:
                low = max(low, args[count])
        return low, high

    def _clean(self, value: str) -> bool:
        return not any(_matches(pattern, value) for pattern in self.avoid)

    def _pool(self) -> list[str]:
        if self.language:
            found = re.split(r"(?<=[.।!?])\s+", LANGUAGE_TEXTS[self.language])
            return [s.rstrip(".।") for s in found if s]
        clauses = [s.rstrip(".") for s in SENTENCES if self._clean(s)]
        if clauses:
            return clauses
        words = [w for w in WORDS if self._clean(w)]
        return [" ".join(self.rng.choice(words) for _ in range(7)).capitalize() for _ in range(12)]

    # --- the pieces -------------------------------------------------------------------

    def _sentence(self, index: int, clauses: int) -> str:
        picked = [self.pool[(index * clauses + j) % len(self.pool)] for j in range(clauses)]
        joiner = " " if self.language else " and "
        body = joiner.join([picked[0]] + [p[:1].lower() + p[1:] for p in picked[1:]])
        return body + ("।" if self.language in ("hi", "ne", "bn", "pa") else ".")

    def _tokens(self) -> list[str]:
        """Words some instructions want inside the text."""
        tokens: list[str] = []
        for args in self.args.get("existence", []):
            tokens += args["keywords"]
        for args in self.args.get("frequency", []):
            if args["relation"] != "less than":
                tokens += [args["keyword"].strip()] * args["frequency"]
        for args in self.args.get("number_placeholders", []):
            tokens += [f"[{i + 1}]" for i in range(args["num_placeholders"])]
        clean_words = [w for w in WORDS if self._clean(w)] or ["xx"]
        for args in self.args.get("number_highlighted_sections", []):
            tokens += [
                f"*{clean_words[i % len(clean_words)]}*" for i in range(args["num_highlights"])
            ]
        return tokens

    def _title(self) -> str:
        if self.language:
            return "<<" + " ".join(LANGUAGE_TEXTS[self.language].split()[:2]) + ">>"
        clean = [w for w in WORDS if self._clean(w)] or ["x"]
        return "<<" + " ".join(clean[:2]).title() + ">>"

    def _chunks(self, sentences: list[str]) -> tuple[list[list[str]], str]:
        """Split the body into the paragraphs or sections asked for, and their separator."""
        sections = self.one("multiple_sections")
        dividers = self.one("number_paragraphs")
        blank = self.one("nth_paragraph_first_word")
        count = 1
        if sections:
            count = sections["num_sections"]
        elif dividers:
            count = dividers["num_paragraphs"]
        elif blank:
            count = blank["num_paragraphs"]
        chunks = [sentences[i::count] for i in range(count)]
        if sections:
            splitter = sections["section_spliter"]
            chunks = [[f"{splitter} {i + 1}", *c] for i, c in enumerate(chunks)]
        if blank:
            nth = blank["nth_paragraph"] - 1
            chunks[nth] = [f"{blank['first_word'].capitalize()} {chunks[nth][0]}", *chunks[nth][1:]]
        separator = "\n***\n" if dividers else "\n\n" if (blank or sections) else "\n"
        return chunks, separator

    def render(self, count: int, clauses: int) -> str:
        chunks_needed = max(
            self.one("multiple_sections", {}).get("num_sections", 1),
            self.one("number_paragraphs", {}).get("num_paragraphs", 1),
            self.one("nth_paragraph_first_word", {}).get("num_paragraphs", 1),
        )
        sentences = [self._sentence(i, clauses) for i in range(max(count, chunks_needed))]
        tokens = self._tokens()
        if tokens:
            sentences[0] = sentences[0][:-1] + " " + " ".join(tokens) + sentences[0][-1]
        chunks, separator = self._chunks(sentences)
        bullets = self.one("number_bullet_lists")
        if bullets:  # after a first line: a quote before `*` would hide the first bullet
            items = [f"* {self.pool[i % len(self.pool)]}" for i in range(bullets["num_bullets"])]
            chunks[0] = chunks[0][:1] + items + chunks[0][1:]
        postscript = self.one("postscript")
        if postscript:
            chunks[-1] = chunks[-1] + [f"{postscript['postscript_marker']} {self.pool[-1]}."]
        if "constrained_response" in self.args:
            chunks[-1] = chunks[-1] + [
                "My answer is " + ("yes.", "no.", "maybe.")[self.prompt.key % 3]
            ]
        end = self.one("end_checker")
        if end:
            chunks[-1] = chunks[-1] + [end["end_phrase"]]
        body = separator.join("\n".join(chunk) for chunk in chunks)
        head = []
        repeat = self.one("repeat_prompt")
        if repeat:
            head.append(repeat["prompt_to_repeat"])
        if "title" in self.args:
            head.append(self._title())
        response = "\n".join([*head, body])
        response = self._fill_counts(response)
        if "english_capital" in self.args:
            response = response.upper()
        if "english_lowercase" in self.args:
            response = response.lower()
        return self._wrap(response)

    def _fill_counts(self, response: str) -> str:
        """Add the letters and capitalised words still missing, inside the first sentence."""
        extra = []
        for args in self.args.get("letter_frequency", []):
            letter = args["letter"].lower()
            if args["let_relation"] != "less than":
                missing = args["let_frequency"] - response.lower().count(letter)
                if missing > 0:
                    extra.append(letter * missing)
        if self.capitals[0] and "english_capital" not in self.args:
            have = sum(1 for t in text.word_tokens(response) if t.isupper())
            extra += [CAPS[i % len(CAPS)] for i in range(max(self.capitals[0] - have, 0))]
        if not extra:
            return response
        if "two_responses" in self.args or "json_format" in self.args:
            return response + " " + " ".join(extra) + "."
        return response + "\n" + " ".join(extra)

    def _wrap(self, response: str) -> str:
        if "two_responses" in self.args:
            other = self._sentence(len(self.pool) + 3, 1)
            if self.language:
                other = LANGUAGE_TEXTS[self.language]
            response = f"{response}\n******\n{other}"
        if "quotation" in self.args:
            response = f'"{response}"'
        if "json_format" in self.args:
            response = json.dumps({"text": response}, ensure_ascii=False)
        return response

    # --- sizing -----------------------------------------------------------------------

    def sizes(self) -> Iterator[tuple[int, int]]:
        low, high = self.sentences
        if high < 10**6 or low:
            counts: Iterable[int] = range(max(low - 4, 1), min(high, low + 30) + 1)
        elif self.language:  # enough of the language to outweigh English pieces
            counts = [6 * len(self.pool)]
        else:
            counts = [3, 1, 2, 5, 10, 20, 40]
        clause_counts = range(1, 40) if self.words != (0, 10**6) else [1]
        for clauses in clause_counts:
            for count in counts:
                yield count, clauses

    def fits(self, response: str) -> bool:
        low, high = self.sentences
        if not low <= text.count_sentences(response) <= high:
            return False
        low, high = self.words
        return low <= text.count_words(response) <= high


def compose(prompt: Prompt) -> str:
    plan = Plan(prompt)
    first = None
    for count, clauses in plan.sizes():
        response = plan.render(count, clauses)
        first = first or response
        if plan.fits(response):
            return response
    return first or ""
