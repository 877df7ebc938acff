# The two commands of the README: `make run` and `make test`.
BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
DATA_DIR ?= ./data
PORT ?= 8080

.PHONY: deps configure build run test bench clean

deps:
	@./scripts/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) >/dev/null

# Everything: the server, tests, benchmarks.
build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

# Only what it runs: a first start does not wait for every test and benchmark.
run: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS) --target segd
	$(BUILD_DIR)/bin/segd --data-dir $(DATA_DIR) --port $(PORT)

test: build
	@./scripts/install-deps.sh --test
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

bench: build
	$(BUILD_DIR)/bin/segd-bench

clean:
	rm -rf $(BUILD_DIR)
