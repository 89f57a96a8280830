# The two commands of the README: `make demo` and `make test`. Both install first.
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo board reports bench test test-unit lint format clean

FORK_TESTS := tests/unit/test_crash_resume.py tests/unit/test_disk_errors.py \
	tests/unit/test_locks.py tests/unit/test_sentinel_key.py

install:
	bash scripts/install.sh

demo: install
	$(BIN)/grasp-bench model prepare
	$(BIN)/grasp-bench run experiments/toy-demo.yaml
	$(BIN)/grasp-bench submit runs/toy-demo --board runs/toy-demo/board
	$(BIN)/grasp-bench leaderboard build runs/toy-demo/board

# The committed leaderboard: every task x every method on the embedded model, then the board.
# Resumes: finished training, completions and scores are kept (rerun after an interruption).
BOARD_RUNS ?= toy-compare board-insecure-code board-medical board-financial planted
# The implicit-factor positive control: measured teacher-forced (no submissions); its pooled
# seed-level report (hierarchical intervals, effect gate) is a section of the board.
IMPLICIT_RUNS ?= implicit-pirate-wide implicit-pirate-l20 implicit-cowboy-wide
REMOVAL_RUNS ?= implicit-removal-pirate-wide implicit-removal-pirate-wide-seed2
# held-out teachers of the removal study (arms fixed by a rule on pirate-wide), one report each
HELDOUT_TEACHERS ?= cowboy-wide pirate-l20
board: install
	$(BIN)/grasp-bench model prepare
	for run in $(BOARD_RUNS); do \
	  $(BIN)/grasp-bench run experiments/$$run.yaml && \
	  $(BIN)/grasp-bench submit runs/$$run --board leaderboard || exit 1; \
	done
	for run in $(IMPLICIT_RUNS); do \
	  $(BIN)/grasp-bench run experiments/$$run.yaml || exit 1; \
	done
	$(BIN)/grasp-bench implicit-report $(addprefix runs/,$(IMPLICIT_RUNS)) --out leaderboard/positive_control
	for run in $(REMOVAL_RUNS); do \
	  $(BIN)/grasp-bench run experiments/$$run.yaml || exit 1; \
	done
	$(BIN)/grasp-bench implicit-removal $(addprefix runs/,$(REMOVAL_RUNS)) --out leaderboard/positive_control
	for t in $(HELDOUT_TEACHERS); do \
	  $(BIN)/grasp-bench run experiments/implicit-removal-$$t.yaml && \
	  $(BIN)/grasp-bench run experiments/implicit-removal-$$t-seed2.yaml && \
	  $(BIN)/grasp-bench implicit-removal runs/implicit-removal-$$t runs/implicit-removal-$$t-seed2 \
	    --out leaderboard/positive_control/held-out-$$t || exit 1; \
	done
	$(BIN)/grasp-bench implicit-removal $(foreach t,$(HELDOUT_TEACHERS),runs/implicit-removal-$(t) \
	  runs/implicit-removal-$(t)-seed2) --out leaderboard/positive_control/held-out-pooled
	$(BIN)/grasp-bench leaderboard build leaderboard

# The positive-control reports rebuilt from the measurements committed beside them, with no
# training: a fresh checkout reproduces those tables and plots, and a later session pools new
# seeds with them (grasp-bench implicit-removal FOLDER/removal-measurements.csv.gz runs/NEW ...).
reports: install
	for f in $$(find leaderboard/positive_control -name implicit-measurements.csv.gz | sort); do \
	  $(BIN)/grasp-bench implicit-report $$f --out $$(dirname $$f) || exit 1; \
	done
	for f in $$(find leaderboard/positive_control -name removal-measurements.csv.gz | sort); do \
	  $(BIN)/grasp-bench implicit-removal $$f --out $$(dirname $$f) || exit 1; \
	done
	$(BIN)/grasp-bench leaderboard build leaderboard

# Every performance benchmark, one at a time, then bench/results/latest.md (its round time is in that file).
bench: install
	$(BIN)/grasp-bench model prepare
	$(BIN)/python -m bench.run_all

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install lint
	$(BIN)/grasp-bench model prepare
	$(BIN)/grasp-bench leaderboard validate
	$(BIN)/grasp-bench tasks export --check
	# the kill, disk and lock tests fork the CLI: a fork after torch's thread pool has run in
	# the same process can crash the child, so they run first, in a process of their own
	$(BIN)/python -m pytest -v $(FORK_TESTS)
	$(BIN)/python -m pytest -v --durations=20 tests $(addprefix --ignore=,$(FORK_TESTS))

test-unit: install
	$(BIN)/python -m pytest -q -m "not integration" tests

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf runs .pytest_cache .ruff_cache
