# `make run` executes every notebook; `make test` runs the unit tests and nbval. Both first
# create or refresh the virtual environment in .venv (a no-op when nothing changed).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The tested torch; on Linux PyPI serves a CUDA build, on this project's CI machine a CPU one.
TORCH_SPEC ?= torch==2.13.0

# A local copy of stanfordnlp/imdb in the Hub's layout sits beside the repository on CI; a folder
# given on the command line wins; without either, the notebooks download the data set from the Hub.
IMDB := $(abspath ../shared/data/imdb)
ifeq ($(origin TUTORIAL_DATASET), undefined)
  ifneq ($(wildcard $(IMDB)/plain_text),)
    export TUTORIAL_DATASET := $(IMDB)
  endif
endif

# Colab's versions (tests/colab-constraints.txt) in a second environment, on Colab's Python.
COLAB_VENV   := .venv-colab
# the first interpreter that runs: pyenv's python3.13 shim exists but fails unless 3.13 is selected
COLAB_PYTHON ?= $(shell for p in python3.13 $(HOME)/.pyenv/versions/3.13*/bin/python3.13 python3.12 python3; do \
                  $$p -c "" 2>/dev/null && echo $$p && break; done)
COLAB_STAMP  := $(COLAB_VENV)/.installed

NBVAL_FLAGS := --nbval --nbval-current-env --nbval-cell-timeout=1800 \
               --sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider

.PHONY: help venv run test precision unit slow nbval colab notebooks prose bench lint clean

help:
	@echo "make run        execute every notebook at the profile that fits this machine (runs/<profile>/)"
	@echo "make test       make unit + make slow + nbval over every notebook (cpu profile) + make colab"
	@echo "make unit       the unit tests that start no process and run no benchmark (about a minute)"
	@echo "make slow       the tests that launch processes or run every benchmark at its smallest size"
	@echo "make colab      unit tests + the gpu profile's code path on a tiny model, with Colab's versions"
	@echo "make notebooks  rebuild notebooks/*.ipynb from notebooks/src with a fresh cpu run (NB=03 for one)"
	@echo "make prose      refresh only the text cells from notebooks/src, keeping the outputs (refuses code changes)"
	@echo "make bench      every benchmark on this machine: benchmarks/results/*.md and summary.json (about 3 hours on 2 cores; make run first)"
	@echo "make lint       ruff over helpers/, tests/, benchmarks/ and notebooks/ (sources and builder)"

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP)

run: venv
	$(PY) -m notebooks.build run

test: precision unit slow nbval colab

# Which precision the cpu profile runs here: bf16 on CPUs with AVX-512 BF16 or AMX, else fp32
# (TUTORIAL_PRECISION=fp32 forces it). The suite must pass with either.
precision: venv
	@$(PY) -c "from helpers.profile import get_profile; p = get_profile('cpu'); print('make test: cpu profile in', p.precision)"

unit: venv
	TUTORIAL_PROFILE=cpu $(PY) -m pytest tests -q -m "not smoke and not slow"

slow: venv
	TUTORIAL_PROFILE=cpu $(PY) -m pytest tests -q -m slow

$(COLAB_STAMP): tests/colab-constraints.txt pyproject.toml
	@test -x $(COLAB_VENV)/bin/python || $(COLAB_PYTHON) -m venv $(COLAB_VENV)
	$(COLAB_VENV)/bin/python -m pip install -q -c tests/colab-constraints.txt -e . pytest nbclient nbformat ipykernel
	@touch $(COLAB_STAMP)

# Where most readers are: the unit tests, then every notebook at the gpu profile's code path on a
# tiny random BERT and a stratified subset of the real reviews in the Hub's layout (tests/test_gpu_smoke.py),
# on Colab's stack. The benchmarks' tests run in .venv only: `make bench` is a maintainer's tool,
# never run on Colab (leaving them out saves about 100 s of the 90 minutes CI allows).
colab: $(COLAB_STAMP)
	$(COLAB_VENV)/bin/python -c "import sys, torch, transformers, datasets, accelerate; print('colab stack:', \
	  sys.version.split()[0], torch.__version__, transformers.__version__, datasets.__version__, accelerate.__version__)"
	TUTORIAL_PROFILE=cpu $(COLAB_VENV)/bin/python -m pytest tests -q -m "not smoke" -p no:cacheprovider \
	  --ignore=tests/test_benchmarks.py
	$(COLAB_VENV)/bin/python -m pytest tests/test_gpu_smoke.py -q -m smoke -p no:cacheprovider

# nbval trains in a fresh work folder: a finished checkpoint from an earlier run must not stand in.
nbval: venv
	@work=$$(mktemp -d); TUTORIAL_PROFILE=cpu TUTORIAL_WORKDIR=$$work TUTORIAL_MODELS_DIR= $(PY) -m pytest $(NBVAL_FLAGS) notebooks/*.ipynb -q; \
	  status=$$?; rm -rf $$work; exit $$status

notebooks: venv
	TUTORIAL_PROFILE=cpu $(PY) -m notebooks.build build $(NB)

# Text cells only, after a prose fix: refuses if any code cell changed (then use `make notebooks`).
prose: venv
	$(PY) -m notebooks.build prose $(NB)

bench: venv
	$(PY) -m benchmarks.run

lint: venv
	$(PY) -m pip install -q ruff==0.14.5 && $(VENV)/bin/ruff check helpers tests benchmarks notebooks

clean:
	rm -rf runs .pytest_cache $(COLAB_VENV)
