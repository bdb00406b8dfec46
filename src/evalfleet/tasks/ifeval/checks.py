"""The 25 verifiable instructions of IFEval, each a pure check of one response.

Each check takes the response and the instruction's arguments (the `kwargs` of the data)
and answers whether the response follows it. The rules are those of Google's reference
implementation (Zhou et al., 2023, `instruction_following_eval`), including its quirks,
because users compare our numbers with published ones: keywords are regular expressions,
"less than" is strict and anything else means "at least", a failed language detection
counts as followed, paragraph indices count empty paragraphs.

`follows(...)` applies the strict rule (the response as given) or the loose one (the
response, or it without its first and/or last line, with or without `*`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from evalfleet.tasks.ifeval import text

Check = Callable[[str, Mapping[str, Any]], bool]

LESS_THAN = "less than"
CONSTRAINED_ANSWERS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")


def _compare(count: int, relation: str, threshold: int) -> bool:
    return count < threshold if relation == LESS_THAN else count >= threshold


def _pattern(keyword: str, whole_word: bool = False) -> re.Pattern[str]:
    """The keyword as the reference uses it: a regular expression (taken literally when it
    is not a valid one, where the reference would stop with an error)."""
    body = keyword
    try:
        re.compile(body)
    except re.error:
        body = re.escape(keyword)
    return re.compile(rf"\b{body}\b" if whole_word else body, flags=re.IGNORECASE)


# keywords ------------------------------------------------------------------------------


def keywords_present(response: str, args: Mapping[str, Any]) -> bool:
    return all(_pattern(keyword).search(response) for keyword in args["keywords"])


def keyword_frequency(response: str, args: Mapping[str, Any]) -> bool:
    count = len(_pattern(args["keyword"].strip()).findall(response))
    return _compare(count, args["relation"], args["frequency"])


def forbidden_words_absent(response: str, args: Mapping[str, Any]) -> bool:
    words = args["forbidden_words"]
    return not any(_pattern(word, whole_word=True).search(response) for word in words)


def letter_frequency(response: str, args: Mapping[str, Any]) -> bool:
    letter = args["letter"].strip().lower()
    return _compare(response.lower().count(letter), args["let_relation"], args["let_frequency"])


# language and case ---------------------------------------------------------------------


def in_language(response: str, args: Mapping[str, Any]) -> bool:
    detected = text.detect_language(response)
    return detected is None or detected == args["language"]


def english_and(case_test: Callable[[str], bool]) -> Check:
    def check(response: str, args: Mapping[str, Any]) -> bool:
        if not case_test(response):
            return False
        detected = text.detect_language(response)
        return detected is None or detected == "en"

    return check


def capital_word_frequency(response: str, args: Mapping[str, Any]) -> bool:
    capitals = sum(1 for token in text.word_tokens(response) if token.isupper())
    return _compare(capitals, args["capital_relation"], args["capital_frequency"])


# length --------------------------------------------------------------------------------


def sentence_count(response: str, args: Mapping[str, Any]) -> bool:
    return _compare(text.count_sentences(response), args["relation"], args["num_sentences"])


def word_count(response: str, args: Mapping[str, Any]) -> bool:
    return _compare(text.count_words(response), args["relation"], args["num_words"])


def divider_paragraphs(response: str, args: Mapping[str, Any]) -> bool:
    """Paragraphs separated by `***`; an empty one is allowed only at either end."""
    parts = re.split(r"\s?\*\*\*\s?", response)
    last = len(parts) - 1
    if any(not part.strip() for part in parts[1:last]):
        return False
    count = len(parts) - sum(1 for i in {0, last} if not parts[i].strip())
    return count == args["num_paragraphs"]


_FIRST_WORD_STOP = frozenset(".,?!'\"")


def nth_paragraph_first_word(response: str, args: Mapping[str, Any]) -> bool:
    """Paragraphs separated by a blank line; the count ignores empty ones, but the nth is
    taken from the list with them, as the reference does."""
    parts = response.split("\n\n")
    count = sum(1 for part in parts if part.strip())
    nth = args["nth_paragraph"]
    if nth > count:
        return False
    paragraph = parts[nth - 1].strip()
    if not paragraph:
        return False
    word = paragraph.split()[0].strip().lstrip("'").lstrip('"')
    first = []
    for char in word:
        if char in _FIRST_WORD_STOP:
            break
        first.append(char.lower())
    return count == args["num_paragraphs"] and "".join(first) == args["first_word"].lower()


# detectable content and format ---------------------------------------------------------


def placeholders(response: str, args: Mapping[str, Any]) -> bool:
    return len(re.findall(r"\[.*?\]", response)) >= args["num_placeholders"]


def postscript(response: str, args: Mapping[str, Any]) -> bool:
    marker = args["postscript_marker"].strip()
    if marker == "P.P.S":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    elif marker == "P.S.":
        pattern = r"\s*p\.\s?s\..*$"
    else:
        pattern = r"\s*" + marker.lower() + r".*$"
    return bool(re.findall(pattern, response.lower(), flags=re.MULTILINE))


def bullet_count(response: str, args: Mapping[str, Any]) -> bool:
    stars = re.findall(r"^\s*\*[^\*].*$", response, flags=re.MULTILINE)
    dashes = re.findall(r"^\s*-.*$", response, flags=re.MULTILINE)
    return len(stars) + len(dashes) == args["num_bullets"]


def constrained_answer(response: str, args: Mapping[str, Any]) -> bool:
    stripped = response.strip()
    return any(option in stripped for option in CONSTRAINED_ANSWERS)


def highlighted_sections(response: str, args: Mapping[str, Any]) -> bool:
    # `**x**` counts once, through the double-star pattern: the single-star one only finds
    # the empty `**` pairs in it, which do not count.
    single = sum(1 for h in re.findall(r"\*[^\n\*]*\*", response) if h.strip("*").strip())
    double = sum(
        1
        for h in re.findall(r"\*\*[^\n\*]*\*\*", response)
        if h.removeprefix("**").removesuffix("**").strip()
    )
    return single + double >= args["num_highlights"]


def sections(response: str, args: Mapping[str, Any]) -> bool:
    splitter = args["section_spliter"].strip()
    parts = re.split(r"\s?" + splitter + r"\s?\d+\s?", response)
    return len(parts) - 1 >= args["num_sections"]


def json_only(response: str, args: Mapping[str, Any]) -> bool:
    body = response.strip()
    for fence in ("```json", "```Json", "```JSON", "```"):
        body = body.removeprefix(fence)
    body = body.removesuffix("```").strip()
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def has_title(response: str, args: Mapping[str, Any]) -> bool:
    return any(t.lstrip("<").rstrip(">").strip() for t in re.findall(r"<<[^\n]+>>", response))


# combination, start/end, punctuation ---------------------------------------------------


def two_responses(response: str, args: Mapping[str, Any]) -> bool:
    parts = response.split("******")
    last = len(parts) - 1
    if any(not part.strip() for part in parts[1:last]):
        return False
    answers = [part for part in parts if part.strip()]
    return len(answers) == 2 and answers[0].strip() != answers[1].strip()


def repeats_prompt(response: str, args: Mapping[str, Any]) -> bool:
    return response.strip().lower().startswith(args["prompt_to_repeat"].strip().lower())


def ends_with(response: str, args: Mapping[str, Any]) -> bool:
    return response.strip().strip('"').lower().endswith(args["end_phrase"].strip().lower())


def quoted(response: str, args: Mapping[str, Any]) -> bool:
    stripped = response.strip()
    return len(stripped) > 1 and stripped[0] == '"' and stripped[-1] == '"'


def no_comma(response: str, args: Mapping[str, Any]) -> bool:
    return "," not in response


CHECKS: dict[str, Check] = {
    "keywords:existence": keywords_present,
    "keywords:frequency": keyword_frequency,
    "keywords:forbidden_words": forbidden_words_absent,
    "keywords:letter_frequency": letter_frequency,
    "language:response_language": in_language,
    "length_constraints:number_sentences": sentence_count,
    "length_constraints:number_paragraphs": divider_paragraphs,
    "length_constraints:number_words": word_count,
    "length_constraints:nth_paragraph_first_word": nth_paragraph_first_word,
    "detectable_content:number_placeholders": placeholders,
    "detectable_content:postscript": postscript,
    "detectable_format:number_bullet_lists": bullet_count,
    "detectable_format:constrained_response": constrained_answer,
    "detectable_format:number_highlighted_sections": highlighted_sections,
    "detectable_format:multiple_sections": sections,
    "detectable_format:json_format": json_only,
    "detectable_format:title": has_title,
    "combination:two_responses": two_responses,
    "combination:repeat_prompt": repeats_prompt,
    "startend:end_checker": ends_with,
    "startend:quotation": quoted,
    "change_case:capital_word_frequency": capital_word_frequency,
    "change_case:english_capital": english_and(str.isupper),
    "change_case:english_lowercase": english_and(str.islower),
    "punctuation:no_comma": no_comma,
}


def loose_variants(response: str) -> list[str]:
    """The response, without its first line, last line or both, each also without `*`."""
    lines = response.split("\n")
    trimmed = [
        response,
        "\n".join(lines[1:]).strip(),
        "\n".join(lines[:-1]).strip(),
        "\n".join(lines[1:-1]).strip(),
    ]
    return trimmed + [variant.replace("*", "") for variant in trimmed]


def verdicts(
    response: str, instruction_ids: Sequence[str], kwargs: Sequence[Mapping[str, Any]]
) -> tuple[list[bool], list[bool]]:
    """Strict and loose verdicts, one per instruction; a blank response follows none.

    Loose tries the response itself first, so an instruction followed strictly is followed
    loosely without another check; repeated variants are checked once.
    """
    pairs = list(zip(instruction_ids, kwargs, strict=True))
    if not response.strip():
        return [False] * len(pairs), [False] * len(pairs)
    strict = [CHECKS[instruction](response, args) for instruction, args in pairs]
    if all(strict):
        return strict, list(strict)
    others = [v for v in dict.fromkeys(loose_variants(response)[1:]) if v.strip() and v != response]
    loose = [
        followed or any(CHECKS[instruction](variant, args) for variant in others)
        for followed, (instruction, args) in zip(strict, pairs, strict=True)
    ]
    return strict, loose


def follows(
    response: str,
    instruction_ids: Sequence[str],
    kwargs: Sequence[Mapping[str, Any]],
    *,
    loose: bool = False,
) -> list[bool]:
    """One verdict per instruction, by the strict or the loose rule."""
    strict_verdicts, loose_verdicts = verdicts(response, instruction_ids, kwargs)
    return loose_verdicts if loose else strict_verdicts
