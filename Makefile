# computepods: make demo | test | chaos | bench | lint | diagrams | clean
#
# .venv is made from setup.cfg by a stamp rule, so a fresh clone needs only
# python3 (>= 3.11) and make.  System commands come from Debian packages
# through scripts/system-deps: installed when run as root, named otherwise.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# COMMAND:DEBIAN-PACKAGE pairs; later work appends TeX and Chromium here.
# The latex pack's tests compare with latexmk: glossaries and nomencl (and
# makeglossaries) are in texlive-latex-extra, pdftotext in poppler-utils,
# biblatex (which biber serves) in texlive-bibtex-extra.
# tests/unit/tools/test_svgs.py draws diagrams with graphviz's dot.
# test_up.py checks out a git repository under `cpod up`.
TEST_SYSTEM_DEPS := setpriv:util-linux pdflatex:texlive-latex-base bibtex:texlive-latex-base cc:gcc chromium:chromium sshd:openssh-server ssh-keygen:openssh-client \
	makeindex:texlive-binaries makeglossaries:texlive-latex-extra biber:biber latexmk:latexmk \
	pdftotext:poppler-utils dot:graphviz git:git \
	/usr/share/texlive/texmf-dist/tex/latex/biblatex/biblatex.sty:texlive-bibtex-extra
BENCH_SYSTEM_DEPS := ninja:ninja-build make:make latexmk:latexmk /usr/sbin/sshd:openssh-server \
	scp:openssh-client ssh-keygen:openssh-client chromium:chromium
DIAGRAM_SYSTEM_DEPS := dot:graphviz

PYTEST_FLAGS ?= -q --durations=15

.PHONY: all demo test chaos bench lint diagrams clean distclean test-system-deps bench-system-deps \
	diagram-system-deps

all: test

# A path entry (compat mode), not setuptools' import hook: the hook costs
# every cpod start ~17 ms, a third of a no-op handed to a running pod.
$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[test,bench]' --config-settings editable_mode=compat
	touch $@

test-system-deps:
	scripts/system-deps $(TEST_SYSTEM_DEPS)

bench-system-deps:
	scripts/system-deps $(BENCH_SYSTEM_DEPS)

diagram-system-deps:
	scripts/system-deps $(DIAGRAM_SYSTEM_DEPS)

demo: $(STAMP)
	$(VENV)/bin/cpod -C examples/hello build
	@echo "built: examples/hello/out/hello.txt and examples/hello/out/stats.json"
	$(VENV)/bin/cpod -C examples/hello down

test: test-system-deps $(STAMP)
	$(VENV)/bin/pytest $(PYTEST_FLAGS)

# The reliability battery (tests/chaos) at its full counts; `make test` runs
# each row's short count.  The RELIABILITY table is printed at the end and
# kept in build/reliability.rst for the README.
chaos: test-system-deps $(STAMP)
	CP_CHAOS=full CP_CHAOS_REPORT=build/reliability.rst $(VENV)/bin/pytest -m chaos $(PYTEST_FLAGS)

# Every benchmark runs even when one fails (a failed check exits 1); the
# target fails at the end, naming them.
BENCHES := "run.py wide 1000 -j 2" "run.py layers 2000 10 -j 2" \
	"rebuild.py noop wide 10000 -j 2 --repeat 5" \
	"rebuild.py edit layers 2000 10 -j 2 --repeat 5" "latex.py --repeat 3" \
	"bridge_rtt.py" "watch_latency.py" "up.py --steps 10000 --repeat 10" \
	"rest_rps.py" "sse_fanout.py" "federation_sim.py" "transfer.py" \
	"federation_speedup.py" "c_project.py --repeat 5" "ui_scale.py"

bench: bench-system-deps $(STAMP)
	@failed=; for b in $(BENCHES); do \
		echo "$(PY) bench/$$b"; $(PY) bench/$$b || failed="$$failed [bench/$$b]"; echo; \
	done; [ -z "$$failed" ] || { echo "bench: failed:$$failed" >&2; exit 1; }

# Syntax everywhere, and no sleeps in tests: tests wait on conditions
# (helpers.wait_for), never on time.
lint: $(STAMP)
	$(PY) -m compileall -q computepods tests bench examples
	$(PY) -m pyflakes computepods tests bench
	@if grep -rn --include='*.py' -E '\b(time|asyncio)\.sleep\(' tests | grep -v '^tests/helpers.py:'; then \
		echo "lint: tests must wait on a condition (helpers.wait_for), not sleep" >&2; exit 1; fi

# charts/*.txt and diagrams/*.dot come from the chart code; the SVGs are
# drawn from the .dot files, each stamped with its .dot's sha256, and only
# those whose .dot changed are drawn again.  Unit tests check all three.
diagrams: diagram-system-deps $(STAMP)
	$(PY) -m computepods.tools.charts
	$(PY) -m computepods.tools.svgs

clean:
	rm -rf bench/work build dist *.egg-info
	rm -rf examples/*/build examples/*/out examples/*/.computepods
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
