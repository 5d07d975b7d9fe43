#!/bin/sh
exec ./sum
