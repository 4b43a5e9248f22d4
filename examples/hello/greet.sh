#!/bin/sh
echo "hello from kiln, built on $(uname -m)"
