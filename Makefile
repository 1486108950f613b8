# rtdp — every target creates .venv and installs what it needs on first use.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SNOWFLAKE_STAMP := .venv-snowflake/.installed
AIRFLOW_STAMP := .venv-airflow/.installed
K8S_STAMP := .venv-k8s/.installed
export RTDP_HOME ?= $(CURDIR)/.rtdp

.PHONY: setup demo test lint bench clean emulators setup-k8s cluster test-operators

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11+)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dbt,dev,cloud-test]'
	touch $(STAMP)

$(SNOWFLAKE_STAMP): requirements/snowflake.txt
	test -x .venv-snowflake/bin/python || $(PYTHON) -m venv .venv-snowflake
	.venv-snowflake/bin/pip install --quiet --upgrade pip
	.venv-snowflake/bin/pip install --quiet -r requirements/snowflake.txt
	touch $(SNOWFLAKE_STAMP)

# Airflow apart from rtdp and dbt (their pins conflict): tests/dags run with this python.
$(AIRFLOW_STAMP): requirements/airflow.txt
	test -x .venv-airflow/bin/python || $(PYTHON) -m venv .venv-airflow
	.venv-airflow/bin/pip install --quiet --upgrade pip
	.venv-airflow/bin/pip install --quiet -r requirements/airflow.txt
	touch $(AIRFLOW_STAMP)

# The kopf operator and its tests: kopf and the Kubernetes client pin versions (certifi…) that
# the data stack's packages clash with, hence a venv of their own.
$(K8S_STAMP): operators/pyproject.toml
	test -x .venv-k8s/bin/python || $(PYTHON) -m venv .venv-k8s
	.venv-k8s/bin/pip install --quiet --upgrade pip
	.venv-k8s/bin/pip install --quiet -e 'operators[test]'
	touch $(K8S_STAMP)

setup-k8s: $(K8S_STAMP)  ## create .venv-k8s (the kopf operator and its tests)

cluster:  ## build what is missing of the test control plane into ~/.cache/rtdp/k8s (cold: ~15 min)
	tests/cluster/build >/dev/null

test-operators: $(K8S_STAMP) cluster  ## the operator on a real API server (tests/cluster/up)
	.venv-k8s/bin/python -m pytest -q tests/operators
	.venv-k8s/bin/python -m pytest -q tests/charts/cluster

setup: $(STAMP) $(SNOWFLAKE_STAMP) $(AIRFLOW_STAMP)  ## create .venv (rtdp, dbt, test tools), .venv-snowflake, .venv-airflow

demo: $(STAMP)  ## the whole platform on this machine, then a summary
	$(BIN)/rtdp demo --reset

emulators:  ## ElasticMQ and MinIO for tests/cloud, cached in ~/.cache/rtdp (first time: minutes)
	tests/cloud/emulators/install.sh

test: $(STAMP) $(SNOWFLAKE_STAMP) $(AIRFLOW_STAMP) emulators $(K8S_STAMP) cluster  ## every test
	$(BIN)/ruff check src tests dags operators scripts
	$(BIN)/mypy
	$(BIN)/python -m pytest -q
	.venv-airflow/bin/python -m pytest -q tests/dags
	.venv-k8s/bin/python -m pytest -q tests/operators
	.venv-k8s/bin/python -m pytest -q tests/charts/cluster

lint: $(STAMP)
	$(BIN)/ruff check src tests dags operators scripts
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

bench: $(STAMP)  ## benchmarks; writes bench/results/latest.json
	$(BIN)/rtdp bench all

clean:
	rm -rf .rtdp dbt/target dbt/logs
