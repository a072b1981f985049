# emofuse: staged audio-visual emotion recognition.  `make demo` runs everything on the
# built-in synthetic corpus; `make test` runs the tests.  Each target that runs code
# depends on the virtual environment, which this Makefile creates and fills itself.

PYTHON     ?= python3
VENV       := .venv
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.installed

DATASET    ?= synthetic
DATA_DIR   ?= data/$(DATASET)
JOBS       ?= 2
ACTORS     ?= 8
SEED       ?= 0
METHOD     ?= concat
CLASSIFIER ?= svm
PROTOCOL   ?= speaker
SCHEDULER  ?=

export PYTHONHASHSEED := 0

.PHONY: venv corpus clips features fuse evaluate demo bench test clean

venv: $(STAMP)

# The pinned dependencies, then emofuse itself (editable, so its stages import from any
# directory and edits take effect): Dask workers started elsewhere find it too.
$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $@

# The synthetic corpus is built when missing; real corpora must already be at DATA_DIR.
ifeq ($(DATASET),synthetic)
CORPUS_READY := $(DATA_DIR)/.complete
$(CORPUS_READY): | $(STAMP)
	$(PY) -m extract corpus --out $(DATA_DIR) --actors $(ACTORS) --seed $(SEED)
else
CORPUS_READY :=
endif

corpus: $(STAMP)
	$(PY) -m extract corpus --out $(DATA_DIR) --actors $(ACTORS) --seed $(SEED)

clips: $(STAMP) $(CORPUS_READY)
	$(PY) -m extract clips --dataset $(DATASET) --data-dir $(DATA_DIR)

EXTRACT = $(PY) -m features extract --dataset $(DATASET) --data-dir $(DATA_DIR) --jobs $(JOBS) \
          $(if $(SCHEDULER),--scheduler $(SCHEDULER))

# Exits non-zero (3) when some clip failed; the failures are printed and kept in the store.
features: $(STAMP) $(CORPUS_READY)
	$(EXTRACT)

# fuse and evaluate bring the store up to date first (a resumed run: stored clips are
# skipped), so `make evaluate DATASET=... DATA_DIR=...` runs end to end; clips that failed
# were listed by the extraction and are left out.
fuse: $(STAMP) $(CORPUS_READY)
	$(EXTRACT) --no-progress || [ $$? -eq 3 ]
	$(PY) -m fusion --dataset $(DATASET) --method $(METHOD) --protocol $(PROTOCOL)

evaluate: fuse
	$(PY) -m classify evaluate --dataset $(DATASET) --method $(METHOD) --classifier $(CLASSIFIER)

# The demo: every fusion method under the speaker-independent protocol, plus concat under
# the random split (to show its inflation), each with the five light classifiers.
DEMO_METHODS := concat mfa zebra
demo: $(STAMP)
	$(MAKE) clips DATASET=synthetic
	$(MAKE) features DATASET=synthetic
	$(MAKE) fuse DATASET=synthetic METHOD=concat PROTOCOL=random
	for method in $(DEMO_METHODS); do \
	  $(MAKE) evaluate DATASET=synthetic METHOD=$$method CLASSIFIER=light || exit 1; \
	done

bench: $(STAMP)
	$(PY) -m features.bench --out reports/bench.md

test: $(STAMP)
	$(PY) -m pytest -q tests

clean:
	rm -rf cache/*/ reports/
