# Convenience targets; the real work is in scripts/ so it runs without make.
#   make && sudo make install ROLE=node      (install builds nothing: sudo has no cargo)
#   make install ROLE=server PREFIX=/usr DESTDIR=/tmp/stage
#   sudo make uninstall                      (what install listed; config and data stay)
#   make deb                                 (the Debian packages, scripts/build-deb)
#   make pi                                  (arm64 binaries, scripts/build-pi)
# ROLE is node, server or all. Installing the server role for real (no
# DESTDIR, as root) also creates the soccer-rig user and /data/soccer-rig;
# with DESTDIR it prints those commands instead (scripts/install).
PREFIX ?= /usr/local
DESTDIR ?=
ROLE ?= all
# Passed to scripts/install when set (empty means its default).
export SYSCONFDIR SYSTEMDDIR BINDIR DATADIR RIG_USER

.PHONY: all test demo install uninstall deb pi bench lint gauntlet
all:
	cargo build --release
test:
	scripts/test
demo:
	scripts/demo
install:
	PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" scripts/install "$(ROLE)"
uninstall:
	PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" scripts/uninstall
deb:
	scripts/build-deb
pi:
	scripts/build-pi
bench:
	scripts/bench
gauntlet:
	scripts/gauntlet
lint:
	mandoc -T lint -W warning man/*.[0-9]
