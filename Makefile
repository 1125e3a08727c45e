# Convenience targets; the real work is in scripts/ so it runs without make.
# make install ROLE=server PREFIX=/usr DESTDIR=/tmp/stage
PREFIX ?= /usr/local
DESTDIR ?=
ROLE ?= all

.PHONY: all test demo install bench lint
all:
	cargo build --release
test:
	scripts/test
demo:
	scripts/demo
install:
	PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" scripts/install "$(ROLE)"
lint:
	mandoc -T lint -W warning man/*.[0-9]
