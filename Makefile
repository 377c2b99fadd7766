# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv on first use.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
KERNEL  := mtlskit
LOCK     := deploy/requirements.lock
DEV_LOCK := deploy/requirements-dev.lock

.PHONY: venv lock demo test test-fast lint lab sandbox sandbox-down clean bench browser image image-test image-prepare image-tools

# The exact versions of the lock (hashes checked), then the kit itself without resolving anything.
$(STAMP): pyproject.toml $(DEV_LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (mtlskit)" >/dev/null
	touch $(STAMP)

venv: $(STAMP)

# Exact versions with hashes, from pyproject.toml, for the venv, the container image and CI. Pins already
# in the lock files are kept; `make lock UPGRADE=1` moves them to the newest releases pyproject.toml allows.
# The runtime lock starts from the dev lock's pins, so both name the same version of every package.
# deploy/python-floor.txt keeps them installable on Python 3.11.2 (Debian bookworm's) and later.
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile --quiet --generate-hashes \
	--allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links -c deploy/python-floor.txt
lock: venv
	$(PIP_COMPILE) $(if $(UPGRADE),--upgrade) --extra dev --output-file $(DEV_LOCK) pyproject.toml
	cp $(DEV_LOCK) $(LOCK)
	$(PIP_COMPILE) --output-file $(LOCK) pyproject.toml

demo: venv
	$(VENV)/bin/mtlskit run --apply

lint: venv
	$(VENV)/bin/ruff check lib tests bench
	$(VENV)/bin/ruff format --check lib tests bench
	$(VENV)/bin/lint-imports pyproject.toml

# Three workers on two cores: the e2e tests spend much of their time waiting on sandboxes and kernels.
test: venv lint browser
	$(VENV)/bin/pytest -n 3 --dist loadfile --durations=15

# The browser tests drive the distribution's Chromium (Playwright never downloads one).
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; \
	  else echo "$(CHROMIUM) is missing and installing it needs root: run 'apt-get install -y chromium' as root" >&2; exit 1; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; \
	fi

# The nightly image (deploy/Dockerfile) with docker or podman, whichever is here. BASE, when set, replaces
# the pinned Python base the Dockerfile names (any Debian with python3 and its venv module).
IMAGE  ?= mtlskit:local
BASE   ?=
ENGINE ?= $(shell command -v podman || command -v docker || echo docker)
image:
	$(ENGINE) build -f deploy/Dockerfile $(if $(BASE),--build-arg BASE=$(BASE)) $(BUILD_ARGS) -t $(IMAGE) .

# The image built and run as the Indexed Job runs it, with podman from the distribution's packages on a
# bookworm base made with debootstrap (kept in IMAGE_CACHE and in podman between runs; registry images
# cannot be pulled where this was proven). tests/test_image.py says what it checks.
IMAGE_TEST_CONF  := $(CURDIR)/deploy/image-test/containers.conf
IMAGE_TEST_BASE  ?= localhost/mtlskit-base:bookworm-python3
IMAGE_TEST_IMAGE ?= localhost/mtlskit:image-test
IMAGE_CACHE      ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/mtlskit/image-test
image-tools:
	@missing=$$(for t in podman runc debootstrap; do command -v $$t >/dev/null || [ -x /usr/sbin/$$t ] || echo $$t; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; \
	  else echo "$$missing missing and installing needs root: run 'apt-get install -y $$missing' as root" >&2; exit 1; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing; \
	fi

IMAGE_TEST_ENV   = export CONTAINERS_CONF=$(IMAGE_TEST_CONF) PATH="$$PATH:/usr/sbin:/sbin"
IMAGE_TEST_BUILD = $(MAKE) --no-print-directory image ENGINE=podman BASE=$(IMAGE_TEST_BASE) IMAGE=$(IMAGE_TEST_IMAGE) \
                     BUILD_ARGS="--network=host --layers"
image-test: venv image-tools
	@start=$$(date +%s); base=0; built=0; ok=1; $(IMAGE_TEST_ENV); \
	deploy/image-test/base.sh $(IMAGE_TEST_BASE) $(IMAGE_CACHE) && base=$$(date +%s) \
	&& { $(IMAGE_TEST_BUILD); ok=$$?; built=$$(date +%s); [ $$ok = 0 ]; } \
	&& MTLSKIT_IMAGE=$(IMAGE_TEST_IMAGE) $(VENV)/bin/pytest tests/test_image.py -q -rs -s; \
	code=$$?; end=$$(date +%s); tested=$$(( ok == 0 && built ? end - built : 0 )); \
	echo "make image-test: $$(( end - start )) s (base $$(( base ? base - start : 0 )) s, build" \
	  "$$(( built ? built - base : 0 )) s$$([ "$$built" != 0 ] && [ "$$ok" != 0 ] && echo ' (failed)'), containers and scan $$tested s), exit code $$code"; \
	if [ $$code = 0 ]; then deploy/image-test/inputs.sh > .ci/image-tested \
	  && echo "make image-test: passed on these inputs, recorded in .ci/image-tested (commit it)"; fi; \
	exit $$code

# The base and the image of image-test without running them: what CI builds while `make test` runs, so
# that image-test then finds both cached (network and disk work beside the tests' CPU work).
image-prepare: image-tools
	@$(IMAGE_TEST_ENV); deploy/image-test/base.sh $(IMAGE_TEST_BASE) $(IMAGE_CACHE) && $(IMAGE_TEST_BUILD)

# Seconds, no sandbox and no kernel: every test not marked e2e (tests/conftest.py says which are).
test-fast: venv
	$(VENV)/bin/pytest -m "not e2e"

# jupyter/ is the project's Jupyter config (on JUPYTER_CONFIG_PATH): its JupyterLab defaults say no news
# prompt and no update check. They are defaults: a person's own JupyterLab settings still win.
lab: venv
	$(VENV)/bin/mtlskit sandbox up
	JUPYTER_CONFIG_PATH=$(CURDIR)/jupyter$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH} $(VENV)/bin/jupyter lab --ServerApp.root_dir=notebooks $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS)

sandbox: venv
	$(VENV)/bin/mtlskit sandbox up --foreground

sandbox-down: venv
	$(VENV)/bin/mtlskit sandbox down

bench: venv
	$(PY) bench/run.py
	$(PY) bench/dataplane.py
	$(PY) bench/runbook.py
	$(PY) bench/logs.py
	$(PY) bench/fleet.py
	$(PY) bench/cutover.py
	$(PY) bench/migration.py

clean:
	-$(VENV)/bin/mtlskit sandbox down 2>/dev/null
	rm -rf $(VENV) .sandbox runs
