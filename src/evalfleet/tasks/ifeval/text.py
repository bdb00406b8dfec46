"""Counting words and sentences and naming a text's language, the way IFEval's checks do.

Nothing here downloads anything. Sentences are split by NLTK's Punkt algorithm with the
English model we carry in `punkt_english.json.gz` (NLTK's own data is download-only);
words for the capital-word check are NLTK's Treebank tokens of each of those sentences,
which is what `nltk.word_tokenize` does. Language detection uses langdetect with a fixed
seed: unseeded, it can name a different language for the same text on each call.
nltk's two tokenizers and langdetect are loaded on first use (~0.2 s and ~0.3 s).
"""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path
from typing import Any, NoReturn

from evalfleet.exceptions import NotAvailableError

PUNKT_DATA = Path(__file__).with_name("punkt_english.json.gz")
LANGDETECT_SEED = 0


def count_words(text: str) -> int:
    """Runs of word characters, as NLTK's `RegexpTokenizer(r"\\w+")` counts them: NLTK
    (3.10 here) matches with the `regex` engine, whose word characters include combining marks, so
    a Kannada or Hindi word is one word (with `re` it would break at each vowel sign)."""
    return len(_word_pattern().findall(text))


def split_sentences(text: str) -> list[str]:
    return list(_sentences(text))


def count_sentences(text: str) -> int:
    return len(_sentences(text))


def word_tokens(text: str) -> list[str]:
    """Treebank word tokens of each Punkt sentence (`nltk.word_tokenize`'s result)."""
    words = _word_tokenizer()
    return [token for sentence in _sentences(text) for token in words.tokenize(sentence)]


# Strict and loose checks and several instructions look at the same texts: the costly
# answers are kept for the last few hundred texts (each is a pure function of its text).
@functools.lru_cache(maxsize=512)
def _sentences(text: str) -> tuple[str, ...]:
    return tuple(_sentence_splitter().tokenize(text))


@functools.lru_cache(maxsize=512)
def detect_language(text: str) -> str | None:
    """The ISO 639-1 code langdetect names, or None when it finds nothing to go on.
    Seeded, so the same text always gets the same answer."""
    from langdetect.lang_detect_exception import LangDetectException

    detector = _language_detectors().create()
    try:
        detector.append(text)
        return detector.detect()
    except LangDetectException:
        return None


def require() -> None:
    """Fail before any request is sent, not at scoring time, when a package is missing."""
    from importlib.util import find_spec

    for module in ("nltk", "regex", "langdetect"):
        if find_spec(module) is None:
            _needs(module)


def _needs(module: str) -> NoReturn:
    raise NotAvailableError(
        f"task 'ifeval' needs the {module} package to score: pip install 'evalfleet[ifeval]'"
    )


def punkt_tables() -> dict[str, Any]:
    return json.loads(gzip.decompress(PUNKT_DATA.read_bytes()))


@functools.cache
def _word_pattern() -> Any:
    try:
        import regex
    except ModuleNotFoundError:
        _needs("regex")
    return regex.compile(r"\w+")


@functools.cache
def _nltk_parts() -> tuple[Any, Any, Any]:
    """NLTK's Punkt and Treebank word tokenizer classes, without `nltk/__init__`.

    That module imports all of NLTK, scipy.stats included when scipy is installed: 1.4 s
    here against 0.17 s for the three modules these classes need, on every `evalfleet
    eval` of ifeval. So the package is stood in for by an empty one while they load, and
    every `nltk*` module is dropped again afterwards: a later `import nltk` anywhere in
    the process gets the real, complete package. Any surprise falls back to a plain import.
    """
    import importlib.util
    import sys
    import types

    spec = importlib.util.find_spec("nltk")
    if spec is None or not spec.submodule_search_locations:
        _needs("nltk")
    if "nltk" not in sys.modules:
        stand_in = types.ModuleType("nltk")
        stand_in.__path__ = list(spec.submodule_search_locations)
        stand_in.__spec__ = spec
        sys.modules["nltk"] = stand_in
        try:
            from nltk.tokenize.destructive import NLTKWordTokenizer
            from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

            return PunktParameters, PunktSentenceTokenizer, NLTKWordTokenizer
        except Exception:  # a changed NLTK layout: take the slow way
            pass
        finally:
            for name in [m for m in sys.modules if m == "nltk" or m.startswith("nltk.")]:
                del sys.modules[name]
    from nltk.tokenize.destructive import NLTKWordTokenizer
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    return PunktParameters, PunktSentenceTokenizer, NLTKWordTokenizer


@functools.cache
def _sentence_splitter() -> Any:
    PunktParameters, PunktSentenceTokenizer, _ = _nltk_parts()
    tables = punkt_tables()
    params = PunktParameters()
    params.abbrev_types = set(tables["abbrev_types"])
    params.collocations = {tuple(pair) for pair in tables["collocations"]}
    params.sent_starters = set(tables["sent_starters"])
    for word_type, flags in tables["ortho_context"].items():
        params.ortho_context[word_type] = flags
    splitter = PunktSentenceTokenizer()
    # The public constructor only trains; loading ready parameters is what NLTK's own
    # PunktTokenizer does, by setting this attribute.
    splitter._params = params
    return splitter


@functools.cache
def _word_tokenizer() -> Any:
    return _nltk_parts()[2]()


@functools.cache
def _language_detectors() -> Any:
    try:
        from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
    except ModuleNotFoundError:
        _needs("langdetect")
    # Our own factory, seeded on the instance: langdetect's module-level `detect` shares
    # one global factory whose seed would be a process-wide setting.
    factory = DetectorFactory()
    factory.load_profile(PROFILES_DIRECTORY)
    factory.seed = LANGDETECT_SEED
    return factory
