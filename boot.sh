#! /bin/sh
# Generates this project's configure script and Makefile.in.
set -e
autoreconf --install --force
