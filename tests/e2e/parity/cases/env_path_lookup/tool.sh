#!/bin/sh
echo "tool ran with $# args: $*" > /tmp/.last; cat /tmp/.last; cat /tmp/.last >> /tool-log
