# emofuse: staged audio-visual emotion recognition.  `make demo` runs everything on the
# built-in synthetic corpus; `make test` runs the tests.  Each target that runs code
# depends on the virtual environment, which this Makefile creates and fills itself.

PYTHON     ?= python3
VENV       := .venv
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.installed

CACHE      := cache
JOBS       ?= 2
ACTORS     ?= 8
SEED       ?= 0
METHOD     ?= concat
CLASSIFIER ?= svm
PROTOCOL   ?= speaker
SCHEDULER  ?=
SNORM      ?=
PARAMS     ?=
RECIPE     ?=

# The last `make features` (its dataset, data folder, families and vocal channel), written by
# `python -m features extract`: later targets default to it.  DATASET, DATA_DIR, FAMILIES and
# VOCAL_CHANNEL given on the command line (or in the environment) win.
-include $(CACHE)/last-features.mk
ifeq ($(origin DATASET),undefined)
DATASET := $(or $(LAST_DATASET),synthetic)
FROM_LAST := $(if $(LAST_DATASET),'dataset $(DATASET)')
endif
SAME_AS_LAST := $(and $(LAST_DATASET),$(filter $(LAST_DATASET),$(DATASET)))
ifeq ($(origin DATA_DIR),undefined)
DATA_DIR := $(if $(SAME_AS_LAST),$(LAST_DATA_DIR),data/$(DATASET))
FROM_LAST_DIR := $(if $(SAME_AS_LAST),'data folder $(DATA_DIR)')
else
DATA_DIR_GIVEN := yes
endif
ifeq ($(origin FAMILIES),undefined)
FAMILIES := $(if $(SAME_AS_LAST),$(LAST_FAMILIES))
FROM_LAST_OPTIONS += $(if $(FAMILIES),'families $(FAMILIES)')
endif
ifeq ($(origin VOCAL_CHANNEL),undefined)
VOCAL_CHANNEL := $(if $(SAME_AS_LAST),$(LAST_VOCAL_CHANNEL))
FROM_LAST_OPTIONS += $(if $(VOCAL_CHANNEL),'vocal channel $(VOCAL_CHANNEL)')
endif
# A recipe line that says which of $(1) (quoted phrases) came from the last extraction,
# e.g. "dataset ravdess (from the last make features)".
say_from_last = $(if $(strip $(1)),@printf '%s (from the last make features)\n' $(1))

# fuse and evaluate bring the store up to date first only when DATA_DIR is given (or there is
# no store yet); otherwise they use the store as it is.
STORE        := $(CACHE)/$(DATASET)/features.h5
UPDATE_STORE := $(or $(DATA_DIR_GIVEN),$(if $(wildcard $(STORE)),,missing))

# SNORM=all|enrol:K (speaker normalisation), PARAMS=mfa__k2=400,mfa__k1=7 (fusion parameters).
comma := ,
FUSE_SNORM  := $(if $(filter-out none,$(SNORM)),--speaker-norm $(SNORM))
EVAL_SNORM  := $(if $(SNORM),--speaker-norm $(SNORM))
PARAM_FLAGS := $(foreach p,$(subst $(comma), ,$(PARAMS)),--param $(p))

export PYTHONHASHSEED := 0

.PHONY: venv corpus clips features fuse evaluate recipes demo bench test clean

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
# `make corpus` writes to DATA_DIR only when it is given (never into the last real corpus).
CORPUS_DIR := $(if $(DATA_DIR_GIVEN),$(DATA_DIR),data/synthetic)
ifeq ($(DATASET),synthetic)
CORPUS_READY := $(DATA_DIR)/.complete
$(CORPUS_READY): | $(STAMP)
	$(PY) -m extract corpus --out $(DATA_DIR) --actors $(ACTORS) --seed $(SEED)
else
CORPUS_READY :=
endif

corpus: $(STAMP)
	$(PY) -m extract corpus --out $(CORPUS_DIR) --actors $(ACTORS) --seed $(SEED)

clips: $(STAMP) $(CORPUS_READY)
	$(PY) -m extract clips --dataset $(DATASET) --data-dir $(DATA_DIR) \
	  $(if $(VOCAL_CHANNEL),--vocal-channel $(VOCAL_CHANNEL))

EXTRACT = $(PY) -m features extract --dataset $(DATASET) --data-dir $(DATA_DIR) --jobs $(JOBS) \
          $(if $(SCHEDULER),--scheduler $(SCHEDULER)) $(if $(FAMILIES),--families $(FAMILIES)) \
          $(if $(VOCAL_CHANNEL),--vocal-channel $(VOCAL_CHANNEL))

# Exits non-zero (3) when some clip failed; the failures are printed and kept in the store.
features: $(STAMP) $(CORPUS_READY)
	$(call say_from_last,$(FROM_LAST) $(FROM_LAST_DIR) $(FROM_LAST_OPTIONS))
	$(EXTRACT)

# With DATA_DIR given, fuse and evaluate bring the store up to date first (stored clips are
# skipped), so `make evaluate DATASET=... DATA_DIR=...` runs end to end; clips that failed
# were listed by the extraction and are left out.
fuse: $(STAMP) $(if $(UPDATE_STORE),$(CORPUS_READY))
	$(call say_from_last,$(FROM_LAST) $(if $(UPDATE_STORE),$(FROM_LAST_DIR) $(FROM_LAST_OPTIONS)))
	$(if $(UPDATE_STORE),$(EXTRACT) --no-progress || [ $$? -eq 3 ])
	$(PY) -m fusion --dataset $(DATASET) --method $(METHOD) --protocol $(PROTOCOL) --jobs $(JOBS) $(FUSE_SNORM) \
	  $(PARAM_FLAGS)

# RECIPE=<name> runs one published system end to end instead (`python -m classify recipes`
# lists them): its own families, fusion chain and classifier, under the paper's protocol and
# speaker-independently; `make recipes` runs every recipe the corpus's modalities allow.
RECIPE_ARGS = --dataset $(DATASET) $(if $(or $(UPDATE_STORE),$(CORPUS_READY)),--data-dir $(DATA_DIR)) --jobs $(JOBS)
ifneq ($(RECIPE),)
evaluate: $(STAMP) $(if $(UPDATE_STORE),$(CORPUS_READY))
	$(call say_from_last,$(FROM_LAST))
	$(PY) -m classify recipe $(RECIPE) $(RECIPE_ARGS)
else
evaluate: fuse
	$(PY) -m classify evaluate --dataset $(DATASET) --method $(METHOD) --classifier $(CLASSIFIER) \
	  --jobs $(JOBS) --protocol $(PROTOCOL) $(EVAL_SNORM)
endif

recipes: $(STAMP) $(if $(UPDATE_STORE),$(CORPUS_READY))
	$(call say_from_last,$(FROM_LAST))
	$(PY) -m classify recipes --run $(RECIPE_ARGS)

# The demo: every fusion method under the speaker-independent protocol, plus concat under
# the random split (to show its inflation), each with the five light classifiers.  Every
# method is fused before the first evaluation, so nested selection (over all fused methods)
# runs once and the later evaluations reuse it; each evaluation passes its method's PARAMS
# again, so that it reuses the fused output instead of refusing it.
# For speed the demo fixes MFA's and zebra's settings instead of searching them: MFA at
# MarginalFisherAnalysis's defaults (k1=5, PCA to n_samples - n_classes, n_classes - 1
# outputs) with its projection appended to the standardised features, the form MFA's own
# search chose in 11 of 12 real-speech folds (a single setting is fitted without inner CV);
# zebra with a small budget (20 fitness evaluations: 5 zebras and their opposites, then one
# iteration; default 100).
# Nested selection refits them with these same settings.  `make fuse METHOD=mfa` (or zebra)
# without PARAMS searches them inside the training speakers.
DEMO_PARAMS_mfa   := mfa__pca=null,mfa__k1=5,mfa__n_components=null,mfa__append=true,mfa__per_block=false
DEMO_PARAMS_zebra := zebra__budget=20,zebra__n_zebras=5
DEMO = $(MAKE) $(1) DATASET=synthetic METHOD=$(2)$(if $(DEMO_PARAMS_$(2)), PARAMS=$(DEMO_PARAMS_$(2)))
demo: $(STAMP)
	$(MAKE) clips DATASET=synthetic DATA_DIR=data/synthetic
	$(MAKE) features DATASET=synthetic DATA_DIR=data/synthetic
	$(call DEMO,fuse,concat)
	$(call DEMO,fuse,mfa)
	$(call DEMO,fuse,zebra)
	$(call DEMO,evaluate,concat) CLASSIFIER=light
	$(call DEMO,evaluate,mfa) CLASSIFIER=light
	$(call DEMO,evaluate,zebra) CLASSIFIER=light
	$(MAKE) evaluate DATASET=synthetic METHOD=concat PROTOCOL=random CLASSIFIER=light

bench: $(STAMP)
	$(PY) -m features.bench --out reports/bench.md

test: $(STAMP)
	$(PY) -m pytest -q tests

clean:
	rm -rf $(CACHE)/*/ $(CACHE)/last-features.mk reports/
