EXTENSION    = pg_shardload
MODULE_big   = pg_shardload
OBJS         = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
DATA         = $(wildcard pg_shardload--*.sql)
PG_CPPFLAGS  = -I$(libpq_srcdir)
SHLIB_LINK   = $(libpq)
REGRESS      = create_extension submit routing resume rights failures rejects run_due values isolation jobs inbox upgrade
REGRESS_OPTS = --temp-config=$(srcdir)/test/regress.conf \
               --temp-instance=$(CURDIR)/tmp_check_regress
TAP_TESTS    = 1
PROVE_TESTS  = test/t/*.pl
EXTRA_CLEAN  = tmp_check_regress
PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# after the include: Makefile.global resets PROVE_FLAGS
PROVE_FLAGS  = -I test/perl

# every object depends on every header: the headers are few and small
$(OBJS): $(wildcard src/*.h)

# The release archive for PGXN: pg_shardload-VERSION.zip of the committed
# tree (HEAD), VERSION from META.json.
DIST_VERSION = $(shell sed -n 's/^   "version": "\([0-9.]*\)",$$/\1/p' $(srcdir)/META.json)
dist:
	git -C $(srcdir) archive --format=zip --prefix=pg_shardload-$(DIST_VERSION)/ \
		-o $(CURDIR)/pg_shardload-$(DIST_VERSION).zip HEAD
	@echo "pg_shardload-$(DIST_VERSION).zip"
.PHONY: dist
