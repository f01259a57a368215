# Two commands do all the set-up on a fresh machine (see README):
#   make demo   - create/refresh the environment, then run the main job
#   make test   - create/refresh the environment, then run the default tests
# Everything runs inside .venv, created and synced from uv.lock by `uv sync`.

# uv on PATH, else uv as a Python package (`python3 -m uv`), installed from PyPI if missing.
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN = $(UV) run --frozen
DEMO_DIR ?= out/demo
export NUMBA_NUM_THREADS ?= 1
export HF_HUB_OFFLINE = 1
# Let Python keep .pyc files: without them every run re-compiles torch, pandas... (seconds).
unexport PYTHONDONTWRITEBYTECODE

# bash with pipefail: `bench` tees its output into benchmarks/results and must still
# fail when the benchmark does.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

.PHONY: env demo demo-kb demo-engine test test-e2e test-browser screenshots test-slow lint bench \
	bench-decisions bench-platform ui

# uv itself is the only thing installed outside .venv (pip, from PyPI).
env:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv \
		|| python3 -m pip install --user --quiet uv
	$(UV) sync --frozen

# The platform end to end, all through Dagster: tiny zoo trained and scored, graph, ranker,
# leave-one-out, a landed dataset ranked by the sensor (about 2 minutes on 2 idle CPU cores).
demo: env
	$(RUN) python -m mnc_assets.demo --root $(DEMO_DIR)

# The same platform on the bundled demo knowledge base alone (no training).
demo-kb: env
	$(RUN) python -m mnc_assets.demo --kb-only --root $(DEMO_DIR)-kb

# The engine alone, without Dagster: demo KB folder + leave-one-out table.
demo-engine: env
	$(RUN) mnc demo-kb --out $(DEMO_DIR)-engine/kb
	$(RUN) mnc evaluate --kb $(DEMO_DIR)-engine/kb --protocol loo \
		--json $(DEMO_DIR)-engine/loo.json

# The README's test command (and CI's): lint, the quick run, then the platform end to end
# and the web UI in a browser.
test: env
	$(RUN) ruff check .
	$(RUN) pytest -m "not slow and not e2e and not browser" -q
	$(RUN) pytest -m "e2e and not slow" -q
	tests/browser/install.sh
	$(RUN) pytest -m browser -q
	$(RUN) pytest -m slow -q

test-e2e: env
	$(RUN) pytest -m "e2e and not slow" -q

# The web UI in headless Chromium against `dagster dev` (a few minutes). install.sh puts
# Debian's chromium at /usr/bin/chromium (apt, only when missing); Playwright drives it.
test-browser: env
	tests/browser/install.sh
	$(RUN) pytest -m browser -q

# The README's screenshots (docs/screenshots/), taken by the browser test.
screenshots: env
	tests/browser/install.sh
	MNC_SCREENSHOT_DIR=$(CURDIR)/docs/screenshots $(RUN) pytest -m browser -q

test-slow: env
	$(RUN) pytest -m slow -q

lint: env
	$(RUN) ruff check .

# The Dagster UI on the platform's assets, at http://127.0.0.1:3000. DAGSTER_HOME comes
# from mnc_resources.instance (default <data root>/dagster_home; its dagster.yaml, with
# the gpu pool limit and run monitoring, is written the first time only); it moves
# with MNC_DATA_ROOT.
# The UI on a data root (default: the demo's), with the settings the demo used
# (<root>/platform.env, written by the demo).
ROOT ?= $(DEMO_DIR)
ui: env
	set -a && { [ ! -f "$(ROOT)/platform.env" ] || . "$(ROOT)/platform.env"; } && set +a && \
		export MNC_DATA_ROOT="$${MNC_DATA_ROOT:-$(abspath $(ROOT))}" && \
		home="$$($(RUN) python -m mnc_resources.instance)" && \
		DAGSTER_HOME="$$home" $(RUN) dagster dev -w workspace.yaml -h 127.0.0.1

# Every figure in the README (about 25 minutes on 2 cores; the sweep is most of it).
bench: env
	$(RUN) python benchmarks/engine_bench.py --sparsity 2>&1 | tee benchmarks/results/engine_bench.txt
	$(RUN) python benchmarks/engine_speed.py
	$(RUN) python benchmarks/engine_tg_ceiling.py | tee benchmarks/results/engine_tg_ceiling.txt
	$(RUN) python benchmarks/engine_tg_quality.py --seeds 3 --json benchmarks/results/engine_tg_quality.json
	$(RUN) python benchmarks/zoo_table2.py
	$(RUN) python benchmarks/t2i_train_bench.py --quick --out benchmarks/results/t2i_train_bench_quick_cpu.json

# The README's "Decisions" and "Acquisition" figures: the engine's run, then its
# sensitivity runs on the same cached leave-one-out predictions (the first run fills
# the cache; the later ones only re-simulate), then the acquisition simulation (the
# longest part: M&C's leave-one-out is fitted again after every acquired batch).
DECISIONS = benchmarks/results/engine_decisions
DECISIONS_CACHE ?= out/decisions_cache
bench-decisions: env
	$(RUN) python benchmarks/engine_decisions.py --cache $(DECISIONS_CACHE) \
		--prior-share 0.5 --out $(DECISIONS)_share_0.5.json
	$(RUN) python benchmarks/engine_decisions.py --cache $(DECISIONS_CACHE) \
		--compare $(DECISIONS)_share_0.5.json --out $(DECISIONS).json
	$(RUN) python benchmarks/engine_decisions.py --cache $(DECISIONS_CACHE) \
		--feature-kernel 0.5 --compare $(DECISIONS)_share_0.5.json --out $(DECISIONS)_feature_kernel.json
	$(RUN) python benchmarks/engine_decisions.py --cache $(DECISIONS_CACHE) \
		--own-source-best --compare $(DECISIONS).json --out $(DECISIONS)_own_source.json
	$(RUN) python benchmarks/engine_acquisition.py --seeds 3
	$(RUN) python benchmarks/engine_goal_bounds.py --seeds 3

# The README's platform figures (definitions import, asset overhead, sensor latency
# through dagster-daemon); on a busy machine they measure the load too.
bench-platform: env
	$(RUN) python benchmarks/platform_bench.py --repeats 5 --json benchmarks/results/platform_bench.json
	$(RUN) python benchmarks/platform_sensor_latency.py
