"""Run configs for the Slurm tests, as a user would write them."""

# (a) vllm on one node: gres, account, partition, qos, extra flags, a pyxis image, remote host.
VLLM = """
execution:
  type: slurm
  hostname: login.example.com
  username: alice
  account: llm-eval
  partition: batch
  qos: high
  gres: gpu:8
  walltime: "04:00:00"
  container_image: vllm/vllm-openai:v0.6.3
  mounts:
    /lustre/models: /models
  sbatch_extra_flags:
    exclusive: true
    comment: "nightly eval's run"
    mem: 0
    requeue: false
    mail_type: null
    cpus_per_task: 16
  env_vars:
    HF_HOME: /lustre/hf-cache
deployment:
  type: vllm
  checkpoint_path: /lustre/models/llama-3.1-8b-instruct
  served_model_name: llama-3.1-8b
  env_vars:
    VLLM_LOGGING_LEVEL: INFO
evaluation:
  params:
    parallelism: 64
  tasks:
    - name: gsm8k
      params:
        limit_samples: 100
    - name: ifeval
env_vars:
  NOTE: "it's $HOME"
"""

# (b) a generic server, one batch job per task.
GENERIC_PER_TASK = """
execution:
  type: slurm
  partition: cpu
  walltime: "00:30:00"
  job_per_task: true
  job_name_prefix: nightly
  evalfleet_command: /opt/evalfleet/bin/evalfleet --quiet
  endpoint_readiness_timeout: 300
deployment:
  type: generic
  command: python3 -m my_server --port {port} --model-name {served_model_name}
  served_model_name: my-model
  port: 9000
  endpoints:
    health: /ready
  env_vars:
    MY_SERVER_THREADS: "4"
evaluation:
  params:
    parallelism: 4
  tasks:
    - name: gsm8k
      env_vars:
        EXTRA_NOTE: "a b"
    - name: hellaswag
"""

# (c) no deployment: an existing endpoint.
NO_DEPLOYMENT = """
execution:
  type: slurm
  account: eval
  walltime: "02:00:00"
  env_vars:
    HF_DATASETS_OFFLINE: "1"
target:
  api_endpoint:
    url: https://integrate.api.nvidia.com/v1
    model_id: meta/llama-3.1-8b-instruct
    api_key_name: NGC_API_KEY
evaluation:
  tasks:
    - name: mmlu
    - name: gpqa_diamond
      params:
        n_samples: 4
"""

# (d) llama.cpp (which server binary depends on PATH; the tests fix it).
LLAMACPP = """
execution:
  type: slurm
  partition: gpu
  gpus_per_node: 1
  walltime: "00:20:00"
  endpoint_readiness_timeout: 120
deployment:
  type: llamacpp
  checkpoint_path: /lustre/models/gemma-3-270m-it-Q8_0.gguf
  n_threads: 8
evaluation:
  tasks:
    - name: ifeval
      params:
        limit_samples: 20
"""

# (e) a vLLM model and a vLLM judge beside it (judge_deployment), each on half the GPUs,
# in the same pyxis image; a built-in judged task and one without a judge.
JUDGE = """
execution:
  type: slurm
  partition: gpu
  gpus_per_node: 8
  walltime: "04:00:00"
  container_image: vllm/vllm-openai:v0.6.3
  mounts:
    /lustre/models: /models
  endpoint_readiness_timeout: 900
deployment:
  type: vllm
  checkpoint_path: /lustre/models/llama-3.1-8b-instruct
  served_model_name: llama-3.1-8b
  tensor_parallel_size: 4
  env_vars:
    CUDA_VISIBLE_DEVICES: "0,1,2,3"
judge_deployment:
  type: vllm
  checkpoint_path: /lustre/models/llama-3.3-70b-instruct
  served_model_name: judge-70b
  port: 8001
  tensor_parallel_size: 4
  env_vars:
    CUDA_VISIBLE_DEVICES: "4,5,6,7"
evaluation:
  tasks:
    - name: simple_evals.AIME_2025
      params:
        limit_samples: 10
    - name: gsm8k
"""
