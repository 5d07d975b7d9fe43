#!/bin/sh
exec ./vecadd
