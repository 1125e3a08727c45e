# Convenience targets; the real work is in scripts/ so it runs without make.
# make install ROLE=server PREFIX=/usr DESTDIR=/tmp/stage
# ROLE is node, server or all. Installing the server role for real (no
# DESTDIR, as root) also creates the soccer-rig user and /data/soccer-rig;
# with DESTDIR it prints those commands instead (scripts/install).
PREFIX ?= /usr/local
DESTDIR ?=
ROLE ?= all
# Passed to scripts/install when set (empty means its default).
export SYSCONFDIR SYSTEMDDIR BINDIR DATADIR RIG_USER

.PHONY: all test demo install bench lint gauntlet
all:
	cargo build --release
test:
	scripts/test
demo:
	scripts/demo
install:
	PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" scripts/install "$(ROLE)"
bench:
	scripts/bench
gauntlet:
	scripts/gauntlet
lint:
	mandoc -T lint -W warning man/*.[0-9]
