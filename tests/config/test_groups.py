"""The YAML config groups and the pydantic defaults say the same thing."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from evalfleet.config import schema
from evalfleet.config.loader import MISSING, group_defaults, group_options, group_types
from evalfleet.executors import registry

MODELS = {
    **{("execution", name): registry.backend(name).config_model() for name in registry.names()},
    ("deployment", "none"): schema.NoDeployment,
    ("deployment", "vllm"): schema.VllmDeployment,
    ("deployment", "sglang"): schema.SglangDeployment,
    ("deployment", "trtllm"): schema.TrtllmDeployment,
    ("deployment", "nim"): schema.NimDeployment,
    ("deployment", "llamacpp"): schema.LlamacppDeployment,
    ("deployment", "generic"): schema.GenericDeployment,
}


def test_every_type_has_a_group_and_a_model():
    assert set(group_types("execution")) == set(registry.names())
    assert set(group_types("deployment")) == set(schema.DEPLOYMENT_TYPES)
    assert set(MODELS) == {(g, o) for g in ("execution", "deployment") for o in group_types(g)}
    # The other built-in options are variants of a type (the launcher's vllm_ray of vllm).
    for group in ("execution", "deployment"):
        for option in set(group_options(group)) - set(group_types(group)):
            assert group_defaults(group, option)["type"] in group_types(group), option


def _model_default(model: type[BaseModel], key: str):
    field = next(f for name, f in model.model_fields.items() if key in (name, f.alias))
    if field.is_required():
        return MISSING
    value = field.get_default(call_default_factory=True)
    return value.model_dump(by_alias=True) if isinstance(value, BaseModel) else value


def _subset_differences(yaml_value, default, where: str) -> list[str]:
    """Keys the YAML sets must equal the model's default; keys it leaves out are fine, and
    so are values derived from others (`${...}`), which a model default cannot say."""
    if isinstance(yaml_value, str) and "${" in yaml_value:
        return []
    if isinstance(yaml_value, dict) and isinstance(default, dict) and yaml_value:
        return [
            problem
            for key, value in yaml_value.items()
            for problem in _subset_differences(
                value, default.get(key, "<absent>"), f"{where}.{key}"
            )
        ]
    return (
        []
        if yaml_value == default
        else [f"{where}: YAML says {yaml_value!r}, model says {default!r}"]
    )


def _compare(model: type[BaseModel], values: dict, where: str) -> list[str]:
    return [
        problem
        for key, value in values.items()
        for problem in _subset_differences(value, _model_default(model, key), f"{where}.{key}")
    ]


@pytest.mark.parametrize(("group", "option"), sorted(MODELS))
def test_group_yaml_agrees_with_model_defaults(group, option):
    values = group_defaults(group, option)
    assert values["type"] == option
    assert _compare(MODELS[group, option], values, f"{group}/{option}") == []


# --------------------------------------------------------------- groups on the search path
# Files in the config directory (or a `configs/` folder beside the config) extend the
# built-in groups, as Hydra's search path does in the reference launcher.

CLUSTER = """\
defaults:
  - {parent}
  - _self_
hostname: login.mycluster.example
account: acct
partition: gpu
output_dir: /lustre/me/results
"""

USER = """\
defaults:
  - execution: {option}
  - deployment: vllm
  - _self_
execution:
  username: me
  partition: debug
deployment:
  checkpoint_path: org/model
evaluation:
  tasks: [{{name: gsm8k}}]
"""


def _write(root, relative: str, text: str):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("file", "parent", "option"),
    [
        ("execution/slurm/mycluster.yaml", "default", "slurm/mycluster"),  # beside the file
        ("execution/mycluster.yaml", "slurm/default", "mycluster"),  # relative to the group
        ("execution/mycluster.yaml", "/execution/slurm/default@_here_", "mycluster"),
    ],
)
def test_a_cluster_file_in_the_config_dir_extends_the_builtin_group(tmp_path, file, parent, option):
    from evalfleet.config import load_config

    _write(tmp_path, file, CLUSTER.format(parent=parent))
    config = _write(tmp_path, "run.yaml", USER.format(option=option))
    execution = load_config(config_dir=tmp_path, config_name="run").model.execution
    assert execution.type == "slurm"
    assert (execution.hostname, execution.account) == ("login.mycluster.example", "acct")
    assert execution.partition == "debug"  # the user's file wins over the group file
    assert execution.walltime == group_defaults("execution", "slurm")["walltime"]
    # --config FILE searches the file's own directory, as the launcher's does.
    assert load_config(config).model.execution.hostname == "login.mycluster.example"


def test_configs_folder_beside_the_config_and_a_switch_by_override(tmp_path):
    from evalfleet.config import load_config

    _write(tmp_path, "configs/execution/slurm/mycluster.yaml", CLUSTER.format(parent="default"))
    user = USER.format(option="local").replace("execution:\n  username: me\n", "execution:\n")
    config = _write(tmp_path, "run.yaml", user.replace("  partition: debug\n", "  output_dir: o\n"))
    assert load_config(config).model.execution.type == "local"
    switched = load_config(config, overrides=["execution=slurm/mycluster"]).model.execution
    assert (switched.type, switched.account) == ("slurm", "acct")


def test_a_user_file_shadows_a_builtin_option_and_a_variant_brings_its_parent(tmp_path):
    from evalfleet.config import load_config

    # The user's vllm.yaml is found first (Hydra's order); the built-in keys stay under it.
    _write(tmp_path, "deployment/vllm.yaml", "type: vllm\nport: 9123\n")
    _write(tmp_path, "deployment/big.yaml", "defaults: [vllm]\ntensor_parallel_size: 4\n")
    user = USER.format(option="local").replace(
        "  username: me\n  partition: debug\n", "  output_dir: o\n"
    )
    config = _write(tmp_path, "run.yaml", user.replace("deployment: vllm", "deployment: big"))
    deployment = load_config(config).model.deployment
    assert (deployment.type, deployment.port, deployment.tensor_parallel_size) == ("vllm", 9123, 4)


@pytest.mark.parametrize(
    ("execution", "deployment", "types"),
    [
        ("slurm/default", "vllm", ("slurm", "vllm")),
        ("lepton/default", "none", ("lepton", "none")),
        ("local", "vllm_ray", ("local", "vllm")),
    ],
)
def test_the_launchers_group_names(write_yaml, execution, deployment, types):
    from evalfleet.config import load_config

    path = write_yaml(
        f"defaults:\n  - execution: {execution}\n  - deployment: {deployment}\n  - _self_\n"
        "execution: {hostname: h, account: a, output_dir: /o, username: u}\n"
        "deployment: {checkpoint_path: m}\n"
        "evaluation: {tasks: [{name: gsm8k}]}\n"
    )
    if execution != "slurm/default":
        path.write_text(path.read_text().replace("hostname: h, account: a, output_dir: /o, username: u", "output_dir: o"))  # fmt: skip
    if deployment == "none":
        path.write_text(path.read_text().replace("deployment: {checkpoint_path: m}\n",
            "target: {api_endpoint: {url: 'http://h:1/v1/chat/completions', model_id: m}}\n"))  # fmt: skip
    loaded = load_config(path)
    assert (loaded.model.execution.type, loaded.model.deployment.type) == types
    if deployment == "vllm_ray":
        assert loaded.resolved["deployment"]["distributed_executor_backend"] == "ray"


def test_a_user_group_of_its_own_merges_under_its_name(tmp_path):
    from evalfleet.config import load_config

    _write(tmp_path, "evaluation/quick.yaml", "tasks: [{name: gsm8k}]\n")
    _write(tmp_path, "evaluation/two.yaml", "tasks: [{name: gsm8k}, {name: ifeval}]\n")
    config = _write(
        tmp_path, "run.yaml",
        "defaults:\n  - evaluation: quick\n  - _self_\n"
        "target: {api_endpoint: {url: 'http://h:1/v1/chat/completions', model_id: m}}\n",
    )  # fmt: skip
    assert [t.name for t in load_config(config).model.evaluation.tasks] == ["gsm8k"]
    two = load_config(config, overrides=["evaluation=two"]).model.evaluation.tasks
    assert [t.name for t in two] == ["gsm8k", "ifeval"]


@pytest.mark.parametrize(
    ("defaults", "overrides", "expected"),
    [
        (
            "execution: slurm/mycluter", [],
            r"run.yaml: defaults: execution: option 'slurm/mycluter' not found \(searched "
            r".*/execution, the built-in execution group\); did you mean 'slurm/mycluster'\?",
        ),
        (
            "execution: local", ["execution=slurm/mycluter"],
            r"override 'execution=slurm/mycluter': execution: option 'slurm/mycluter' not "
            r"found .*did you mean 'slurm/mycluster'\?",
        ),
        (
            "deployment: vlm", [],
            r"deployment: option 'vlm' not found .*did you mean 'vllm'\?",
        ),
    ],
)  # fmt: skip
def test_an_unknown_option_is_one_line_naming_group_option_and_places(
    tmp_path, defaults, overrides, expected
):
    from evalfleet.config import load_config
    from evalfleet.exceptions import ConfigError

    _write(tmp_path, "execution/slurm/mycluster.yaml", CLUSTER.format(parent="default"))
    config = _write(tmp_path, "run.yaml", f"defaults:\n  - {defaults}\n  - _self_\n")
    with pytest.raises(ConfigError, match=expected) as caught:
        load_config(config, overrides=overrides)
    assert len(str(caught.value).splitlines()) == 1


def test_a_group_file_that_names_no_type_says_so(tmp_path):
    from evalfleet.config import load_config
    from evalfleet.exceptions import ConfigError

    _write(tmp_path, "execution/mine.yaml", "hostname: h\n")
    config = _write(tmp_path, "run.yaml", "defaults:\n  - execution: mine\n")
    with pytest.raises(ConfigError, match=r"execution.type: missing mandatory value \(execution "
                       r"option 'mine' from .*mine.yaml sets none"):  # fmt: skip
        load_config(config)


def test_a_derived_default_of_a_missing_value_reports_the_missing_one(write_yaml):
    """`served_model_name` defaults to the checkpoint: a missing checkpoint is reported as
    itself, once, not as a failed interpolation."""
    from evalfleet.config import load_config
    from evalfleet.exceptions import ConfigError

    path = write_yaml("deployment: {type: vllm}\nevaluation: {tasks: [{name: gsm8k}]}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == "deployment.checkpoint_path: missing mandatory value"
