# The two commands a new user needs (see README.md):
#   make demo   install what is missing, build, run the main job
#   make test   install what is missing, build, run the whole test suite (and its LibTorch 2.x lane)
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
CMAKE_ARGS ?=
# ccache must be told that PCH-using compiles are safe to cache.
export CCACHE_SLOPPINESS = pch_defines,time_macros,include_file_mtime,include_file_ctime
export CCACHE_DIR ?= $(HOME)/.cache/splitinfer-ccache
# Relative paths in the cache key, so a fresh clone elsewhere (CI) hits the same cache.
export CCACHE_BASEDIR = $(CURDIR)

.PHONY: all deps configure build test demo clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release -DSPLITINFER_REQUIRE_ALL=ON $(CMAKE_ARGS)

configure: deps $(BUILD_DIR)/CMakeCache.txt

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# The suite, then the same tree against LibTorch 2.x (Debian 13's, in a chroot kept in
# /var/cache/splitinfer/debian13; scripts/libtorch2_lane.sh).
test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)
	bash scripts/libtorch2_lane.sh $(JOBS)

demo: build
	@bash scripts/demo.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR)
