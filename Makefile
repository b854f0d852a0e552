# Two commands do all the set-up: `make train` and `make test` (each creates .venv on first use).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: train test bench serve default-model default-reader default-pool lint clean

# .venv with the extras a target needs, installed once (again when pyproject.toml changes).
$(VENV)/.installed-%: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (or run: make PYTHON=python3 ...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$*]'
	touch $@

## Train the classic model, evaluate it on the test set and write the plots (runs/classic-...).
train: $(VENV)/.installed-train
	$(BIN)/mnist-cnn train --out runs/classic-$$(date +%Y%m%d-%H%M%S)

## Lint, then the whole test suite (MNIST from MNIST_DATA_DIR, the user cache or a download).
## tests/prepare.py first gets what the tests need outside .venv: a browser for the page tests
## and Fashion-MNIST (a download, else Debian's packages when run as root). The tests run in
## TEST_PROCESSES processes (pytest-xdist): a training test leaves a core idle much of the time;
## tests that share a trained run are one group, in one process, so it is trained once.
TEST_PROCESSES ?= 2
test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/python tests/prepare.py
	$(BIN)/python -m pytest -n $(TEST_PROCESSES) --dist loadgroup

## Every recipe side by side, several seeds each (about 30 minutes on 2 cores; docs/results.md).
bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/bench.py --out benchmarks/results/bench.json

## The draw-a-digit page and the JSON API on http://127.0.0.1:8000/ (the packaged model).
serve: $(VENV)/.installed-serve
	$(BIN)/mnist-cnn serve

## Retrain the packaged model: the `writers` recipe with seeds 0 and 1, averaged into one model
## (about 35 minutes on 2 cores), and put it in the package
## with its int8 ONNX twin (what `--engine auto` runs); then the packaged reader's pool with
## it (default-pool).
PACKAGED_SEEDS ?= 0 1
default-model: $(VENV)/.installed-dev
	run=runs/packaged-$$(date +%Y%m%d-%H%M%S) && \
	for seed in $(PACKAGED_SEEDS); do \
		$(BIN)/mnist-cnn train --recipe writers --seed $$seed --out $$run-seed$$seed || exit 1; \
	done && \
	$(BIN)/mnist-cnn ensemble $(foreach s,$(PACKAGED_SEEDS),$$run-seed$(s)) --out $$run && \
	cp $$run/model.keras $$run/metrics.json $$run/config.json src/mnist_cnn/default/ && \
	$(BIN)/mnist-cnn export --model src/mnist_cnn/default/model.keras --format onnx-int8 \
		--out src/mnist_cnn/default/model-int8.onnx && \
	$(MAKE) default-pool

## Fit the packaged reader's pool with the packaged classifier again (reading/pooling.py; half
## a minute), on the held-out pages the reader's run scored itself on: default/pooling.json.
default-pool: $(VENV)/.installed-dev
	$(BIN)/python -c "from mnist_cnn import train; print(train.pool_again())"

## Retrain the packaged reader: the `reader` recipe, seed 0 (about an hour on 2 cores; pages
## generated from MNIST and the synthetic writers, never real handwriting), and put it in the
## package: its ONNX export (what reads), its pool with the packaged classifier, its Keras
## network (what `finetune --fields` starts from), its config and metrics.
default-reader: $(VENV)/.installed-dev
	run=runs/reader-$$(date +%Y%m%d-%H%M%S) && \
	$(BIN)/mnist-cnn train --recipe reader --seed 0 --out $$run && \
	cp $$run/reader.onnx src/mnist_cnn/default/reader.onnx && \
	cp $$run/pooling.json src/mnist_cnn/default/pooling.json && \
	cp $$run/model.keras src/mnist_cnn/default/reader.keras && \
	cp $$run/config.json src/mnist_cnn/default/reader-config.json && \
	cp $$run/metrics.json src/mnist_cnn/default/reader-metrics.json

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info
