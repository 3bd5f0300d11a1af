# Two commands on a fresh machine: `make demo` and `make test` (each installs what it needs first).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

# editable_mode=compat: the checkout goes on sys.path through a .pth line instead of an import hook, which
# every process would load at start-up (~10 ms of a ~0.25 s `motpipe eval`). compileall: byte-code for our
# packages now, as a non-editable install writes it, for machines that set PYTHONDONTWRITEBYTECODE (this
# project's CI and development VMs do): otherwise every command compiles its modules again (~30 ms of eval).
$(VENV)/.installed: pyproject.toml setup.py $(wildcard shared/formats/*.c services/evaluator/metrics/*.c services/tracker/motrv2/*.c)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]' --config-settings editable_mode=compat
	$(PY) -m compileall -q services shared > /dev/null
	touch $@

.PHONY: install demo test lint system label-studio
install: $(VENV)/.installed

# Label Studio for the annotation loop's tests, in a virtual environment of its own (its pins are not ours):
# ~1 min to install, ~40 s to start (measured on the 2-core development VM; tests/label_studio_server.py).
LS_VENV ?= .label-studio-venv
$(LS_VENV)/bin/label-studio:
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install -q 'label-studio==1.23.2'
label-studio: $(LS_VENV)/bin/label-studio

# Debian's Chromium + driver for the dashboard's browser tests (installed when missing and run as root;
# otherwise those tests skip and say why).
system:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver; \
	  else echo "note: chromium/chromium-driver missing; the browser tests will skip"; fi; \
	fi

demo: $(VENV)/.installed
	$(VENV)/bin/motpipe demo --out demo-output

test: $(VENV)/.installed system label-studio
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
