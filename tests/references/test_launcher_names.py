"""Task names mean what they mean to NeMo Evaluator Launcher: its own index and its own
resolver (`get_task_from_mapping`, run in the reference venv) against evalfleet's."""

from __future__ import annotations

import re

import pytest

from evalfleet.tasks.catalog import TASK_CATALOG, launcher_index, resolve_task_name
from tests.references.harness import run_reference


@pytest.fixture(scope="module")
def launcher() -> dict:
    index = launcher_index()
    bare = sorted({task for tasks in index.values() for task in tasks})
    qualified = [f"{h}.{t}" for h, tasks in index.items() for t in tasks]
    queries = bare + qualified + ["bogus_harness.ifeval", "simple_evals.no_such_task", "no_such"]
    return run_reference("launcher_mapping", {"queries": queries})


def test_the_shipped_index_is_the_launchers(launcher):
    assert launcher_index() == launcher["index"]


def test_every_builtin_reference_task_is_a_launcher_task_or_an_unlisted_harness_task(launcher):
    for info in TASK_CATALOG.values():
        if info.reference is None:
            assert info.harness == "evalfleet"
            assert info.name not in launcher["resolved"]
            continue
        if info.name == "lm-evaluation-harness.arc_easy":
            # Not in the launcher's index: it runs lm-eval's arc_easy as an "unlisted"
            # task (the harness's own task name, passed through).
            assert "error" in launcher["resolved"].get(info.name, {"error": ""})
            continue
        assert launcher["resolved"][info.name] == {"task": info.name}


def _ours(name: str, endpoint_type: str) -> dict:
    try:
        return {"task": resolve_task_name(name, endpoint_type).name}
    except ValueError as exc:
        return {"error": str(exc)}


@pytest.mark.parametrize("endpoint_type", ["chat", "completions"])
def test_names_resolve_as_the_launcher_resolves_them(launcher, endpoint_type):
    for query, theirs in launcher["resolved"].items():
        ours = _ours(query, endpoint_type)
        if "task" in theirs:
            # Same task, built in or run by its framework package; a harness that has
            # no pinned package is an error naming the task.
            resolved = theirs["task"]
            assert ours.get("task") == resolved or (
                resolved in ours.get("error", "") and "pins no package" in ours["error"]
            ), (query, ours, theirs)
        elif "multiple tasks named" in theirs["error"]:
            # Ambiguous to the launcher. evalfleet breaks the tie only by the endpoint
            # type in use (documented); otherwise the same choices are listed.
            choices = re.findall(r"'([^']+\.[^']+)'", theirs["error"])
            index = launcher["index"]
            fitting = [
                c for c in choices if endpoint_type in index[c.split(".")[0]][c.split(".")[1]]
            ]
            if len(fitting) == 1:
                assert ours.get("task") == fitting[0] or fitting[0] in ours.get("error", ""), (
                    query,
                    ours,
                )
            else:
                assert "several harnesses" in ours["error"], (query, ours)
                assert all(choice in ours["error"] for choice in choices), (query, ours)
        else:
            assert "error" in ours, (query, ours, theirs)


def test_the_guides_bare_names_resolve_on_chat_endpoints():
    # ../shared/reference/lepton-user-guide.md runs `ifeval` and `mmlu_pro` on chat.
    assert resolve_task_name("ifeval", "chat").name == "lm-evaluation-harness.ifeval"
    assert resolve_task_name("mmlu_pro", "chat").name == "simple_evals.mmlu_pro"
    assert resolve_task_name("mmlu_pro").name == "simple_evals.mmlu_pro"


def test_unknown_harness_and_ambiguous_names_are_one_line_errors():
    with pytest.raises(ValueError, match=r"unknown harness 'bogus_harness'.*lm-evaluation-harness"):
        resolve_task_name("bogus_harness.ifeval")
    with pytest.raises(ValueError, match=r"several harnesses.*simple_evals.humaneval.*bigcode"):
        resolve_task_name("humaneval", "vlm")
    with pytest.raises(ValueError, match=r"'nemo_skills.ns_aime2025'.*pins no package"):
        resolve_task_name("nemo_skills.ns_aime2025")
    assert (
        resolve_task_name("simple_evals.mmlu_pro").name
        != resolve_task_name("evalfleet.mmlu_pro_cot").name
    )


def test_a_name_only_launcher_0_1_knew_is_refused_with_both_choices():
    # Launcher 0.1 configs run `mbpp` (bigcode's); 0.2 refuses it, and evalfleet.mbpp is
    # another prompt: running it under that name would change the score without a word.
    with pytest.raises(
        ValueError, match=r"'mbpp'.*bigcode-evaluation-harness.mbpp-chat.*evalfleet.mbpp"
    ):
        resolve_task_name("mbpp")
    assert resolve_task_name("evalfleet.mbpp").name == "evalfleet.mbpp"
