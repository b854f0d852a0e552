# Two commands do all the set-up: `make train` and `make test` (each creates .venv on first use).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: train test bench serve default-model lint clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (or run: make PYTHON=python3 ...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Train the default model, evaluate it on the test set and write the plots (runs/default).
train: $(STAMP)
	$(BIN)/mnist-cnn train --out runs/default-$$(date +%Y%m%d-%H%M%S)

## Lint, then the whole test suite (real-MNIST tests need MNIST_DATA_DIR or the user cache).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

## Every recipe side by side, several seeds each (about 30 minutes on 2 cores, see README).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py --out benchmarks/results-$$(date +%Y-%m-%d).json

## The draw-a-digit page and the JSON API on http://127.0.0.1:8000/ (the packaged model).
serve: $(STAMP)
	$(BIN)/mnist-cnn serve

## Retrain the packaged model (about 15 minutes on 2 cores; needs the fonts .ci/run installs)
## and put it in the package, with its int8 ONNX twin for `--engine int8`.
default-model: $(STAMP)
	$(BIN)/mnist-cnn train --model writers --seed 0 --out runs/writers-seed0
	cp runs/writers-seed0/model.keras runs/writers-seed0/metrics.json runs/writers-seed0/config.json src/mnist_cnn/default/
	$(BIN)/mnist-cnn export --model src/mnist_cnn/default/model.keras --format onnx-int8 --out src/mnist_cnn/default/model-int8.onnx

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info
